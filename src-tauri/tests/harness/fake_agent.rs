//! A tiny HTTP server that misbehaves the way a real Netdata agent cannot be made to on demand:
//! garbage JSON, HTTP 500, or a body that stalls half way.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 200 with a body that is not Netdata's JSON.
    Garbage,
    /// 500 Internal Server Error.
    ServerError,
    /// 200, headers and the first bytes of the body, then nothing.
    StallMidBody,
    /// 200 with well-formed data whose newest point is a minute old (an agent that stopped collecting).
    Stale,
}

pub struct FakeAgent {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeAgent {
    pub fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    let s = Arc::clone(&s);
                    std::thread::spawn(move || serve(conn, fault, &s));
                }
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, fault: Fault, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut out = conn;
    loop {
        // Read one request's head.
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" && !first {
                break;
            }
            first = false;
        }
        let ok = match fault {
            Fault::Garbage => respond(
                &mut out,
                "200 OK",
                "{\"labels\": [\"time\", \"user\"], \"data\": [[\"soon\", oops",
            ),
            Fault::ServerError => respond(&mut out, "500 Internal Server Error", "internal error"),
            Fault::Stale => {
                let old = super::unix_now() as i64 - 60;
                let body = format!(
                    "{{\"labels\": [\"time\", \"used\", \"free\", \"avail\", \"received\", \"sent\", \"user\"], \"data\": [[{old}, 1, 2, 3, 4, 5, 6]]}}"
                );
                respond(&mut out, "200 OK", &body)
            }
            Fault::StallMidBody => {
                let _ = out.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{\"labels\": [\"time\",",
                );
                let _ = out.flush();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return;
            }
        };
        if !ok {
            return;
        }
    }
}

fn respond(out: &mut TcpStream, status: &str, body: &str) -> bool {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
        body.len()
    )
    .and_then(|_| out.flush())
    .is_ok()
}
