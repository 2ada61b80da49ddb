#!/usr/bin/env bash
# Configures and builds Vane.
#   scripts/build.sh            release build in build/ (with the benchmark programs)
#   scripts/build.sh asan       AddressSanitizer + UBSan build (what the tests use) in build-asan/
#   scripts/build.sh tsan       ThreadSanitizer build (for the multi-worker system tests) in build-tsan/
#   scripts/build.sh KIND TARGET...   only those targets (e.g. vaned vane vane-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
jobs="$(nproc 2>/dev/null || echo 2)"
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DVANE_BENCH=ON) ;;
  asan)    dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DVANE_SANITIZE=ON -DVANE_BENCH=OFF) ;;
  tsan)    dir=build-tsan; flags=(-DCMAKE_BUILD_TYPE=Debug -DVANE_TSAN=ON -DVANE_BENCH=OFF) ;;
  *) echo "usage: $0 [release|asan|tsan] [TARGET...]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$jobs" "${targets[@]}"
echo "built ${*:-everything} in $dir"
