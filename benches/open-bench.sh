#!/usr/bin/env bash
# Store open cost, memory, lookups, enrichment and loads, side by side: a build
# of another revision (BASE_TARGET: its cargo target dir, built with
# `cargo build --release --all-targets`) and this checkout, on the same history,
# each with its own store. Prints a Markdown table (paste into BENCHMARKS.md);
# raw outputs stay in WORK.
#
#   benches/open-bench.sh HISTORY_DIR BASE_TARGET [WORK]
#
# RUNS (default 3): best-of runs for throughputs. SKIP_LOAD=1 reuses the stores.
set -euo pipefail
HIST_ARG=${1:?usage: open-bench.sh HISTORY_DIR BASE_TARGET [WORK]}
BASE_TARGET=$(cd "${2:?usage: open-bench.sh HISTORY_DIR BASE_TARGET [WORK]}" && pwd)
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup open-bench.sh "$HIST_ARG" "${3:-}"
RUNS=${RUNS:-3}
NEW_BENCH=$(bench_binary lookup)
BASE_WS="$BASE_TARGET/release/whipstream"
BASE_BENCH=$(ls -t "$BASE_TARGET"/release/deps/lookup-* | grep -v '\.d$' | head -1)
N=$(ls "$HIST"/*.jsonl.gz | wc -l)
first_datetime() { python3 -c 'import gzip,json,sys; print(json.loads(gzip.open(sys.argv[1], "rt").readline())["datetime"])' "$1"; }
FILES=("$HIST"/*.jsonl.gz)
FIRST=$(first_datetime "${FILES[0]}")
LAST=$(first_datetime "${FILES[-1]}")
bench_log
[ -f "$WORK/q-at.jsonl" ] || python3 benches/gen-queries.py --snapshot "${FILES[-1]}" --from "$FIRST" --to "$LAST" -n 1000000 --seed 1 > "$WORK/q-at.jsonl"

timed() { /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$@"; read -r WALL RSS < "$WORK/time.txt"; }
best_wall() { # best wall seconds of RUNS runs of "$@" reading INPUT (stdout discarded)
  local best=
  for _ in $(seq "$RUNS"); do
    timed "$@" < "${INPUT:-/dev/null}" > /dev/null
    best=$(python3 -c "print(min(float('$WALL'), float('${best:-1e9}')))")
  done
  echo "$best"
}

declare -A R
for side in base new; do
  if [ $side = base ]; then BIN=$BASE_WS; BENCH=$BASE_BENCH; else BIN=$WS; BENCH=$NEW_BENCH; fi
  STORE="$WORK/open-$side"
  if [ -z "${SKIP_LOAD:-}" ] || [ ! -d "$STORE" ]; then
    rm -rf "$STORE"
    # All but the last snapshot, then the last one alone (an update).
    timed "$BIN" load --no-progress --db "$STORE" "${FILES[@]:0:N-1}" > "$WORK/load-$side.txt"
    R[$side.load]="$WALL s, $((RSS / 1024)) MB"
    timed "$BIN" load --no-progress --db "$STORE" "${FILES[-1]}" >> "$WORK/load-$side.txt"
    R[$side.update]="$WALL s, $((RSS / 1024)) MB"
  fi
  R[$side.disk]=$(du -sm "$STORE" | cut -f1)
  python3 benches/open_probe.py --bin "$BIN" --db "$STORE" --runs 5 > "$WORK/probe-$side.json"
  for k in lookup_wall_s lookup_rss_anon_kb serve_ready_s serve_rss_anon_kb; do
    R[$side.$k]=$(python3 -c "import json; print(json.load(open('$WORK/probe-$side.json'))['$k'])")
  done
  W=$(INPUT="$WORK/q-at.jsonl" best_wall "$BIN" lookup --db "$STORE" --batch)
  R[$side.batch]=$(python3 -c "print(round(1e6/$W))")
  W=$(best_wall "$BIN" enrich --db "$STORE" --no-line "$LOG")
  R[$side.enrich]=$(python3 -c "print(round(1e6/$W))")
  WHIPSTREAM_BENCH_DB="$STORE" "$BENCH" --bench 'lookup/at_random_time_batched' > "$WORK/criterion-$side.txt" 2>&1
  R[$side.inproc]=$(sed -n 's/.*thrpt: *\[[^ ]* [^ ]* \([^ ]*\) \([^ ]*\).*/\1 \2/p' "$WORK/criterion-$side.txt" | head -1)
done

ratio() { python3 -c "
try: print('%.2fx' % (float('$1')/float('$2')))
except Exception: print('-')"; }
kb_mb() { python3 -c "print(round($1/1024, 1))"; }
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%d)."
echo "Command: \`benches/open-bench.sh $HIST $BASE_TARGET\` ($N snapshots, $FIRST .. $LAST)"
echo
echo "| measure | base | this build | new / base |"
echo "|---|---|---|---|"
echo "| \`lookup --db STORE IP\`, whole process (wall s, best of 5) | ${R[base.lookup_wall_s]} | ${R[new.lookup_wall_s]} | $(ratio "${R[new.lookup_wall_s]}" "${R[base.lookup_wall_s]}") |"
echo "| lookup process RssAnon after open + 1 query (MB) | $(kb_mb "${R[base.lookup_rss_anon_kb]}") | $(kb_mb "${R[new.lookup_rss_anon_kb]}") | $(ratio "${R[new.lookup_rss_anon_kb]}" "${R[base.lookup_rss_anon_kb]}") |"
echo "| \`serve\` start to listening (s, best) | ${R[base.serve_ready_s]} | ${R[new.serve_ready_s]} | $(ratio "${R[new.serve_ready_s]}" "${R[base.serve_ready_s]}") |"
echo "| \`serve\` RssAnon after 1 request (MB) | $(kb_mb "${R[base.serve_rss_anon_kb]}") | $(kb_mb "${R[new.serve_rss_anon_kb]}") | $(ratio "${R[new.serve_rss_anon_kb]}" "${R[base.serve_rss_anon_kb]}") |"
echo "| \`lookup --batch\` 1M queries at random times, end to end (queries/s, best of $RUNS) | ${R[base.batch]} | ${R[new.batch]} | $(ratio "${R[new.batch]}" "${R[base.batch]}") |"
echo "| \`enrich\` 1M-line log, end to end (lines/s, best of $RUNS) | ${R[base.enrich]} | ${R[new.enrich]} | $(ratio "${R[new.enrich]}" "${R[base.enrich]}") |"
echo "| in-process \`Index::at_many\`, random times, 1 thread (lookups/s) | ${R[base.inproc]} | ${R[new.inproc]} | - |"
if [ -n "${R[base.load]:-}" ]; then
  echo "| load of the first $((N - 1)) snapshots (wall, peak RSS) | ${R[base.load]} | ${R[new.load]} | - |"
  echo "| load of snapshot $N into that store (wall, peak RSS) | ${R[base.update]} | ${R[new.update]} | - |"
fi
echo "| store (+ index file) on disk (MB) | ${R[base.disk]} | ${R[new.disk]} | $(ratio "${R[new.disk]}" "${R[base.disk]}") |"
