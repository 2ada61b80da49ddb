#!/usr/bin/env bash
# Runs the AMQP benchmark matrix
#   {direct, 1 router} x {presettled, unsettled} x {throughput, latency (window 1)}
# with vane-bench and prints a Markdown table.
#
# Environment (all optional):
#   VANED         path to vaned (default: build/src/vaned, else the first build*/src/vaned)
#   VANE_BENCH    path to vane-bench (default: build/bench/vane-bench, else build*/bench/vane-bench)
#   TPUT_COUNT    messages per throughput run (default 200000)
#   LAT_COUNT     messages per latency run (default 20000)
#   SIZE          body bytes (default 100)
#   CREDIT        receiver credit window (default 500)
#   REPEAT        runs per scenario; each figure is the median over runs (default 3)
#   RUN_TIMEOUT   seconds allowed per run (default 60)
#   DIRECT_ONLY   1 = do not start vaned; router rows are marked "not measured"
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

TPUT_COUNT=${TPUT_COUNT:-200000}
LAT_COUNT=${LAT_COUNT:-20000}
SIZE=${SIZE:-100}
CREDIT=${CREDIT:-500}
REPEAT=${REPEAT:-3}
RUN_TIMEOUT=${RUN_TIMEOUT:-60}
DIRECT_ONLY=${DIRECT_ONLY:-0}

# shellcheck disable=SC2034  # prog and root are used by lib.sh
prog=run_amqp.sh
# die, find_binary, cpu_seconds, field, median, ratio, show, listener_port
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

bench=$(find_binary "${VANE_BENCH:-}" bench/vane-bench) ||
  die "vane-bench not found; build it: cmake --build build --target vane-bench (or set VANE_BENCH)"

vaned=""
if [[ $DIRECT_ONLY != 1 ]]; then
  vaned=$(find_binary "${VANED:-}" src/vaned) ||
    die "vaned not found; build it (cmake --build build --target vaned), set VANED, or set DIRECT_ONLY=1"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vane-bench.XXXXXX")
