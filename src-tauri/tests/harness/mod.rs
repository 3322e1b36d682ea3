//! Test harness: real Netdata agents fed deterministic /proc files, a small fake agent for faults a
//! real one cannot produce on demand, and a runner for the `dsmon` binary. Everything started here is
//! stopped and removed on drop, also when a test fails.

#![allow(dead_code)]

pub mod alertmanager;
pub mod browser;
pub mod desktop;
pub mod fake_agent;
pub mod oidc;
pub mod postgres;
pub mod receiver;
pub mod replay;
pub mod serving;
pub mod smtp;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a fake machine reports. Netdata computes the metrics from /proc files written to match.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    /// CPU user and system percent (the rest idle).
    pub cpu_user: u32,
    pub cpu_system: u32,
    /// Memory used percent.
    pub mem_used: u32,
    /// Disk used, in quarters of a 4 MiB tmpfs (1 = 25 %).
    pub disk_quarters: u32,
    pub net_in_kbps: u32,
    pub net_out_kbps: u32,
}

impl Machine {
    /// 40 % CPU (30 user + 10 system), 50 % memory, 25 % disk, 1000/2000 kbit/s in/out.
    pub const STANDARD: Machine = Machine {
        cpu_user: 30,
        cpu_system: 10,
        mem_used: 50,
        disk_quarters: 1,
        net_in_kbps: 1000,
        net_out_kbps: 2000,
    };

    pub fn cpu_pct(&self) -> f64 {
        f64::from(self.cpu_user + self.cpu_system)
    }
    pub fn disk_pct(&self) -> f64 {
        f64::from(self.disk_quarters) * 25.0
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn unique_dir(kind: &str) -> PathBuf {
    // Lowercase letters and digits only: the path becomes part of a Netdata chart id.
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("dsmontest{}{kind}{n}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create test dir");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).expect("chmod test dir");
    d
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `f` every 100 ms until it holds; fails the test naming `what` after `limit`. Returns
/// how long it took.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn netdata_ids() -> (u32, u32) {
    let out = Command::new("id")
        .args(["-u", "netdata"])
        .output()
        .expect("id");
    let uid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("user netdata exists (apt-get install netdata)");
    let out = Command::new("id")
        .args(["-g", "netdata"])
        .output()
        .expect("id");
    let gid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("group netdata");
    (uid, gid)
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// How an agent takes part in Netdata streaming (`<config dir>/stream.conf`).
#[derive(Debug, Clone)]
pub enum Stream {
    /// Accepts children that send this API key (a UUID).
    Parent { api_key: String },
    /// Streams to the parent on this loopback port with this API key.
    Child { parent_port: u16, api_key: String },
}

impl Stream {
    /// A fresh API key (a UUID, as stream.conf wants).
    pub fn new_api_key() -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst) as u64;
        let t = (unix_now() * 1e6) as u64;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (t >> 20) as u32,
            (t & 0xffff) as u16,
            n & 0xfff,
            std::process::id() & 0xfff,
            (t ^ (n << 24)) & 0xffff_ffff_ffff
        )
    }

    fn conf(&self) -> String {
        match self {
            Stream::Parent { api_key } => format!(
                "[{api_key}]\n    enabled = yes\n    default memory mode = dbengine\n    health enabled by default = no\n"
            ),
            Stream::Child {
                parent_port,
                api_key,
            } => format!(
                "[stream]\n    enabled = yes\n    destination = 127.0.0.1:{parent_port}\n    api key = {api_key}\n"
            ),
        }
    }
}

/// A real Netdata agent on a loopback port.
pub struct NetdataAgent {
    pub name: String,
    pub port: u16,
    pub machine: Machine,
    pub dir: PathBuf,
    pub mount: PathBuf,
    /// With TLS: the CA certificate that signed the agent's certificate.
    pub ca: Option<PathBuf>,
    conf: PathBuf,
    child: Option<Child>,
    stop_writer: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    mounted: bool,
}

impl NetdataAgent {
    /// Starts an agent and waits until it serves non-null values on all four charts.
    pub fn start(name: &str, machine: Machine) -> Self {
        Self::start_with(name, machine, false, None)
    }

    /// The same, also serving https (plain http stays available for the harness's own checks).
    pub fn start_tls(name: &str, machine: Machine) -> Self {
        Self::start_with(name, machine, true, None)
    }

