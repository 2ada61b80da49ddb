#!/usr/bin/env bash
# Installs what Vane needs, builds it with AddressSanitizer + UBSan, and runs
# every test: unit tests and fuzz corpus replays through ctest, then the
# system tests (real vaned processes, real Proton clients) through pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh asan

# A small quarantine: ASan otherwise keeps up to 256 MiB of freed memory,
# which would hide what the memory-bound tests measure (vaned's RSS).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=8}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

echo "== unit tests and fuzz corpus replays (ctest)"
(cd build-asan && ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)")

echo "== system tests (pytest)"
export VANED="$PWD/build-asan/src/vaned"
export VANE_CLI="$PWD/build-asan/src/vane"   # the CLI, for test_cli.py
# Debian's python3-qpid-proton is installed for /usr/bin/python3 only.
/usr/bin/python3 -m pytest tests/system "$@"
