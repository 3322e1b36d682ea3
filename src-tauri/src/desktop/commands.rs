//! The Tauri commands the page calls (through `ui/src/api.js`): each takes the app state, hands
//! the use case to the backend (the application layer, here or on the server) and returns its
//! typed error (`{"kind", "message"}`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tauri::{AppHandle, State, WebviewWindow};
use tauri_plugin_dialog::DialogExt;

use super::backend::{config_error, Me, SettingsScope};
use super::{prefs, Desktop};
use dsmon_app::alerts::AlertHistoryRequest;
use dsmon_app::{AppError, HistoryRequest, Request};
use dsmon_config::settings::{self, Settings, SettingsView};

type R<T> = Result<T, AppError>;

async fn call(state: &State<'_, Desktop>, req: Request) -> R<Value> {
    state.backend().await.call(&state.session, req).await
}

#[tauri::command]
pub async fn me(state: State<'_, Desktop>) -> R<Me> {
    state.backend().await.me(&state.session).await
}

#[tauri::command]
pub async fn live(state: State<'_, Desktop>) -> R<Value> {
    call(&state, Request::Live).await
}

#[tauri::command]
pub async fn history(state: State<'_, Desktop>, query: HistoryRequest) -> R<Value> {
    call(&state, Request::History(query)).await
}

/// Saves the raw rows of a history range as CSV (the same parameters as `history`, without
/// `points`) where the user chooses in a save dialog: the path written, or `null` when the dialog
/// was cancelled. The rows come first, so that a refusal (role, parameters) asks for no file.
#[tauri::command]
pub async fn history_csv(
    window: WebviewWindow,
    state: State<'_, Desktop>,
    query: HistoryRequest,
) -> R<Option<String>> {
    let csv = state
        .backend()
        .await
        .history_csv(&state.session, query)
        .await?;
    let path = match &state.test_save_path {
        Some(p) => p.clone(),
        None => match ask_where(&window).await? {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || std::fs::write(&path, csv))
        .await?
        .map_err(|e| AppError::bad_request(format!("cannot write {shown}: {e}")))?;
    tracing::info!(path = %shown, "history CSV saved");
    Ok(Some(shown))
}

/// The save dialog (GTK's on Linux) over `window`: the file chosen, or `None` if cancelled.
async fn ask_where(window: &WebviewWindow) -> R<Option<PathBuf>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    window
        .dialog()
        .file()
        .set_parent(window)
        .set_title("Save history as CSV")
        .set_file_name("dsmon-history.csv")
        .add_filter("CSV", &["csv"])
        .save_file(move |picked| {
            let _ = tx.send(picked);
        });
    match rx.await.map_err(AppError::internal)? {
        None => Ok(None),
        Some(p) => p
            .into_path()
            .map(Some)
            .map_err(|e| AppError::bad_request(format!("not a file to write to: {e}"))),
    }
}

#[tauri::command]
pub async fn users(state: State<'_, Desktop>) -> R<Value> {
    call(&state, Request::Users).await
}

#[tauri::command]
pub async fn change_user(state: State<'_, Desktop>, email: String, change: Value) -> R<Value> {
    call(&state, Request::ChangeUser { email, change }).await
}

#[tauri::command]
pub async fn audit(state: State<'_, Desktop>, offset: i64, limit: i64) -> R<Value> {
    let (offset, limit) = (Some(offset), Some(limit));
    call(&state, Request::Audit { offset, limit }).await
}

#[tauri::command]
pub async fn alerts(state: State<'_, Desktop>) -> R<Value> {
    call(&state, Request::Alerts).await
}

#[tauri::command]
pub async fn alert_history(state: State<'_, Desktop>, query: AlertHistoryRequest) -> R<Value> {
    call(&state, Request::AlertHistory(query)).await
}

#[tauri::command]
pub async fn alert_deliveries(state: State<'_, Desktop>, limit: Option<usize>) -> R<Value> {
    call(&state, Request::AlertDeliveries { limit }).await
}

#[tauri::command]
pub async fn alert_config(state: State<'_, Desktop>) -> R<Value> {
    call(&state, Request::AlertConfig).await
}

#[tauri::command]
pub async fn silences(state: State<'_, Desktop>) -> R<Value> {
    call(&state, Request::Silences).await
}

#[tauri::command]
pub async fn create_silence(state: State<'_, Desktop>, silence: Value) -> R<Value> {
    call(&state, Request::CreateSilence { silence }).await
}

#[tauri::command]
pub async fn expire_silence(state: State<'_, Desktop>, id: i64) -> R<Value> {
    call(&state, Request::ExpireSilence { id }).await
}

#[tauri::command]
pub async fn acknowledge(state: State<'_, Desktop>, rule: String, node: String) -> R<Value> {
    call(&state, Request::Acknowledge { rule, node }).await
}

#[tauri::command]
pub async fn test_notifier(state: State<'_, Desktop>, name: String) -> R<Value> {
    call(&state, Request::TestNotifier { name }).await
}

/// Opens the system browser at the provider and waits for it to come back (a few minutes at most).
#[tauri::command]
pub async fn sign_in(state: State<'_, Desktop>) -> R<Me> {
    let timeout = std::env::var("DSMON_SIGN_IN_TIMEOUT")
        .ok()
        .and_then(|t| dsmon_config::parse_duration(&t).ok())
        .unwrap_or(dsmon_server::loopback::DEFAULT_TIMEOUT)
        .min(Duration::from_secs(900));
    state
        .backend()
        .await
        .sign_in(
            &state.session,
            dsmon_server::loopback::open_browser,
            timeout,
        )
        .await
}

#[tauri::command]
pub async fn sign_out(state: State<'_, Desktop>) -> R<()> {
    state.backend().await.sign_out(&state.session).await
}

#[tauri::command]
pub async fn settings_get(state: State<'_, Desktop>) -> R<SettingsView> {
    let scope = state.backend().await.settings_scope(&state.session).await?;
    Ok(scope.view(settings::load(&state.config_path).map_err(config_error)?))
}

/// Validates and writes the settings (what the caller may change of them), then restarts the
/// backend on the new configuration.
#[tauri::command]
pub async fn settings_save(
    app: AppHandle,
    state: State<'_, Desktop>,
    settings: Settings,
) -> R<SettingsView> {
    let scope = state.backend().await.settings_scope(&state.session).await?;
    let wanted = match scope {
        SettingsScope::All => settings,
        SettingsScope::Connection => {
            let current = settings::load(&state.config_path).map_err(config_error)?;
            scope.apply(settings, current.settings)
        }
    };
    let path = state.config_path.clone();
    let cfg = tokio::task::spawn_blocking(move || settings::save(&path, &wanted))
        .await?
        .map_err(|e| AppError::bad_request(e.to_string()))?;
    state.replace_backend(&app, cfg).await;
    Ok(scope.view(settings::load(&state.config_path).map_err(config_error)?))
}

#[tauri::command]
pub async fn open_live_window(app: AppHandle) -> R<()> {
    super::open_live_window(&app).map_err(AppError::internal)
}

#[tauri::command]
pub fn prefs_get(app: AppHandle) -> R<Value> {
    prefs::all(&app).map_err(AppError::internal)
}

#[tauri::command]
pub fn prefs_set(app: AppHandle, state: State<'_, Desktop>, key: String, value: Value) -> R<()> {
    prefs::set(&app, &key, value.clone()).map_err(AppError::bad_request)?;
    if key == "notifications" {
        state.notify.store(
            value.as_bool() == Some(true),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    Ok(())
}
