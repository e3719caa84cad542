#!/usr/bin/env bash
# Builds runc from its Go module for the tests of user namespaces
# (hostUsers: false). Debian 12's runc (1.1.5) lacks idmapped mounts, so
# containerd reports no user namespace support for a handler that runs it;
# the test containerd gets a second handler, runc-userns, running this one,
# and the default handler keeps Debian's (checkpoint and restore are tested
# on it). Needs cgo and libseccomp (Debian: gcc, pkg-config,
# libseccomp-dev). Cached in the tools dir; prints the binary's path.
set -euo pipefail

RUNC_VERSION="${RUNC_VERSION:-v1.5.3}"
TOOLS_DIR="${KNODE_TOOLS_DIR:-/usr/local/lib/knode-ci}"
DIR="$TOOLS_DIR/runc-$RUNC_VERSION"
log() { printf '[setup-runc] %s\n' "$*" >&2; }

if [ -x "$DIR/runc" ] && "$DIR/runc" --version >/dev/null 2>&1; then
  echo "$DIR/runc"
  exit 0
fi

# shellcheck source=hack/debs.sh
. "$(dirname "$0")/debs.sh"
install_debs gcc:/usr/bin/gcc pkg-config:/usr/bin/pkg-config libseccomp-dev:/usr/include/seccomp.h

log "building runc $RUNC_VERSION with the Go command (about 2.5 minutes with cold Go caches)"
# Built aside and put in place only once it passes the check below: the
# cache check above trusts whatever binary is in place.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The tags and version of runc's own Makefile.
GOBIN="$tmp" CGO_ENABLED=1 GOFLAGS=-buildvcs=false go install -tags "seccomp urfave_cli_no_docs" \
  -ldflags "-X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"
# The idmapped mounts containerd needs for user namespaces.
if ! "$tmp/runc" features | tr -d " \n" | grep -q '"idmap":{"enabled":true}'; then
  log "runc $RUNC_VERSION reports no idmap mount support"
  exit 1
fi
mkdir -p "$DIR"
mv "$tmp/runc" "$DIR/runc"
log "runc: $("$DIR/runc" --version | head -1)"
echo "$DIR/runc"
