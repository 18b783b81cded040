#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds once (release profile, shared
# by the binary, the tests and the benches), runs unit, integration and property
# tests against the real shared data in ../shared/data.
#
#   scripts/test.sh                     default suite (3 shared snapshots, fixtures)
#   WHIPSTREAM_HISTORY_DIR=DIR scripts/test.sh
#                                       also the opt-in tests over the 41-snapshot
#                                       history in DIR (build it with
#                                       ../shared/bench/fetch-geoip-history.sh DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo test --release --locked --no-fail-fast
if [ -n "${WHIPSTREAM_HISTORY_DIR:-}" ]; then
  echo "== opt-in tests over the history in $WHIPSTREAM_HISTORY_DIR"
  cargo test --release --locked --no-fail-fast -- --ignored
fi
