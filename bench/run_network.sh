#!/usr/bin/env bash
# Measures AMQP throughput and latency across router networks, side by side:
#   direct (no router), 1 router, a line of 2 routers (A-B), a line of 3 (A-B-C)
# x {presettled throughput, unsettled throughput, unsettled latency (window 1)}
# with vane-bench, and prints a Markdown table with ratios against direct.
#
# The sender connects to the first router (A), the receiver to the last one,
# as two separate vane-bench processes (`recv` and `send`), in every row
# including direct, so the rows differ only in the routers on the path. Each
# topology gets fresh vaned processes; the script waits until every router
# reports the whole network reachable before measuring, uses a new address
# for every run, and stops the routers with SIGTERM (exit status 0 required).
#
# Environment (all optional):
#   VANED             path to vaned (default: build/src/vaned, else the first build*/src/vaned)
#   VANE_BENCH        path to vane-bench (default: build/bench/vane-bench, else build*/bench/vane-bench)
#   TPUT_COUNT        messages per throughput run (default 200000)
#   LAT_COUNT         messages per latency run (default 20000)
#   SIZE              body bytes (default 100)
#   CREDIT            receiver credit window (default 500)
#   REPEAT            runs per scenario; each figure is the median over runs (default 3)
#   RUN_TIMEOUT       seconds allowed per run (default 60)
#   CONVERGE_TIMEOUT  seconds allowed for a network to converge (default 30)
#   TOPOLOGIES        which rows to run, in order (default "direct r1 line2 line3")
#   KEEP_LOGS         1 = keep the vaned logs and configurations even on success
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

TPUT_COUNT=${TPUT_COUNT:-200000}
LAT_COUNT=${LAT_COUNT:-20000}
SIZE=${SIZE:-100}
CREDIT=${CREDIT:-500}
REPEAT=${REPEAT:-3}
RUN_TIMEOUT=${RUN_TIMEOUT:-60}
CONVERGE_TIMEOUT=${CONVERGE_TIMEOUT:-30}
TOPOLOGIES=${TOPOLOGIES:-"direct r1 line2 line3"}
KEEP_LOGS=${KEEP_LOGS:-0}

# shellcheck disable=SC2034  # prog and root are used by lib.sh
prog=run_network.sh
# die, find_binary, cpu_seconds, field, median, ratio, show, listener_port
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

bench=$(find_binary "${VANE_BENCH:-}" bench/vane-bench) ||
  die "vane-bench not found; build it: cmake --build build --target vane-bench (or set VANE_BENCH)"
vaned=$(find_binary "${VANED:-}" src/vaned) ||
  die "vaned not found; build it (cmake --build build --target vaned) or set VANED"

for t in $TOPOLOGIES; do
  case $t in direct | r1 | line2 | line3) ;; *) die "unknown topology '$t' in TOPOLOGIES" ;; esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/vane-bench-net.XXXXXX")
failures=0
declare -A RPID=()   # router id -> pid of the running vaned (current topology only)
routers=()           # router ids of the current topology, in start order
client_pids=()       # vane-bench processes started in the background

