#!/usr/bin/env bash
# Installs what Vane needs, builds it, starts a router on the built-in default
# (AMQP on 127.0.0.1:5672), sends it a message and receives it back through
# the router. Set VANE_DEMO_KEEP=1 to leave the router running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release

log="$(mktemp -t vaned-demo.XXXXXX.log)"
./build/src/vaned >"$log" 2>&1 &
pid=$!
cleanup() { if [ -z "${VANE_DEMO_KEEP:-}" ]; then kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT
for _ in $(seq 100); do
  grep -q "ready" "$log" && break
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "vaned failed to start" >&2; exit 1; fi
  sleep 0.1
done
cat "$log"
/usr/bin/python3 examples/send_receive.py --url 127.0.0.1:5672 --address demo --count 3
if [ -n "${VANE_DEMO_KEEP:-}" ]; then
  echo "vaned (pid $pid) keeps running on 127.0.0.1:5672; log: $log; stop it with: kill $pid"
else
  echo "demo done; run ./build/src/vaned yourself to keep a router up"
fi
