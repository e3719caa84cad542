#!/usr/bin/env bash
# Starts knode in the background with its embedded containerd and the example
# static pods in examples/, waits until they run, and shows them.
# `hack/run-examples.sh stop` stops knode and removes the example pods.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO_DIR="${KNODE_DEMO_DIR:-/var/lib/knode-demo}"
ROOT="$DEMO_DIR/root"
MANIFESTS="$DEMO_DIR/manifests"
LOGS="$DEMO_DIR/pod-logs"
PIDFILE="$DEMO_DIR/knode.pid"
KNODE=_output/bin/knode

stop() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    # Remove the pods first so nothing is left running, then stop knode.
    rm -f "$MANIFESTS"/*.yaml
    for _ in $(seq 1 60); do
      grep -q "pod sandbox removed" "$DEMO_DIR/knode.log" 2>/dev/null && [ -z "$(ls "$LOGS" 2>/dev/null)" ] && break
      sleep 1
    done
    kill "$(cat "$PIDFILE")"
    echo "knode stopped"
  fi
  rm -f "$PIDFILE"
}

if [ "${1:-}" = stop ]; then
  stop
  exit 0
fi

stop
mkdir -p "$MANIFESTS" "$LOGS"
cp examples/*.yaml "$MANIFESTS"/
: > "$DEMO_DIR/knode.log"
"$KNODE" run \
  --root-dir "$ROOT" \
  --pod-manifest-path "$MANIFESTS" \
  --pod-logs-dir "$LOGS" \
  --preload-images-dir _output/images \
  --port 10250 \
  >>"$DEMO_DIR/knode.log" 2>&1 &
echo $! > "$PIDFILE"
echo "knode started (pid $(cat "$PIDFILE")), log: $DEMO_DIR/knode.log"

want=$(ls examples/*.yaml | wc -l)
for _ in $(seq 1 60); do
  running=$(grep -c '"container started"\|msg="container started"' "$DEMO_DIR/knode.log" || true)
  [ "$running" -ge "$want" ] && break
  sleep 1
done
sleep 2
"$KNODE" get pods --root-dir "$ROOT" 2>/dev/null || {
  echo "pods (from their logs under $LOGS):"
  for d in "$LOGS"/*/; do
    echo "== $(basename "$d")"
    for c in "$d"*/; do
      echo "   container $(basename "$c"): $(tail -n1 "$c"/*.log 2>/dev/null | cut -d' ' -f4-)"
    done
  done
}
echo
echo "Stop with: make stop"
