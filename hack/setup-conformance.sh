#!/usr/bin/env bash
# Builds what the Kubernetes e2e conformance harness (test/conformance) needs
# from the Go modules of Kubernetes v1.37.2, the way setup-control-plane.sh
# builds kube-apiserver: kube-controller-manager, kube-scheduler, kubectl, the
# kubelet (the reference agent), agnhost, the ginkgo CLI (the version
# kubernetes' go.mod requires), the e2e test binary and CI's smaller one
# (e2e-subset.test: test/conformance/e2esubset, only the spec packages of
# the CI subset). Each lands in
# $KNODE_TOOLS_DIR/conformance/bin and is built only when missing; prints that
# directory. Cold on 2 cores: see docs/conformance.md; warm: a second.
#
# CONFORMANCE_BINARIES (space-separated names) limits what is built, e.g.
# "kube-controller-manager kube-scheduler agnhost nnp e2e-subset.test" for
# the CI subset.
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
  [e2e-subset.test]=.
)
ORDER=(kube-controller-manager kube-scheduler kubectl kubelet agnhost nnp ginkgo e2e.test e2e-subset.test)
REPO="$(cd "$(dirname "$0")/.." && pwd)"
wanted=(${CONFORMANCE_BINARIES:-${ORDER[*]}})

# e2e-subset.test is rebuilt when its source changes.
subset_sum=$(sha256sum "$REPO/test/conformance/e2esubset/suite_test.go" | cut -d' ' -f1)
missing=()
for name in "${wanted[@]}"; do
  [ -n "${PKG[$name]:-}" ] || { log "unknown binary $name (one of: ${ORDER[*]})"; exit 2; }
  if [ "$name" = e2e-subset.test ] && [ "$(cat "$BIN/$name.sha256" 2>/dev/null)" != "$subset_sum" ]; then
    missing+=("$name")
  elif [ ! -x "$BIN/$name" ]; then
    missing+=("$name")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  start=$SECONDS
  log "building ${missing[*]} from k8s.io/kubernetes@$K8S_VERSION (many minutes when the Go build cache is cold)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  # The CI subset's test package lives in knode's tree behind a build tag;
  # it is built here, as a package of this scratch module.
  cp "$REPO/test/conformance/e2esubset/suite_test.go" .
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
  # The commands in one go build (one action graph: shared packages are
  # compiled once, as many at a time as there are cores), then the test
  # binaries.
  cmds=() tests=()
  for name in "${missing[@]}"; do
    case "$name" in *.test) tests+=("$name") ;; *) cmds+=("$name") ;; esac
  done
  if [ ${#cmds[@]} -gt 0 ]; then
    pkgs=()
    for name in "${cmds[@]}"; do pkgs+=("${PKG[$name]}"); done
    mkdir -p "$work/out"
    go build -ldflags "$ld" -o "$work/out/" "${pkgs[@]}"
    for name in "${cmds[@]}"; do
      pkg=${PKG[$name]}
      mv "$work/out/${pkg##*/}" "$BIN/$name"
    done
    log "built ${cmds[*]} in $((SECONDS - start)) s"
  fi
  for name in "${tests[@]}"; do
    t0=$SECONDS
    if [ "$name" = e2e-subset.test ]; then
      go test -c -tags knode_e2e_subset -ldflags "$ld" -o "$BIN/$name.tmp" "${PKG[$name]}"
    else
      go test -c -ldflags "$ld" -o "$BIN/$name.tmp" "${PKG[$name]}"
    fi
    mv "$BIN/$name.tmp" "$BIN/$name"
    [ "$name" != e2e-subset.test ] || echo "$subset_sum" > "$BIN/$name.sha256"
    log "built $name in $((SECONDS - t0)) s"
  done
  log "built ${missing[*]} in $((SECONDS - start)) s"
fi
echo "$BIN"
