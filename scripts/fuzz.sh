#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 30; scripts/test.sh uses the
# default, longer runs are in docs/deploy.md): the Netdata data parser (seeded with the recorded agent
# answers) and the configuration parser (seeded with the shipped configurations). A panic, an
# arithmetic overflow (-a: overflow checks on) or a crash fails the run and leaves the input in
# fuzz/artifacts/TARGET/. Needs cargo-fuzz (installed when missing) and nightly Rust: the nightly
# toolchain when rustup has one, else the stable one with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-30}"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked --version 0.13.2 cargo-fuzz
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    toolchain=()
    export RUSTC_BOOTSTRAP=1
    echo "no nightly toolchain: building the fuzz targets with stable Rust and RUSTC_BOOTSTRAP=1"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/netdata_data" "$work/config" "$work/seeds-config"
cp dsmon.example.toml "$work/seeds-config/example.toml"
cp deploy/dsmon.toml "$work/seeds-config/deploy.toml"

run() {
    local target=$1 seeds=$2 log="$work/$1.log" status=0
    echo "fuzz: $target for ${seconds}s"
    cargo "${toolchain[@]}" fuzz run -a --sanitizer none "$target" "$work/$target" "$seeds" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz: $target failed (the input is in fuzz/artifacts/$target/)" >&2
        return 1
    fi
}
cargo "${toolchain[@]}" fuzz build -a --sanitizer none
run netdata_data src-tauri/tests/fixtures/netdata-1.37
run config "$work/seeds-config"
