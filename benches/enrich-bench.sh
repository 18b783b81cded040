#!/usr/bin/env bash
# Enrichment benchmarks on the real 41-snapshot history and a 1,000,000-line
# combined log, whipstream next to zcat and the seed-style Python pipeline
# (regex + maxminddb C extension, latest-only) in one run. Prints a Markdown report.
#
#   benches/enrich-bench.sh HISTORY_DIR [WORK]
#
# WORK (default ~/.cache/whipstream-bench) keeps the store (loaded if missing), the
# generated logs (../shared/bench/make-access-log.py, seed 42) and the baseline's
# venv and database (benches/mmdb/install-mmdb-baseline.sh).
#
# ONLY=parquet: only the Parquet report (JSON and Parquet output files side by
# side: wall and CPU time, lines/s, output sizes).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup enrich-bench.sh "$@"
bench_store
bench_log

# JSON lines, one Parquet file and a day-partitioned Parquet directory written
# to files (the sizes are the point), interleaved run by run so that load on the
# machine hits each alike; best of 5 each, wall and CPU seconds.
parquet_report() {
  local out
  out=$(mktemp -d "${TMPDIR:-/tmp}/enrich-parquet.XXXXXX")
  python3 - "$WS" "$STORE" "$LOG" "$out" <<'PY'
import os, shutil, subprocess, sys, time
ws, store, log, out = sys.argv[1:]
lines = sum(1 for _ in open(log, "rb"))
def size(p):
    if os.path.isfile(p):
        return os.path.getsize(p)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p) for f in fs)
runs = []
for extra, shown in (([], ""), (["--no-line"], "--no-line ")):
    runs += [
        (f"`enrich {shown}-o out.jsonl`", extra, "out.jsonl", []),
        (f"`enrich {shown}-o out.parquet`", extra, "out.parquet", []),
        (f"`enrich {shown}--partition-by day -o DIR`", extra, "days", ["--output-format", "parquet", "--partition-by", "day"]),
    ]
