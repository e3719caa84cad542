#!/usr/bin/env bash
# Builds the CNCF distribution registry (github.com/distribution/distribution/v3)
# from its Go module into $KNODE_TOOLS_DIR/registry, for the private-registry
# pull tests (about a minute cold, nothing when built). Prints the binary.
set -euo pipefail
TOOLS_DIR="${KNODE_TOOLS_DIR:-/usr/local/lib/knode-ci}"
DIR="$TOOLS_DIR/registry"
VERSION="${REGISTRY_VERSION:-v3.1.2}"
log() { printf '[setup-registry] %s\n' "$*" >&2; }
mkdir -p "$DIR"
if [ ! -x "$DIR/registry-$VERSION" ]; then
  log "building registry $VERSION"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # Quiet when it works; on failure the go tool's own words are shown.
  if ! (cd "$work" && go mod init knode.local/registry-build &&
    go get "github.com/distribution/distribution/v3/cmd/registry@$VERSION" &&
    CGO_ENABLED=0 go build -trimpath -o "$DIR/registry-$VERSION.tmp" github.com/distribution/distribution/v3/cmd/registry) >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    log "building registry $VERSION failed"
    exit 1
  fi
  mv "$DIR/registry-$VERSION.tmp" "$DIR/registry-$VERSION"
fi
ln -sfn "registry-$VERSION" "$DIR/registry"
log "$("$DIR/registry" --version)"
echo "$DIR/registry"
