#!/usr/bin/env bash
# Measures plain TCP through vaned's TCP adaptor side by side with a direct
# loopback path and with HAProxy, in one run, and prints Markdown tables:
#
#   paths    direct          client -> server on loopback
#            haproxy1        client -> HAProxy -> server           (1 hop)
#            haproxy2        client -> HAProxy -> HAProxy -> server (2 hops)
#            vane1           client -> router A -> server          (tcp listener and
#                            tcp connector for the same address on A)
#            vane2           client -> router A == router B -> server (tcp listener on A,
#                            tcp connector on B, B linked to A inter-router)
#            haproxy2tls     as haproxy2, the hop between the two HAProxies over
#                            mutually authenticated TLS
#            vane2tls        as vane2, with the link between A and B over mutually
#                            authenticated TLS (certificates made with openssl)
#   figures  iperf3 throughput with 1 and with 4 parallel streams (Gbit/s, at
#            the receiver), new connections per second (vane-tcp-bench connrate:
#            connect, 1 byte each way, close), ping-pong round-trip latency
#            (vane-tcp-bench pingpong), and the proxies' CPU seconds during each
#            iperf3 run (/proc) and peak RSS (VmHWM).
#
# Each path gets fresh proxy processes. Before measuring, the script waits
# (at most PROBE_TIMEOUT s) until a probe connection through the path gets a
# byte echoed back, on both the iperf3 and the echo route (the iperf3 port is
# served by a temporary echo server during the probe). A vane path that does
# not pass the probe, or whose vaned does not start, is reported as "-" with a
# note and does not fail the run; failures on the direct or HAProxy paths do.
# HAProxy runs as an ordinary foreground process (`haproxy -f CFG -db`, tcp
# mode, nbthread 1); vaned with `workers: VANE_WORKERS` (default 1).
#
# Usage: bench/run_tcp.sh [--duration S] [--paths "direct haproxy1 ..."] [--keep-logs]
#
# Environment (all optional; the options above override):
#   VANED             path to vaned (default: build/src/vaned, else the first build*/src/vaned)
#   VANE_TCP_BENCH    path to vane-tcp-bench (default: build/bench/vane-tcp-bench, else build*/...)
#   IPERF3, HAPROXY   the programs (default: iperf3 and haproxy from PATH or /usr/sbin)
#   DURATION          seconds per iperf3 run (default 5)
#   STREAMS           iperf3 parallel-stream counts to run (default "1 4"; the table shows 1 and 4)
#   CONN_COUNT        connrate connections per path (default 20000)
#   CONN_CONCURRENCY  connrate connections at a time (default 4)
#   CONN_SECONDS      connrate time bound per path (default 3)
#   PING_COUNT        ping-pong round trips per path (default 5000, plus 200 warm-up)
#   PING_SIZE         ping-pong bytes per round trip (default 1)
#   VANE_WORKERS      vaned worker threads (default 1, like HAProxy's nbthread 1)
#   PROBE_TIMEOUT     seconds a path gets to pass the probe (default 10)
#   REPEAT            runs of every measurement per path; the tables show medians (default 1)
#   PATHS             paths to run, in order (default "direct haproxy1 haproxy2 vane1 vane2")
#   KEEP_LOGS         1 = keep logs and configurations even on success
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

DURATION=${DURATION:-5}
STREAMS=${STREAMS:-"1 4"}
CONN_COUNT=${CONN_COUNT:-20000}
CONN_CONCURRENCY=${CONN_CONCURRENCY:-4}
CONN_SECONDS=${CONN_SECONDS:-3}
PING_COUNT=${PING_COUNT:-5000}
PING_SIZE=${PING_SIZE:-1}
VANE_WORKERS=${VANE_WORKERS:-1}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-10}
REPEAT=${REPEAT:-1}
PATHS=${PATHS:-"direct haproxy1 haproxy2 vane1 vane2"}
KEEP_LOGS=${KEEP_LOGS:-0}

