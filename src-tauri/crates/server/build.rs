//! Build script: checks that the web UI of the repository's `ui/dist` is built before rust-embed
//! embeds it (rust-embed alone fails with a less clear error), and rebuilds when it changes.

use std::path::PathBuf;

fn main() {
    let Ok(manifest) = std::env::var("CARGO_MANIFEST_DIR") else {
        panic!("CARGO_MANIFEST_DIR is not set: run this build through cargo");
    };
    let dist = PathBuf::from(manifest).join("../../../ui/dist");
    // A directory here makes cargo watch every file below it: a file added to the UI re-embeds.
    println!("cargo:rerun-if-changed={}", dist.display());
    if !dist.join("index.html").is_file() {
        panic!(
            "\n\nui/dist is missing: the web UI is not built. From the repository root run:\n\n    \
             npm ci --prefix ui && npm run build --prefix ui\n\n(scripts/test.sh and scripts/demo.sh do this for you)\n"
        );
    }
}
