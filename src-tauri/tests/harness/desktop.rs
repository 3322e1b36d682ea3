//! The desktop app (the `gui` build of dsmon) driven end to end: a virtual X display (Xvfb),
//! tauri-driver + WebKitWebDriver, and a `BROWSER` script standing in for the system browser —
//! it records the sign-in URL the app opens, and the test logs in at the real provider with it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::browser::Browser;
use super::oidc::{loopback_redirect, Agent};

/// The desktop binary: `target/debug/dsmon` of the default (gui) build, built here if needed (a
/// no-op when scripts/test.sh built it already). `DSMON_GUI_BIN` names another one.
pub fn gui_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("DSMON_GUI_BIN") {
            return PathBuf::from(p);
        }
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(env!("CARGO"))
            .args(["build", "--bin", "dsmon"])
            .current_dir(&manifest)
            .env_remove("CARGO_TARGET_DIR")
            .stdout(Stdio::null())
            .status()
            .expect("cargo build (the desktop app)");
        assert!(status.success(), "building the desktop app failed");
        manifest.join("../target/debug/dsmon")
    })
    .clone()
}

fn tauri_driver() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let p = home.join("bin/tauri-driver");
    assert!(
        p.exists() && Path::new("/usr/bin/WebKitWebDriver").exists(),
        "the desktop tests need tauri-driver ({}) and WebKitWebDriver: scripts/test.sh installs them",
        p.display()
    );
    p
}

