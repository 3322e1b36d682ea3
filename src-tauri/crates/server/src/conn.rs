//! Serving TCP connections, plain or direct TLS, with hyper itself: `axum::serve` sets neither a
//! time limit on reading a request's head nor a cap on connections, so a client that sends its
//! headers a byte at a time, or many clients at once, would hold connections (and descriptors)
//! without end. Here:
//! - a request's head must arrive within [`HEADER_READ_TIMEOUT`] (hyper's `header_read_timeout`,
//!   timed by tokio), else the connection is closed; a TLS handshake has its own limit;
//! - at most `[server] max_connections` connections are served at once: past that, new ones wait
//!   in the kernel's listen queue until one ends (those being served are not touched);
//! - on shutdown, the listener closes, each connection finishes the request in progress (live
//!   streams end themselves), and serving returns once all have ended.
//!
//! The unix socket (behind a reverse proxy, which has its own limits) stays on `axum::serve`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use super::defence::Peer;
use super::tls::Tls;

/// A request's head (request line and headers) must arrive within this long.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `tcp` (over TLS with `tls`) until `stop` turns true, then waits for the
/// connections in progress to end.
pub async fn serve(
    tcp: TcpListener,
    tls: Option<Tls>,
    app: Router,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut full_logged = false;
    loop {
        let full = slots.available_permits() == 0;
        if full && !full_logged {
            tracing::warn!(
                max_connections,
                "connection cap reached: new connections wait until one ends"
            );
        }
        full_logged = full;
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let (stream, addr) = tokio::select! {
            a = tcp.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: try again shortly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let (app, tls, stop) = (app.clone(), tls.clone(), stop.clone());
        tokio::spawn(async move {
            // The connection's place under the cap is given back when it ends.
            let _slot = slot;
            match tls {
                None => connection(stream, Peer::Tcp(addr.ip()), addr, app, stop).await,
                Some(tls) => {
                    if let Some(s) = tls.handshake(stream, addr).await {
                        connection(s, Peer::Tls(addr.ip()), addr, app, stop).await;
                    }
                }
            }
        });
    }
    drop(tcp);
    // Every connection holds a place until it ends: all of them back means all ended.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One HTTP/1.1 connection: `app` with the peer as `ConnectInfo`, the head's time limit, and a
/// graceful end on shutdown.
async fn connection<I>(
    io: I,
    peer: Peer,
    addr: SocketAddr,
    app: Router,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // A head not sent in time, a client gone: the client's business, not the server's.
        tracing::debug!(peer = %addr, error = %e, "connection ended");
    }
}
