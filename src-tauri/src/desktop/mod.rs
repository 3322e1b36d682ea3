//! The Tauri desktop shell: the main window (sign-in, live, history, users, audit, settings) and
//! the compact live-view window over the same `ui/` pages, whose data come through the commands in
//! [`commands`] and the `live` event instead of HTTP. The backend ([`backend`]) is the server's
//! core code run inside the app (local mode) or a `dsmon serve` server (remote mode); the
//! signed-in session ([`session`]) is kept in the OS keyring.

pub mod backend;
mod commands;
mod prefs;
pub mod session;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use tauri::menu::{MenuBuilder, MenuItemBuilder, SubmenuBuilder};
use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindow, WebviewWindowBuilder};
use tauri_plugin_window_state::{AppHandleExt, StateFlags};
use tokio::sync::RwLock;
use tokio_stream::StreamExt;

use backend::{Backend, Session};
use dsmon_config::{self as config, Config};
use dsmon_core::NodeState;
use dsmon_engine::{LiveSnapshot, StateChange};

/// Failures of the desktop shell itself (the commands' errors are [`dsmon_app::AppError`]).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the desktop window failed: {0}")]
    Tauri(#[from] tauri::Error),
    #[error("{path}: cannot create the configuration file: {source}")]
    Config {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("no graphical display (DISPLAY and WAYLAND_DISPLAY are unset): the desktop app needs one; on a server run `dsmon serve`")]
    NoDisplay,
}

/// How the app was started.
pub struct Options {
    /// `--config PATH`; default: the platform config dir's `dsmon/dsmon.toml`.
    pub config: Option<PathBuf>,
    /// `--live`: only the compact live-view window.
    pub live_only: bool,
}

/// The app's state, shared by every command and window.
pub struct Desktop {
    /// Held for writing while the backend is replaced or its kept session restored: commands
    /// wait for it.
    backend: Arc<RwLock<Arc<Backend>>>,
    pub session: Session,
    pub config_path: PathBuf,
    /// `DSMON_TEST_SAVE_PATH` as the app started: where the history CSV is written without the
    /// save dialog. For the end-to-end tests only, which cannot click a native GTK dialog.
    pub test_save_path: Option<PathBuf>,
    /// Whether node up/down notifications are on (a preference; off by default).
    pub notify: Arc<AtomicBool>,
}

impl Desktop {
    pub async fn backend(&self) -> Arc<Backend> {
        Arc::clone(&*self.backend.read().await)
    }

    /// Stops the running backend (a tick in progress is finished) and starts one on `cfg`.
    pub async fn replace_backend(&self, app: &AppHandle, cfg: Config) {
        let mut guard = self.backend.write().await;
        guard.stop().await;
        let next = Arc::new(Backend::start(cfg));
        // The new backend's own kept session (local <-> remote, another database), if any.
        next.restore(&self.session).await;
        spawn_forwarder(
            app.clone(),
            Arc::clone(&next),
            Arc::clone(&self.session),
            Arc::clone(&self.notify),
        );
        *guard = next;
        let _ = app.emit("session", ());
    }
}

const STARTER: &str = "# dsmon desktop app configuration: edit it on the Settings page or here.\n\
# mode \"local\" (the default): this app polls the nodes below and logs a row per node every\n\
# log_interval to its own database in the app data directory.\n\
[collector]\nlog_interval = \"10m\"\nlive_interval = \"2s\"\ntimeout = \"3s\"\n\n\
# [[nodes]]\n# name = \"node1\"\n# url = \"http://10.0.0.1:19999\"\n";

fn config_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        dirs::config_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("dsmon")
            .join(config::DEFAULT_FILE_NAME)
    })
}

/// Creates a starter file where none exists, so the Settings page has something to edit.
fn ensure_config(path: &Path) -> Result<(), AppError> {
    if path.exists() {
        return Ok(());
    }
    let err = |source| AppError::Config {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    // It will hold the desktop client's secret: owner-only from creation.
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        f.write_all(STARTER.as_bytes()).map_err(err)?;
    }
    tracing::info!(path = %path.display(), "created a starter configuration");
    Ok(())
}