best = {r[0]: [1e9, 1e9, 0] for r in runs}
for _ in range(5):
    for name, extra, target, more in runs:
        path = os.path.join(out, target)
        shutil.rmtree(path, ignore_errors=True)
        before = os.times()
        t0 = time.monotonic()
        subprocess.run([ws, "enrich", "--no-progress", "--db", store, *extra, *more, "--output", path, log],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall = time.monotonic() - t0
        after = os.times()
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        b = best[name]
        best[name] = [min(b[0], wall), min(b[1], cpu), size(path)]
print("| run | wall s | CPU s | lines/s | output MB | JSON size / this | wall vs JSON |")
print("|---|---|---|---|---|---|---|")
for i, (name, *_ ) in enumerate(runs):
    json_name = runs[i - i % 3][0]
    w, c, sz = best[name]
    jw, _, jsz = best[json_name]
    print(f"| {name} | {w:.2f} | {c:.2f} | {lines / w:,.0f} | {sz / 1e6:.1f} | {jsz / sz:.1f}x | {w / jw:.2f}x |")
PY
  rm -rf "$out"
}
if [ "${ONLY:-}" = parquet ]; then
  echo "## Parquet output: $(wc -l < "$LOG")-line combined log"
  echo
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); $(date -u +%Y-%m-%d). Command: \`ONLY=parquet benches/enrich-bench.sh $HIST\`."
  echo
  parquet_report
  exit 0
fi
[ -f "$LOG.gz" ] || gzip -6 -c "$LOG" > "$LOG.gz"
LINES=$(wc -l < "$LOG")
MMDB_DIR=${MMDB_DIR:-$HOME/.cache/whipstream-data/mmdb-baseline}
MMDB_OFFLINE=1 bash benches/mmdb/install-mmdb-baseline.sh "$MMDB_DIR" >&2 || bash benches/mmdb/install-mmdb-baseline.sh "$MMDB_DIR" >&2

# Best of 3 wall-clock runs of a shell command.
best() {
  local b=999999
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s.%N); bash -c "$1" > /dev/null; t1=$(date +%s.%N)
    b=$(python3 -c "print(min($b, $t1 - $t0))")
  done
  python3 -c "print(f'{$b:.2f}')"
}
rate() { python3 -c "print(f'{$LINES/$1:,.0f}')"; }

OPEN=$(best "'$WS' enrich --db '$STORE' < /dev/null 2>/dev/null")
FILE=$(best "'$WS' enrich --db '$STORE' '$LOG' 2>/dev/null")
FILE_NOLINE=$(best "'$WS' enrich --db '$STORE' --no-line '$LOG' 2>/dev/null")
PIPE=$(best "cat '$LOG' | '$WS' enrich --db '$STORE' 2>/dev/null")
GZ=$(best "'$WS' enrich --db '$STORE' '$LOG.gz' 2>/dev/null")
ZCAT=$(best "zcat '$LOG.gz'")
ONE=$(best "'$WS' enrich --workers 1 --db '$STORE' '$LOG' 2>/dev/null")
SEED=$(best "'$MMDB_DIR/venv/bin/python' benches/mmdb/seed_pipeline.py --input '$LOG' 2>/dev/null")
SEED_ONE=$(python3 -c "print(min($SEED, 9e9))")

steady() { python3 -c "print(f'{$LINES/($1-$OPEN):,.0f}')"; }
ratio() { python3 -c "print(f'{$1/$2:.1f}x')"; }
echo "## Enrichment: $LINES-line combined log, $(ls "$HIST"/*.jsonl.gz | wc -l)-snapshot history"
echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%d)."
echo "Command: \`benches/enrich-bench.sh $HIST\`; log: make-access-log.py -n 1000000 --seed 42 ($(du -m "$LOG" | cut -f1) MB, gzip $(du -m "$LOG.gz" | cut -f1) MB); best of 3 runs, output to /dev/null."
echo
echo "| run | wall s | lines/s end to end | lines/s after open ($OPEN s) | vs seed pipeline |"
echo "|---|---|---|---|---|"
echo "| \`whipstream enrich FILE\` | $FILE | $(rate "$FILE") | $(steady "$FILE") | $(ratio "$SEED" "$FILE") |"
echo "| \`whipstream enrich --no-line FILE\` | $FILE_NOLINE | $(rate "$FILE_NOLINE") | $(steady "$FILE_NOLINE") | $(ratio "$SEED" "$FILE_NOLINE") |"
echo "| \`cat FILE \| whipstream enrich\` | $PIPE | $(rate "$PIPE") | $(steady "$PIPE") | $(ratio "$SEED" "$PIPE") |"
echo "| \`whipstream enrich FILE.gz\` | $GZ | $(rate "$GZ") | $(steady "$GZ") | $(ratio "$SEED" "$GZ") |"
echo "| \`zcat FILE.gz\` alone | $ZCAT | $(rate "$ZCAT") | - | - |"
echo "| \`whipstream enrich --workers 1 FILE\` | $ONE | $(rate "$ONE") | $(steady "$ONE") | $(ratio "$SEED" "$ONE") |"
echo "| seed pipeline (regex + maxminddb C ext., latest only, 1 core) | $SEED_ONE | $(rate "$SEED_ONE") | - | 1.0x |"

echo
echo "### Parquet output beside JSON (best of 5, interleaved, to files)"
echo
parquet_report

# BASELINE=/path/to/whipstream (another build, e.g. of main): the same runs with
# both binaries, interleaved run by run so that load on the machine hits both
# alike; best of 7 each, in wall-clock seconds and in CPU seconds (user + system
# of the process: what the parsing costs, less disturbed by other processes on a
# shared machine than wall time).
if [ -n "${BASELINE:-}" ]; then
  side() {
    python3 - "$WS" "$BASELINE" "$STORE" "$LOG" "$@" <<'PY'
import os, subprocess, sys, time
new, old, store, log, *args = sys.argv[1:]
best = {"new": [1e9, 1e9], "old": [1e9, 1e9]}
for _ in range(7):
    for name, binary in (("new", new), ("old", old)):
        before = os.times()
        t0 = time.monotonic()
        subprocess.run([binary, "enrich", "--db", store, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall = time.monotonic() - t0
        after = os.times()
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
shown = " ".join("FILE" if a == log else a for a in args)
(ow, oc), (nw, nc) = best["old"], best["new"]
print(f"| `enrich {shown}` | {ow:.2f} | {nw:.2f} | {nw / ow:.3f} | {oc:.2f} | {nc:.2f} | {nc / oc:.3f} |")
PY
  }
  echo
  echo "### Side by side with \`$BASELINE\` (best of 7, interleaved)"
  echo
  echo "| run | baseline wall s | this wall s | ratio | baseline CPU s | this CPU s | ratio |"
  echo "|---|---|---|---|---|---|---|"
  side "$LOG"
  side --no-line "$LOG"
  side --workers 1 "$LOG"
fi
