#!/usr/bin/env bash
# Kafka enrichment next to the broker's own ceiling, in one run: a 1,000,000-line
# combined log (../shared/bench/make-access-log.py, seed 42) produced to a
# 4-partition topic of the test broker (scripts/kafka-broker.sh), then
#   - passthrough: a minimal rdkafka consumer-group member that copies each
#     message unchanged to another topic and commits what was delivered;
#   - whipstream enrich --kafka-... over the 41-snapshot store, same topic.
# Each run is a new group reading the topic from the beginning; its time is from
# the process start until the group's committed offsets cover every message
# (commits follow delivery in both). Best of ROUNDS alternating runs.
#
#   benches/kafka-bench.sh HISTORY_DIR [WORK]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup kafka-bench.sh "$@"
ROUNDS=${ROUNDS:-2}
TOOL=$(bench_binary kafka-tool)
bench_store
bench_log
N=$(wc -l < "$LOG")

STATE=$(mktemp -d)
trap 'bash scripts/kafka-broker.sh stop "$STATE"; rm -rf "$STATE"' EXIT
BROKER=$(bash scripts/kafka-broker.sh start "$STATE" | sed -n 's/^BROKER=//p')
bash scripts/kafka-broker.sh topic raw 4 "$STATE"
t0=$(date +%s.%N)
"$TOOL" produce "$BROKER" raw "$LOG" >&2
t1=$(date +%s.%N)
PRODUCE=$(python3 -c "print(f'{$t1 - $t0:.1f}')")

# run NAME GROUP COMMAND...: start COMMAND, wait for GROUP to commit N, stop it.
run() {
  local name=$1 group=$2; shift 2
  "$@" 2> "$STATE/$name.err" > /dev/null &
  local pid=$!
  local result
  result=$("$TOOL" wait "$BROKER" raw "$group" "$N")
  kill -TERM "$pid"; wait "$pid" || true
  echo "$result"
}

PASS=() ; ENRICH=()
for r in $(seq "$ROUNDS"); do
  bash scripts/kafka-broker.sh topic "passed-$r" 4 "$STATE"
  bash scripts/kafka-broker.sh topic "enriched-$r" 4 "$STATE"
  PASS+=("$(run "pass-$r" "pass-$r" "$TOOL" passthrough "$BROKER" raw "passed-$r" "pass-$r")")
  echo "round $r passthrough: ${PASS[-1]}" >&2
  ENRICH+=("$(run "enrich-$r" "enrich-$r" "$WS" enrich --db "$STORE" \
    --kafka-brokers "$BROKER" --input-topic raw --output-topic "enriched-$r" --group-id "enrich-$r")")
  echo "round $r whipstream: ${ENRICH[-1]}" >&2
done

best() { printf '%s\n' "$@" | sort -n -k1 | head -1; }
P=$(best "${PASS[@]}"); E=$(best "${ENRICH[@]}")
python3 - "$N" "$P" "$E" "$PRODUCE" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
  "$(ls "$HIST"/*.jsonl.gz | wc -l)" "$HIST" <<'PY'
import sys, datetime
n, p, e, produce, cores, cpu, snaps, hist = sys.argv[1:]
n = int(n); ps, psteady = map(float, p.split()); es, esteady = map(float, e.split())
print(f"## Kafka: {n:,} combined-log lines through the test broker, {snaps}-snapshot history")
print()
print(f"Machine: {cores} cores ({cpu}); {datetime.date.today()}. Broker: Tansu (memory storage) on the same machine.")
print(f"Command: `benches/kafka-bench.sh {hist}`; topic of 4 partitions filled in {produce} s; best of the rounds;")
print("time from process start until the group's committed offsets cover every message.")
print()
print("| run | s | messages/s end to end | messages/s steady (first to last commit) | of passthrough |")
print("|---|---|---|---|---|")
print(f"| passthrough (rdkafka consume → produce unchanged) | {ps:.1f} | {n/ps:,.0f} | {psteady:,.0f} | 100% |")
print(f"| `whipstream enrich --kafka-...` | {es:.1f} | {n/es:,.0f} | {esteady:,.0f} | {ps/es*100:.0f}% end to end, {esteady/psteady*100:.0f}% steady |")
PY
