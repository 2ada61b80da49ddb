#!/usr/bin/env bash
# Installs what Vane needs and runs every test, in three builds:
#   1. AddressSanitizer + UBSan (build-asan/): unit tests and fuzz corpus
#      replays through ctest, then every system test (real vaned processes,
#      real Proton clients) through pytest;
#   2. release (build/: vaned, vane and vane-bench): the message integrity
#      suite (pytest -m integrity) and the checks of glibc's heap figures
#      (pytest -m release; skipped under the sanitizers) against the
#      binaries users run;
#   3. ThreadSanitizer (build-tsan/): the unit tests that run threads, the
#      system tests whose routers have 2 or more workers (pytest -m
#      multiworker), then the network, TCP, management and TLS tests with
#      2 workers per router; any data race fails its test.
# Arguments are passed to every pytest run (e.g. -q). The time of each step
# is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

timings=()
step_name=""
step_start=0
step() {  # step NAME: ends the step running (if any) and starts NAME
  local now
  now=$(date +%s)
  if [ -n "$step_name" ]; then timings+=("$(printf '%5ds  %s' $((now - step_start)) "$step_name")"); fi
  step_name="$1"
  step_start=$now
  if [ -n "$step_name" ]; then echo "== $step_name"; fi
}
report() {
  local rc=$?
  step ""
  echo "== timings"
  printf '%s\n' "${timings[@]}"
  [ "$rc" -eq 0 ] || echo "== FAILED (status $rc) in the last step above"
}
trap report EXIT
total_start=$(date +%s)
jobs="$(nproc 2>/dev/null || echo 2)"

step "install dependencies"
bash scripts/install-deps.sh

# -- 1. AddressSanitizer + UBSan -------------------------------------------
step "asan: build"
bash scripts/build.sh asan

# A small quarantine: ASan otherwise keeps up to 256 MiB of freed memory,
# which would hide what the memory-bound tests measure (vaned's RSS).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=8}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

step "asan: unit tests and fuzz corpus replays (ctest)"
(cd build-asan && ctest --output-on-failure -j "$jobs")

step "asan: system tests (pytest)"
# Debian's python3-qpid-proton is installed for /usr/bin/python3 only.
VANED="$PWD/build-asan/src/vaned" VANE_CLI="$PWD/build-asan/src/vane" \
  /usr/bin/python3 -m pytest tests/system "$@"

# -- 2. Release: the message integrity suite --------------------------------
step "release: build (vaned, vane, vane-bench)"
bash scripts/build.sh release vaned vane vane-bench
[ -x build/bench/vane-bench ] || { echo "build/bench/vane-bench was not built" >&2; exit 1; }

step "release: integrity suite and release-only checks (pytest -m 'integrity or release')"
# pytest exits with 5 when no test is selected: once a test carries the
# integrity mark, that is a failure like any other (set -e).
if grep -rqs "mark.integrity" tests/system; then
  VANED="$PWD/build/src/vaned" VANE_CLI="$PWD/build/src/vane" \
    VANE_BENCH="$PWD/build/bench/vane-bench" \
    /usr/bin/python3 -m pytest tests/system -m "integrity or release" "$@"
else
  echo "no test in tests/system is marked integrity yet: nothing to run"
fi

# -- 3. ThreadSanitizer: unit tests and multi-worker system tests -----------
step "tsan: build (vaned, vane and the unit tests that run threads)"
bash scripts/build.sh tsan vaned vane routing_tests amqp_tests

# A report makes vaned exit with 66 at once (halt_on_error); the harness
# fails a test whose router did not exit with 0 and also any test with a
# sanitizer report in a router's log. tests/tsan.supp lists the reports in
# uninstrumented libraries that are not Vane's races.
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp}"

step "tsan: unit tests that run threads (ctest)"
# The routing core with worker loops on their own threads, and message
# scanning from several threads at once; the other unit tests run on one
# thread (the ASan run has them all).
(cd build-tsan && ctest --output-on-failure -j "$jobs" -R 'RoutingCoreTest|MessageScan.ConcurrentUse')

tsan_pytest() {
  VANED="$PWD/build-tsan/src/vaned" VANE_CLI="$PWD/build-tsan/src/vane" \
    /usr/bin/python3 -m pytest "$@"
}

step "tsan: multi-worker system tests (pytest -m multiworker)"
tsan_pytest tests/system -m multiworker "$@"

step "tsan: network, TCP, management and TLS tests with 2 workers per router"
VANE_TEST_WORKERS=2 tsan_pytest tests/system/test_network.py tests/system/test_tcp.py \
  tests/system/test_management.py tests/system/test_tls.py -m "not multiworker" "$@"

step ""
echo "== all tests passed in $(( $(date +%s) - total_start ))s"