# shellcheck disable=SC2034  # prog and root are used by lib.sh
prog=run_tcp.sh
# die, find_binary, program, path_options, cpu_seconds, field, median, ratio, show, listener_port
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

path_options "direct haproxy1 haproxy2 haproxy2tls vane1 vane2 vane2tls" "$@"
tb=$(find_binary "${VANE_TCP_BENCH:-}" bench/vane-tcp-bench) ||
  die "vane-tcp-bench not found; build it (cmake --build build --target vane-tcp-bench) or set VANE_TCP_BENCH"
vaned=""
if [[ $PATHS == *vane* ]]; then
  vaned=$(find_binary "${VANED:-}" src/vaned) ||
    die "vaned not found; build it (cmake --build build --target vaned) or set VANED"
fi
iperf3=$(program "${IPERF3:-}" iperf3)
haproxy=""
[[ $PATHS == *haproxy* ]] && haproxy=$(program "${HAPROXY:-}" haproxy)
py=python3
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3

work=$(mktemp -d "${TMPDIR:-/tmp}/vane-bench-tcp.XXXXXX")
failures=0
unmeasured=0    # paths that did not come up (vane's do not count as failures)
bg_pids=()      # every background process this script started and has not reaped
proc_names=()   # proxy processes of the current path: label ...
proc_pids=()    # ... and pid
notes=()        # lines printed under the tables

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

# ---------------------------------------------------------------------------
# Processes

forget_pid() {  # forget_pid PID: drop PID from bg_pids
  local p keep=()
  for p in "${bg_pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  bg_pids=("${keep[@]}")
}

# stop_pid PID [SIGNAL]: signals PID (default TERM), waits at most 5 s, then
# SIGKILLs it; sets stop_rc to its exit status.
stop_pid() {
  local pid=$1 sig=${2:-TERM} i
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  stop_rc=0
  wait "$pid" 2>/dev/null || stop_rc=$?
  forget_pid "$pid"
}

# free_ports N: N distinct TCP ports that are free on 127.0.0.1 right now.
free_ports() {
  "$py" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# wait_listening PORT [SECONDS]: until something listens on 127.0.0.1:PORT.
wait_listening() {
  local port=$1 deadline=$((SECONDS + ${2:-5}))
  while ((SECONDS < deadline)); do
    [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]] && return 0
    sleep 0.05
  done
  return 1
}

# start_echo PORT LOG: starts vane-tcp-bench echo-server on PORT (0 = a free
# one); sets started_pid and started_port.
start_echo() {
  local i
  "$tb" echo-server --host 127.0.0.1 --port "$1" --threads 1 --timeout 900 >"$2" 2>&1 &
  started_pid=$!
  bg_pids+=("$started_pid")
  started_port=""
  for ((i = 0; i < 100; i++)); do
    started_port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$2" 2>/dev/null || true)
    [[ -n $started_port ]] && return 0
    kill -0 "$started_pid" 2>/dev/null || break
    sleep 0.05
  done
  cat "$2" >&2
  return 1
}

# probe PORT: one connection through PORT gets a byte echoed back.
probe() {
  "$tb" connrate --port "$1" --connections 1 --concurrency 1 --seconds 2 --io-timeout-ms 1000 \
    >/dev/null 2>>"$work/probe.err"
}

# probe_until PORT...: every PORT passes the probe within PROBE_TIMEOUT s.
probe_until() {
  local deadline=$((SECONDS + PROBE_TIMEOUT)) port
  for port in "$@"; do
    until probe "$port"; do
      ((SECONDS < deadline)) || return 1
      sleep 0.2
    done
  done
}

# ---------------------------------------------------------------------------
# Paths. start_path sets entry_svc (iperf3) and entry_echo (echo server), the
# ports the clients connect to, and proc_names/proc_pids; on failure it
# returns 1 with path_note set.