cleanup() {
  local rc=$? id pid
  for pid in "${client_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true  # timeout(1) passes it on to vane-bench
  done
  for id in "${!RPID[@]}"; do
    pid=${RPID[$id]}
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  if ((${#RPID[@]})); then
    sleep 0.5
    for id in "${!RPID[@]}"; do kill -KILL "${RPID[$id]}" 2>/dev/null || true; done
  fi
  if [[ $rc -ne 0 || $failures -ne 0 || $KEEP_LOGS == 1 ]]; then
    echo "$prog: logs and configurations kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# Routers

# start_router TOPO ID: starts vaned with $work/TOPO-ID.yaml, waits for its ready line.
start_router() {
  local topo=$1 id=$2 log="$work/$1-$2.log" pid i
  "$vaned" --config "$work/$topo-$id.yaml" --log-level debug 2>"$log" &
  pid=$!
  RPID[$id]=$pid
  routers+=("$id")
  for ((i = 0; i < 100; i++)); do
    grep -q "router $id ready" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "vaned $topo/$id exited at start-up"; }
    sleep 0.1
  done
  cat "$log" >&2
  die "vaned $topo/$id did not log 'router $id ready' within 10 s"
}

# write_config TOPO ID CONNECT_TO_PORT: one router with an amqp and an
# inter-router listener and, if CONNECT_TO_PORT is set, an inter-router
# connector (cost 1) to that port.
write_config() {
  local topo=$1 id=$2 to=${3:-}
  {
    echo "router: {id: $id, mode: interior, workers: 1}"
    echo "listeners:"
    echo "  - {name: amqp, host: 127.0.0.1, port: 0, role: normal}"
    echo "  - {name: inter, host: 127.0.0.1, port: 0, role: inter-router, insecure: true}"
    if [[ -n $to ]]; then
      echo "connectors:"
      echo "  - {name: to-prev, host: 127.0.0.1, port: $to, role: inter-router, cost: 1}"
    fi
  } >"$work/$topo-$id.yaml"
}

# last_reachable TOPO ID -> N from the router's last "router ID: N router(s) reachable" line
last_reachable() {
  sed -n "s/.*router $2: \([0-9][0-9]*\) router(s) reachable.*/\1/p" "$work/$1-$2.log" | tail -n 1
}

# start_topology TOPO: starts a line of routers; sets near_port (sender) and far_port (receiver).
start_topology() {
  local topo=$1 n id prev_inter="" i deadline ok names=(A B C)
  case $topo in r1) n=1 ;; line2) n=2 ;; line3) n=3 ;; esac
  routers=()
  for ((i = 0; i < n; i++)); do
    id=${names[i]}
    write_config "$topo" "$id" "$prev_inter"
    start_router "$topo" "$id"
    prev_inter=$(listener_port "$work/$topo-$id.log" inter inter-router)
    [[ -n $prev_inter ]] || die "vaned $topo/$id logged no inter-router listener port"
  done
  near_port=$(listener_port "$work/$topo-A.log" amqp normal)
  far_port=$(listener_port "$work/$topo-${routers[-1]}.log" amqp normal)
  [[ -n $near_port && -n $far_port ]] || die "vaned $topo logged no amqp listener port"
  # Converged: every router's last path-table line counts all the others.
  if ((n > 1)); then
    deadline=$((SECONDS + CONVERGE_TIMEOUT))
    while :; do
      ok=1
      for id in "${routers[@]}"; do
        [[ $(last_reachable "$topo" "$id") == $((n - 1)) ]] || ok=0
      done
      ((ok)) && break
      ((SECONDS < deadline)) || die "$topo did not converge within ${CONVERGE_TIMEOUT} s"
      sleep 0.05
    done
  fi
  echo "$topo: routers ${routers[*]} up (pids $(for id in "${routers[@]}"; do printf '%s ' "${RPID[$id]}"; done)), sender -> A:$near_port, receiver -> ${routers[-1]}:$far_port" >&2
}

# stop_topology TOPO: records each router's CPU seconds, sends SIGTERM, requires exit 0.
stop_topology() {
  local topo=$1 id pid rc cpu
  for id in "${routers[@]}"; do
    pid=${RPID[$id]}
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "vaned $topo/$id died during the runs; last log lines:" >&2
      tail -n 20 "$work/$topo-$id.log" >&2
      failures=$((failures + 1))
      continue
    fi
    cpu=$(cpu_seconds "$pid")
    R[$topo,cpu_total]+="${R[$topo,cpu_total]:+, }$id $cpu s"
  done
  for id in "${routers[@]}"; do kill -TERM "${RPID[$id]}" 2>/dev/null || true; done
  for id in "${routers[@]}"; do
    rc=0
    wait "${RPID[$id]}" || rc=$?
    unset "RPID[$id]"
    if [[ $rc -ne 0 ]]; then
      echo "vaned $topo/$id exited with status $rc after SIGTERM (expected 0); last log lines:" >&2
      tail -n 20 "$work/$topo-$id.log" >&2
      failures=$((failures + 1))
      exit_status+=("$topo/$id: $rc")
    fi
    # Warnings and errors, except the link-closed ones the shutdown itself causes.
    grep -E '\[(warning|error|critical)\]' "$work/$topo-$id.log" |
      grep -v 'router is shutting down' >>"$work/log-problems" || true
  done
  routers=()
}

# ---------------------------------------------------------------------------
# Runs

declare -A R=()  # R[topo,metric] = median value
exit_status=()

