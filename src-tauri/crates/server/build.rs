//! Build script: checks that the web UI of the repository's `ui/dist` is built before rust-embed
//! embeds it, and rebuilds when it changes.
//!
//! When it is not built (a fresh clone), the build stops with a boxed message that cargo prints as
//! its first error lines (`cargo::error`), not buried under the build script's output as a panic's
//! message is. The script does not run npm itself: a build script should write only below its
//! OUT_DIR and not reach the network, and `npm ci` does both (into ui/node_modules and ui/dist);
//! scripts/demo.sh, scripts/test.sh and scripts/package.sh build the UI first, as CI does.

use std::path::PathBuf;

fn main() {
    let Ok(manifest) = std::env::var("CARGO_MANIFEST_DIR") else {
        panic!("CARGO_MANIFEST_DIR is not set: run this build through cargo");
    };
    let dist = PathBuf::from(manifest).join("../../../ui/dist");
    // A directory here makes cargo watch every file below it: a file added to the UI re-embeds.
    println!("cargo:rerun-if-changed={}", dist.display());
    if !dist.join("index.html").is_file() {
        for line in boxed(&[
            "The web UI is not built: ui/dist/index.html is missing.",
            "From the repository root, build it once, then run cargo again:",
            "",
            "    npm ci --prefix ui && npm run build --prefix ui",
            "",
            "(scripts/demo.sh and scripts/test.sh do this for you.)",
        ]) {
            println!("cargo::error={line}");
        }
    }
}

/// The lines in a box of `#`, so that they stand out among cargo's output.
fn boxed(lines: &[&str]) -> Vec<String> {
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let rule = "#".repeat(width + 6);
    let mut out = vec![rule.clone()];
    out.extend(
        lines
            .iter()
            .map(|l| format!("## {l}{} ##", " ".repeat(width - l.chars().count()))),
    );
    out.push(rule);
    out
}
