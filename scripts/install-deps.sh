#!/usr/bin/env bash
# Installs every build and test dependency of Vane on Debian 12 (bookworm).
# Idempotent; needs root or sudo.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libqpid-proton11-dev
  libboost-dev libboost-system-dev
  libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  libssl-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  python3 python3-qpid-proton python3-pytest python3-psutil python3-prometheus-client
  python3-cryptography  # tests/system/fake_router.py signs routing records (Ed25519)
  iproute2 procps socat openssl
  iperf3 haproxy  # bench/run_tcp.sh's reference paths
  curl wrk nginx-light  # tests/system/test_http.py; bench/run_http.sh and its references
  python3-websockets    # tests/system/test_http.py: WebSocket through the routers
  nodejs          # tests/system/js: rhea clients (and npm, below)
)
# Debian's npm, unless npm is there already: NodeSource's nodejs package
# ships its own npm and conflicts with Debian's.
if ! command -v npm >/dev/null 2>&1; then PACKAGES+=(npm); fi

# `--fuzz` adds clang and its libFuzzer runtime, for tests/fuzz.
if [ "${1:-}" = "--fuzz" ]; then PACKAGES+=(clang libclang-rt-14-dev); fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi

# rhea for the JavaScript client tests, at the versions in package-lock.json.
JS_DIR="$(cd "$(dirname "$0")/.." && pwd)/tests/system/js"
if [ ! -d "$JS_DIR/node_modules" ]; then
  echo "install-deps: npm ci in $JS_DIR"
  (cd "$JS_DIR" && npm ci --no-audit --no-fund)
fi
