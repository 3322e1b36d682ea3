//! Build script: embeds the numbered SQL files of the repository's `migrations/` (SQLite) and of
//! `migrations/postgres/` (PostgreSQL). Each directory is read on its own, not recursively: the
//! `postgres` subdirectory is no SQLite migration.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("../../../migrations");
    embed_migrations(&root, "MIGRATIONS", "migrations.rs");
    embed_migrations(&root.join("postgres"), "PG_MIGRATIONS", "pg_migrations.rs");
}

fn embed_migrations(dir: &std::path::Path, name: &str, file: &str) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "sql"))
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
    let mut out = format!(
        "/// The numbered SQL files of `{}`, in order.\npub const {name}: &[(&str, &str)] = &[\n",
        dir.display()
    );
    for (_, p) in &files {
        let name = p.file_name().and_then(|s| s.to_str()).unwrap_or_default();
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            p.canonicalize().unwrap_or(p.clone()).display().to_string()
        );
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join(file);
    std::fs::write(dest, out).expect("write migrations.rs");
}