# haproxy_config FILE SVC_LISTEN SVC_TARGET ECHO_LISTEN ECHO_TARGET [TLS]
# TLS: "in" (the frontends accept TLS and require a client certificate) or
# "out" (the backends connect with TLS and present one).
haproxy_config() {
  local in="" out="" d=$work/tls
  [[ ${6:-} == in ]] && in=" ssl crt $d/leaf-combined.pem ca-file $d/ca.pem verify required"
  [[ ${6:-} == out ]] && out=" ssl verify required ca-file $d/ca.pem crt $d/leaf-combined.pem"
  cat >"$1" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend svc
  bind 127.0.0.1:$2$in
  default_backend svc
backend svc
  server s1 127.0.0.1:$3$out
frontend echo
  bind 127.0.0.1:$4$in
  default_backend echo
backend echo
  server s1 127.0.0.1:$5$out
EOF
}

# start_haproxy NAME CFG SVC_PORT ECHO_PORT
start_haproxy() {
  local name=$1 pid
  "$haproxy" -f "$2" -db >"$work/$name.log" 2>&1 &
  pid=$!
  bg_pids+=("$pid")
  proc_names+=("$name")
  proc_pids+=("$pid")
  if ! wait_listening "$3" 5 || ! wait_listening "$4" 5 || ! kill -0 "$pid" 2>/dev/null; then
    path_note="$name did not start (log: $(tail -n 3 "$work/$name.log" | tr '\n' ' '))"
    return 1
  fi
}

# bench_certs: a CA and one certificate for 127.0.0.1 in $work/tls (once).
bench_certs() {
  local d=$work/tls
  [[ -f $d/leaf.pem ]] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$d/ca-key.pem" -out "$d/ca.pem" -subj /CN=bench-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/leaf-key.pem" \
    -out "$d/leaf.csr" -subj /CN=bench >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$d/ext"
  openssl x509 -req -in "$d/leaf.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -set_serial 1 \
    -days 1 -out "$d/leaf.pem" -extfile "$d/ext" >/dev/null 2>&1
  cat "$d/leaf.pem" "$d/leaf-key.pem" >"$d/leaf-combined.pem"
}

# vane_config FILE ID INTER_LISTENER(0|1) CONNECT_TO_PORT TCP_LISTENERS(0|1) TCP_CONNECTORS(0|1)
#             [TLS(0|1)]
vane_config() {
  local f=$1 id=$2 inter=$3 to=$4 tl=$5 tc=$6 tls=${7:-0} t=""
  ((tls)) && t=", tls_profile: link"
  {
    echo "router: {id: $id, mode: interior, workers: $VANE_WORKERS}"
    if ((tls)); then
      echo "tls_profiles:"
      echo "  - {name: link, certificate: $work/tls/leaf.pem, key: $work/tls/leaf-key.pem, ca: $work/tls/ca.pem}"
    fi
    echo "listeners:"
    echo "  - {name: amqp, host: 127.0.0.1, port: 0}"
    # Loopback only: without TLS the listener must say insecure.
    local lt=$t
    ((tls)) || lt=", insecure: true"
    ((inter)) && echo "  - {name: inter, host: 127.0.0.1, port: 0, role: inter-router$lt}"
    if [[ -n $to ]]; then
      echo "connectors:"
      echo "  - {name: to-A, host: 127.0.0.1, port: $to, role: inter-router$t}"
    fi
    if ((tl)); then
      echo "tcp_listeners:"
      echo "  - {name: svc-in, host: 127.0.0.1, port: $vane_svc_port, address: svc}"
      echo "  - {name: echo-in, host: 127.0.0.1, port: $vane_echo_port, address: echo}"
    fi
    if ((tc)); then
      echo "tcp_connectors:"
      echo "  - {name: svc-out, host: 127.0.0.1, port: $iperf_port, address: svc}"
      echo "  - {name: echo-out, host: 127.0.0.1, port: $echo_port, address: echo}"
    fi
  } >"$f"
}

