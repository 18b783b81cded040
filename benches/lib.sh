# Shared set-up of the benchmark scripts (sourced): the built binary, the
# 1,000,000-line log and the 41-snapshot store, made once and kept in WORK.
#
#   bench_setup NAME HISTORY_DIR [WORK]   cd to the repository, build; sets HIST,
#                                         WORK, SHARED, WS (the whipstream binary)
#   bench_binary BENCH                    path of a `cargo bench` target's binary
#   bench_log                             sets LOG (make-access-log.py, seed 42)
#   bench_store                           sets STORE (all of HIST loaded)

bench_setup() {
  local name=$1
  HIST=$(cd "${2:?usage: $name HISTORY_DIR [WORK]}" && pwd)
  WORK=${3:-$HOME/.cache/whipstream-bench}
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  SHARED=${SHARED:-$(cd .. && pwd)/shared}
  mkdir -p "$WORK"
  # shellcheck disable=SC1091
  source scripts/setup.sh
  cargo build --release --locked --bin whipstream >&2
  WS="$CARGO_TARGET_DIR/release/whipstream"
}

bench_binary() {
  local path
  path=$(cargo bench --locked --no-run --bench "$1" 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
  [ -x "$path" ] || { echo "no binary for bench $1" >&2; exit 1; }
  echo "$path"
}

bench_log() {
  LOG="$WORK/access-1m.log"
  if [ ! -f "$LOG" ]; then
    python3 "$SHARED/bench/make-access-log.py" --snapshots "$HIST" -n 1000000 --seed 42 --out "$LOG.tmp" >&2
    mv "$LOG.tmp" "$LOG"
  fi
}

bench_store() {
  STORE="$WORK/store"
  [ -d "$STORE" ] || "$WS" load --no-progress --db "$STORE" "$HIST" >&2
}
