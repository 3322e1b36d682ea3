//! Build script: embeds the numbered SQL files of `../migrations` and the built web UI of
//! `../ui/dist`, and, with the `gui` feature, runs tauri-build (which must not run without tauri: it
//! would fail with a misleading message).

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    embed_migrations();
    embed_ui();
    #[cfg(feature = "gui")]
    tauri_build::build();
}

fn embed_migrations() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("../migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .map(|p| {
            let stem = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let number: u32 = stem
                .split('_')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "{}: migration names start with a number, e.g. 0002_x.sql",
                        p.display()
                    )
                });
            (number, p)
        })
        .collect();
    files.sort();
    for (i, (n, p)) in files.iter().enumerate() {
        assert_eq!(
            *n as usize,
            i + 1,
            "{}: migrations must be numbered 1, 2, 3... without gaps",
            p.display()
        );
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let mut out = String::from("/// The numbered SQL files of `migrations/`, in order.\npub const MIGRATIONS: &[(&str, &str)] = &[\n");
    for (_, p) in &files {
        let name = p.file_name().and_then(|s| s.to_str()).unwrap_or_default();
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            p.canonicalize().unwrap_or(p.clone()).display().to_string()
        );
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("migrations.rs");
    std::fs::write(dest, out).expect("write migrations.rs");
}

/// Every file of ../ui/dist (built by `npm ci --prefix ui && npm run build --prefix ui`), for the
/// server to serve from memory.
fn embed_ui() {
    let dist = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("../ui/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    if !dist.join("index.html").is_file() {
        panic!(
            "\n\nui/dist is missing: the web UI is not built. From the repository root run:\n\n    \
             npm ci --prefix ui && npm run build --prefix ui\n\n(scripts/test.sh and scripts/demo.sh do this for you)\n"
        );
    }
    let mut files = Vec::new();
    let mut stack = vec![dist.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                println!("cargo:rerun-if-changed={}", p.display());
                let rel = p
                    .strip_prefix(&dist)
                    .expect("below dist")
                    .to_string_lossy()
                    .replace('\\', "/");
                files.push((rel, p));
            }
        }
    }
    files.sort();
    let mut out = String::from("/// The built web UI: (path below ui/dist, contents).\npub const UI_FILES: &[(&str, &[u8])] = &[\n");
    for (rel, p) in &files {
        let abs = p.canonicalize().unwrap_or(p.clone()).display().to_string();
        let _ = writeln!(out, "    ({rel:?}, include_bytes!({abs:?})),");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("ui_files.rs");
    std::fs::write(dest, out).expect("write ui_files.rs");
}