vaned_pid=""
cleanup() {
  if [[ -n $vaned_pid ]] && kill -0 "$vaned_pid" 2>/dev/null; then
    kill -TERM "$vaned_pid" 2>/dev/null || true
    sleep 0.5
    kill -KILL "$vaned_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=""
if [[ -n $vaned ]]; then
  cat >"$work/vaned.yaml" <<'EOF'
router:
  id: bench
  workers: 1
listeners:
  - name: amqp
    host: 127.0.0.1
    port: 0
EOF
  "$vaned" --config "$work/vaned.yaml" 2>"$work/vaned.log" &
  vaned_pid=$!
  for _ in $(seq 1 100); do
    port=$(listener_port "$work/vaned.log" amqp normal)
    [[ -n $port ]] && break
    kill -0 "$vaned_pid" 2>/dev/null || { cat "$work/vaned.log" >&2; die "vaned exited at start-up"; }
    sleep 0.1
  done
  [[ -n $port ]] || { cat "$work/vaned.log" >&2; die "vaned did not report its listening port within 10 s"; }
  echo "vaned $vaned (pid $vaned_pid) listening on 127.0.0.1:$port" >&2
fi
echo "vane-bench $bench; throughput count $TPUT_COUNT, latency count $LAT_COUNT, size $SIZE," \
  "credit $CREDIT, $REPEAT run(s) per scenario" >&2

declare -A R  # R[scenario,metric] = median value
failures=0

# run_scenario NAME PATH(direct|router) MODE(presettled|unsettled) KIND(throughput|latency)
run_scenario() {
  local name=$1 path=$2 mode=$3 kind=$4
  local args=(pair --count "$TPUT_COUNT" --size "$SIZE" --credit "$CREDIT" --timeout "$RUN_TIMEOUT"
              --address "bench/$name" --label "$name")
  [[ $kind == latency ]] && args=(pair --count "$LAT_COUNT" --size "$SIZE" --credit "$CREDIT"
                                  --timeout "$RUN_TIMEOUT" --window 1 --address "bench/$name" --label "$name")
  [[ $mode == presettled ]] && args+=(--presettled)
  if [[ $path == direct ]]; then
    args+=(--direct)
  else
    args+=(--router "127.0.0.1:$port")
  fi
  local rates=() p50s=() p99s=() a50s=() a99s=() cpus=() i out line rline count cpu0 cpu1
  for ((i = 1; i <= REPEAT; i++)); do
    [[ $path == router ]] && cpu0=$(cpu_seconds "$vaned_pid")
    if ! out=$("$bench" "${args[@]}" 2>"$work/err"); then
      echo "FAILED: $name run $i: $bench ${args[*]}" >&2
      cat "$work/err" >&2
      failures=$((failures + 1))
      R[$name,status]="failed"
      return
    fi
    line=$(grep '^RESULT side=pair' <<<"$out")
    count=$(field count "$line")
    if [[ $mode == unsettled && $(field accepted "$line") != "$count" ]]; then
      echo "WRONG OUTCOMES: $name run $i: $line" >&2
      failures=$((failures + 1))
      R[$name,status]="wrong outcomes"
    fi
    rline=$(grep '^RESULT side=recv' <<<"$out")
    if [[ $(field duplicates "$rline") != 0 || $(field out_of_order "$rline") != 0 ]]; then
      echo "DUPLICATES/REORDERING: $name run $i: $rline" >&2
      failures=$((failures + 1))
      R[$name,status]="duplicates or reordering"
    fi
    if [[ $path == router ]]; then
      kill -0 "$vaned_pid" 2>/dev/null || die "vaned died during $name (log: $(tail -n 20 "$work/vaned.log"))"
      cpu1=$(cpu_seconds "$vaned_pid")
      cpus+=("$(awk -v a="$cpu0" -v b="$cpu1" -v n="$count" 'BEGIN { printf "%.2f", (b - a) * 1e6 / n }')")
    fi
    rates+=("$(field msgs_per_s "$line")")
    p50s+=("$(field p50_us "$line")")
    p99s+=("$(field p99_us "$line")")
    a50s+=("$(field ack_p50_us "$line")")
    a99s+=("$(field ack_p99_us "$line")")
    echo "  $name run $i: $line" >&2
  done
  R[$name,rate]=$(printf '%s\n' "${rates[@]}" | median)
  R[$name,p50]=$(printf '%s\n' "${p50s[@]}" | median)
  R[$name,p99]=$(printf '%s\n' "${p99s[@]}" | median)
  if [[ $mode == unsettled ]]; then
    R[$name,a50]=$(printf '%s\n' "${a50s[@]}" | median)
    R[$name,a99]=$(printf '%s\n' "${a99s[@]}" | median)
  fi
  if [[ $path == router ]]; then
    R[$name,cpu]=$(printf '%s\n' "${cpus[@]}" | median)
  fi
  : "${R[$name,status]:=ok}"
}

load_before=$(cut -d ' ' -f 1-3 /proc/loadavg)
scenarios=()
for kind in throughput latency; do
  for mode in presettled unsettled; do
    for path in direct router; do
      name="$path-$mode-$kind"
      scenarios+=("$name")
      if [[ $path == router && -z $vaned ]]; then
        R[$name,status]="not measured"
        continue
      fi
      echo "running $name" >&2
      run_scenario "$name" "$path" "$mode" "$kind"
    done
  done
done

vaned_status=""
if [[ -n $vaned_pid ]]; then
  kill -TERM "$vaned_pid"
  rc=0
  wait "$vaned_pid" || rc=$?
  vaned_pid=""
  if [[ $rc -ne 0 ]]; then
    vaned_status="vaned exited with status $rc after SIGTERM (expected 0)"
    echo "$vaned_status; last log lines:" >&2
    tail -n 20 "$work/vaned.log" >&2
    failures=$((failures + 1))
  else
    vaned_status="vaned exited 0 after SIGTERM"
  fi
fi

echo
echo "| scenario | msgs/s | p50 us | p99 us | ack p50 us | ack p99 us | router CPU us/msg | msgs/s router/direct | p50 router/direct |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for name in "${scenarios[@]}"; do
  status=${R[$name,status]:-}
  if [[ $status != ok ]]; then
    echo "| $name | $status | | | | | | | |"
    continue
  fi
  rate_ratio="-" p50_ratio="-"
  if [[ $name == router-* ]]; then
    d="direct-${name#router-}"
    if [[ ${R[$d,status]:-} == ok ]]; then
      rate_ratio=$(ratio "${R[$name,rate]}" "${R[$d,rate]}")
      p50_ratio=$(ratio "${R[$name,p50]}" "${R[$d,p50]}")
    fi
  fi
  echo "| $name | $(show "${R[$name,rate]:-}") | $(show "${R[$name,p50]:-}") | $(show "${R[$name,p99]:-}")" \
    "| $(show "${R[$name,a50]:-}") | $(show "${R[$name,a99]:-}") | $(show "${R[$name,cpu]:-}")" \
    "| $rate_ratio | $p50_ratio |"
done
echo
[[ -n $vaned_status ]] && echo "$vaned_status"
echo "$(nproc) CPUs; load average (1/5/15 min) before: $load_before, after: $(cut -d ' ' -f 1-3 /proc/loadavg)"
if [[ $failures -ne 0 ]]; then
  echo "run_amqp.sh: $failures problem(s); see messages above" >&2
  exit 1
fi
