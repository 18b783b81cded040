#!/usr/bin/env bash
# `whipstream report` on a large enriched log: wall time and peak RSS, without
# and with --db (every client looked up in the store's latest snapshot), and the
# RSS of opening the store alone (what --db adds before the report's own memory),
# and a run on the first tenth of the lines (memory follows clients, not lines).
#
#   benches/report-bench.sh LOG STORE     LOG from ../shared/bench/make-access-log.py,
#                                         STORE the store it is enriched with
# RUNS (default 3) runs of each; best wall time and its RSS are what to record.
set -euo pipefail
LOG=$1
STORE=$2
RUNS=${RUNS:-3}
BIN=${CARGO_TARGET_DIR:-$HOME/.cache/whipstream-target}/release/whipstream
WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/report-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

"$BIN" enrich --no-progress --db geo="$STORE" "$LOG" > "$WORK/enriched.jsonl"
echo "enriched: $(wc -l < "$WORK/enriched.jsonl") lines, $(du -m "$WORK/enriched.jsonl" | cut -f1) MB"
/usr/bin/time -f "open store + 1 lookup: %e s, %M KB" "$BIN" lookup --db "$STORE" 1.1.1.1 > /dev/null
# Memory follows distinct clients, not lines: the first tenth of the lines.
head -n "$(( $(wc -l < "$WORK/enriched.jsonl") / 10 ))" "$WORK/enriched.jsonl" > "$WORK/tenth.jsonl"
/usr/bin/time -f "report (plain, first tenth of the lines): %e s, %M KB" \
  "$BIN" report --no-progress -o "$WORK/report" "$WORK/tenth.jsonl" 2>&1 | tail -2
for mode in plain db; do
  extra=()
  [ "$mode" = db ] && extra=(--db "geo=$STORE")
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "report ($mode): %e s, %M KB" \
      "$BIN" report --no-progress "${extra[@]}" -o "$WORK/report" "$WORK/enriched.jsonl" 2>&1 | tail -2
  done
done
