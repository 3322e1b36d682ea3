#!/usr/bin/env bash
# Builds the release packages into dist/ (on Debian 12 after scripts/setup-debian.sh --gui):
#   dsmon_<version>_amd64.deb          the desktop app (Tauri bundler, from npm @tauri-apps/cli)
#   dsmon_<version>_amd64.AppImage     the desktop app, when the bundler can fetch its AppImage tools
#                                      (linuxdeploy, from GitHub: needs that network access)
#   dsmon-server_<version>_amd64.deb   the headless server (built --no-default-features: no webkit/gtk),
#                                      with its systemd unit and a sample configuration
# Usage: scripts/package.sh [desktop|server|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' src-tauri/Cargo.toml | head -1)"
arch="$(dpkg --print-architecture)"
mkdir -p dist

if [ "$what" = all ] || [ "$what" = desktop ]; then
    npm ci --prefix ui --no-audit --no-fund
    npm run build --prefix ui
    # The Tauri CLI builds the release binary (with tauri/custom-protocol) and bundles it.
    ui/node_modules/.bin/tauri build --ci --bundles deb
    cp target/release/bundle/deb/*.deb dist/
    if ui/node_modules/.bin/tauri build --ci --bundles appimage; then
        cp target/release/bundle/appimage/*.AppImage dist/
    else
        echo "warning: no AppImage: the bundler could not fetch or run its AppImage tools (see above)" >&2
    fi
fi

if [ "$what" = all ] || [ "$what" = server ]; then
    npm ci --prefix ui --no-audit --no-fund
    npm run build --prefix ui
    CARGO_TARGET_DIR=target/headless cargo build --release --locked --no-default-features
    bin=target/headless/release/dsmon
    if ldd "$bin" | grep -Ei 'webkit|gtk'; then
        echo "error: the server binary links webkit/gtk" >&2
        exit 1
    fi
    stage="$(mktemp -d)"
    trap 'rm -rf "$stage"' EXIT
    install -Dm755 "$bin" "$stage/usr/bin/dsmon"
    install -Dm644 README.md "$stage/usr/share/doc/dsmon-server/README.md"
    install -Dm644 LICENSE "$stage/usr/share/doc/dsmon-server/copyright"
    install -Dm644 dsmon.example.toml "$stage/usr/share/doc/dsmon-server/dsmon.example.toml"
    conffiles=""
    if [ -f deploy/dsmon.service ]; then
        # The unit names the binary where a manual install puts it; the package puts it in /usr/bin.
        install -d "$stage/lib/systemd/system"
        sed 's#/usr/local/bin/dsmon#/usr/bin/dsmon#g' deploy/dsmon.service >"$stage/lib/systemd/system/dsmon.service"
    fi
    if [ -f deploy/dsmon.sysusers ]; then
        install -Dm644 deploy/dsmon.sysusers "$stage/usr/lib/sysusers.d/dsmon.conf"
    fi
    if [ -f deploy/dsmon.toml ]; then
        install -Dm640 deploy/dsmon.toml "$stage/etc/dsmon/dsmon.toml"
        conffiles="/etc/dsmon/dsmon.toml"
    fi
    if [ -d deploy/nginx ]; then
        cp -r deploy/nginx "$stage/usr/share/doc/dsmon-server/nginx"
    fi
    mkdir -p "$stage/DEBIAN"
    [ -n "$conffiles" ] && echo "$conffiles" > "$stage/DEBIAN/conffiles"
    # The service's user and group (sysusers.d), then systemd learns of the unit; it is not
    # started: /etc/dsmon/dsmon.toml needs the cluster's nodes and sign-in first (docs/deploy.md).
    cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if command -v systemd-sysusers >/dev/null 2>&1; then systemd-sysusers dsmon.conf || true; fi
    if [ -f /etc/dsmon/dsmon.toml ] && getent group dsmon >/dev/null; then
        chgrp dsmon /etc/dsmon/dsmon.toml || true
    fi
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
POSTINST
    chmod 755 "$stage/DEBIAN/postinst"
    cat > "$stage/DEBIAN/control" <<CONTROL
Package: dsmon-server
Version: $version
Architecture: $arch
Maintainer: dsmon developers <dsmon@example.invalid>
Depends: libc6 (>= 2.36)
Suggests: nginx, netdata
Section: admin
Priority: optional
Homepage: https://github.com/dsmon/dsmon
Description: distributed systems monitor over Netdata agents (headless server)
 dsmon serve polls the Netdata agents of a cluster, logs a row per machine every
 log_interval to SQLite, and serves the live and history views and a JSON API,
 with Google sign-in and Admin/User roles. No desktop libraries are linked.
CONTROL
    dpkg-deb --root-owner-group --build "$stage" "dist/dsmon-server_${version}_${arch}.deb" >/dev/null
    echo "built dist/dsmon-server_${version}_${arch}.deb"
fi
ls -l dist/