# start_vaned PATH ID: starts vaned with $work/PATH-ID.yaml and waits for "router ID ready".
start_vaned() {
  local log="$work/$1-$2.log" pid i
  "$vaned" --config "$work/$1-$2.yaml" --log-level info 2>"$log" >/dev/null &
  pid=$!
  bg_pids+=("$pid")
  proc_names+=("$2")
  proc_pids+=("$pid")
  for ((i = 0; i < 100; i++)); do
    grep -q "router $2 ready" "$log" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      path_note="vaned $2 exited at start-up: $(grep -v '^\s*$' "$log" | tail -n 1)"
      return 1
    fi
    sleep 0.1
  done
  path_note="vaned $2 did not log 'router $2 ready' within 10 s"
  return 1
}

start_path() {
  local path=$1 p inter
  proc_names=()
  proc_pids=()
  path_note=""
  case $path in
    direct)
      entry_svc=$iperf_port
      entry_echo=$echo_port
      ;;
    haproxy1)
      read -r entry_svc entry_echo <<<"$(free_ports 2)"
      haproxy_config "$work/haproxy1.cfg" "$entry_svc" "$iperf_port" "$entry_echo" "$echo_port"
      start_haproxy H1 "$work/haproxy1.cfg" "$entry_svc" "$entry_echo" || return 1
      ;;
    haproxy2 | haproxy2tls)
      local tin="" tout=""
      if [[ $1 == haproxy2tls ]]; then
        bench_certs
        tin=in
        tout=out
      fi
      read -r entry_svc entry_echo p inter <<<"$(free_ports 4)"
      # Second hop (next to the servers) first, then the first hop in front of it.
      haproxy_config "$work/$1-b.cfg" "$p" "$iperf_port" "$inter" "$echo_port" $tin
      haproxy_config "$work/$1-a.cfg" "$entry_svc" "$p" "$entry_echo" "$inter" $tout
      start_haproxy H2 "$work/$1-b.cfg" "$p" "$inter" || return 1
      start_haproxy H1 "$work/$1-a.cfg" "$entry_svc" "$entry_echo" || return 1
      ;;
    vane1)
      read -r vane_svc_port vane_echo_port <<<"$(free_ports 2)"
      entry_svc=$vane_svc_port
      entry_echo=$vane_echo_port
      vane_config "$work/vane1-A.yaml" A 0 "" 1 1
      start_vaned vane1 A || return 1
      ;;
    vane2 | vane2tls)
      local tls=0
      if [[ $1 == vane2tls ]]; then
        tls=1
        bench_certs
      fi
      read -r vane_svc_port vane_echo_port <<<"$(free_ports 2)"
      entry_svc=$vane_svc_port
      entry_echo=$vane_echo_port
      vane_config "$work/$1-A.yaml" A 1 "" 1 0 $tls
      start_vaned "$1" A || return 1
      inter=$(listener_port "$work/$1-A.log" inter inter-router)
      if [[ -z $inter ]]; then
        path_note="vaned A logged no inter-router listener port"
        return 1
      fi
      vane_config "$work/$1-B.yaml" B 0 "$inter" 0 1 $tls
      start_vaned "$1" B || return 1
      ;;
  esac
}

# stop_path PATH [started]: records peak RSS, stops the proxies (vaned must
# exit 0 on SIGTERM). With "started" = 0 the path did not come up: just reap.
stop_path() {
  local path=$1 started=${2:-1} i name pid rss
  for i in "${!proc_pids[@]}"; do
    name=${proc_names[i]}
    pid=${proc_pids[i]}
    if ((started)) && kill -0 "$pid" 2>/dev/null; then
      rss=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
      [[ -n $rss ]] && R[$path,rss,$name]=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
      stop_pid "$pid" TERM
      if [[ $path == vane* && $stop_rc -ne 0 ]]; then
        notes+=("$path: vaned $name exited with status $stop_rc after SIGTERM (expected 0)")
        failures=$((failures + 1))
      fi
    else
      stop_pid "$pid" TERM  # reap it (or stop it: the path never came up)
      if ((started)); then
        notes+=("$path: $name died during the runs (exit status $stop_rc)")
        failures=$((failures + 1))
      fi
    fi
    if [[ $path == vane* && -f $work/$path-$name.log ]]; then
      grep -E '\[(warning|error|critical)\]' "$work/$path-$name.log" |
        sed "s/^/$path $name: /" >>"$work/log-problems" || true
    fi
  done
  proc_names=()
  proc_pids=()
}

