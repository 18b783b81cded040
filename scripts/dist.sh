#!/usr/bin/env bash
# Builds the shipped binary: the `dist` profile (release + fat LTO, one codegen
# unit), then splits it into a stripped executable and a separate debug file
# (symbols and whipstream's line tables) that a crash can be symbolised with:
#   dist/whipstream         what is shipped (the Dockerfile copies it)
#   dist/whipstream.debug   `gdb dist/whipstream` finds it by its debuglink;
#                           `addr2line -e dist/whipstream.debug ADDR` names file:line
# Usage: scripts/dist.sh [OUT_DIR]   (default: dist/ in the repository)
# Environment: CARGO_TARGET_DIR as for any build. The dist profile shares no
# artifacts with `release` (a first build compiles every crate, RocksDB
# included); keep it for packaging, tests build `release`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
target=${CARGO_TARGET_DIR:-$root/target}

cd "$root"
cargo build --profile dist --locked --bin whipstream
mkdir -p "$out"
built=$target/dist/whipstream
objcopy --only-keep-debug "$built" "$out/whipstream.debug"
objcopy --strip-all --add-gnu-debuglink="$out/whipstream.debug" "$built" "$out/whipstream.tmp"
mv "$out/whipstream.tmp" "$out/whipstream"
# A binary that does not start is not shipped.
"$out/whipstream" --version >/dev/null
echo "dist: $out/whipstream $(stat -c %s "$out/whipstream") bytes, debug file $(stat -c %s "$out/whipstream.debug") bytes"
