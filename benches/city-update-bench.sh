#!/usr/bin/env bash
# The cost of an update at city scale, side by side: month 12 of the city
# history (../shared/bench/fetch-city-history.sh) loaded into a copy of the
# same 11-month store by another build (BASE_WS, a whipstream binary) and by
# this checkout, alternating, RUNS rounds; prints wall seconds and peak RSS
# (best of the runs) and this build's stage times (`--log debug`). FULL=1 also
# loads all 12 months into a new store with each build, once.
#
#   benches/city-update-bench.sh CITY_HIST_DIR BASE_WS [WORK]
set -euo pipefail
HIST=$(cd "${1:?usage: city-update-bench.sh CITY_HIST_DIR BASE_WS [WORK]}" && pwd)
BASE_WS=$(realpath "${2:?usage: city-update-bench.sh CITY_HIST_DIR BASE_WS [WORK]}")
WORK=${3:-$HOME/.cache/whipstream-city-bench}
RUNS=${RUNS:-3}
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source scripts/setup.sh
cargo build --release --locked --bin whipstream >&2
WS="$CARGO_TARGET_DIR/release/whipstream"
mkdir -p "$WORK"
mapfile -t FILES < <(ls "$HIST"/*.jsonl | sort)
[ "${#FILES[@]}" -ge 12 ] || { echo "need 12 monthly snapshots in $HIST" >&2; exit 1; }
STORE11="$WORK/store11"
[ -d "$STORE11" ] || "$WS" load --no-progress --db "$STORE11" "${FILES[@]:0:11}" >&2

one() { # BIN NAME: month 12 into a copy of the 11-month store
  rm -rf "$WORK/update"
  cp -r "$STORE11" "$WORK/update"
  /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$1" --log debug load --no-progress \
    --db "$WORK/update" "${FILES[11]}" > "$WORK/load-$2.txt" 2> "$WORK/log-$2.txt"
  read -r wall rss < "$WORK/time.txt"
  echo "$2 $wall $((rss / 1024))"
}
results=""
for _ in $(seq "$RUNS"); do
  results+="$(one "$BASE_WS" base)"$'\n'
  results+="$(one "$WS" new)"$'\n'
done
echo "$results" >&2
echo "stages of the last run of this build:" >&2
sed -n 's/.*load: //p' "$WORK/log-new.txt" >&2
if [ -n "${FULL:-}" ]; then
  for side in base new; do
    bin=$BASE_WS; [ $side = new ] && bin=$WS
    rm -rf "$WORK/full-$side"
    /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$bin" load --no-progress \
      --db "$WORK/full-$side" "${FILES[@]:0:12}" > /dev/null
    read -r wall rss < "$WORK/time.txt"
    results+="full-$side $wall $((rss / 1024)) $(du -sm "$WORK/full-$side" | cut -f1)"$'\n'
  done
fi
python3 - "$results" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)" <<'PY'
import sys, datetime
rows, cpu, cores = sys.argv[1:]
best = {}
for line in rows.strip().splitlines():
    w = line.split()
    name, wall, rss = w[0], float(w[1]), int(w[2])
    b = best.get(name)
    best[name] = (min(wall, b[0]), min(rss, b[1]), w[3:] or (b and b[2])) if b else (wall, rss, w[3:])
print(f"Machine: {cores} cores ({cpu}); {datetime.date.today()}.")
print()
print("| measure | base | this build | ratio |")
print("|---|---|---|---|")
b, n = best["base"], best["new"]
print(f"| month 12 into the 11-month store, wall s (best) | {b[0]:.1f} | {n[0]:.1f} | {b[0] / n[0]:.2f}x faster |")
print(f"| the same, peak RSS MB (lowest) | {b[1]} | {n[1]} | {n[1] / b[1]:.2f}x |")
if "full-base" in best:
    fb, fn = best["full-base"], best["full-new"]
    print(f"| all 12 months into a new store, wall s | {fb[0]:.1f} | {fn[0]:.1f} | {fb[0] / fn[0]:.2f}x faster |")
    print(f"| the same, peak RSS MB | {fb[1]} | {fn[1]} | {fn[1] / fb[1]:.2f}x |")
    print(f"| the same, store on disk MB (du) | {fb[2][0]} | {fn[2][0]} | |")
PY
