//! The Tauri desktop shell. For now it opens the window with the `ui/` pages; the live view, history
//! and sign-in arrive with the desktop issue.

#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    #[error("the desktop window failed: {0}")]
    Tauri(#[from] tauri::Error),
}

pub fn run() -> Result<(), DesktopError> {
    tauri::Builder::default()
        .plugin(tauri_plugin_store::Builder::default().build())
        .run(tauri::generate_context!())?;
    Ok(())
}
