#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh Debian 12 machine:
#   system packages -> formatting and lints -> headless build (and a check that it links no
#   webkit/gtk) -> deployment kit checks -> desktop (gui) build -> cargo deny -> unit and integration
#   tests against real Netdata agents (nginx, TLS, faults included) -> the load scenario -> fuzzing.
# Needs root (re-runs itself with sudo): the tests start Netdata agents as user netdata and mount
# small tmpfs disks for them.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    exec sudo --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME -- "$0" "$@"
fi
scripts/setup-debian.sh --gui --browser
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CARGO_TERM_COLOR=never
# A one-shot build gains nothing from incremental caches, which took 4 GB of a 17 GB CI run.
export CARGO_INCREMENTAL=0
headless=(env CARGO_TARGET_DIR=target/headless cargo)

step() { printf '\n== %s\n' "$*"; }

step "disk: $(df -h --output=avail . | tail -n 1 | tr -d " ") free at start"

step "formatting"
cargo fmt --all --check

step "web UI (npm ci, build)"
npm ci --prefix ui --no-audit --no-fund
npm run build --prefix ui

step "OpenID Connect provider for the sign-in tests (npm ci)"
npm ci --prefix src-tauri/tests/oidc --no-audit --no-fund

step "headless build (--no-default-features)"
"${headless[@]}" build --locked --no-default-features --all-targets
if ldd target/headless/debug/dsmon | grep -Ei 'webkit|gtk|javascriptcore'; then
    echo "error: the headless binary links webkit/gtk" >&2
    exit 1
fi
echo "ldd: no webkit/gtk in target/headless/debug/dsmon"

step "deployment kit: systemd unit (verify; sandbox exposure at most 2.0) and system user"
unit_dir=$(mktemp -d)
sed "s#/usr/local/bin/dsmon#$PWD/target/headless/debug/dsmon#" deploy/dsmon.service >"$unit_dir/dsmon.service"
systemd-analyze verify "$unit_dir/dsmon.service"
rm -r "$unit_dir"
systemd-analyze security --offline=yes --threshold=20 --no-pager deploy/dsmon.service | tail -n 1
# The system user: created in a copy of this machine's user database, www-data in group dsmon.
sysroot=$(mktemp -d)
mkdir "$sysroot/etc" && cp /etc/passwd /etc/group "$sysroot/etc/"
systemd-sysusers --root="$sysroot" "$PWD/deploy/dsmon.sysusers"
grep -E '^dsmon:x:[0-9]+:(.*,)?www-data' "$sysroot/etc/group"
rm -r "$sysroot"

step "lints (headless and gui)"
"${headless[@]}" clippy --locked --no-default-features --all-targets -- -D warnings
cargo clippy --locked --all-targets -- -D warnings

step "desktop build (default features: gui)"
cargo build --locked

step "dependency checks: cargo deny (licenses, bans, sources; deny.toml says why not advisories)"
command -v cargo-deny >/dev/null 2>&1 || cargo install --locked --version 0.20.2 cargo-deny
cargo deny --offline check --hide-inclusion-graph licenses bans sources

step "tests: unit, and integration against real Netdata agents"
"${headless[@]}" test --locked --no-default-features

step "load: 500 /api/live + 500 stream + 50 history clients for 30 s, debug build (no error, no missed tick)"
DSMON_BENCH_SECS=30 "${headless[@]}" test --locked --no-default-features --bench load

# The fuzz build needs room of its own; the debug builds are done with.
step "disk: $(df -h --output=avail . | tail -n 1 | tr -d ' ') free before fuzzing"
echo "target/: $(du -sh target | cut -f1)"

step "fuzzing: cargo fuzz, 30 s per target (scripts/fuzz.sh)"
scripts/fuzz.sh
