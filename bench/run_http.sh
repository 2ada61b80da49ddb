#!/usr/bin/env bash
# Measures HTTP/1.1 requests through vaned's HTTP adaptor side by side with a
# direct path, HAProxy (mode http) and nginx as a reverse proxy, in one run,
# and prints a Markdown table:
#
#   paths    direct     wrk -> origin
#            haproxy1   wrk -> HAProxy -> origin
#            haproxy2   wrk -> HAProxy -> HAProxy -> origin
#            nginx1     wrk -> nginx (proxy_pass, upstream keepalive) -> origin
#            vane1      wrk -> router A -> origin (http listener and connector on A)
#            vane2      wrk -> router A == router B -> origin (listener on A,
#                       connector on B, B linked to A inter-router)
#   figures  requests/s, latency p50 and p99 (wrk --latency), the proxies'
#            CPU seconds per 100k requests (/proc) and peak RSS (VmHWM).
#
# The origin is nginx (one worker) answering every request with a 1 KiB
# body; wrk keeps CONNECTIONS keep-alive connections (default 64) open with
# THREADS threads for DURATION seconds. Every proxy runs one thread (HAProxy
# nbthread 1, nginx worker_processes 1, vaned workers: VANE_WORKERS=1).
# Each path gets fresh proxy processes and must answer a probe request with
# status 200 before it is measured; a vane path that does not is reported
# as "-" with a note.
#
# Usage: bench/run_http.sh [--duration S] [--paths "direct vane2 ..."] [--keep-logs]
#
# Environment (all optional):
#   VANED           path to vaned (default: build/src/vaned, else build*/src/vaned)
#   WRK, HAPROXY, NGINX  the programs (default: from PATH or /usr/sbin)
#   DURATION        seconds per wrk run (default 5)
#   CONNECTIONS     wrk connections (default 64)
#   THREADS         wrk threads (default 2)
#   VANE_WORKERS    vaned worker threads (default 1)
#   REPEAT          runs per path; the table shows medians (default 1)
#   PATHS           default "direct haproxy1 haproxy2 nginx1 vane1 vane2"
#   KEEP_LOGS       1 = keep logs and configurations even on success
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
VANE_WORKERS=${VANE_WORKERS:-1}
REPEAT=${REPEAT:-1}
PATHS=${PATHS:-"direct haproxy1 haproxy2 nginx1 vane1 vane2"}
KEEP_LOGS=${KEEP_LOGS:-0}

# shellcheck disable=SC2034  # prog and root are used by lib.sh
prog=run_http.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

path_options "direct haproxy1 haproxy2 nginx1 vane1 vane2" "$@"
wrk=$(program "${WRK:-}" wrk)
nginx=$(program "${NGINX:-}" nginx)
haproxy=""
[[ $PATHS == *haproxy* ]] && haproxy=$(program "${HAPROXY:-}" haproxy)
vaned=""
if [[ $PATHS == *vane* ]]; then
  vaned=$(find_binary "${VANED:-}" src/vaned) ||
    die "vaned not found; build it (scripts/build.sh release vaned) or set VANED"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vane-bench-http.XXXXXX")
failures=0
unmeasured=0
bg_pids=()
proc_names=()
proc_pids=()
notes=()

cleanup() {
  local rc=$? pid
  for pid in "${bg_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  if ((${#bg_pids[@]})); then
    sleep 0.5
    for pid in "${bg_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  if [[ $rc -ne 0 || $failures -ne 0 || $KEEP_LOGS == 1 || $unmeasured -ne 0 ]]; then
    echo "$prog: logs and configurations kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_bg() {  # start_bg NAME LOG CMD... : a proxy process of the current path
  local name=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  bg_pids+=("$!")
  proc_names+=("$name")
  proc_pids+=("$!")
}

stop_path() {
  local pid
  for pid in "${proc_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${proc_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  local keep=() p q gone
  for p in "${bg_pids[@]}"; do
    gone=0
    for q in "${proc_pids[@]}"; do [[ $p == "$q" ]] && gone=1; done
    ((gone)) || keep+=("$p")
  done
  bg_pids=("${keep[@]}")
  proc_names=()
  proc_pids=()
}

