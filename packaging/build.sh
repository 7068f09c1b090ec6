#!/usr/bin/env bash
# Build every package into dist/:
#   mcpwatch-agent_<v>-1_amd64.deb, mcpwatch-collector_<v>-1_amd64.deb  (cargo-deb)
#   mcpwatch-agent-<v>-1.x86_64.rpm, mcpwatch-collector-<v>-1.x86_64.rpm (cargo-generate-rpm)
#   mcpwatch-agent.exe and mcpwatch-agent-<v>-x64.msi                 (mingw + wixl)
# Needs cargo-deb, cargo-generate-rpm, the x86_64-pc-windows-gnu target, Debian's gcc-mingw-w64-x86-64,
# wixl and msitools; `packaging/tools.sh` installs them on Debian.
# Usage: packaging/build.sh [--version X.Y.Z]   (default: the workspace version)
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
if [ "${1:-}" = "--version" ]; then
  version=$2
fi
for tool in cargo-deb cargo-generate-rpm wixl msibuild x86_64-w64-mingw32-gcc; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing; run packaging/tools.sh" >&2; exit 1; }
done
mkdir -p dist

echo "== man pages (from the clap definitions)"
rm -rf target/man
cargo run --locked -q -p mcpwatch-tests --bin mcpwatch-man -- target/man >/dev/null
gzip -9n target/man/*.1

echo "== deb packages"
cargo deb --locked -p mcpwatch-collector --deb-version "$version-1" -o dist/
cargo deb --locked -p mcpwatch-agent --deb-version "$version-1" -o dist/

echo "== rpm packages (the programs cargo-deb built, stripped)"
for program in mcpwatch-collector mcpwatch-agent; do
  strip -s "target/release/$program"
  cargo generate-rpm -p "${program#mcpwatch-}" --set-metadata "version = \"$version\"" -o dist/
done

echo "== Windows agent"
cargo build --release --locked -p mcpwatch-agent --target x86_64-pc-windows-gnu
cp target/x86_64-pc-windows-gnu/release/mcpwatch-agent.exe dist/

echo "== MSI"
msi="dist/mcpwatch-agent-$version-x64.msi"
rm -f "$msi"
wixl -a x64 -D Version="$version" -D ProductCode="$(packaging/msi/product-code "$version")" \
  -D AgentExe=dist/mcpwatch-agent.exe -o "$msi" packaging/msi/mcpwatch-agent.wxs
packaging/msi/hide-target "$msi"

ls -l dist/
