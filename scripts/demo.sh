#!/usr/bin/env bash
# Installs what Vane needs, builds it, and runs a small router network on this
# machine (examples/network): interior routers a and b linked to each other,
# and an edge router attached to a. Then:
#  - TCP: a web server next to edge-1 (127.0.0.1:8080, exposed as address
#    "web") is fetched through b's tcp listener 127.0.0.1:18080, the bytes
#    crossing b -> a -> edge-1 and back;
#  - AMQP: a message sent by a client of b crosses b -> a -> edge-1 to a
#    consumer on the edge router, and the consumer's acknowledgement travels
#    back;
#  - sites: two more routers, sites "east" and "west", set up with the vane
#    command alone (each its own CA and certificates), linked over mutually
#    authenticated TLS with a one-time token; the web server is exposed at
#    east and reached through west's port 18081.
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
echo "--- sites: east and west, linked with a token (the vane command; see the README)"
vane() { ./build/src/vane "$@"; }
east="$logdir/east" west="$logdir/west"
stop_sites() {
  if [ -z "${VANE_DEMO_KEEP:-}" ]; then
    vane --dir "$east" site stop >/dev/null 2>&1 || true
    vane --dir "$west" site stop >/dev/null 2>&1 || true
  fi
  cleanup
}
trap stop_sites EXIT
vane --dir "$east" site init east --host 127.0.0.1 --link-port 55771 --amqp-port 0
vane --dir "$west" site init west --host 127.0.0.1 --link-port 55781 --amqp-port 0
vane --dir "$east" site start
vane --dir "$west" site start
vane --dir "$east" token issue -o "$logdir/east.token"
vane --dir "$west" link create "$logdir/east.token"
vane --dir "$east" expose tcp web --to 127.0.0.1:8080
vane --dir "$west" listen tcp web --port 18081
/usr/bin/python3 - <<'PY'
import time, urllib.request
deadline = time.time() + 15
while True:
    try:
        with urllib.request.urlopen("http://127.0.0.1:18081/", timeout=5) as r:
            print(f"HTTP {r.status}, {len(r.read())} bytes through west -> east over TLS")
            break
    except OSError as e:
        if time.time() > deadline:
            raise SystemExit(f"the web service was not reachable through the sites: {e}")
        time.sleep(0.2)
PY
vane --dir "$west" status
for r in interior-a interior-b edge-1; do echo "--- $r ($logdir/$r.log)"; cat "$logdir/$r.log"; done
if [ -n "${VANE_DEMO_KEEP:-}" ]; then
  echo "routers keep running (pids ${pids[*]}): clients of a on 127.0.0.1:5672, b on :5673, edge-1 on :5674;"
  echo "the web server next to edge-1 is reached through b at http://127.0.0.1:18080/"
  echo "and through the sites at http://127.0.0.1:18081/ (vane --dir $west status)"
  echo "stop them with: kill ${pids[*]}; vane --dir $east site stop; vane --dir $west site stop"
else
  echo "demo done"
fi