    /// An agent that streams (as a parent or a child, see [`Stream`]); ready as [`Self::start`].
    pub fn start_streaming(name: &str, machine: Machine, stream: Stream) -> Self {
        Self::start_with(name, machine, false, Some(stream))
    }

    fn start_with(name: &str, machine: Machine, tls: bool, stream: Option<Stream>) -> Self {
        assert!(
            is_root(),
            "the Netdata tests need root: agents run as user netdata and disks are tmpfs mounts"
        );
        assert!(
            Path::new("/usr/sbin/netdata").exists(),
            "netdata is not installed (apt-get install netdata)"
        );
        let dir = unique_dir("agent");
        let fake = dir.join("proc");
        fs::create_dir_all(fake.join("net")).expect("mkdir");
        for d in [&dir, &fake, &fake.join("net")] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        write_meminfo(&fake.join("meminfo"), machine.mem_used);

        // The disk: a 4 MiB tmpfs filled to the wanted share.
        let mount = dir.join("disk");
        fs::create_dir_all(&mount).expect("mkdir disk");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs"])
            .arg(&mount)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mount tmpfs on {}", mount.display());
        if machine.disk_quarters > 0 {
            let mut f = File::create(mount.join("fill")).expect("fill");
            f.write_all(&vec![7u8; machine.disk_quarters as usize * 1024 * 1024])
                .expect("fill write");
            f.sync_all().ok();
        }

        let port = free_port();
        let (uid, gid) = netdata_ids();
        for sub in ["etc", "cache", "lib", "log", "run"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).expect("mkdir");
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown");
        }
        if let Some(stream) = &stream {
            let path = dir.join("etc/stream.conf");
            fs::write(&path, stream.conf()).expect("stream.conf");
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown stream.conf");
        }
        let ca = tls.then(|| make_certificates(&dir));
        let conf = dir.join("netdata.conf");
        let mut text = if tls {
            // Plain http stays on for the harness's own readiness checks.
            let bind = format!("127.0.0.1:{port}=dashboard|badges^SSL=optional");
            netdata_conf(name, &dir, &fake, &bind, port)
        } else {
            netdata_conf(name, &dir, &fake, &format!("127.0.0.1:{port}"), port)
        };
        if tls {
            text = text.replace(
                "[web]\n",
                &format!(
                    "[web]\n    ssl key = {d}/tls/key.pem\n    ssl certificate = {d}/tls/cert.pem\n",
                    d = dir.display()
                ),
            );
        }
        fs::write(&conf, text).expect("conf");

