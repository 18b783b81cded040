#!/usr/bin/env bash
# Enrichment while the daemon hot-loads a full real snapshot, in one run: a store
# of the first 40 snapshots of the real history, the 41st dropped into the
# watched directory while `whipstream run` enriches the 1,000,000-line combined
# log from stdin (benches/daemon_load.rs drives it). Two feeds: as fast as the
# daemon takes lines (throughput), and paced at PACE lines/s in batches every
# 10 ms (delay from a batch's write to its last enriched line). Then the load
# priorities (ingest.load_priority idle, low, normal) side by side: REPEAT flood
# runs of each, interleaved, as the machine's load drifts between runs.
#
#   [PACE=100000] [REPEAT=3] benches/daemon-bench.sh HISTORY_DIR [WORK]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup daemon-bench.sh "$@"
PACE=${PACE:-100000}
REPEAT=${REPEAT:-3}
DRIVER=$(bench_binary daemon-load)
mapfile -t FILES < <(ls "$HIST"/*.jsonl.gz | sort)
LAST=${FILES[-1]}
STORE40="$WORK/store40"
[ -d "$STORE40" ] || "$WS" load --no-progress --db "$STORE40" "${FILES[@]:0:${#FILES[@]}-1}" >&2
bench_log
RANGES=$( (zcat "$LAST" | wc -l) )

run() {
  local tmp
  tmp=$(mktemp -d)
  cp -r "$STORE40" "$tmp/store"
  "$DRIVER" "$WS" "$tmp/store" "$tmp/in" "$LAST" "$LOG" "$@"
  rm -rf "$tmp"
}
FLOOD=$(run flood)
echo "$FLOOD" >&2
PACED=$(run "paced:$PACE")
echo "$PACED" >&2
PRIORITIES=""
for i in $(seq "$REPEAT"); do
  for p in idle low normal; do
    r=$(run flood "--load-priority=$p")
    echo "$p $i: $(echo "$r" | tr '\n' ' ')" >&2
    PRIORITIES+="$p $(echo "$r" | tr '\n' ' ')"$'\n'
  done
done

python3 - "$FLOOD" "$PACED" "$PACE" "$(basename "$LAST")" "$RANGES" "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$HIST" "$PRIORITIES" <<'PY'
import sys, datetime, statistics
flood, paced, pace, snap, ranges, cores, cpu, hist, priorities = sys.argv[1:]
def parse(text):
    return {l.split()[0]: [float(x) for x in l.split()[1:]] for l in text.strip().splitlines()}
f, p = parse(flood), parse(paced)
print(f"## Hot snapshot load while enriching ({snap}, {int(ranges):,} ranges, into a 40-snapshot store)")
print()
print(f"Machine: {cores} cores ({cpu}); {datetime.date.today()}. Command: `benches/daemon-bench.sh {hist}`.")
print("`whipstream run --no-line` reading the 1,000,000-line combined log from stdin (looped) and writing to a pipe;")
print("the snapshot is renamed into the watched directory 6 s in; 'loading' runs from the rename until /healthz shows it.")
print()
print(f"| phase | s | lines/s, as fast as taken | of idle | worst batch delay at {int(pace):,} lines/s | 99th pct |")
print("|---|---|---|---|---|---|")
for phase in ("idle", "loading", "after"):
    secs, rate, _, _ = f[phase]
    _, prate, worst, p99 = p[phase]
    print(f"| {phase} | {secs:.1f} | {rate:,.0f} | {rate / f['idle'][1] * 100:.0f}% | {worst:.1f} ms | {p99:.1f} ms |")
runs = {}
for line in priorities.strip().splitlines():
    words = line.split()
    r = {words[i]: [float(x) for x in words[i + 1:i + 5]] for i in range(1, len(words), 5)}
    runs.setdefault(words[0], []).append((r["loading"][1] / r["idle"][1], r["loading"][0]))
print()
print(f"Load priority (`--load-priority`), {len(runs['idle'])} flood runs each, interleaved:")
print()
print("| priority | loading, % of idle, per run | median | load seconds, per run |")
print("|---|---|---|---|")
for prio in ("idle", "low", "normal"):
    rs = runs[prio]
    per = ", ".join(f"{a * 100:.0f}%" for a, _ in rs)
    secs = ", ".join(f"{s:.1f}" for _, s in rs)
    print(f"| {prio} | {per} | {statistics.median(a for a, _ in rs) * 100:.0f}% | {secs} |")
PY
