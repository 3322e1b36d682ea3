//! Direct TLS (`[server] tls_cert` / `tls_key`): rustls over the TCP listener. Handshakes run in
//! their connection's own task (a slow or silent client never holds up the others) with a time
//! limit; the certificate and key are read again on SIGHUP (after a renewal), and a file that does
//! not load then is logged and the certificate in use is kept.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use dsmon_config::TlsFiles;

use super::ServerError;

/// A TLS handshake gets this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Current = Arc<RwLock<Arc<rustls::ServerConfig>>>;

/// Reads the certificate chain and key into a rustls configuration (HTTP/1.1).
pub fn load(files: &TlsFiles) -> Result<rustls::ServerConfig, ServerError> {
    let err = |path: &std::path::Path, reason: String| ServerError::Tls {
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| err(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(&files.cert, "no PEM certificate in the file".into()));
    }
    // The key's error names the file only: its content is secret.
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|_| err(&files.key, "no readable PEM private key in the file".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            err(
                &files.cert,
                format!("the certificate and key do not go together ({e})"),
            )
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The TLS side of the TCP listener: the configuration in use (replaced on SIGHUP).
#[derive(Clone)]
pub struct Tls {
    current: Current,
}

impl Tls {
    /// Serves the configuration from `files` (already loaded once as `first`), and re-reads
    /// `files` on every SIGHUP.
    pub fn start(files: TlsFiles, first: rustls::ServerConfig, local: SocketAddr) -> Self {
        tracing::info!(listen = %local, cert = %files.cert.display(), "serving https (direct TLS)");
        let current: Current = Arc::new(RwLock::new(Arc::new(first)));
        tokio::spawn(reload_on_hangup(files, Arc::clone(&current)));
        Self { current }
    }

    /// The TLS handshake of an accepted connection (within [`HANDSHAKE_TIMEOUT`]), with the
    /// certificate in use; `None` when it fails (logged).
    pub async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        let config = match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(stream))
            .await
        {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }
}

async fn reload_on_hangup(files: TlsFiles, current: Current) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: the TLS certificate will not be reloaded");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        match load(&files) {
            Ok(cfg) => {
                match current.write() {
                    Ok(mut c) => *c = Arc::new(cfg),
                    Err(p) => *p.into_inner() = Arc::new(cfg),
                }
                tracing::info!(cert = %files.cert.display(), "SIGHUP: TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: cannot reload the TLS certificate; keeping the one in use")
            }
        }
    }
}
