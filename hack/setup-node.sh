#!/usr/bin/env bash
# Installs what knode's examples and tests need on a fresh Debian 12 machine
# (as root): runc, CNI plugins and busybox from Debian, containerd built with
# the Go command, and the local test images. Safe to run again: each step is
# skipped when its result is already there.
#
# `hack/setup-node.sh run` sets up only what `make run` needs (Debian's
# runc, CNI plugins and busybox, containerd 2.4.2, the images); without an
# argument it also installs what the tests need (Debian's CRIU, containerd
# 2.3.7 for restore, CRIU 4.1, runc 1.5 for user namespaces, etcd and
# kube-apiserver, the registry).
set -euo pipefail
MODE="${1:-test}"
cd "$(dirname "$0")/.."

CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
TOOLS_DIR="${KNODE_TOOLS_DIR:-/usr/local/lib/knode-ci}"
CONTAINERD_DIR="$TOOLS_DIR/containerd-$CONTAINERD_VERSION/bin"

log() { printf '[setup] %s\n' "$*" >&2; }

# shellcheck source=hack/debs.sh
. hack/debs.sh
# criu is Debian 12's own 3.17: the tests show what it says on this kernel;
# checkpoints use CRIU 4.1 from hack/setup-criu.sh.
pairs="runc:/usr/sbin/runc containernetworking-plugins:/usr/lib/cni/bridge busybox-static:/bin/busybox iproute2:/sbin/ip"
[ "$MODE" = run ] || pairs="$pairs criu:/usr/sbin/criu"
# shellcheck disable=SC2086 # pairs is a word list
install_debs $pairs

build_containerd() {
  local version=$1 dir="$TOOLS_DIR/containerd-$1/bin"
  if [ ! -x "$dir/containerd" ] || [ ! -x "$dir/containerd-shim-runc-v2" ] || [ ! -x "$dir/ctr" ]; then
    log "building containerd $version with the Go command (a few minutes when the Go cache is cold)"
    mkdir -p "$dir"
    # Without cgo and without symbols: 9% less CPU than a cgo build with
    # DWARF (no C compiler runs, no external link; docs/benchmarks.md), and
    # nothing containerd does here needs cgo (btrfs is left out).
    GOBIN="$dir" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -ldflags "-s -w" -tags no_btrfs \
      "github.com/containerd/containerd/v2/cmd/containerd@$version" \
      "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$version" \
      "github.com/containerd/containerd/v2/cmd/ctr@$version"
  fi
  log "containerd: $("$dir/containerd" --version)"
}
build_containerd "$CONTAINERD_VERSION"
if [ "$MODE" != run ]; then
  # containerd 2.3 still restores a checkpoint archive given as a container's
  # image (2.4 removed that path); the restore tests run on it.
  build_containerd "${RESTORE_CONTAINERD_VERSION:-v2.3.7}"
  bash hack/setup-criu.sh >/dev/null
  # runc with idmapped mounts for the user namespace tests (a second
  # runtime handler; the default keeps Debian's runc).
  bash hack/setup-runc.sh >/dev/null
  # etcd and kube-apiserver for the cluster-mode tests (about 10 minutes cold).
  bash hack/setup-control-plane.sh >/dev/null
  # The CNCF registry for the private-registry pull tests (about a minute cold).
  bash hack/setup-registry.sh >/dev/null
fi

mkdir -p _output/bin _output/images
log "building the pause binary and the test images"
CGO_ENABLED=0 go build -o _output/bin/pause ./hack/pause
CGO_ENABLED=0 go build -o _output/bin/memhog ./hack/memhog
go run ./hack/mkimages -out _output/images -pause-binary _output/bin/pause -busybox-binary /bin/busybox -memhog-binary _output/bin/memhog
echo "$CONTAINERD_DIR"
