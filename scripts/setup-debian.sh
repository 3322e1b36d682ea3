#!/usr/bin/env bash
# Installs the Debian 12 packages dsmon needs to build, run and test. Idempotent; needs root
# (re-runs itself with sudo otherwise).
#   scripts/setup-debian.sh             netdata, the headless build, Node.js/npm for the web UI
#   scripts/setup-debian.sh --gui       also the WebKitGTK/GTK libraries of the desktop build, and
#                                       Xvfb, WebKitWebDriver and tauri-driver for its tests
#   scripts/setup-debian.sh --browser   also Chromium and ChromeDriver for the browser tests
set -euo pipefail

gui=no
browser=no
for a in "$@"; do
    case "$a" in
        --gui) gui=yes ;;
        --browser) browser=yes ;;
        *) echo "usage: $0 [--gui] [--browser]" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    exec sudo -- "$0" "$@"
fi

# nginx and openssl: the reverse-proxy test runs Debian's nginx in front of dsmon with a throw-away
# certificate; systemd (systemd-analyze) measures the shipped unit's sandbox; faketime (libfaketime)
# moves dsmon's wall clock for the clock-jump test. python3-aiosmtpd (a real SMTP server with
# STARTTLS and AUTH) and prometheus-alertmanager receive the alert notifications in tests/notify.rs;
# prometheus scrapes dsmon's /metrics in tests/metrics.rs. Like nginx, their system services are
# not started (policy-rc.d below): the tests run their own instances.
# postgresql-15: the PostgreSQL store's tests run a throw-away cluster of their own (initdb in a temp
# directory, as the `postgres` user); the package's system cluster service is not started either.
# python3-venv: the venv of openapi-spec-validator (below).
packages=(netdata build-essential pkg-config ca-certificates curl file sqlite3 procps iproute2 util-linux
    nginx openssl systemd faketime python3-aiosmtpd prometheus-alertmanager prometheus postgresql-15
    python3-venv)
# Node.js and npm build the web UI (uPlot comes from npm); a newer Node already present is kept.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
if [ "$gui" = yes ]; then
    packages+=(libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libayatana-appindicator3-dev libxdo-dev libssl-dev)
    # libdbus (the keyring crate's Secret Service client; tao links it too), found with pkg-config.
    packages+=(libdbus-1-dev)
    # The desktop app's end-to-end tests: a virtual display, WebKit's WebDriver, screenshots.
    packages+=(xvfb xauth webkit2gtk-driver imagemagick)
    # The desktop notifications' test: a session bus (dbus-daemon, dbus-monitor, dbus-send) and a
    # real notification daemon (dunst).
    packages+=(dbus dunst)
    # The kept session's test: a real Secret Service (gnome-keyring) on the test's session bus, and
    # secret-tool to read what the app kept there.
    packages+=(gnome-keyring libsecret-tools)
fi
if [ "$browser" = yes ]; then
    packages+=(chromium chromium-driver fonts-dejavu-core)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Install without starting services (nginx would otherwise start its default site on port 80,
    # prometheus its server on 9090):
    # the tests run their own instances. policy-rc.d is Debian's switch for that.
    policy=/usr/sbin/policy-rc.d
    own_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=yes
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$own_policy" = yes ]; then rm -f "$policy"; fi
fi

# Debian's netdata package may start a system-wide agent on 19999 where systemd runs; dsmon's demo and
# tests run their own agents and do not need it.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${HOME}/.cargo/bin/cargo" ]; then
    echo "error: no Rust toolchain (cargo) found: install one with rustup (https://rustup.rs)" >&2
    exit 1
fi

# openapi-spec-validator (PyPI, pinned to 0.9) checks the OpenAPI document `dsmon serve` answers in
# tests/api.rs. In a venv of its own under /opt: Debian's Python refuses pip installs into the system.
openapi_venv=/opt/dsmon-openapi
if [ ! -x "$openapi_venv/bin/openapi-spec-validator" ]; then
    echo "installing openapi-spec-validator"
    /usr/bin/python3 -m venv "$openapi_venv"
    "$openapi_venv/bin/pip" install --quiet 'openapi-spec-validator==0.9.*'
fi

# tauri-driver (WebDriver for the desktop app's tests), pinned to major version 2 (3.0 alphas exist).
if [ "$gui" = yes ]; then
    cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
    if [ ! -x "$cargo_bin/tauri-driver" ]; then
        echo "installing tauri-driver"
        PATH="$cargo_bin:$PATH" cargo install tauri-driver --locked --version '^2' --quiet
    fi
fi
