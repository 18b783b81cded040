#!/usr/bin/env bash
# Store benchmarks on the real 41-snapshot history, whipstream and the original
# Python Whip in one run, same data, same machine. Prints a Markdown report on
# stdout (paste it into BENCHMARKS.md); raw outputs stay in WORK.
#
#   benches/store-bench.sh HISTORY_DIR [WORK]
#
# HISTORY_DIR: ../shared/bench/fetch-geoip-history.sh HISTORY_DIR builds it.
# WORK (default ~/.cache/whipstream-bench): stores, query files, Whip's venv/DB.
# SKIP_WHIP=1 leaves Whip out; WHIP_DB=DIR reuses an already loaded Whip DB.
set -euo pipefail
cd "$(dirname "$0")/.."
HIST=$(cd "${1:?usage: store-bench.sh HISTORY_DIR [WORK]}" && pwd)
WORK=${2:-$HOME/.cache/whipstream-bench}
mkdir -p "$WORK"
source scripts/setup.sh
cargo build --release --locked --bin whipstream >&2
cargo bench --locked --bench lookup --no-run >&2
WS="$CARGO_TARGET_DIR/release/whipstream"
FILES=("$HIST"/*.jsonl.gz)
N=${#FILES[@]}
first_datetime() { python3 -c 'import gzip,json,sys; print(json.loads(gzip.open(sys.argv[1], "rt").readline())["datetime"])' "$1"; }
FIRST=$(first_datetime "${FILES[0]}")
LAST=$(first_datetime "${FILES[-1]}")
timed() { /usr/bin/time -f '%e %U %S %M' -o "$WORK/time.txt" "$@"; read -r WALL USR SYS RSS < "$WORK/time.txt"; }

echo "## Store: $N real snapshots ($FIRST .. $LAST)"
echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%d)."
echo "Command: \`benches/store-bench.sh $HIST\`"
echo
rm -rf "$WORK/store"
timed "$WS" load --no-progress --db "$WORK/store" "${FILES[@]}" > "$WORK/load.txt"
LOAD_WALL=$WALL
STORE_BYTES=$(du -sb "$WORK/store" | cut -f1)
echo "| measure | whipstream | Whip 0.1 | ratio |"
echo "|---|---|---|---|"
echo "<!-- load: $(cat "$WORK/load.txt") -->"
timed "$WS" load --no-progress --db "$WORK/store" "${FILES[@]}" > /dev/null
RELOAD_WALL=$WALL

[ -f "$WORK/q-at.jsonl" ] || python3 benches/gen-queries.py --snapshot "${FILES[-1]}" --from "$FIRST" --to "$LAST" -n 1000000 --seed 1 > "$WORK/q-at.jsonl"
[ -f "$WORK/q-latest.jsonl" ] || python3 benches/gen-queries.py --snapshot "${FILES[-1]}" --from "$FIRST" --to "$LAST" -n 1000000 --seed 2 --latest > "$WORK/q-latest.jsonl"
timed "$WS" lookup --db "$WORK/store" 1.2.3.4 > /dev/null
OPEN_WALL=$WALL; OPEN_RSS=$RSS
timed "$WS" lookup --db "$WORK/store" --batch < "$WORK/q-at.jsonl" > "$WORK/batch-at.out"
BATCH_AT=$(python3 -c "print(round(1e6/($WALL-$OPEN_WALL)))"); BATCH_AT_WALL=$WALL
timed "$WS" lookup --db "$WORK/store" --batch < "$WORK/q-latest.jsonl" > /dev/null
BATCH_LATEST=$(python3 -c "print(round(1e6/($WALL-$OPEN_WALL)))")

WHIP_LOAD="-"; WHIP_SIZE="-"; WHIP_AT="-"; WHIP_LATEST="-"; WHIP_REST="-"
if [ -z "${SKIP_WHIP:-}" ]; then
  export WHIP_VENV=${WHIP_VENV:-$WORK/whip-venv}
  bash benches/whip/install-whip.sh "$WHIP_VENV" >&2
  WDB=${WHIP_DB:-$WORK/whip-db}
  if [ -z "${WHIP_DB:-}" ]; then
    python3 benches/whip/whip_baseline.py load --force --db "$WDB" "${FILES[@]}" > "$WORK/whip-load.json"
    WHIP_LOAD=$(python3 -c "import json; print(json.load(open('$WORK/whip-load.json'))['wall_s'])")
    WHIP_SIZE=$(python3 -c "import json; print(json.load(open('$WORK/whip-load.json'))['db_bytes'])")
  fi
  python3 benches/whip/whip_baseline.py lookups --db "$WDB" --n 200000 --seed 1 > "$WORK/whip-at.json"
  python3 benches/whip/whip_baseline.py lookups --db "$WDB" --n 200000 --seed 1 --latest > "$WORK/whip-latest.json"
  python3 benches/whip/whip_baseline.py rest --db "$WDB" --n 2000 --seed 1 > "$WORK/whip-rest.json"
  WHIP_AT=$(python3 -c "import json; print(round(json.load(open('$WORK/whip-at.json'))['lookups_per_s']))")
  WHIP_LATEST=$(python3 -c "import json; print(round(json.load(open('$WORK/whip-latest.json'))['lookups_per_s']))")
  WHIP_REST=$(python3 -c "import json; print(round(json.load(open('$WORK/whip-rest.json'))['requests_per_s']))")
fi

# whipstream's REST API, same client, keep-alive and new connection per request.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$WS" serve --db "$WORK/store" --listen "127.0.0.1:$PORT" 2> "$WORK/serve.log" &
SERVE=$!
for _ in $(seq 100); do grep -q serving "$WORK/serve.log" 2>/dev/null && break; sleep 0.1; done
python3 benches/rest-client.py --port "$PORT" --queries "$WORK/q-at.jsonl" -n 20000 > "$WORK/rest-keepalive.json"
python3 benches/rest-client.py --port "$PORT" --queries "$WORK/q-at.jsonl" -n 2000 --new-connection > "$WORK/rest-new.json"
SERVE_RSS=$(awk '/VmRSS/{print $2}' /proc/$SERVE/status)
kill $SERVE; wait $SERVE || true
REST_KA=$(python3 -c "import json; print(json.load(open('$WORK/rest-keepalive.json'))['requests_per_s'])")
REST_NEW=$(python3 -c "import json; print(json.load(open('$WORK/rest-new.json'))['requests_per_s'])")

# In-process, single thread (criterion).
WHIPSTREAM_BENCH_DB="$WORK/store" cargo bench --locked --bench lookup 2>&1 | tee "$WORK/criterion.txt" >&2
# The middle estimate of criterion's "thrpt: [low mid high]" line for a benchmark.
thrpt() { python3 - "$WORK/criterion.txt" "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"^lookup/" + re.escape(sys.argv[2]) + r"\s.*?thrpt:\s+\[\S+ \S+ (\S+) (\S+)", text, re.S | re.M)
print(f"{m.group(1)} {m.group(2)}" if m else "-")
PY
}
IN_AT=$(thrpt at_random_time); IN_LATEST=$(thrpt latest); IN_JSON=$(thrpt at_random_time_to_json)
IN_AT_B=$(thrpt at_random_time_batched); IN_LATEST_B=$(thrpt latest_batched)
READY=$(grep -m1 'open to ready' "$WORK/criterion.txt" | sed 's/.*open to ready: //')

ratio() { python3 -c "
a,b='$1','$2'
try: print('%.1fx' % (float(a)/float(b)))
except Exception: print('-')"; }
echo "| load $N snapshots (wall s) | $LOAD_WALL | $WHIP_LOAD | $(ratio "$WHIP_LOAD" "$LOAD_WALL") faster |"
echo "| store size on disk (MB) | $(python3 -c "print(round($STORE_BYTES/1e6,1))") | $( [ "$WHIP_SIZE" = - ] && echo - || python3 -c "print(round($WHIP_SIZE/1e6,1))") | $( [ "$WHIP_SIZE" = - ] && echo - || ratio "$WHIP_SIZE" "$STORE_BYTES") smaller |"
echo "| reload of the same $N files (no-op, wall s) | $RELOAD_WALL | - | - |"
echo "| open to ready, one lookup (wall s; RSS MB) | $OPEN_WALL; $((OPEN_RSS/1024)) | - | - |"
echo "| \`lookup --batch\`, 1M queries at random times (queries/s, open excluded) | $BATCH_AT | - | - |"
echo "| \`lookup --batch\`, 1M latest queries (queries/s) | $BATCH_LATEST | - | - |"
echo "| in-process, 1 thread, random IPs at random times, \`Index::at_many\` (lookups/s) | $IN_AT_B | $WHIP_AT | $(ratio "${IN_AT_B% *}e6" "$WHIP_AT") |"
echo "| in-process, 1 thread, random IPs at random times, \`Index::at\` one by one (lookups/s) | $IN_AT | $WHIP_AT | $(ratio "${IN_AT% *}e6" "$WHIP_AT") |"
echo "| in-process, 1 thread, latest, \`Index::at_many\` (lookups/s) | $IN_LATEST_B | $WHIP_LATEST | $(ratio "${IN_LATEST_B% *}e6" "$WHIP_LATEST") |"
echo "| in-process, 1 thread, latest, \`Index::latest\` one by one (lookups/s) | $IN_LATEST | $WHIP_LATEST | $(ratio "${IN_LATEST% *}e6" "$WHIP_LATEST") |"
echo "| in-process, at random times + record JSON (lookups/s) | $IN_JSON | - | - |"
echo "| REST, sequential, keep-alive (requests/s) | $REST_KA | - | - |"
echo "| REST, sequential, new connection each (requests/s) | $REST_NEW | $WHIP_REST | $(ratio "$REST_NEW" "$WHIP_REST") |"
echo "| serve RSS with the full history (MB) | $((SERVE_RSS/1024)) | - | - |"
echo
echo "criterion open-to-ready (read store + build index): $READY"
