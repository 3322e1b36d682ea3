//! Build script of the `dsmon` binary: with the `gui` feature, runs tauri-build (which must not run
//! without tauri: it would fail with a misleading message). The migrations are embedded by
//! `dsmon-store`, the web UI by `dsmon-server`.

fn main() {
    #[cfg(feature = "gui")]
    tauri_build::build();
}