# probe PORT: a request through PORT is answered 200 within 10 s.
probe() {
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/" || true) == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------------------
# The origin: nginx, one worker, 1 KiB answers, long keep-alive.

origin_port=$(free_port)
chmod 755 "$work"  # nginx workers run as another user when started by root
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
nginx_conf() {  # nginx_conf FILE NAME PORT [UPSTREAM_PORT]
  local f=$1 name=$2 port=$3 up=${4:-}
  mkdir -p "$work/$name"
  {
    echo "worker_processes 1;"
    echo "daemon off;"
    echo "pid $work/$name/nginx.pid;"
    echo "error_log $work/$name/error.log warn;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    echo "  client_body_temp_path $work/$name; proxy_temp_path $work/$name;"
    echo "  fastcgi_temp_path $work/$name; uwsgi_temp_path $work/$name; scgi_temp_path $work/$name;"
    echo "  keepalive_requests 1000000; keepalive_timeout 300s;"
    if [[ -n $up ]]; then
      echo "  upstream origin { server 127.0.0.1:$up; keepalive 128; }"
      echo "  server { listen 127.0.0.1:$port; location / { proxy_pass http://origin;"
      echo "    proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
    else
      echo "  server { listen 127.0.0.1:$port; location / { default_type text/plain;"
      echo "    return 200 \"$body\"; } }"
    fi
    echo "}"
  } >"$f"
}
nginx_conf "$work/origin.conf" origin "$origin_port"
"$nginx" -c "$work/origin.conf" -p "$work/origin" >"$work/origin.log" 2>&1 &
bg_pids+=("$!")
probe "$origin_port" || die "the origin nginx did not start: $(tail -n 3 "$work/origin.log" "$work/origin/error.log" 2>/dev/null | tr '\n' ' ')"

haproxy_conf() {  # haproxy_conf FILE LISTEN TARGET
  cat >"$1" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend web
  bind 127.0.0.1:$2
  default_backend web
backend web
  server s1 127.0.0.1:$3
EOF
}

vane_conf() {  # vane_conf FILE ID LISTEN_PORT(0 none) CONNECT_TO(inter port or "") CONNECTOR(0|1) INTER(0|1)
  local f=$1 id=$2 lp=$3 to=$4 conn=$5 inter=$6
  {
    echo "router: {id: $id, mode: interior, workers: $VANE_WORKERS}"
    echo "listeners:"
    echo "  - {name: amqp, host: 127.0.0.1, port: 0}"
    ((inter)) && echo "  - {name: inter, host: 127.0.0.1, port: 0, role: inter-router, insecure: true}"
    if [[ -n $to ]]; then
      echo "connectors:"
      echo "  - {name: to-A, host: 127.0.0.1, port: $to, role: inter-router}"
    fi
    ((lp)) && echo "http_listeners: [{name: web-in, host: 127.0.0.1, port: $lp, address: web}]"
    ((conn)) && echo "http_connectors: [{name: web-out, host: 127.0.0.1, port: $origin_port, address: web}]"
  } >"$f"
  return 0
}

start_vaned() {  # start_vaned ID: with $work/ID.yaml; waits for its ready line
  local id=$1 i
  start_bg "$id" "$work/$id.log" "$vaned" --config "$work/$id.yaml" --log-level info
  for ((i = 0; i < 100; i++)); do
    grep -q "router $id ready" "$work/$id.log" && return 0
    kill -0 "${proc_pids[-1]}" 2>/dev/null || { path_note="vaned $id exited: $(tail -n 1 "$work/$id.log")"; return 1; }
    sleep 0.1
  done
  path_note="vaned $id not ready"
  return 1
}

# start_path PATH: sets entry (the port wrk connects to)
start_path() {
  local p1 p2
  path_note=""
  case $1 in
    direct) entry=$origin_port ;;
    haproxy1)
      entry=$(free_port)
      haproxy_conf "$work/h1.cfg" "$entry" "$origin_port"
      start_bg haproxy "$work/h1.log" "$haproxy" -f "$work/h1.cfg" -db ;;
    haproxy2)
      entry=$(free_port)
      p2=$(free_port)
      haproxy_conf "$work/h2a.cfg" "$entry" "$p2"
      haproxy_conf "$work/h2b.cfg" "$p2" "$origin_port"
      start_bg haproxy-b "$work/h2b.log" "$haproxy" -f "$work/h2b.cfg" -db
      start_bg haproxy-a "$work/h2a.log" "$haproxy" -f "$work/h2a.cfg" -db ;;
    nginx1)
      entry=$(free_port)
      nginx_conf "$work/n1.conf" n1 "$entry" "$origin_port"
      start_bg nginx "$work/n1.log" "$nginx" -c "$work/n1.conf" -p "$work/n1" ;;
    vane1)
      entry=$(free_port)
      vane_conf "$work/A.yaml" A "$entry" "" 1 0
      start_vaned A || return 1 ;;
    vane2)
      entry=$(free_port)
      vane_conf "$work/A.yaml" A "$entry" "" 0 1
      start_vaned A || return 1
      p1=$(sed -n 's/.*listener inter listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/A.log" | head -n 1)
      vane_conf "$work/B.yaml" B 0 "$p1" 1 0
      start_vaned B || return 1 ;;
  esac
  probe "$entry" || { path_note="no 200 answer through the path within 10 s"; return 1; }
}

