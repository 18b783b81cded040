#!/usr/bin/env bash
# Installs the system packages the build needs (Debian 12), once; prints nothing
# when everything is already there. Sourced by demo.sh and test.sh.
#
#   libclang-dev  rocksdb's bindings are generated with bindgen at build time
#   cmake, g++    librocksdb-sys and librdkafka compile C/C++ sources
#   libssl-dev    librdkafka's TLS (and SASL SCRAM) support
set -euo pipefail

PACKAGES=(libclang-dev cmake g++ make pkg-config zlib1g-dev libssl-dev)
# test.sh adds what only the tests need (SETUP_EXTRA, e.g. chromium).
read -r -a EXTRA <<< "${SETUP_EXTRA:-}"
PACKAGES+=("${EXTRA[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Build output lives outside the clone so that later runs reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/whipstream-target}"