# run_scenario TOPO KIND: KIND is tput-presettled, tput-unsettled or latency.
run_scenario() {
  local topo=$1 kind=$2 count=$TPUT_COUNT i id addr out listen port rline sline rc_r rc_s rpid
  local common=() sargs=() rates=() p50s=() p99s=() a50s=() a99s=() deadline
  local -A cpu0=() cpus=()
  [[ $kind == latency ]] && count=$LAT_COUNT
  common=(--count "$count" --size "$SIZE" --credit "$CREDIT" --timeout "$RUN_TIMEOUT")
  case $kind in
    tput-presettled) sargs=(--presettled) ;;
    latency) sargs=(--window 1) ;;
  esac
  for ((i = 1; i <= REPEAT; i++)); do
    addr="bench/$topo/$kind/$i"
    out="$work/$topo-$kind-$i"  # per-run files: a stale LISTENING line cannot be read
    for id in "${routers[@]}"; do cpu0[$id]=$(cpu_seconds "${RPID[$id]}"); done
    if [[ $topo == direct ]]; then
      timeout $((RUN_TIMEOUT + 15)) "$bench" recv --listen 127.0.0.1:0 --address "$addr" "${common[@]}" \
        --label "$topo-$kind" >"$out.recv.out" 2>"$out.recv.err" &
    else
      timeout $((RUN_TIMEOUT + 15)) "$bench" recv --connect "127.0.0.1:$far_port" --address "$addr" \
        "${common[@]}" --label "$topo-$kind" >"$out.recv.out" 2>"$out.recv.err" &
    fi
    rpid=$!
    client_pids=("$rpid")
    if [[ $topo == direct ]]; then
      listen=""
      deadline=$((SECONDS + 10))
      while [[ -z $listen ]] && ((SECONDS < deadline)) && kill -0 "$rpid" 2>/dev/null; do
        listen=$(sed -n 's/^LISTENING \(.*\)$/\1/p' "$out.recv.out" 2>/dev/null || true)
        [[ -n $listen ]] || sleep 0.02
      done
      [[ -n $listen ]] || { cat "$out.recv.err" >&2; die "direct receiver did not listen"; }
      port=$listen
    else
      port="127.0.0.1:$near_port"
    fi
    rc_s=0
    timeout $((RUN_TIMEOUT + 15)) "$bench" send --connect "$port" --address "$addr" "${common[@]}" \
      "${sargs[@]}" --label "$topo-$kind" >"$out.send.out" 2>"$out.send.err" || rc_s=$?
    rc_r=0
    wait "$rpid" || rc_r=$?
    client_pids=()
    if [[ $rc_r -ne 0 || $rc_s -ne 0 ]]; then
      echo "FAILED: $topo-$kind run $i (receiver exit $rc_r, sender exit $rc_s)" >&2
      cat "$out.recv.err" "$out.send.err" "$out.recv.out" "$out.send.out" >&2
      failures=$((failures + 1))
      R[$topo,$kind,status]="failed"
      return
    fi
    rline=$(grep '^RESULT side=recv' "$out.recv.out")
    sline=$(grep '^RESULT side=send' "$out.send.out")
    if [[ $(field received "$rline") != "$count" ]]; then
      echo "MISSING: $topo-$kind run $i: $rline" >&2
      failures=$((failures + 1))
      R[$topo,$kind,status]="messages missing"
    fi
    if [[ $kind != tput-presettled && $(field accepted "$sline") != "$count" ]]; then
      echo "WRONG OUTCOMES: $topo-$kind run $i: $sline" >&2
      failures=$((failures + 1))
      R[$topo,$kind,status]="wrong outcomes"
    fi
    if [[ $(field duplicates "$rline") != 0 || $(field out_of_order "$rline") != 0 ]]; then
      echo "DUPLICATES/REORDERING: $topo-$kind run $i: $rline" >&2
      failures=$((failures + 1))
      R[$topo,$kind,status]="duplicates or reordering"
    fi
    for id in "${routers[@]}"; do
      kill -0 "${RPID[$id]}" 2>/dev/null ||
        die "vaned $topo/$id died during $kind (log: $(tail -n 20 "$work/$topo-$id.log"))"
      cpus[$id]+="$(awk -v a="${cpu0[$id]}" -v b="$(cpu_seconds "${RPID[$id]}")" -v n="$count" \
        'BEGIN { printf "%.2f", (b - a) * 1e6 / n }') "
    done
    rates+=("$(field msgs_per_s "$rline")")
    p50s+=("$(field p50_us "$rline")")
    p99s+=("$(field p99_us "$rline")")
    a50s+=("$(field ack_p50_us "$sline")")
    a99s+=("$(field ack_p99_us "$sline")")
    echo "  $topo-$kind run $i: ${rline#RESULT side=recv } | ack_p50_us=$(field ack_p50_us "$sline") accepted=$(field accepted "$sline")" >&2
  done
  R[$topo,$kind,rate]=$(printf '%s\n' "${rates[@]}" | median)
  R[$topo,$kind,p50]=$(printf '%s\n' "${p50s[@]}" | median)
  R[$topo,$kind,p99]=$(printf '%s\n' "${p99s[@]}" | median)
  R[$topo,$kind,a50]=$(printf '%s\n' "${a50s[@]}" | median)
  R[$topo,$kind,a99]=$(printf '%s\n' "${a99s[@]}" | median)
  local cpu=""
  for id in "${routers[@]}"; do
    cpu+="${cpu:+ / }$id $(tr ' ' '\n' <<<"${cpus[$id]}" | grep . | median)"
  done
  R[$topo,$kind,cpu]=$cpu
  : "${R[$topo,$kind,status]:=ok}"
}

