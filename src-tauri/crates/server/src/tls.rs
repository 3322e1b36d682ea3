//! Direct TLS (`[server] tls_cert` / `tls_key`): rustls over the TCP listener. Handshakes run in
//! their own tasks (a slow or silent client never holds up the others) with a time limit; the
//! certificate and key are read again on SIGHUP (after a renewal), and a file that does not load
//! then is logged and the certificate in use is kept.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
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

/// Accepted and handshaken TLS connections, as axum's listener.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` with the configuration from `files` (already loaded once as
    /// `first`), and re-reads `files` on every SIGHUP.
    pub fn start(
        tcp: TcpListener,
        files: TlsFiles,
        first: rustls::ServerConfig,
    ) -> Result<Self, ServerError> {
        let local = tcp.local_addr().map_err(ServerError::Serve)?;
        tracing::info!(listen = %local, cert = %files.cert.display(), "serving https (direct TLS)");
        let current: Current = Arc::new(RwLock::new(Arc::new(first)));
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(tcp, Arc::clone(&current), tx));
        tokio::spawn(reload_on_hangup(files, current));
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ended (it cannot accept any more): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    current: Current,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            a = tcp.accept() => a,
            // The server stopped and dropped its listener.
            () = tx.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: try again shortly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let config = match current.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(stream))
                .await
            {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
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
