//! Build script of the `dsmon` binary: with the `gui` feature, runs tauri-build (which must not run
//! without tauri: it would fail with a misleading message). The migrations are embedded by
//! `dsmon-store`, the web UI by `dsmon-server`.
//!
//! The app manifest names every command of the desktop shell (`src/desktop/commands.rs`), so that
//! each gets an `allow-<command>` permission and the commands fall under Tauri's ACL: a window may
//! call only the commands its capability (`capabilities/*.json`) allows. A command missing here is
//! refused to every window.

#[cfg(feature = "gui")]
const COMMANDS: &[&str] = &[
    "me",
    "live",
    "history",
    "history_csv",
    "users",
    "change_user",
    "audit",
    "alerts",
    "alert_history",
    "alert_deliveries",
    "alert_config",
    "silences",
    "create_silence",
    "expire_silence",
    "acknowledge",
    "test_notifier",
    "sign_in",
    "sign_out",
    "settings_get",
    "settings_save",
    "open_live_window",
    "prefs_get",
    "prefs_set",
];

fn main() {
    #[cfg(feature = "gui")]
    {
        let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
        if let Err(e) =
            tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
        {
            // As tauri_build::build() reports it: the build stops with the reason.
            panic!("error found during tauri-build: {e:#}");
        }
    }
}
