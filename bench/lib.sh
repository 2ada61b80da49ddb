# shellcheck shell=bash disable=SC2154  # prog and root are set by the sourcing script
# Shell helpers shared by the benchmark scripts (run_amqp.sh, run_network.sh,
# run_tcp.sh, run_http.sh).
# Source it after setting:
#   prog   the script's name, used as the prefix of error messages
#   root   the repository root
# It defines functions only; sourcing has no other effect.

die() { echo "$prog: $*" >&2; exit 1; }

# Picks $1 if set, else $root/build/$2, else the first $root/build*/$2 that exists.
find_binary() {
  local explicit=$1 rel=$2 c
  if [[ -n $explicit ]]; then
    [[ -x $explicit ]] || die "not executable: $explicit"
    echo "$explicit"; return
  fi
  if [[ -x $root/build/$rel ]]; then echo "$root/build/$rel"; return; fi
  for c in "$root"/build*/"$rel"; do
    if [[ -x $c ]]; then echo "$c"; return; fi
  done
  return 1
}

# CPU seconds (user + system) consumed so far by process $1, from /proc.
cpu_seconds() {
  local stat fields
  stat=$(cat "/proc/$1/stat") || return 1
  # Fields after the command name (which may contain spaces) start at field 3.
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[11]} ${fields[12]} $(getconf CLK_TCK)" | awk '{ printf "%.3f", ($1 + $2) / $3 }'
}

# field NAME LINE -> value of NAME=... in a RESULT line
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# Median of the numbers on stdin, one a line ("-" if none).
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }

ratio() {  # ratio A B -> A/B with 2 decimals, or "-"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
show() { [[ -n ${1:-} ]] && echo "$1" || echo "-"; }

# listener_port LOGFILE NAME ROLE -> port from the first
# "listener NAME listening on 127.0.0.1:PORT (role ROLE)" line, or nothing.
listener_port() {
  sed -n "s/.*listener $2 listening on 127\.0\.0\.1:\([0-9][0-9]*\) (role $3[,)].*/\1/p" "$1" | head -n 1
}

# program EXPLICIT NAME -> EXPLICIT if set (it must be executable), else NAME
# from PATH, else /usr/sbin/NAME.
program() {
  if [[ -n $1 ]]; then
    [[ -x $1 ]] || die "not executable: $1"
    echo "$1"
  elif command -v "$2" >/dev/null; then
    command -v "$2"
  elif [[ -x /usr/sbin/$2 ]]; then
    echo "/usr/sbin/$2"
  else
    die "$2 not found; install it (scripts/install-deps.sh) or set ${2^^}"
  fi
}

# path_options "ALLOWED PATHS" ARGS...: the options of the scripts that run
# paths side by side (run_tcp.sh, run_http.sh): --duration S, --paths
# "A B", --keep-logs, --help (the script's opening comment). Sets DURATION,
# PATHS and KEEP_LOGS, and checks them and REPEAT.
path_options() {
  local known=$1 allowed=" $1 " p
  shift
  while (($#)); do
    case $1 in
      -t | --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
      --paths) PATHS=${2:?--paths needs a value}; shift 2 ;;
      --keep-logs) KEEP_LOGS=1; shift ;;
      -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
      *) die "unknown argument '$1' (try --help)" ;;
    esac
  done
  [[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a whole number of seconds >= 1"
  [[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a whole number >= 1"
  for p in $PATHS; do
    [[ $allowed == *" $p "* ]] || die "unknown path '$p' (known: $known)"
  done
}