/// WebKitGTK takes `navigator.language` from the locale; under the "C", "C.UTF-8" or "POSIX" locale (or none,
/// as in services and CI) it reports "C", which is not a language tag, and `Intl.NumberFormat`
/// (used by the charts) throws. Such a process gets `C.UTF-8`'s English default instead. Called
/// before any thread starts.
fn usable_locale() {
    let set = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let effective = set("LC_ALL")
        .or_else(|| set("LC_MESSAGES"))
        .or_else(|| set("LANG"));
    if effective
        .as_deref()
        .is_none_or(|l| l == "C" || l == "POSIX" || l.starts_with("C."))
    {
        std::env::remove_var("LC_ALL");
        std::env::set_var("LANG", "en_US.UTF-8");
        std::env::set_var("LANGUAGE", "en_US");
    }
}

pub fn run(opts: Options) -> Result<(), AppError> {
    let has = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if !has("DISPLAY") && !has("WAYLAND_DISPLAY") {
        return Err(AppError::NoDisplay);
    }
    usable_locale();
    let path = config_path(opts.config);
    ensure_config(&path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(AppError::Runtime)?;
    tauri::async_runtime::set(rt.handle().clone());
    let _enter = rt.enter();

    let backend = match config::load(&path) {
        Ok(cfg) => {
            for w in cfg.warnings() {
                tracing::warn!("{w}");
            }
            Backend::start(cfg)
        }
        Err(e) => {
            tracing::error!(error = %e, "the configuration does not load; open Settings to fix it");
            Backend::Broken(e.to_string())
        }
    };
    let test_save_path = std::env::var_os("DSMON_TEST_SAVE_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    if let Some(p) = &test_save_path {
        tracing::warn!(path = %p.display(), "DSMON_TEST_SAVE_PATH is set (tests only): the history CSV is written there without a save dialog");
    }
    let state = Desktop {
        backend: Arc::new(RwLock::new(Arc::new(backend))),
        session: session::SessionCell::new(),
        config_path: path,
        test_save_path,
        notify: Arc::new(AtomicBool::new(false)),
    };
    let live_only = opts.live_only;
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_store::Builder::default().build())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(GEOMETRY)
                .build(),
        )
        .plugin(save_geometry_at_once())
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            commands::me,
            commands::live,
            commands::history,
            commands::history_csv,
            commands::users,
            commands::change_user,
            commands::audit,
            commands::alerts,
            commands::alert_history,
            commands::alert_deliveries,
            commands::alert_config,
            commands::silences,
            commands::create_silence,
            commands::expire_silence,
            commands::acknowledge,
            commands::test_notifier,
            commands::sign_in,
            commands::sign_out,
            commands::settings_get,
            commands::settings_save,
            commands::open_live_window,
            commands::prefs_get,
            commands::prefs_set,
        ])
        .on_menu_event(|app, event| match event.id().as_ref() {
            "live-window" => {
                if let Err(e) = open_live_window(app) {
                    tracing::error!(error = %e, "cannot open the live-view window");
                }
            }
            "settings" => {
                let _ = app.emit_to("main", "navigate", "/settings");
            }
            _ => {}
        })
        .setup(move |app| {
            let handle = app.handle().clone();
            let state = app.state::<Desktop>();
            state.notify.store(
                prefs::get(&handle, "notifications").and_then(|v| v.as_bool()) == Some(true),
                Ordering::Relaxed,
            );
            let _ = NOTICES.set((handle.clone(), Arc::clone(&state.notify)));
            let backend = tauri::async_runtime::block_on(state.backend());
            spawn_forwarder(
                handle.clone(),
                Arc::clone(&backend),
                Arc::clone(&state.session),
                Arc::clone(&state.notify),
            );
            // The session kept in the keyring, restored while the commands wait (they read the
            // backend), without holding up the window.
            if let Ok(hold) = Arc::clone(&state.backend).try_write_owned() {
                let session = Arc::clone(&state.session);
                tauri::async_runtime::spawn(async move {
                    backend.restore(&session).await;
                    drop(hold);
                });
            }
            if live_only {
                open_live_window(&handle)?;
            } else {
                main_window(&handle)?;
            }
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|app, event| {
        if let tauri::RunEvent::Exit = event {
            // Let the logger finish a tick in progress before the process ends.
            let state = app.state::<Desktop>();
            tauri::async_runtime::block_on(async {
                state.backend().await.stop().await;
            });
        }
    });
    Ok(())
}

