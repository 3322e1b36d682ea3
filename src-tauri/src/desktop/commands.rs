//! The Tauri commands the page calls (through `ui/src/api.js`): each takes the app state, lets the
//! backend check the caller's role and do the work, and returns its typed error.

use std::time::Duration;

use serde_json::Value;
use tauri::{AppHandle, State};

use super::backend::{DesktopError, HistoryArgs, Me};
use super::{prefs, Desktop};
use crate::settings::{self, Settings, SettingsView};

type R<T> = Result<T, DesktopError>;

#[tauri::command]
pub async fn me(state: State<'_, Desktop>) -> R<Me> {
    state.backend().await.me(&state.session).await
}

#[tauri::command]
pub async fn live(state: State<'_, Desktop>) -> R<Value> {
    state.backend().await.live(&state.session).await
}

#[tauri::command]
pub async fn history(state: State<'_, Desktop>, query: HistoryArgs) -> R<Value> {
    state.backend().await.history(&state.session, query).await
}

#[tauri::command]
pub async fn users(state: State<'_, Desktop>) -> R<Value> {
    state.backend().await.users(&state.session).await
}

#[tauri::command]
pub async fn change_user(state: State<'_, Desktop>, email: String, change: Value) -> R<Value> {
    state
        .backend()
        .await
        .change_user(&state.session, &email, change)
        .await
}

#[tauri::command]
pub async fn audit(state: State<'_, Desktop>, offset: i64, limit: i64) -> R<Value> {
    state
        .backend()
        .await
        .audit(&state.session, offset, limit)
        .await
}

/// Opens the system browser at the provider and waits for it to come back (a few minutes at most).
#[tauri::command]
pub async fn sign_in(state: State<'_, Desktop>) -> R<Me> {
    let timeout = std::env::var("DSMON_SIGN_IN_TIMEOUT")
        .ok()
        .and_then(|t| crate::config::parse_duration(&t).ok())
        .unwrap_or(crate::auth::loopback::DEFAULT_TIMEOUT)
        .min(Duration::from_secs(900));
    state
        .backend()
        .await
        .sign_in(&state.session, crate::auth::loopback::open_browser, timeout)
        .await
}

#[tauri::command]
pub async fn sign_out(state: State<'_, Desktop>) -> R<()> {
    state.backend().await.sign_out(&state.session).await
}

#[tauri::command]
pub async fn settings_get(state: State<'_, Desktop>) -> R<SettingsView> {
    state
        .backend()
        .await
        .may_change_settings(&state.session)
        .await?;
    settings::load(&state.config_path).map_err(|e| DesktopError::Config(e.to_string()))
}

/// Validates and writes the settings, then restarts the backend on the new configuration.
#[tauri::command]
pub async fn settings_save(
    app: AppHandle,
    state: State<'_, Desktop>,
    settings: Settings,
) -> R<SettingsView> {
    state
        .backend()
        .await
        .may_change_settings(&state.session)
        .await?;
    let path = state.config_path.clone();
    let cfg = tokio::task::spawn_blocking(move || settings::save(&path, &settings))
        .await
        .map_err(|e| DesktopError::Internal(e.to_string()))?
        .map_err(|e| DesktopError::BadRequest(e.to_string()))?;
    state.replace_backend(&app, cfg).await;
    settings::load(&state.config_path).map_err(|e| DesktopError::Config(e.to_string()))
}

#[tauri::command]
pub async fn open_live_window(app: AppHandle) -> R<()> {
    super::open_live_window(&app).map_err(|e| DesktopError::Internal(e.to_string()))
}

#[tauri::command]
pub fn prefs_get(app: AppHandle) -> R<Value> {
    prefs::all(&app).map_err(DesktopError::Internal)
}

#[tauri::command]
pub fn prefs_set(app: AppHandle, state: State<'_, Desktop>, key: String, value: Value) -> R<()> {
    prefs::set(&app, &key, value.clone()).map_err(DesktopError::BadRequest)?;
    if key == "notifications" {
        state.notify.store(
            value.as_bool() == Some(true),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    Ok(())
}
