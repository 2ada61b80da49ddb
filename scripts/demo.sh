#!/usr/bin/env bash
# Installs what Vane needs, builds it, and runs a small router network on this
# machine (examples/network): interior routers a and b linked to each other,
# and an edge router attached to a. Then:
#  - TCP: a web server next to edge-1 (127.0.0.1:8080, exposed as address
#    "web") is fetched through b's tcp listener 127.0.0.1:18080, the bytes
#    crossing b -> a -> edge-1 and back;
#  - AMQP: a message sent by a client of b crosses b -> a -> edge-1 to a
#    consumer on the edge router, and the consumer's acknowledgement travels
#    back.
# Set VANE_DEMO_KEEP=1 to leave the routers (and the web server) running.
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
# The service to expose: Python's web server, serving examples/.
/usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory examples \
  >"$logdir/web.log" 2>&1 &
pids+=($!)
start interior-a
start edge-1
start interior-b
echo "--- TCP: GET http://127.0.0.1:18080/ (b's tcp listener for 'web', served next to edge-1)"
/usr/bin/python3 - <<'PY'
import time, urllib.request
# The routers need a moment to learn where 'web' is served; until then b
# resets connections to its tcp listener.
deadline = time.time() + 15
while True:
    try:
        with urllib.request.urlopen("http://127.0.0.1:18080/", timeout=5) as r:
            body = r.read()
            print(f"HTTP {r.status}, {len(body)} bytes through b -> a -> edge-1:")
            print("\n".join(body.decode(errors="replace").splitlines()[:6]))
            break
    except OSError as e:
        if time.time() > deadline:
            raise SystemExit(f"the web service was not reachable through the network: {e}")
        time.sleep(0.2)
PY
echo "--- AMQP: send from b, receive on edge-1"
/usr/bin/python3 examples/send_receive.py --url 127.0.0.1:5673 --receive-url 127.0.0.1:5674 \
  --address demo --count 3
for r in interior-a interior-b edge-1; do echo "--- $r ($logdir/$r.log)"; cat "$logdir/$r.log"; done
if [ -n "${VANE_DEMO_KEEP:-}" ]; then
  echo "routers keep running (pids ${pids[*]}): clients of a on 127.0.0.1:5672, b on :5673, edge-1 on :5674;"
  echo "the web server next to edge-1 is reached through b at http://127.0.0.1:18080/"
  echo "stop them with: kill ${pids[*]}"
else
  echo "demo done"
fi
