#!/usr/bin/env bash
# The demo: five real Netdata agents on loopback ports (each in its own temporary directory, its API
# open to the monitor only: the `[web]` lines `dsmon netdata-acl` prints), a sixth node whose port
# nothing listens on (down from the start, to show how a failing node looks), and `dsmon serve`
# logging them every minute to the default SQLite file (~/.local/share/dsmon/dsmon.sqlite3).
# Ctrl-C stops everything and removes the agents' directories.
#
# Environment: DSMON_DEMO_PORT (first agent port, default 19991; node6 is the port after node5's),
#              DSMON_DEMO_LOG_INTERVAL (default "1m", so the History page fills while you watch;
#                "10m" is dsmon's own default, what a real deployment logs),
#              DSMON_DEMO_HTTP_PORT (the web UI's port; default: dsmon's own default, 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if ! command -v netdata >/dev/null 2>&1 && [ ! -x /usr/sbin/netdata ]; then
    echo "netdata is not installed: installing it (and the build tools) with apt-get"
    scripts/setup-debian.sh
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v cargo >/dev/null || { echo "error: no Rust toolchain (cargo): install one with rustup" >&2; exit 1; }

if ! command -v npm >/dev/null 2>&1; then
    scripts/setup-debian.sh
fi
echo "building the web UI and dsmon (headless)..."
npm ci --prefix ui --no-audit --no-fund --silent
npm run build --prefix ui --silent
CARGO_TARGET_DIR="$repo/target/headless" cargo build --quiet --no-default-features
bin="$repo/target/headless/debug/dsmon"

base_port=${DSMON_DEMO_PORT:-19991}
user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then user=netdata; fi
netdata_bin=$(command -v netdata || echo /usr/sbin/netdata)

demo=$(mktemp -d "${TMPDIR:-/tmp}/dsmon-demo.XXXXXX")
chmod 755 "$demo"
pids=()
serve_pid=""

cleanup() {
    trap - INT TERM EXIT
    if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$demo"
    echo "demo stopped, agents removed. The logged rows stay in dsmon's default database; see them with:"
    echo "  $bin export --from -1h"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log_interval=${DSMON_DEMO_LOG_INTERVAL:-1m}
conf="$demo/dsmon.toml"
{
    echo "# written by scripts/demo.sh: five local Netdata agents and node6, which nothing answers for,"
    echo "# two alert rules; everything else dsmon's defaults"
    echo "[collector]"
    echo "# A row per node every $log_interval, so the History page fills while you watch. dsmon's own"
    echo "# default is 10m (DSMON_DEMO_LOG_INTERVAL=10m scripts/demo.sh, or delete this line)."
    printf 'log_interval = "%s"\n\n' "$log_interval"
    if [ -n "${DSMON_DEMO_HTTP_PORT:-}" ]; then
        printf '[server]\nlisten = "127.0.0.1:%s"\n\n' "$DSMON_DEMO_HTTP_PORT"
    fi
} > "$conf"

# Ports: node1..node5 run agents; node6's port must stay closed (a node that does not answer).
for i in 1 2 3 4 5 6; do
    port=$((base_port + i - 1))
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "error: port $port is in use (set DSMON_DEMO_PORT to another first port)" >&2
        exit 1
    fi
    printf '[[nodes]]\nname = "node%s"\nurl = "http://127.0.0.1:%s"\n\n' "$i" "$port" >> "$conf"
done

# Two alert rules, so the Alerts page and the cards' badges have something to show: node6 fires
# "node down" half a minute after the start. No notifier: recorded, not sent (README "Alerts" shows
# how to send them by email, webhook, chat, ntfy or Alertmanager).
cat >> "$conf" <<'RULES'
[[alerts.rules]]
name = "node down"
metric = "down"
for = "30s"
severity = "critical"

[[alerts.rules]]
name = "memory high"
metric = "mem_pct"
above = 90
clear = 80
for = "1m"

RULES

# The agents admit the monitor only: the [web] lines dsmon itself recommends (all loopback here, so
# "localhost"), placed in each agent's [web] section.
acl=$("$bin" --config "$conf" netdata-acl | grep '^    allow ' | awk '!seen[$0]++')

for i in 1 2 3 4 5; do
    port=$((base_port + i - 1))
    d="$demo/node$i"
    mkdir -p "$d"/{etc,cache,lib,log,run}
    [ "$user" = netdata ] && chown -R netdata:netdata "$d"/{etc,cache,lib,log,run}
    chmod 755 "$d"
    sed -e "s|@NAME@|node$i|g" -e "s|@DIR@|$d|g" -e "s|@USER@|$user|g" \
        -e "s|@BIND@|127.0.0.1:$port|g" -e "s|@PORT@|$port|g" scripts/netdata-agent.conf |
        ACL="$acl" awk '{ print } /^\[web\]$/ { print ENVIRON["ACL"] }' > "$d/netdata.conf"
    setsid "$netdata_bin" -c "$d/netdata.conf" -D > "$d/stdout.log" 2>&1 &
    pids+=($!)
done

echo "waiting for the agents' first values..."
for i in 1 2 3 4 5; do
    port=$((base_port + i - 1))
    for _ in $(seq 1 60); do
        if curl -fsS "http://127.0.0.1:$port/api/v1/data?chart=system.cpu&after=-1&points=1" 2>/dev/null | grep -q '[1-9]'; then
            break
        fi
        sleep 0.5
    done
done
sleep 1

"$bin" --config "$conf" check || true
echo
echo "node6 is down on purpose: nothing listens on its port, so you see how dsmon shows a failing node."
echo "dsmon serve logs node1..node6 every $log_interval (DSMON_DEMO_LOG_INTERVAL=10m for dsmon's default)"
echo "and serves http://127.0.0.1:${DSMON_DEMO_HTTP_PORT:-8080}/ (Ctrl-C to stop)."
echo "In another terminal:"
echo "  $bin --config $conf collect --once     # log the current tick now"
echo "  $bin --config $conf export --from -1h  # the rows logged so far"
echo
"$bin" --config "$conf" serve &
serve_pid=$!
wait "$serve_pid" || true