fn main_window(app: &AppHandle) -> tauri::Result<WebviewWindow> {
    let live = MenuItemBuilder::with_id("live-window", "Live view window")
        .accelerator("CmdOrCtrl+L")
        .build(app)?;
    let settings = MenuItemBuilder::with_id("settings", "Settings…").build(app)?;
    let file = SubmenuBuilder::new(app, "File").quit().build()?;
    let view = SubmenuBuilder::new(app, "View")
        .item(&live)
        .item(&settings)
        .build()?;
    let menu = MenuBuilder::new(app).items(&[&file, &view]).build()?;
    WebviewWindowBuilder::new(app, "main", WebviewUrl::App("live".into()))
        .title("dsmon")
        .inner_size(1100.0, 760.0)
        .min_inner_size(420.0, 320.0)
        .menu(menu)
        .build()
}

/// The compact live-view window (only the node cards); focused if already open.
pub fn open_live_window(app: &AppHandle) -> tauri::Result<()> {
    if let Some(w) = app.get_webview_window("live") {
        w.show()?;
        return w.set_focus();
    }
    WebviewWindowBuilder::new(app, "live", WebviewUrl::App("compact".into()))
        .title("dsmon · live")
        .inner_size(460.0, 640.0)
        .min_inner_size(280.0, 200.0)
        .build()?;
    Ok(())
}

/// What tauri-plugin-window-state keeps of each window: its size and position, as before the
/// plugin (not maximised, fullscreen, visibility or decorations).
const GEOMETRY: StateFlags = StateFlags::SIZE.union(StateFlags::POSITION);

/// tauri-plugin-window-state restores each window's size and position when it opens, but writes its
/// file only when the app exits normally. This hook writes it whenever a window is moved or
/// resized, so a killed or crashed app keeps them too. It is a plugin only for its place in the
/// order: its `on_window_ready` runs after the window-state plugin's (registered before it) has
/// restored the window, so a window's first size never overwrites the saved one.
fn save_geometry_at_once() -> TauriPlugin<tauri::Wry> {
    tauri::plugin::Builder::new("geometry-autosave")
        .on_window_ready(|w| {
            let app = w.app_handle().clone();
            w.on_window_event(move |e| {
                if matches!(
                    e,
                    tauri::WindowEvent::Moved(_) | tauri::WindowEvent::Resized(_)
                ) {
                    if let Err(e) = app.save_window_state(GEOMETRY) {
                        tracing::warn!(error = %e, "cannot save the windows' size and position");
                    }
                }
            });
        })
        .build()
}

/// Sends every live snapshot to the windows as the `live` event (only while someone with a role is
/// signed in) and raises node up/down notifications when they are on.
fn spawn_forwarder(
    app: AppHandle,
    backend: Arc<Backend>,
    session: Session,
    notify: Arc<AtomicBool>,
) {
    let Some(mut stopped) = backend.stopped() else {
        return;
    };
    tauri::async_runtime::spawn(async move {
        let mut last: HashMap<String, NodeState> = HashMap::new();
        match &*backend {
            Backend::Local(l) => {
                let mut rx = l.live_updates();
                loop {
                    tokio::select! {
                        r = rx.changed() => {
                            if r.is_err() { break }
                            let snap = rx.borrow_and_update().clone();
                            if backend.may_view(&session).await {
                                let _ = app.emit("live", &*snap);
                            }
                        }
                        _ = stopped.changed() => break,
                    }
                }
            }
            Backend::Remote(r) => loop {
                if *stopped.borrow() {
                    break;
                }
                let token = session.get();
                let Some(token) = token else {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        _ = stopped.changed() => break,
                    }
                };
                let stream = remote_stream(&app, r, &token, &mut last, &notify);
                tokio::select! {
                    res = stream => {
                        if let Err(e) = res {
                            tracing::warn!(error = %e, "live stream from the server ended");
                        }
                        let _ = app.emit("live-status", "reconnecting");
                    }
                    _ = stopped.changed() => break,
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {},
                    _ = stopped.changed() => break,
                }
            },
            Backend::Broken(_) => {}
        }
    });
}

