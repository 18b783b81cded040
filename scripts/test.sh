#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds once (release profile, shared
# by the binary, the tests and the benches), runs unit, integration and property
# tests against the real shared data in ../shared/data, and the Kafka tests
# against a real Kafka-protocol broker (scripts/kafka-broker.sh).
#
#   scripts/test.sh                     default suite (3 shared snapshots, fixtures)
#   WHIPSTREAM_HISTORY_DIR=DIR scripts/test.sh
#                                       also the opt-in tests over the 41-snapshot
#                                       history in DIR (build it with
#                                       ../shared/bench/fetch-geoip-history.sh DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
# Headless Chromium renders the report in tests/report.rs; the test must not skip.
SETUP_EXTRA="chromium" source scripts/setup.sh
export WHIPSTREAM_REQUIRE_CHROMIUM=1
# The Kafka tests run against a real broker (Tansu), which they start themselves;
# `install` also installs the local S3 server (moto) that tests/remote_sources.rs
# and the broker's S3 storage use.
bash scripts/kafka-broker.sh install
# tests/kubernetes_examples.rs checks examples/kubernetes/ against the Kubernetes
# API schemas with kubernetes-validate (it ships the schemas: no cluster, offline).
K8S_VENV=${WHIPSTREAM_K8S_VENV:-$HOME/.cache/whipstream-k8s-venv}
if [ ! -x "$K8S_VENV/bin/kubernetes-validate" ]; then
  python3 -m venv "$K8S_VENV"
  "$K8S_VENV/bin/pip" install --quiet "kubernetes-validate==1.37.0"
fi
# tests/parquet_output.rs reads whipstream's JSON and Parquet outputs with DuckDB
# (a real consumer of both), from its Python package.
TOOLS_VENV=${WHIPSTREAM_TOOLS_VENV:-$HOME/.cache/whipstream-duckdb-venv}
if ! "$TOOLS_VENV/bin/python" -c "import duckdb" 2>/dev/null; then
  python3 -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet "duckdb==2.0.1"
fi

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
status=0
cargo test --release --locked --no-fail-fast 2>&1 | tee "$LOG" || status=$?
if [ -n "${WHIPSTREAM_HISTORY_DIR:-}" ]; then
  echo "== opt-in tests over the history in $WHIPSTREAM_HISTORY_DIR"
  cargo test --release --locked --no-fail-fast --test history41 -- --ignored 2>&1 | tee -a "$LOG" || status=$?
fi
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
     END { printf "whipstream: %d passed, %d failed, %d skipped\n", p, f, g }' "$LOG"
exit "$status"