# ---------------------------------------------------------------------------
# Measurements

declare -A R=()  # R[path,metric...] = value (the median of the runs' samples)
declare -A S=()  # S[path,metric...] = the runs' samples, space-separated

sample() { S[$1]+="${S[$1]:+ }$2"; }  # sample KEY VALUE

proxy_cpu() {  # proxy_cpu -> "NAME SECONDS" per line for the current path's processes
  local i
  for i in "${!proc_pids[@]}"; do
    echo "${proc_names[i]} $(cpu_seconds "${proc_pids[i]}" 2>/dev/null || echo 0)"
  done
}

# run_iperf PATH STREAMS RUN: one iperf3 run against a one-off server.
run_iperf() {
  local path=$1 n=$2 out="$work/$1-iperf-P$2-$3" spid rc=0 before after line name sum cpu
  "$iperf3" -s -1 -B 127.0.0.1 -p "$iperf_port" >"$out.server" 2>&1 &
  spid=$!
  bg_pids+=("$spid")
  if ! wait_listening "$iperf_port" 5; then
    notes+=("$path: iperf3 server did not listen on $iperf_port")
    stop_pid "$spid"
    return 1
  fi
  before=$(proxy_cpu)
  timeout $((DURATION + 30)) "$iperf3" -c 127.0.0.1 -p "$entry_svc" -t "$DURATION" -P "$n" -J \
    --connect-timeout 3000 >"$out.json" 2>"$out.err" || rc=$?
  after=$(proxy_cpu)
  stop_pid "$spid"  # normally gone already (-1)
  local parsed
  parsed=$("$py" - "$out.json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("error no JSON output (%s)" % e); sys.exit(0)
if d.get("error"):
    print("error " + d["error"]); sys.exit(0)
s = d["end"]["sum_received"]
print("ok %.3f %d" % (s["bits_per_second"] / 1e9, s["bytes"]))
EOF
  )
  if [[ $rc -ne 0 || $parsed != ok* ]]; then
    notes+=("$path: iperf3 -P $n failed (exit $rc): ${parsed#error } $(head -c 200 "$out.err")")
    return 1
  fi
  local gbps bytes
  read -r _ gbps bytes <<<"$parsed"
  sample "$path,gbps,$n" "$gbps"
  sample "$path,bytes,$n" "$bytes"
  # CPU seconds of each proxy process during the run.
  sum=0
  while read -r name line; do
    [[ -n $name ]] || continue
    local b
    b=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$before")
    cpu=$(awk -v a="$b" -v b="$line" 'BEGIN { printf "%.2f", b - a }')
    sample "$path,cpu,$n,$name" "$cpu"
    sum=$(awk -v s="$sum" -v c="$cpu" 'BEGIN { printf "%.2f", s + c }')
  done <<<"$after"
  [[ -n $after ]] && sample "$path,cpu,$n" "$sum"
  echo "  $path iperf3 -P $n run $3: $gbps Gbit/s${after:+, proxy CPU $sum s}" >&2
}

