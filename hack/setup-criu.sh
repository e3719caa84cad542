#!/usr/bin/env bash
# Installs CRIU 4.1 from Debian trixie into a private root, without touching
# the system's libc or apt configuration, and writes a `criu` wrapper that
# runs it with trixie's loader. Debian 12's own CRIU (3.17) cannot checkpoint
# on kernels from 6.13 ("Unexpected rt vDSO area bounds"). See
# docs/checkpoint.md. Prints the wrapper's directory.
set -euo pipefail

TOOLS_DIR="${KNODE_TOOLS_DIR:-/usr/local/lib/knode-ci}"
ROOT="$TOOLS_DIR/criu-trixie"
BIN="$ROOT/wrapper"
log() { printf '[setup-criu] %s\n' "$*" >&2; }

if [ -x "$BIN/criu" ] && "$BIN/criu" --version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi

APT="$ROOT/apt"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$ROOT/debs" "$ROOT/root" "$BIN"
# The machine's own Debian mirror, read from its apt configuration.
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
[ -n "$mirror" ] || { log "cannot find the Debian mirror in the apt configuration"; exit 1; }
echo "deb $mirror trixie main" > "$APT/sources.list"
opts=(-o Dir::Etc::SourceList="$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" -o APT::Get::List-Cleanup=0)
log "reading the trixie package lists"
apt-get "${opts[@]}" update -qq
pkgs=$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
         --no-breaks --no-replaces --no-enhances criu | grep -E '^[a-z0-9]' | sort -u)
log "downloading criu and its dependencies: $(echo $pkgs | wc -w) packages"
(cd "$ROOT/debs" && apt-get "${opts[@]}" download $pkgs >/dev/null)
for deb in "$ROOT"/debs/*.deb; do dpkg -x "$deb" "$ROOT/root"; done
cat > "$BIN/criu" <<WRAP
#!/bin/sh
# CRIU 4.1 from Debian trixie, run with trixie's own loader and libraries.
exec "$ROOT/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \\
  --library-path "$ROOT/root/usr/lib/x86_64-linux-gnu:$ROOT/root/lib/x86_64-linux-gnu" \\
  "$ROOT/root/usr/sbin/criu" "\$@"
WRAP
chmod +x "$BIN/criu"
log "$("$BIN/criu" --version | head -1)"
echo "$BIN"
