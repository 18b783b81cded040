#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60), with a seed
# corpus made from the test fixtures, and prints each target's executions and
# findings. Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Environment: CARGO_TARGET_DIR (a separate one: the fuzz build instruments
# every Rust crate and compiles RocksDB; ROCKSDB_LIB_DIR=DIR ROCKSDB_STATIC=1
# links a librocksdb.a already built instead, e.g. the release build's).
# The corpus (fuzz/corpus), findings (fuzz/artifacts) and logs (fuzz/logs)
# are not committed; a finding that is fixed becomes a regression test.
set -euo pipefail

seconds=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Seed corpora from the fixtures: one input per file, named for where it came
# from (the corpus directories are not committed; findings go to artifacts/).
seed() {
    local target=$1 dir=corpus/$1
    mkdir -p "$dir"
    case $target in
        logline)
            # Every log fixture, each line behind a format selector byte (0:
            # auto, the others one format each, as the target reads it).
            local n=0
            for f in "$root"/tests/fixtures/log-formats/*.log "$root"/tests/fixtures/logs/*.log; do
                for sel in 0 1 2 3 4 5 6 7; do
                    { printf "\\$(printf '%03o' "$sel")"; head -c 4096 "$f"; } > "$dir/seed-$(basename "$f")-$sel"
                done
                n=$((n + 1))
            done
            ;;
        snapshot_index)
            # Every snapshot fixture, good and bad, and pairs of them (a form
            # feed separates the two files the target merges).
            local prev=""
            for f in "$root"/tests/fixtures/snapshots/*.json*; do
                [ -f "$f" ] || continue
                case $f in *.gz) continue ;; esac
                head -c 16384 "$f" > "$dir/seed-$(basename "$f")"
                if [ -n "$prev" ]; then
                    { head -c 8192 "$prev"; printf '\f'; head -c 8192 "$f"; } > "$dir/pair-$(basename "$prev")-$(basename "$f")"
                fi
                prev=$f
            done
            ;;
    esac
}

status=0
mkdir -p logs
for target in "${targets[@]}"; do
    seed "$target"
    seeds=$(find "corpus/$target" -maxdepth 1 \( -name 'seed-*' -o -name 'pair-*' \) | wc -l)
    log=logs/$target.log
    echo "fuzz: $target for ${seconds}s from $(find "corpus/$target" -type f | wc -l) inputs ($seeds seeds)"
    if cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result="FINDING (see fuzz/artifacts/$target)"
        status=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
    # libFuzzer's last status line: coverage (edges), features, corpus size.
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' || true)
    echo "fuzz: $target: $result, $execs executions, ${last:-no status line}; corpus now $(find "corpus/$target" -type f | wc -l) files (log: fuzz/$log)"
    if [ "$result" != ok ]; then
        tail -n 40 "$log"
    fi
done
exit $status
