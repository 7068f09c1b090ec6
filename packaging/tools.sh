#!/usr/bin/env bash
# Install what packaging/build.sh and packaging/check.sh need on Debian (as root):
# cargo-deb, cargo-generate-rpm, rpm and rpmlint, the Windows target and cross
# compiler, wixl/msitools, lintian, wine; and rsyslog, the real syslog receiver of the
# notification tests (they fall back to a socket server without it); chromium and
# chromium-driver, the real browser of the console tests; postgresql, the database of
# the PostgreSQL store's tests (started by packaging/ci/postgres).
set -euo pipefail

packages=(gcc-mingw-w64-x86-64 wixl msitools lintian wine wine64 systemd adduser curl python3 rpm rpmlint rsyslog chromium chromium-driver postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rustup target add x86_64-pc-windows-gnu >/dev/null
if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.'; then
  cargo install cargo-deb --locked --version '^3.8'
fi
if ! cargo generate-rpm --version 2>/dev/null | grep -q '^cargo-generate-rpm 0\.'; then
  cargo install cargo-generate-rpm --locked --version '^0.21'
fi