        let stop_writer = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = Arc::clone(&stop_writer);
            let fake = fake.clone();
            // Counters start before the agent so its first reads already see them move.
            let (stat, netdev) = (fake.join("stat"), fake.join("net/dev"));
            write_counters(&stat, &netdev, &machine, unix_now());
            std::thread::spawn(move || {
                let start = unix_now() - 1.0;
                let stat_f = fs::OpenOptions::new()
                    .write(true)
                    .open(&stat)
                    .expect("stat");
                let net_f = fs::OpenOptions::new()
                    .write(true)
                    .open(&netdev)
                    .expect("net/dev");
                while !stop.load(Ordering::Relaxed) {
                    let t = unix_now() - start;
                    let (s, n) = counter_texts(&machine, t);
                    let _ = stat_f.write_all_at(s.as_bytes(), 0);
                    let _ = net_f.write_all_at(n.as_bytes(), 0);
                    std::thread::sleep(Duration::from_millis(4));
                }
            })
        };

        let child = spawn_netdata(&dir, &conf);

        let agent = Self {
            name: name.to_string(),
            port,
            machine,
            dir,
            mount,
            ca,
            conf,
            child: Some(child),
            stop_writer,
            writer: Some(writer),
            mounted: true,
        };
        agent.wait_ready(Duration::from_secs(40));
        agent
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// The agent's machine guid (`uid` in its `/api/v1/info`), its identity to a parent.
    pub fn guid(&self) -> String {
        let (_, body) = http_get(self.port, "/api/v1/info").expect("info");
        let v: serde_json::Value = serde_json::from_str(&body).expect("info JSON");
        v["uid"].as_str().expect("uid").to_string()
    }

    /// For a parent: the hostnames of the children streaming to it now (`reachable` in its
    /// `/api/v1/info`).
    pub fn streaming_children(&self) -> Vec<String> {
        let Ok((200, body)) = http_get(self.port, "/api/v1/info") else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let mut out: Vec<String> = v["mirrored_hosts_status"]
            .as_array()
            .map(|hosts| {
                hosts
                    .iter()
                    .filter(|h| h["hops"].as_i64() != Some(0) && h["reachable"] == true)
                    .filter_map(|h| h["hostname"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The `disk` value to configure for this agent.
    pub fn disk(&self) -> String {
        self.mount.display().to_string()
    }

    /// The interface the fake /proc/net/dev has.
    pub fn interface(&self) -> &'static str {
        "fake0"
    }

    /// A `[[nodes]]` table for this agent.
    pub fn node_toml(&self) -> String {
        format!(
            "[[nodes]]\nname = \"{}\"\nurl = \"{}\"\ndisk = \"{}\"\n",
            self.name,
            self.url(),
            self.disk()
        )
    }

    fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        let disk_chart = format!("disk_space.{}", self.disk().replace('/', "_"));
        let charts = ["system.cpu", "system.ram", disk_chart.as_str()];
        let net_want = [
            f64::from(self.machine.net_in_kbps),
            f64::from(self.machine.net_out_kbps),
        ];
        loop {
            let ready = charts.iter().all(|c| {
                http_get(
                    self.port,
                    &format!("/api/v1/data?chart={c}&after=-1&points=1&options=absolute"),
                )
                .map(|(status, body)| status == 200 && newest_row_nonzero(&body))
                .unwrap_or(false)
            }) && self.net_steady(&net_want);
            if ready {
                return;
            }
            if start.elapsed() > limit {
                let log = fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default();
                panic!(
                    "agent {} on port {} not ready after {limit:?}; its output:\n{log}",
                    self.name, self.port
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Netdata's first rates after a start are partial; ready once the last two points are steady.
    fn net_steady(&self, want: &[f64; 2]) -> bool {
        let Ok((200, body)) = http_get(
            self.port,
            "/api/v1/data?chart=system.net&after=-2&points=2&options=absolute",
        ) else {
            return false;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
            return false;
        };
        let rows = v["data"].as_array().cloned().unwrap_or_default();
        rows.len() == 2
            && rows.iter().all(|r| {
                let got = [r[1].as_f64(), r[2].as_f64()];
                got.iter()
                    .zip(want)
                    .all(|(g, w)| g.is_some_and(|g| (g - w).abs() <= w * 0.05))
            })
    }

    /// Stops the agent (SIGTERM, then waits): its port refuses connections afterwards.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGCONT);
            signal(child.id(), libc::SIGTERM);
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts a killed agent again on the same port and directories, and waits until it is ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart() is for a killed agent");
        self.child = Some(spawn_netdata(&self.dir, &self.conf));
        self.wait_ready(Duration::from_secs(40));
    }

    /// Changes the machine's memory use while the agent runs (Netdata reads it within a second).
    pub fn set_memory(&mut self, used_pct: u32) {
        let text = meminfo_text(used_pct);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("proc/meminfo"))
            .expect("meminfo");
        f.write_all_at(text.as_bytes(), 0).expect("meminfo write");
        self.machine.mem_used = used_pct;
    }

    /// Freezes the agent (SIGSTOP): connections are accepted by the kernel, nothing answers.
    pub fn hang(&self) {
        signal(self.pid(), libc::SIGSTOP);
    }

    pub fn resume(&self) {
        signal(self.pid(), libc::SIGCONT);
    }
}

impl Drop for NetdataAgent {
    fn drop(&mut self) {
        self.kill();
        self.stop_writer.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn spawn_netdata(dir: &Path, conf: &Path) -> Child {
    let log = File::create(dir.join("stdout.log")).expect("log");
    Command::new("/usr/sbin/netdata")
        .arg("-c")
        .arg(conf)
        .arg("-D")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start netdata")
}

fn newest_row_nonzero(body: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    let Some(row) = v["data"].get(0).and_then(|r| r.as_array()) else {
        return false;
    };
    row.iter()
        .skip(1)
        .any(|x| x.as_f64().is_some_and(|f| f > 0.0))
        && row.iter().skip(1).all(|x| !x.is_null())
}

/// The project's agent template (also used by scripts/demo.sh), pointed at fake /proc files.
fn netdata_conf(name: &str, dir: &Path, fake: &Path, bind: &str, port: u16) -> String {
    let user = if is_root() {
        "netdata".to_string()
    } else {
        std::env::var("USER").unwrap_or_default()
    };
    let template = include_str!("../../../scripts/netdata-agent.conf");
    let f = fake.display();
    template
        .replace("@NAME@", name)
        .replace("@DIR@", &dir.display().to_string())
        .replace("@USER@", &user)
        .replace("@BIND@", bind)
        .replace("@PORT@", &port.to_string())
        + &format!(
            "[plugin:proc:/proc/stat]\n    filename to monitor = {f}/stat\n\
             [plugin:proc:/proc/meminfo]\n    filename to monitor = {f}/meminfo\n\
             [plugin:proc:/proc/net/dev]\n    filename to monitor = {f}/net/dev\n"
        )
}

/// A throw-away CA and a server certificate for 127.0.0.1 signed by it, in `dir/tls`.
/// Returns the CA certificate's path.
pub fn make_certificates(dir: &Path) -> PathBuf {
    let tls = dir.join("tls");
    fs::create_dir_all(&tls).expect("mkdir tls");
    fs::set_permissions(&tls, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(
        tls.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&tls)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=dsmon test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    // Readable by the agent's user.
    for f in ["key.pem", "cert.pem"] {
        fs::set_permissions(tls.join(f), fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    tls.join("ca.pem")
}

fn write_meminfo(path: &Path, used_pct: u32) {
    fs::write(path, meminfo_text(used_pct)).expect("meminfo");
}

/// /proc/meminfo with `used_pct` used. Fixed-width numbers: every text is the same length, so a
/// change written at offset 0 is never seen half-written.
fn meminfo_text(used_pct: u32) -> String {
    // Netdata: used = MemTotal - MemFree - Buffers - Cached (SReclaimable and Shmem zero here).
    let total: u64 = 8_000_000;
    let used = total * u64::from(used_pct) / 100;
    let rest = total - used;
    let (free, buffers) = (rest / 2, rest / 4);
    let cached = rest - free - buffers;
    format!(
        "MemTotal:       {total:>10} kB\nMemFree:        {free:>10} kB\nMemAvailable:   {rest:>10} kB\nBuffers:        {buffers:>10} kB\n\
         Cached:         {cached:>10} kB\nSwapCached:            0 kB\nActive:         {used:>10} kB\nInactive:       {cached:>10} kB\n\
         SwapTotal:             0 kB\nSwapFree:              0 kB\nShmem:                 0 kB\nSReclaimable:          0 kB\n"
    )
}

/// /proc/stat and /proc/net/dev for `t` seconds of running. Fixed-width numbers, so every write is
/// the same length at offset 0 and a reader never sees a half-written file. CPU counters move in
/// whole steps of (user, system, idle), so every difference Netdata takes has exactly the wanted ratio.
fn counter_texts(m: &Machine, t: f64) -> (String, String) {
    let k = (t * 100.0) as u64;
    let (u, s) = (u64::from(m.cpu_user) * k, u64::from(m.cpu_system) * k);
    let idle = u64::from(100 - m.cpu_user - m.cpu_system) * k;
    let stat = format!(
        "cpu  {u:>16} 0 {s:>16} {idle:>16} 0 0 0 0 0 0\ncpu0 {u:>16} 0 {s:>16} {idle:>16} 0 0 0 0 0 0\n"
    );
    let rx = (f64::from(m.net_in_kbps) * 125.0 * t) as u64;
    let tx = (f64::from(m.net_out_kbps) * 125.0 * t) as u64;
    let net = format!(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n \
         fake0: {rx:>20} 0 0 0 0 0 0 0 {tx:>20} 0 0 0 0 0 0 0\n"
    );
    (stat, net)
}

fn write_counters(stat: &Path, net: &Path, m: &Machine, _now: f64) {
    let (s, n) = counter_texts(m, 0.0);
    fs::write(stat, s).expect("stat");
    fs::write(net, n).expect("net/dev");
}

/// A minimal blocking HTTP/1.0 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_get_full(port, path).map(|(status, _, body)| (status, body))
}

/// The same with the response head (status line and headers, lowercased).
pub fn http_get_full(port: u16, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    Ok((status, head.to_lowercase(), body.to_string()))
}

/// `method path` with a JSON `body` and this server's `Origin` (as its own page sends a change):
/// the status and the JSON answer (`Null` when not JSON).
pub fn http_json(
    port: u16,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let text = buf.split_once("\r\n\r\n").map_or("", |x| x.1);
    (
        status,
        serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
    )
}

/// `dsmon serve` running for a test; stopped with SIGTERM (and waited for) on drop.
pub struct Serve {
    pub child: Child,
    pub port: u16,
}

impl Serve {
    /// Starts `dsmon serve` and waits until /healthz answers.
    pub fn start(d: &Dsmon) -> Self {
        let child = d
            .command(&["serve"])
            .stderr(Stdio::null())
            .spawn()
            .expect("serve");
        let s = Self {
            child,
            port: d.port,
        };
        let start = Instant::now();
        while !matches!(http_get(s.port, "/healthz"), Ok((200, ref b)) if b == "ok") {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "serve did not answer /healthz"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// GET returning parsed JSON; panics unless the status is `want`.
    pub fn json(&self, path: &str, want: u16) -> serde_json::Value {
        let (status, head, body) = http_get_full(self.port, path).expect("GET");
        assert_eq!(status, want, "GET {path}: {body}");
        assert!(
            head.contains("content-type: application/json"),
            "GET {path}: {head}"
        );
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), libc::SIGTERM);
        self.child.wait().expect("wait serve")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.child.id(), libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

// ---- the dsmon binary ----------------------------------------------------------------------

/// A working directory with a config file, and the `dsmon` binary run in it.
pub struct Dsmon {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub db: PathBuf,
    /// The loopback port `serve` listens on.
    pub port: u16,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Dsmon {
    /// Writes `dsmon.toml`: a `[storage]` in the test dir and a `[server]` on a free loopback port
    /// (four lines and a blank one), followed by `rest`.
    pub fn new(rest: &str) -> Self {
        let dir = unique_dir("dsmon");
        let db = dir.join("dsmon.sqlite3");
        let config = dir.join("dsmon.toml");
        let port = free_port();
        fs::write(
            &config,
            format!(
                "[storage]\npath = \"{}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n\n{rest}",
                db.display()
            ),
        )
        .expect("config");
        Self {
            dir,
            config,
            db,
            port,
        }
    }

    pub fn bin() -> &'static str {
        env!("CARGO_BIN_EXE_dsmon")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(Self::bin());
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.dir);
        c.env_remove("DSMON_LOG").env_remove("DSMON_CONFIG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run_command(self.command(args))
    }

    /// Every logged row, via `dsmon export --format json`.
    pub fn rows(&self) -> Vec<serde_json::Value> {
        let r = self.run(&[
            "export",
            "--from",
            "2000-01-01",
            "--to",
            "now",
            "--format",
            "json",
        ]);
        assert_eq!(r.code, 0, "export failed: {}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("export JSON: {e}\n{}", r.stdout))
    }
}

fn run_command(mut c: Command) -> Run {
    let start = Instant::now();
    let out: Output = c.output().expect("run dsmon");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Runs `dsmon ARGS` in `dir` without a test config.
pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let mut c = Command::new(Dsmon::bin());
    c.args(args)
        .current_dir(dir)
        .env_remove("DSMON_LOG")
        .env_remove("DSMON_CONFIG");
    run_command(c)
}

impl Drop for Dsmon {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Sleeps until just after the next wall-clock multiple of `interval` seconds that leaves at least
/// `min_history` seconds between `since` and the start of the interval it closes. Returns that tick.
pub fn wait_for_tick(interval: u64, since: f64, min_history: f64) -> i64 {
    let i = interval as f64;
    let mut tick = ((unix_now() / i).floor() + 1.0) * i;
    while tick - i < since + min_history {
        tick += i;
    }
    let wait = tick + 0.2 - unix_now();
    if wait > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
    tick as i64
}

/// RFC 3339 as dsmon writes it.
pub fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .expect("valid ts")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn assert_close(what: &str, got: &serde_json::Value, want: f64, tolerance: f64) {
    let g = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    assert!(
        (g - want).abs() <= tolerance,
        "{what}: got {g}, want {want} ± {tolerance}"
    );
}