run_connrate() {
  local path=$1 out="$work/$1-connrate-$2" rc=0 line failed
  timeout $((CONN_SECONDS + 30)) "$tb" connrate --port "$entry_echo" --connections "$CONN_COUNT" \
    --concurrency "$CONN_CONCURRENCY" --seconds "$CONN_SECONDS" >"$out.out" 2>"$out.err" || rc=$?
  line=$(grep '^RESULT' "$out.out" || true)
  if [[ -z $line ]]; then
    notes+=("$path: connrate failed (exit $rc): $(head -c 200 "$out.err")")
    return 1
  fi
  sample "$path,conn_rate" "$(field per_sec "$line")"
  sample "$path,conn_p50" "$(field p50_us "$line")"
  sample "$path,conn_p99" "$(field p99_us "$line")"
  sample "$path,conn_n" "$(field conns "$line")"
  failed=$(field failed "$line")
  R[$path,conn_failed]=$((${R[$path,conn_failed]:-0} + failed))
  [[ $failed == 0 ]] ||
    notes+=("$path: connrate run $2: $failed connection(s) failed: $(head -c 200 "$out.err")")
  echo "  $path run $2: ${line#RESULT }" >&2
}

run_pingpong() {
  local path=$1 out="$work/$1-pingpong-$2" rc=0 line
  timeout 120 "$tb" pingpong --port "$entry_echo" --count "$PING_COUNT" --size "$PING_SIZE" \
    --warmup 200 --timeout 90 >"$out.out" 2>"$out.err" || rc=$?
  line=$(grep '^RESULT' "$out.out" || true)
  if [[ $rc -ne 0 || -z $line ]]; then
    notes+=("$path: pingpong failed (exit $rc): $(head -c 200 "$out.err")")
    return 1
  fi
  sample "$path,ping_p50" "$(field p50_us "$line")"
  sample "$path,ping_p99" "$(field p99_us "$line")"
  sample "$path,ping_mean" "$(field mean_us "$line")"
  echo "  $path run $2: ${line#RESULT }" >&2
}

# measure_path PATH: start, probe, measure, stop. Returns 1 if the path was not measured.
measure_path() {
  local path=$1 n r key probe_pid ok=1
  echo "running $path" >&2
  if ! start_path "$path"; then
    R[$path,status]="not started: $path_note"
    stop_path "$path" 0
    return 1
  fi
  if [[ $path != direct ]]; then
    # The iperf3 port is served by a temporary echo server for the probe.
    if ! start_echo "$iperf_port" "$work/$path-probe-echo.out"; then
      R[$path,status]="probe echo server did not start on $iperf_port"
      stop_path "$path" 0
      return 1
    fi
    probe_pid=$started_pid
    if ! probe_until "$entry_echo" "$entry_svc"; then
      ok=0
      R[$path,status]="no data through within ${PROBE_TIMEOUT} s (probe: $(tail -n 1 "$work/probe.err" 2>/dev/null))"
    fi
    stop_pid "$probe_pid"
    wait_port_free "$iperf_port"
    if ((!ok)); then
      stop_path "$path" 0
      return 1
    fi
  fi
  echo "  $path: ready (entry ports: iperf3 $entry_svc, echo $entry_echo${proc_pids[*]:+; pids ${proc_pids[*]}})" >&2
  R[$path,status]=ok
  for ((r = 1; r <= REPEAT; r++)); do
    for n in $STREAMS; do run_iperf "$path" "$n" "$r" || R[$path,partial]=1; done
    run_connrate "$path" "$r" || R[$path,partial]=1
    run_pingpong "$path" "$r" || R[$path,partial]=1
  done
  stop_path "$path"
  # Each figure is the median over the runs.
  for key in "${!S[@]}"; do
    [[ $key == "$path",* ]] && R[$key]=$(tr ' ' '\n' <<<"${S[$key]}" | grep . | median)
  done
  return 0
}

wait_port_free() {  # until nothing listens on $1 (at most 5 s)
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -z $(ss -Hltn "sport = :$1" 2>/dev/null) ]] && return 0
    sleep 0.05
  done
}

# ---------------------------------------------------------------------------
# Run

