#!/usr/bin/env bash
# Builds etcd v3.6.16 and kube-apiserver v1.37.2 from their Go modules into
# $KNODE_TOOLS_DIR (about 10 minutes cold, seconds when built), for the
# cluster-mode tests. Prints the bin directory.
set -euo pipefail
TOOLS_DIR="${KNODE_TOOLS_DIR:-/usr/local/lib/knode-ci}"
BIN="$TOOLS_DIR/control-plane/bin"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
STAGING_VERSION="v0${K8S_VERSION#v1}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
log() { printf '[setup-control-plane] %s\n' "$*" >&2; }
mkdir -p "$BIN"

if [ ! -x "$BIN/etcd" ]; then
  log "building etcd $ETCD_VERSION"
  work=$(mktemp -d)
  (cd "$work" && go mod init knode.local/etcd-build >/dev/null 2>&1 &&
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 &&
    CGO_ENABLED=0 go build -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$work"
fi

if [ ! -x "$BIN/kube-apiserver" ]; then
  log "building kube-apiserver $K8S_VERSION (about 10 minutes cold)"
  work=$(mktemp -d)
  cd "$work"
  go mod init knode.local/apiserver-build >/dev/null 2>&1
  kdir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$kdir" ] || { log "cannot download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  # k8s.io/kubernetes requires its staging modules at v0.0.0: replace each
  # with its release.
  {
    echo "require k8s.io/kubernetes $K8S_VERSION"
    awk '/^replace \(/{f=1;next} f&&/^\)/{f=0} f&&$1 ~ /^k8s.io\//{print "replace "$1" => "$1" '"$STAGING_VERSION"'"}' "$kdir/go.mod"
    echo "godebug default=go1.26"
  } >> go.mod
  GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >/dev/null 2>&1 || true
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ld="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -ldflags "$ld" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  cd /
  rm -rf "$work"
fi
log "etcd: $("$BIN/etcd" --version | head -1); kube-apiserver: $("$BIN/kube-apiserver" --version)"
echo "$BIN"