/// A virtual display on a free number; its X socket exists when this returns.
fn xvfb() -> (Child, String) {
    for n in 120..400 {
        if Path::new(&format!("/tmp/.X{n}-lock")).exists()
            || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        {
            continue;
        }
        let mut child = Command::new("Xvfb")
            .args([
                &format!(":{n}"),
                "-screen",
                "0",
                "1600x900x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (apt-get install xvfb)");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                return (child, format!(":{n}"));
            }
            if child.try_wait().ok().flatten().is_some() {
                break; // lost a race for this number
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("no free X display number");
}

/// A desktop session's notification service: a D-Bus session bus, `dunst` (a real notification
/// daemon, on a display of its own) owning `org.freedesktop.Notifications`, and `dbus-monitor`
/// recording every `Notify` call. Stopped on drop.
pub struct Notices {
    pub address: String,
    log: PathBuf,
    children: Vec<Child>,
}

/// A D-Bus session bus of its own (socket `dir/<file>`), up when this returns: the daemon and its
/// address.
fn session_bus(dir: &Path, file: &str) -> (Child, String) {
    let socket = dir.join(file);
    let address = format!("unix:path={}", socket.display());
    let bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile"])
        .arg(format!("--address={address}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon (apt-get install dbus)");
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the session bus did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (bus, address)
}

/// Waits until `name` has an owner on the bus at `address` (a service is up).
fn wait_for_name(address: &str, name: &str, what: &str) {
    let start = Instant::now();
    loop {
        let owned = Command::new("dbus-send")
            .args([
                &format!("--bus={address}"),
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{name}"),
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
            .unwrap_or(false);
        if owned {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not take the name {name} on the session bus"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Notices {
    pub fn start(dir: &Path) -> Self {
        let mut children = Vec::new();
        let (bus, address) = session_bus(dir, "bus");
        children.push(bus);
        let (display, name) = xvfb();
        children.push(display);
        let dunst = Command::new("dunst")
            .env("DISPLAY", &name)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst (apt-get install dunst)");
        children.push(dunst);
        let log = dir.join("notify-calls.log");
        let monitor = Command::new("dbus-monitor")
            .args([
                "--address",
                &address,
                "type='method_call',interface='org.freedesktop.Notifications',member='Notify'",
            ])
            .stdout(
                std::fs::File::create(&log)
                    .map(Stdio::from)
                    .expect("monitor log"),
            )
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-monitor");
        children.push(monitor);
        // dunst takes the Notifications name on the bus once it is up.
        wait_for_name(&address, "org.freedesktop.Notifications", "dunst");
        Self {
            address,
            log,
            children,
        }
    }

    /// What dbus-monitor has recorded so far (the Notify calls' arguments).
    pub fn calls(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Notices {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A desktop session's Secret Service, as a signed-in GNOME session has: a D-Bus session bus and
/// `gnome-keyring-daemon` (its secrets component) on it, whose login keyring is created and
/// unlocked with a password given on standard input (as a display manager does at login). Its
/// files (the encrypted keyring) are under `dir/keyring`. Stopped on drop.
pub struct Keyring {
    pub address: String,
    children: Vec<Child>,
}

impl Keyring {
    pub fn start(dir: &Path) -> Self {
        let home = dir.join("keyring");
        let runtime = home.join("run");
        std::fs::create_dir_all(&runtime).expect("keyring dirs");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))
            .expect("chmod runtime dir");
        let (bus, address) = session_bus(dir, "keyring-bus");
        let mut children = vec![bus];
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon (apt-get install gnome-keyring)");
        {
            use std::io::Write as _;
            let mut stdin = daemon.stdin.take().expect("stdin");
            stdin
                .write_all(b"login-password")
                .expect("the keyring password");
        } // closed: the password ends here
        children.push(daemon);
        wait_for_name(&address, "org.freedesktop.secrets", "gnome-keyring-daemon");
        Self { address, children }
    }

    /// What the keyring holds for the app (`secret-tool search --all service io.github.dsmon`):
    /// each entry's label, `secret = ...` and attributes; empty when there is none.
    pub fn app_entries(&self) -> String {
        let out = Command::new("secret-tool")
            .args(["search", "--all", "service", "io.github.dsmon"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("secret-tool (apt-get install libsecret-tools)");
        // It prints the attributes on standard error and the rest on standard output.
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where a desktop app under test keeps its files, and what its "browser" was asked to open.
pub struct DesktopHome {
    pub dir: PathBuf,
    /// One line per URL the app opened.
    pub urls: PathBuf,
    /// The session bus the app is started on, when the test watches its notifications or gives
    /// it a keyring ([`Notices`], [`Keyring`]); otherwise it has none.
    pub bus: Option<String>,
}

impl DesktopHome {
    pub fn new() -> Self {
        let dir = super::unique_dir("dsmon-desktop");
        let urls = dir.join("opened-urls");
        let script = dir.join("browser.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n", urls.display()),
        )
        .expect("browser script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self {
            dir,
            urls,
            bus: None,
        }
    }

    /// The configuration file the app is started with by [`DesktopHome::launch_config`].
    pub fn config(&self) -> PathBuf {
        self.dir.join("dsmon.toml")
    }

    /// Writes `text` as the app's configuration and starts the app with `--config` on it.
    pub async fn launch_config(&self, text: &str) -> Browser {
        let config = self.config();
        std::fs::write(&config, text).expect("config");
        self.launch(&["--config", config.to_str().expect("utf-8")])
            .await
    }

    /// Starts the app with `args` (e.g. `--config PATH`) and a WebDriver session on its window.
    pub async fn launch(&self, args: &[&str]) -> Browser {
        let bin = gui_binary();
        let (display, name) = xvfb();
        let port = super::free_port();
        let native = super::free_port();
        let driver = Command::new(tauri_driver())
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .env("DISPLAY", &name)
            .env("BROWSER", self.dir.join("browser.sh"))
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .env("DSMON_SIGN_IN_TIMEOUT", "60s")
            .env("DSMON_LOG", "info")
            .env("DSMON_TEST_SAVE_PATH", self.saved_csv())
            // Without a bus of the test's own, none at all: the app must not reach a session
            // bus (or keyring) of whoever runs the tests.
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                self.bus
                    .clone()
                    .unwrap_or_else(|| format!("unix:path={}", self.dir.join("no-bus").display())),
            )
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join("app.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .process_group(0)
            .spawn()
            .expect("tauri-driver");
        let caps = serde_json::json!({
            "browserName": "wry",
            "tauri:options": { "application": bin, "args": args },
        });
        let caps = caps.as_object().cloned().expect("object");
        Browser::attach(
            driver,
            port,
            caps,
            self.dir.join("profile"),
            Some((display, name)),
        )
        .await
    }

    /// Where the app writes the history CSV instead of asking with its save dialog (the tests
    /// cannot click a native GTK dialog: `DSMON_TEST_SAVE_PATH`).
    pub fn saved_csv(&self) -> PathBuf {
        self.dir.join("saved-history.csv")
    }

    /// Waits for the app to open its `n`-th URL (1-based) in the "browser".
    pub async fn opened(&self, n: usize) -> String {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.urls).unwrap_or_default();
            if let Some(line) = text.lines().nth(n - 1) {
                return line.to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the app opened no browser for sign-in #{n}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Completes sign-in #`n` at the provider as `email`, as the user would in their browser, and
    /// returns the status of the app's loopback listener's answer.
    pub async fn log_in(&self, n: usize, email: &str) -> reqwest::StatusCode {
        let url = self.opened(n).await;
        let redirect = loopback_redirect(&url);
        let a = Agent::new(0);
        let back = a.provider_login(url, email, &redirect).await;
        a.http
            .get(&back)
            .send()
            .await
            .expect("the app's loopback listener")
            .status()
    }

    /// tauri-plugin-window-state's file (in the app config dir): each window's size and position
    /// by label, or `Null` while there is none.
    pub fn window_state(&self) -> serde_json::Value {
        std::fs::read(self.dir.join("config/io.github.dsmon/.window-state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("app.log")).unwrap_or_default()
    }
}

/// Calls a Tauri command from the page, as a script in the window could: `Ok(value)` or
/// `Err({kind, message})`.
pub async fn invoke(
    b: &Browser,
    cmd: &str,
    args: serde_json::Value,
) -> Result<serde_json::Value, serde_json::Value> {
    let v = b
        .client
        .execute_async(
            "const [cmd, args, done] = arguments; window.__TAURI__.core.invoke(cmd, args).then((v) => done({ ok: v }), (e) => done({ err: e }));",
            vec![serde_json::json!(cmd), args],
        )
        .await
        .expect("execute_async");
    match v.get("ok") {
        Some(ok) => Ok(ok.clone()),
        None => Err(v.get("err").cloned().unwrap_or(serde_json::Value::Null)),
    }
}