# to_ms VALUE: wrk's "1.23ms", "456.00us", "1.01s" in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

# measure: one wrk run against $entry; sets rps p50 p99 cpu_per_100k.
measure() {
  local out cpu0=() cpu1 i total=0 n pids
  read -r -a pids <<<"$(path_pids | tr '\n' ' ')"
  for i in "${!pids[@]}"; do cpu0[i]=$(cpu_seconds "${pids[i]}"); done
  out=$("$wrk" -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency "http://127.0.0.1:$entry/")
  echo "$out" >>"$work/wrk.log"
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  n=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then notes+=("$path: $(grep Non-2xx <<<"$out")"); fi
  for i in "${!pids[@]}"; do
    cpu1=$(cpu_seconds "${pids[i]}")
    total=$(awk -v a="$total" -v b="$cpu1" -v c="${cpu0[i]}" 'BEGIN { print a + b - c }')
  done
  cpu_per_100k=$(awk -v t="$total" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", t * 100000 / n; else print "-" }')
}

# The path's processes and their children (nginx's worker).
path_pids() {
  local pid
  for pid in "${proc_pids[@]}"; do
    echo "$pid"
    pgrep -P "$pid" || true
  done
}

rss_mb() {  # peak RSS of the path's proxies, MiB (sum)
  local pid kb total=0
  for pid in $(path_pids); do
    kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  awk -v k="$total" 'BEGIN { printf "%.1f", k / 1024 }'
}

declare -A R_RPS R_P50 R_P99 R_CPU R_RSS
for path in $PATHS; do
  if ! start_path "$path"; then
    notes+=("$path: not measured: $path_note")
    unmeasured=$((unmeasured + 1))
    [[ $path == vane* ]] || failures=$((failures + 1))
    stop_path
    continue
  fi
  "$wrk" -t 1 -c 4 -d 1s "http://127.0.0.1:$entry/" >/dev/null  # warm-up
  rs=() a=() b=() c=()
  for ((r = 0; r < REPEAT; r++)); do
    measure
    rs+=("$rps") a+=("$p50") b+=("$p99") c+=("$cpu_per_100k")
  done
  R_RPS[$path]=$(printf '%s\n' "${rs[@]}" | median)
  R_P50[$path]=$(printf '%s\n' "${a[@]}" | median)
  R_P99[$path]=$(printf '%s\n' "${b[@]}" | median)
  R_CPU[$path]=$(printf '%s\n' "${c[@]}" | median)
  R_RSS[$path]=$( ((${#proc_pids[@]})) && rss_mb || echo "-")
  stop_path
done

echo "HTTP/1.1, 1 KiB answers, wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s, keep-alive; medians of $REPEAT"
echo
echo "| path | requests/s | p50 ms | p99 ms | proxy CPU s / 100k req | proxy peak RSS MiB | req/s vs haproxy2 |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for path in $PATHS; do
  echo "| $path | $(show "${R_RPS[$path]:-}") | $(show "${R_P50[$path]:-}") | $(show "${R_P99[$path]:-}") | $(show "${R_CPU[$path]:-}") | $(show "${R_RSS[$path]:-}") | $(ratio "${R_RPS[$path]:-}" "${R_RPS[haproxy2]:-}") |"
done
if [[ -n ${R_P99[vane2]:-} && -n ${R_P99[haproxy2]:-} ]]; then
  echo
  echo "vane2 p99 / haproxy2 p99: $(ratio "${R_P99[vane2]}" "${R_P99[haproxy2]}")"
fi
for n in "${notes[@]}"; do echo "note: $n"; done
exit $((failures > 0))
