//! `dsmon serve` as a deployment runs it: on a unix socket behind a proxy, or on TCP with its log
//! kept in a file; and raw HTTP/1.0 requests over either kind of connection, from a chosen
//! loopback source address when needed.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{signal, Dsmon};

/// An HTTP answer: status, head (lowercased) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// A header's value (the first one), from the lowercased head.
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_lowercase());
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::trim)
    }
}

/// Sends `request` (a whole HTTP/1.0 request: head and body) and reads the answer to the end.
pub fn exchange(mut s: impl Read + Write, request: &[u8]) -> std::io::Result<Answer> {
    s.write_all(request)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok(Answer {
        status,
        head: head.to_lowercase(),
        body: body.to_string(),
    })
}

/// A GET request with extra header lines (each "Name: value").
pub fn get_request(path: &str, headers: &[&str]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A connection to `port` on 127.0.0.1 from the loopback address `from` (any of 127.0.0.0/8).
pub fn connect_from(from: Ipv4Addr, port: u16) -> TcpStream {
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a new socket, owned by the TcpStream made from it before any early return.
    let s = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    };
    let (local, remote) = (sockaddr(from, 0), sockaddr(Ipv4Addr::LOCALHOST, port));
    // SAFETY: bind(2) and connect(2) on the socket above with properly sized sockaddr_in values.
    unsafe {
        let rc = libc::bind(
            s.as_raw_fd(),
            (&local as *const libc::sockaddr_in).cast(),
            len,
        );
        assert_eq!(rc, 0, "bind {from}: {}", std::io::Error::last_os_error());
        let rc = libc::connect(
            s.as_raw_fd(),
            (&remote as *const libc::sockaddr_in).cast(),
            len,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
    }
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// A TCP exchange with the dsmon on `port` from 127.0.0.1.
pub fn tcp(port: u16, request: &[u8]) -> Answer {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    exchange(s, request).expect("HTTP over TCP")
}

/// An exchange over the unix socket `sock`.
pub fn unix(sock: &Path, request: &[u8]) -> Answer {
    let s = UnixStream::connect(sock).expect("connect to the socket");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    exchange(s, request).expect("HTTP over the unix socket")
}

/// `dsmon serve` with its log in `d.dir/serve.log`; stopped with SIGTERM on drop.
pub struct Served {
    pub child: Child,
    pub log: PathBuf,
    /// The unix socket, when it serves on one.
    pub socket: Option<PathBuf>,
}

impl Served {
    /// Serves on the TCP port of `d`'s configuration.
    pub fn tcp(d: &Dsmon) -> Self {
        let s = Self::spawn(d, None);
        s.wait(|| matches!(super::http_get(d.port, "/healthz"), Ok((200, _))));
        s
    }

    /// Rewrites `d`'s configuration to listen on a unix socket in its directory, and serves there.
    /// (The configuration needs an `[auth]` section: dsmon refuses a socket without sign-in.)
    pub fn unix(d: &Dsmon) -> Self {
        let sock = d.dir.join("dsmon.sock");
        let text = std::fs::read_to_string(&d.config).expect("config");
        let tcp = format!("listen = \"127.0.0.1:{}\"", d.port);
        assert!(text.contains(&tcp), "the harness's [server] line");
        let text = text.replace(&tcp, &format!("listen = \"unix:{}\"", sock.display()));
        std::fs::write(&d.config, text).expect("config");
        Self::on_socket(d, &sock)
    }

    /// Serves with `d`'s configuration as it is, which listens on the unix socket `sock`.
    pub fn on_socket(d: &Dsmon, sock: &Path) -> Self {
        let sock = sock.to_path_buf();
        let s = Self::spawn(d, Some(sock.clone()));
        s.wait(|| {
            UnixStream::connect(&sock)
                .ok()
                .and_then(|c| exchange(c, &get_request("/healthz", &[])).ok())
                .is_some_and(|a| a.status == 200)
        });
        s
    }

    fn spawn(d: &Dsmon, socket: Option<PathBuf>) -> Self {
        let log = d.dir.join("serve.log");
        let child = d
            .command(&["serve"])
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
            .spawn()
            .expect("serve");
        Self { child, log, socket }
    }

    fn wait(&self, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ready() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "serve did not answer /healthz; its log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), libc::SIGTERM);
        self.child.wait().expect("wait serve")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.child.id(), libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}
