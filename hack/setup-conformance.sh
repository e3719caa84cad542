#!/usr/bin/env bash
# Builds what the Kubernetes e2e conformance harness (test/conformance) needs
# from the Go modules of Kubernetes v1.37.2, the way setup-control-plane.sh
# builds kube-apiserver: kube-controller-manager, kube-scheduler, kubectl, the
# kubelet (the reference agent), agnhost, the ginkgo CLI (the version
# kubernetes' go.mod requires) and the e2e test binary. Each lands in
# $KNODE_TOOLS_DIR/conformance/bin and is built only when missing; prints that
# directory. Cold on 2 cores: see docs/conformance.md; warm: a second.
#
# CONFORMANCE_BINARIES (space-separated names) limits what is built, e.g.
# "e2e.test ginkgo" for the CI subset.
set -euo pipefail
TOOLS_DIR="${KNODE_TOOLS_DIR:-/usr/local/lib/knode-ci}"
BIN="$TOOLS_DIR/conformance/bin"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
STAGING_VERSION="v0${K8S_VERSION#v1}"
log() { printf '[setup-conformance] %s\n' "$*" >&2; }
mkdir -p "$BIN"

# name → package (e2e.test is a test binary: go test -c).
declare -A PKG=(
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [agnhost]=k8s.io/kubernetes/test/images/agnhost
  [nnp]=k8s.io/kubernetes/test/images/nonewprivs
  [ginkgo]=github.com/onsi/ginkgo/v2/ginkgo
  [e2e.test]=k8s.io/kubernetes/test/e2e
)
ORDER=(kube-controller-manager kube-scheduler kubectl kubelet agnhost nnp ginkgo e2e.test)
wanted=(${CONFORMANCE_BINARIES:-${ORDER[*]}})

missing=()
for name in "${wanted[@]}"; do
  [ -n "${PKG[$name]:-}" ] || { log "unknown binary $name (one of: ${ORDER[*]})"; exit 2; }
  [ -x "$BIN/$name" ] || missing+=("$name")
done

if [ ${#missing[@]} -gt 0 ]; then
  start=$SECONDS
  log "building ${missing[*]} from k8s.io/kubernetes@$K8S_VERSION (many minutes when the Go build cache is cold)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  go mod init knode.local/conformance-build >/dev/null 2>&1
  kdir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$kdir" ] || { log "cannot download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  ginkgo_version=$(awk '$1=="github.com/onsi/ginkgo/v2"{print $2; exit}' "$kdir/go.mod")
  # k8s.io/kubernetes requires its staging modules at v0.0.0: replace each
  # with its release.
  {
    echo "require k8s.io/kubernetes $K8S_VERSION"
    awk '/^replace \(/{f=1;next} f&&/^\)/{f=0} f&&$1 ~ /^k8s.io\//{print "replace "$1" => "$1" '"$STAGING_VERSION"'"}' "$kdir/go.mod"
    echo "godebug default=go1.26"
  } >> go.mod
  export GOFLAGS=-mod=mod CGO_ENABLED=0
  GOFLAGS=-mod=mod go get "k8s.io/kubernetes@$K8S_VERSION" "github.com/onsi/ginkgo/v2@$ginkgo_version" >/dev/null 2>&1 || true
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ld="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  for name in "${missing[@]}"; do
    t0=$SECONDS
    if [ "$name" = e2e.test ]; then
      go test -c -ldflags "$ld" -o "$BIN/$name.tmp" "${PKG[$name]}"
    else
      go build -ldflags "$ld" -o "$BIN/$name.tmp" "${PKG[$name]}"
    fi
    mv "$BIN/$name.tmp" "$BIN/$name"
    log "built $name in $((SECONDS - t0)) s"
  done
  log "built ${missing[*]} in $((SECONDS - start)) s"
fi
echo "$BIN"
