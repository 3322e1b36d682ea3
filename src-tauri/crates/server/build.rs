//! Build script: embeds the built web UI of the repository's `ui/dist`.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    embed_ui();
}

/// Every file of ../ui/dist (built by `npm ci --prefix ui && npm run build --prefix ui`), for the
/// server to serve from memory.
fn embed_ui() {
    let dist = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("../../../ui/dist");
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
