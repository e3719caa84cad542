# knode's entry points. `make run` and `make test` work on a fresh Debian 12
# machine as root: both set the node up first (hack/setup-node.sh).
SHELL := /bin/bash
CONTAINERD_VERSION ?= v2.4.2
TOOLS_DIR ?= /usr/local/lib/knode-ci
# CRIU 4.1 first, then the containerd build: the runtime (and runc under
# it) finds both on PATH.
export PATH := $(TOOLS_DIR)/criu-trixie/wrapper:$(TOOLS_DIR)/containerd-$(CONTAINERD_VERSION)/bin:$(PATH)
export KNODE_TOOLS_DIR := $(TOOLS_DIR)
GO_TEST_FLAGS ?=

.PHONY: all build setup setup-run run stop test unit integration fmt vet conformance

all: build

# grpcnotrace drops grpc's x/net/trace (and html/template with it): executing
# a template makes the linker keep every exported method, 5 MB of binary that
# stays resident (docs/benchmarks.md, "knode's binary").
build:
	CGO_ENABLED=0 go build -tags grpcnotrace -trimpath -ldflags "-s -w" -o _output/bin/knode ./cmd/knode

# Everything the tests need (CRIU, the restore runtime, the control plane).
setup:
	bash hack/setup-node.sh

# Only what the example agent needs: runc, CNI, containerd 2.4.2, the images.
setup-run:
	bash hack/setup-node.sh run

# Sets up the node, starts knode with the example static pods and shows them running.
run: setup-run build
	bash hack/run-examples.sh

stop:
	bash hack/run-examples.sh stop

# Unit tests, then the integration suite against real containerd.
test: setup build
	@unformatted=$$(gofmt -l cmd internal hack test bench); if [ -n "$$unformatted" ]; then echo "gofmt -w these files: $$unformatted"; exit 1; fi
	go vet ./...
	KNODE_INTEGRATION=1 go test -count=1 -timeout 25m $(GO_TEST_FLAGS) ./...

# The Kubernetes e2e node conformance selection against knode, then the
# real kubelet on the same machine, side by side (docs/conformance.md). By
# hand: it takes about an hour; reports in _output/conformance/<agent>/.
CONFORMANCE_AGENTS ?= knode kubelet
conformance: setup
	for agent in $(CONFORMANCE_AGENTS); do go run ./test/conformance -agent $$agent || exit 1; done
	if [ -f _output/conformance/knode/summary.json ] && [ -f _output/conformance/kubelet/summary.json ]; then go run ./test/conformance -compare; fi

unit:
	go test -count=1 ./internal/... ./cmd/...

fmt:
	gofmt -w cmd internal hack test bench
