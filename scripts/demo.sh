#!/usr/bin/env bash
# The main job on the shipped example data: builds whipstream, loads the three
# example snapshots into a fresh store, and enriches the example access log, each
# line joined with the record valid at its own time. Output: enriched JSON lines on
# stdout, the summary on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --release --locked --bin whipstream >&2
WS="$CARGO_TARGET_DIR/release/whipstream"
STORE="${STORE:-$(mktemp -d)/store}"

"$WS" load --db "$STORE" examples/data/snapshots >&2
"$WS" enrich --db "$STORE" examples/data/access.log
