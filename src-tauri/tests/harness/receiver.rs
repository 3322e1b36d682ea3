//! An HTTP receiver for notifications: a small axum server on its own thread (so it outlives any
//! one test's runtime) that records every request and answers as the test's responder says.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;

/// One request received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status answered.
    pub status: u16,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {}",
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Decides the answer to a request: (status, body). `nth` counts the requests to the same path
/// so far, this one included (1 for the first).
pub type Responder = dyn Fn(&Hit, usize) -> (u16, String) + Send + Sync;

#[derive(Clone)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    respond: Arc<Responder>,
}

pub struct Receiver {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port; it runs until the process ends.
    pub fn start(respond: impl Fn(&Hit, usize) -> (u16, String) + Send + Sync + 'static) -> Self {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            hits: hits.clone(),
            respond: Arc::new(respond),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("receiver runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind receiver");
                    let port = listener.local_addr().expect("addr").port();
                    let _ = tx.send(port);
                    let app = Router::new().fallback(record).with_state(shared);
                    let _ = axum::serve(listener, app).await;
                });
            })
            .expect("receiver thread");
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver port");
        Self { port, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request to `path` so far.
    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .map(|h| h.iter().filter(|h| h.path == path).cloned().collect())
            .unwrap_or_default()
    }

    /// Waits up to `limit` for a request to `path` that `want` accepts.
    pub fn wait_for(&self, path: &str, limit: Duration, want: impl Fn(&Hit) -> bool) -> Hit {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(h) = self.hits(path).into_iter().find(|h| want(h)) {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "no matching request to {path} within {limit:?}; got: {:#?}",
                self.hits(path)
                    .iter()
                    .map(|h| (h.status, h.text()))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn record(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut hit = Hit {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
        status: 0,
    };
    let mut hits = match s.hits.lock() {
        Ok(h) => h,
        Err(p) => p.into_inner(),
    };
    let nth = hits.iter().filter(|h| h.path == hit.path).count() + 1;
    let (status, text) = (s.respond)(&hit, nth);
    hit.status = status;
    hits.push(hit);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        text,
    )
}