echo "vane-tcp-bench $tb; iperf3 $iperf3${haproxy:+; haproxy $haproxy}${vaned:+; vaned $vaned}" >&2
echo "iperf3 $DURATION s per run, streams: $STREAMS; connrate $CONN_COUNT conns (concurrency" \
  "$CONN_CONCURRENCY, at most $CONN_SECONDS s); pingpong $PING_COUNT x $PING_SIZE B; $REPEAT run(s) each" >&2
load_before=$(cut -d ' ' -f 1-3 /proc/loadavg)
start_time=$SECONDS

iperf_port=$(free_ports 1)
start_echo 0 "$work/echo-server.out" || die "the echo server did not start"
echo_pid=$started_pid
echo_port=$started_port
echo "echo server on 127.0.0.1:$echo_port (pid $echo_pid), iperf3 servers on 127.0.0.1:$iperf_port" >&2

for path in $PATHS; do
  if ! measure_path "$path"; then
    echo "  $path: not measured: ${R[$path,status]}" >&2
    notes+=("$path: not measured: ${R[$path,status]}")
    unmeasured=$((unmeasured + 1))
    [[ $path == vane* ]] || failures=$((failures + 1))
  elif [[ -n ${R[$path,partial]:-} ]]; then
    failures=$((failures + 1))
  fi
done
stop_pid "$echo_pid"

# ---------------------------------------------------------------------------
# Report

label() {
  case $1 in
    direct) echo "direct (loopback)" ;;
    haproxy1) echo "HAProxy, 1 hop" ;;
    haproxy2) echo "HAProxy, 2 hops" ;;
    haproxy2tls) echo "HAProxy, 2 hops, TLS between" ;;
    vane1) echo "vane, 1 router" ;;
    vane2) echo "vane, 2 routers" ;;
    vane2tls) echo "vane, 2 routers, TLS link" ;;
  esac
}
peer() {  # the HAProxy path with as many hops as a vane path
  case $1 in vane1) echo haproxy1 ;; vane2) echo haproxy2 ;; vane2tls) echo haproxy2tls ;; *) echo "" ;; esac
}
val() { show "${R[$1]:-}"; }
vs() {  # vs KEY_A KEY_B -> ratio or "-"
  ratio "${R[$1]:-}" "${R[$2]:-}"
}
sub() {  # sub A B [DIV] -> (A - B) / DIV with 1 decimal, or "-"
  awk -v a="${1:-}" -v b="${2:-}" -v d="${3:-1}" 'BEGIN {
    if (a == "" || b == "" || a == "-" || b == "-") print "-"; else printf "%+.1f", (a - b) / d }'
}
hops() { case $1 in haproxy1 | vane1) echo 1 ;; haproxy2 | haproxy2tls | vane2 | vane2tls) echo 2 ;; *) echo 0 ;; esac; }

echo
echo "### Throughput (iperf3, $DURATION s per run, Gbit/s at the receiver)"
echo
echo "| path | -P 1 Gbit/s | ×direct | -P 4 Gbit/s | ×direct | ×HAProxy same hops (-P 1 / -P 4) | proxy CPU s during -P 1 / -P 4 |"
echo "|---|---:|---:|---:|---:|---:|---|"
for p in $PATHS; do
  q=$(peer "$p")
  cmp="-"
  [[ -n $q ]] && cmp="$(vs "$p,gbps,1" "$q,gbps,1") / $(vs "$p,gbps,4" "$q,gbps,4")"
  cpu="-"
  [[ $p != direct ]] && cpu="$(val "$p,cpu,1") / $(val "$p,cpu,4")"
  d1="-" d4="-"
  [[ $p != direct ]] && d1=$(vs "$p,gbps,1" "direct,gbps,1") && d4=$(vs "$p,gbps,4" "direct,gbps,4")
  echo "| $(label "$p") | $(val "$p,gbps,1") | $d1 | $(val "$p,gbps,4") | $d4 | $cmp | $cpu |"