/// Reads the server's `/api/live/stream` (Server-Sent Events) and re-emits each snapshot.
async fn remote_stream(
    app: &AppHandle,
    r: &backend::Remote,
    token: &str,
    last: &mut HashMap<String, NodeState>,
    notify: &AtomicBool,
) -> Result<(), String> {
    let url = r.base.join("/api/live/stream").map_err(|e| e.to_string())?;
    let resp = r
        .http
        .get(url)
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("the server answered {}", resp.status()));
    }
    let _ = app.emit("live-status", "live");
    // The stream sends keep-alive comments every 15 s: silence for much longer means it is gone.
    // The timeout is on the bytes, not the events, so that the comments count.
    let bytes = resp
        .bytes_stream()
        .timeout(Duration::from_secs(45))
        .map(|chunk| match chunk {
            Ok(read) => read.map_err(|e| e.to_string()),
            Err(_) => Err("the live stream went silent".to_string()),
        });
    let mut events = std::pin::pin!(bytes.eventsource());
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| match e {
            EventStreamError::Transport(e) => e,
            e => e.to_string(),
        })?;
        if event.event != "snapshot" || event.data.is_empty() {
            continue;
        }
        if let Ok(snap) = serde_json::from_str::<serde_json::Value>(&event.data) {
            let _ = app.emit("live", &snap);
            // The server's snapshot is the same type as the local one.
            if let Ok(s) = serde_json::from_value::<LiveSnapshot>(snap) {
                notify_changes(app, &s, last, notify);
            }
        }
    }
    Err("the server closed the live stream".into())
}

fn notify_changes(
    app: &AppHandle,
    snap: &LiveSnapshot,
    last: &mut HashMap<String, NodeState>,
    notify: &AtomicBool,
) {
    let changes = dsmon_engine::live::changes_between(last, snap);
    send_notifications(app, &changes, notify);
}

/// Where the alerts' `desktop` notifier shows its notifications: the app's, once it runs, while
/// notifications are on (Preferences).
static NOTICES: std::sync::OnceLock<(AppHandle, Arc<AtomicBool>)> = std::sync::OnceLock::new();

pub(crate) struct TauriNotices;

impl dsmon_alerts::notify::DesktopSink for TauriNotices {
    fn show(&self, title: &str, body: &str) -> Result<(), String> {
        use tauri_plugin_notification::NotificationExt;
        let (app, on) = NOTICES.get().ok_or("the app's window is not up yet")?;
        if !on.load(Ordering::Relaxed) {
            return Err("not shown: notifications are off in the app's preferences".into());
        }
        app.notification()
            .builder()
            .title(title)
            .body(body)
            .show()
            .map_err(|e| e.to_string())
    }
}

fn send_notifications(app: &AppHandle, changes: &[StateChange], notify: &AtomicBool) {
    if !notify.load(Ordering::Relaxed) {
        return;
    }
    use tauri_plugin_notification::NotificationExt;
    for (title, body) in changes.iter().filter_map(dsmon_engine::live::notification) {
        if let Err(e) = app
            .notification()
            .builder()
            .title(&title)
            .body(&body)
            .show()
        {
            tracing::warn!(error = %e, "cannot show a notification");
        }
    }
}
