#!/usr/bin/env bash
# Installs what Vane needs, builds it, and runs a small router network on this
# machine (examples/network): interior routers a and b linked to each other,
# and an edge router attached to a. A message sent by a client of b crosses
# b -> a -> edge-1 to a consumer on the edge router, and the consumer's
# acknowledgement travels back. Set VANE_DEMO_KEEP=1 to leave the routers
# running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release

logdir="$(mktemp -d -t vane-demo.XXXXXX)"
pids=()
cleanup() {
  if [ -z "${VANE_DEMO_KEEP:-}" ]; then
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  fi
}
trap cleanup EXIT
start() {
  ./build/src/vaned --config "examples/network/$1.yaml" >"$logdir/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q "ready" "$logdir/$1.log" && return 0
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then cat "$logdir/$1.log"; echo "vaned $1 failed to start" >&2; exit 1; fi
    sleep 0.1
  done
  echo "vaned $1 did not become ready" >&2; exit 1
}
start interior-a
start interior-b
start edge-1
/usr/bin/python3 examples/send_receive.py --url 127.0.0.1:5673 --receive-url 127.0.0.1:5674 \
  --address demo --count 3
for r in interior-a interior-b edge-1; do echo "--- $r ($logdir/$r.log)"; cat "$logdir/$r.log"; done
if [ -n "${VANE_DEMO_KEEP:-}" ]; then
  echo "routers keep running (pids ${pids[*]}): clients of a on 127.0.0.1:5672, b on :5673, edge-1 on :5674"
  echo "stop them with: kill ${pids[*]}"
else
  echo "demo done"
fi