done

echo
echo "### New connections (connrate: connect, 1 byte each way, close; concurrency $CONN_CONCURRENCY, at most $CONN_COUNT conns or $CONN_SECONDS s)"
echo
echo "| path | conns/s | ×direct | ×HAProxy same hops | per-connection p50 us | p99 us | connections | failed |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for p in $PATHS; do
  q=$(peer "$p")
  d="-" cmp="-"
  [[ $p != direct ]] && d=$(vs "$p,conn_rate" "direct,conn_rate")
  [[ -n $q ]] && cmp=$(vs "$p,conn_rate" "$q,conn_rate")
  echo "| $(label "$p") | $(val "$p,conn_rate") | $d | $cmp | $(val "$p,conn_p50") | $(val "$p,conn_p99") | $(val "$p,conn_n") | $(val "$p,conn_failed") |"
done

echo
echo "### Ping-pong round trip ($PING_COUNT × $PING_SIZE B on one connection)"
echo
echo "| path | p50 us | p99 us | mean us | p50 added vs direct us | added per hop us |"
echo "|---|---:|---:|---:|---:|---:|"
for p in $PATHS; do
  added="-" per="-"
  if [[ $p != direct ]]; then
    added=$(sub "${R[$p,ping_p50]:-}" "${R[direct,ping_p50]:-}")
    per=$(sub "${R[$p,ping_p50]:-}" "${R[direct,ping_p50]:-}" "$(hops "$p")")
  fi
  echo "| $(label "$p") | $(val "$p,ping_p50") | $(val "$p,ping_p99") | $(val "$p,ping_mean") | $added | $per |"
done

echo
echo "### Proxy processes (CPU seconds during each iperf3 run, /proc; peak RSS = VmHWM)"
echo
echo "| path | process | CPU s -P 1 | CPU s -P 4 | CPU s per GB moved (-P 4) | peak RSS MiB |"
echo "|---|---|---:|---:|---:|---:|"
for p in $PATHS; do
  [[ $p == direct ]] && continue
  case $p in haproxy1) names="H1" ;; haproxy2 | haproxy2tls) names="H1 H2" ;; vane1) names="A" ;; vane2 | vane2tls) names="A B" ;; esac
  for name in $names; do
    pergb=$(awk -v c="${R[$p,cpu,4,$name]:-}" -v b="${R[$p,bytes,4]:-}" 'BEGIN {
      if (c == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", c / (b / 1e9) }')
    kind=haproxy
    [[ $p == vane* ]] && kind="vaned $name"
    [[ $p == haproxy* ]] && kind="haproxy $name"
    echo "| $(label "$p") | $kind | $(val "$p,cpu,1,$name") | $(val "$p,cpu,4,$name") | $pergb | $(val "$p,rss,$name") |"
  done
done

echo
for p in $PATHS; do
  [[ ${R[$p,status]:-} == ok ]] || echo "$(label "$p"): not measured — ${R[$p,status]:-not run}"
done
for n in "${notes[@]}"; do [[ $n == *"not measured"* ]] || echo "note: $n"; done
if [[ -s $work/log-problems ]]; then
  echo "vaned logged $(wc -l <"$work/log-problems") warning/error line(s), e.g.:"
  sort -u "$work/log-problems" | head -n 5 | sed 's/^/    /'
fi
echo "Each figure is the median of $REPEAT run(s); connections = per run, failed = over all runs."
echo "H1 is the HAProxy the client connects to, H2 the one next to the servers; vane A has the tcp listeners, B (2 routers) the tcp connectors."
echo "$(nproc) CPUs; load average (1/5/15 min) before: $load_before, after: $(cut -d ' ' -f 1-3 /proc/loadavg); run took $((SECONDS - start_time)) s"
if [[ $failures -ne 0 ]]; then
  echo "$prog: $failures problem(s); see notes above" >&2
  exit 1
fi