echo "vaned $vaned; vane-bench $bench; throughput count $TPUT_COUNT, latency count $LAT_COUNT," \
  "size $SIZE, credit $CREDIT, $REPEAT run(s) per scenario" >&2
load_before=$(cut -d ' ' -f 1-3 /proc/loadavg)
kinds=(tput-presettled tput-unsettled latency)
for topo in $TOPOLOGIES; do
  echo "running $topo" >&2
  [[ $topo != direct ]] && start_topology "$topo"
  for kind in "${kinds[@]}"; do
    run_scenario "$topo" "$kind"
  done
  [[ $topo != direct ]] && stop_topology "$topo"
done

# ---------------------------------------------------------------------------
# Report

label() {
  case $1 in
    direct) echo "direct (no router)" ;;
    r1) echo "1 router" ;;
    line2) echo "2 routers A-B" ;;
    line3) echo "3 routers A-B-C" ;;
  esac
}
cell() {  # cell TOPO KIND METRIC -> value, or the failure status
  local s=${R[$1,$2,status]:-}
  if [[ $s == ok ]]; then show "${R[$1,$2,$3]:-}"; else echo "${s:--}"; fi
}
vs_direct() {  # vs_direct TOPO KIND METRIC -> ratio to direct, "-" for direct itself
  if [[ $1 == direct || ${R[$1,$2,status]:-} != ok || ${R[direct,$2,status]:-} != ok ]]; then
    echo "-"
  else
    ratio "${R[$1,$2,$3]}" "${R[direct,$2,$3]}"
  fi
}

echo
echo "| path | presettled msgs/s | ×direct | unsettled msgs/s | ×direct | latency p50 us | p99 us | p50 ×direct | round trip p50 us | router CPU us/msg (unsettled throughput) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for topo in $TOPOLOGIES; do
  echo "| $(label "$topo") | $(cell "$topo" tput-presettled rate) | $(vs_direct "$topo" tput-presettled rate)" \
    "| $(cell "$topo" tput-unsettled rate) | $(vs_direct "$topo" tput-unsettled rate)" \
    "| $(cell "$topo" latency p50) | $(cell "$topo" latency p99) | $(vs_direct "$topo" latency p50)" \
    "| $(cell "$topo" latency a50) | $(if [[ $topo == direct ]]; then echo -; else cell "$topo" tput-unsettled cpu; fi) |"
done
echo
for topo in $TOPOLOGIES; do
  [[ $topo == direct ]] && continue
  echo "vaned CPU seconds over all $(label "$topo") runs: ${R[$topo,cpu_total]:-not measured}"
done
if ((${#exit_status[@]})); then
  echo "vaned exit status after SIGTERM not 0: ${exit_status[*]}"
else
  echo "every vaned exited 0 after SIGTERM"
fi
if [[ -s $work/log-problems ]]; then
  echo "vaned logged $(wc -l <"$work/log-problems") warning/error line(s) (besides shutdown link closes), e.g.:"
  sort -u -k3 "$work/log-problems" | head -n 5 | sed 's/^/    /'
else
  echo "no warnings or errors in the vaned logs (besides shutdown link closes)"
fi
echo "$(nproc) CPUs; load average (1/5/15 min) before: $load_before, after: $(cut -d ' ' -f 1-3 /proc/loadavg)"
if [[ $failures -ne 0 ]]; then
  echo "$prog: $failures problem(s); see messages above" >&2
  exit 1
fi
