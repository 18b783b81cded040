#!/usr/bin/env bash
# Enrichment while the daemon hot-loads a full real snapshot, in one run: a store
# of the first 40 snapshots of the real history, the 41st dropped into the
# watched directory while `whipstream run` enriches the 1,000,000-line combined
# log from stdin (benches/daemon_load.rs drives it). Two feeds: as fast as the
# daemon takes lines (throughput), and paced at PACE lines/s in batches every
# 10 ms (delay from a batch's write to its last enriched line). Then the load
# priorities (ingest.load_priority idle, low, normal) side by side: REPEAT flood
# runs of each, interleaved, as the machine's load drifts between runs. The
# daemon's RssAnon is reported at the rename, at its highest during the load,
# and after the swap.
#
#   [PACE=100000] [REPEAT=3] [SNAPSHOT=FILE] [STORE=DIR] [LOG=FILE] \
#     [DAEMON_TIMEOUT=60] benches/daemon-bench.sh HISTORY_DIR [WORK]
#
# By default (the country history) the last snapshot of HISTORY_DIR is
# dropped into a store of all the others, built once in WORK, and the log is
# lib.sh's. Another history (e.g. the city one) gives its own: SNAPSHOT the
# file dropped, STORE a store of the history without it (built there with the
# other files of HISTORY_DIR when missing; never written to, every run copies
# it), LOG an access log over its ranges and time window. REPEAT=0 skips the
# priority comparison; DAEMON_TIMEOUT bounds each run (seconds).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup daemon-bench.sh "$@"
PACE=${PACE:-100000}
REPEAT=${REPEAT:-3}
DRIVER=$(bench_binary daemon-load)
mapfile -t FILES < <(find "$HIST" -maxdepth 1 \( -name '*.jsonl.gz' -o -name '*.jsonl' \) | sort)
LAST=${SNAPSHOT:-${FILES[-1]}}
LAST=$(cd "$(dirname "$LAST")" && pwd)/$(basename "$LAST")
BASE=${STORE:-$WORK/store40}
if [ ! -d "$BASE" ]; then
  mapfile -t REST < <(printf '%s\n' "${FILES[@]}" | grep -vxF "$LAST")
  nice -n 10 "$WS" load --no-progress --db "$BASE" "${REST[@]}" >&2
fi
if [ -z "${LOG:-}" ]; then
  bench_log
fi
RANGES=$( (zcat -f "$LAST" | wc -l) )

run() {
  local tmp
  tmp=$(mktemp -d)
  cp -r "$BASE" "$tmp/store"
  "$DRIVER" "$WS" "$tmp/store" "$tmp/in" "$LAST" "$LOG" "$@"
  rm -rf "$tmp"
}
# FEEDS picks the runs (e.g. FEEDS=paced for the stall alone).
FEEDS=${FEEDS:-flood paced}
FLOOD=""
PACED=""
if [[ " $FEEDS " == *" flood "* ]]; then
  FLOOD=$(run flood)
  echo "$FLOOD" >&2
fi
if [[ " $FEEDS " == *" paced "* ]]; then
  PACED=$(run "paced:$PACE")
  echo "$PACED" >&2
fi
PRIORITIES=""
for i in $(seq "$REPEAT"); do
  for p in idle low normal; do
    r=$(run flood "--load-priority=$p")
    echo "$p $i: $(echo "$r" | tr '\n' ' ')" >&2
    PRIORITIES+="$p;$(echo "$r" | tr '\n' ';')"$'\n'
  done
done

python3 - "$FLOOD" "$PACED" "$PACE" "$(basename "$LAST")" "$RANGES" "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$HIST" "$PRIORITIES" <<'PY'
import sys, datetime, statistics
flood, paced, pace, snap, ranges, cores, cpu, hist, priorities = sys.argv[1:]
def parse(lines):
    return {l.split()[0]: [float(x) for x in l.split()[1:]] for l in lines if l.strip()}
f, p = parse(flood.splitlines()), parse(paced.splitlines())
any_run = f or p
print(f"## Hot snapshot load while enriching ({snap}, {int(ranges):,} ranges, into a {int(any_run['snapshots'][0])}-snapshot store)")
print()
print(f"Machine: {cores} cores ({cpu}); {datetime.date.today()}. Command: `benches/daemon-bench.sh {hist}`.")
print("`whipstream run --no-line` reading the 1,000,000-line combined log from stdin (looped) and writing to a pipe;")
print("the snapshot is renamed into the watched directory 6 s in; 'loading' runs from the rename until /healthz shows it.")
print()
print(f"| phase | s (flood) | lines/s, as fast as taken | of idle | s (paced) | worst batch delay at {int(pace):,} lines/s | 99th pct |")
print("|---|---|---|---|---|---|---|")
for phase in ("idle", "loading", "after"):
    row = [phase]
    if f:
        secs, rate, _, _ = f[phase]
        row += [f"{secs:.1f}", f"{rate:,.0f}", f"{rate / f['idle'][1] * 100:.0f}%"]
    else:
        row += ["-", "-", "-"]
    if p:
        psecs, _, worst, p99 = p[phase]
        row += [f"{psecs:.1f}", f"{worst:.1f} ms", f"{p99:.1f} ms"]
    else:
        row += ["-", "-", "-"]
    print("| " + " | ".join(row) + " |")
print()
print("| daemon RssAnon (MB) | at the rename | highest while loading | at the swap | 6 s after the swap |")
print("|---|---|---|---|---|")
for name, r in (("flood", f), ("paced", p)):
    if r:
        print(f"| {name} | " + " | ".join(f"{x:,.0f}" for x in r["memory"]) + " |")
runs = {}
for line in priorities.strip().splitlines():
    prio, *rest = line.split(";")
    r = parse(rest)
    runs.setdefault(prio, []).append((r["loading"][1] / r["idle"][1], r["loading"][0]))
if runs:
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
