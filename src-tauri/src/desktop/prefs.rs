//! The desktop app's preferences (tauri-plugin-store, `prefs.json` in the app data dir): theme, the
//! history page's last range and notifications on/off. Every write is saved at once (the store's
//! own autosave is debounced and a quick exit would lose it). The windows' sizes and positions are
//! tauri-plugin-window-state's (see `save_geometry_at_once` in the parent module).

use serde_json::Value;
use tauri::AppHandle;
use tauri_plugin_store::StoreExt;

const FILE: &str = "prefs.json";

/// What the page may set, and the values each takes.
fn valid(key: &str, v: &Value) -> Result<(), String> {
    let ok = match key {
        "theme" => matches!(v.as_str(), Some("system" | "light" | "dark")),
        "last_range" => v.as_str().is_some_and(|s| s.len() <= 200),
        "notifications" => v.is_boolean(),
        _ => return Err(format!("unknown preference {key:?}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{key}: {v} is not a valid value"))
    }
}

pub fn get(app: &AppHandle, key: &str) -> Option<Value> {
    app.store(FILE).ok()?.get(key)
}

/// Every preference the page may read.
pub fn all(app: &AppHandle) -> Result<Value, String> {
    let store = app.store(FILE).map_err(|e| e.to_string())?;
    let mut out = serde_json::Map::new();
    for key in ["theme", "last_range", "notifications"] {
        if let Some(v) = store.get(key) {
            out.insert(key.to_string(), v);
        }
    }
    Ok(Value::Object(out))
}

/// Sets a preference from the page (validated).
pub fn set(app: &AppHandle, key: &str, v: Value) -> Result<(), String> {
    valid(key, &v)?;
    let store = app.store(FILE).map_err(|e| e.to_string())?;
    store.set(key, v);
    store.save().map_err(|e| e.to_string())
}
