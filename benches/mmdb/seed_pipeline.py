#!/usr/bin/env python3
"""Baseline "seed-style" IP enrichment, written the way users do it today.

Reads an Apache combined access log, pulls the client IP out of each line with
a regex, looks it up in a GeoLite2 country MMDB with the `maxminddb` C
extension, and writes one JSON line per input line:

    {"ip": <client ip or null>, "record": <mmdb record or null>, "line": <line>}

Latest database only, no notion of time. Lines/s goes to stderr at the end.

Install the environment first with benches/mmdb/install-mmdb-baseline.sh and
run with that venv's python, e.g.

    ~/.cache/whipstream-data/mmdb-baseline/venv/bin/python \
        benches/mmdb/seed_pipeline.py --input access.log > enriched.jsonl

Databases: by default the files listed in DIR/mmdb-files.txt (written by the
installer). When it lists separate ipv4 and ipv6 files, both are opened and the
reader is picked by address family; --combined uses the single IPv4+IPv6 file
instead; --mmdb PATH uses one explicit file for every address.
"""

import argparse
import ipaddress
import json
import os
import re
import sys
import time

import maxminddb

DEFAULT_DIR = os.path.expanduser("~/.cache/whipstream-data/mmdb-baseline")

# Apache combined: host ident authuser [date] "request" status bytes "referer" "ua"
# Only the host is needed; anchoring on the first three fields and the "[" keeps
# garbage lines out without requiring the rest of the line to be well formed
# (truncated lines still yield their IP).
LINE_RE = re.compile(r"^(\S+) \S+ \S+ \[")


def load_listing(db_dir):
    files = {}
    with open(os.path.join(db_dir, "mmdb-files.txt"), encoding="utf-8") as f:
        for row in f:
            row = row.strip()
            if row:
                fam, path = row.split(None, 1)
                files[fam] = path
    return files


def open_db(path, mode):
    return maxminddb.open_database(path, mode)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", default="-", help="access log file, '-' for stdin (default)")
    ap.add_argument("--db-dir", default=DEFAULT_DIR, help="installer output dir (default: %(default)s)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--combined", action="store_true", help="use the single IPv4+IPv6 mmdb file")
    g.add_argument("--mmdb", help="use this one mmdb file for every address")
    ap.add_argument("--mode", choices=["mmap_ext", "auto"], default="mmap_ext",
                    help="maxminddb open mode (default: %(default)s, i.e. C extension required)")
    args = ap.parse_args()

    mode = maxminddb.MODE_MMAP_EXT if args.mode == "mmap_ext" else maxminddb.MODE_AUTO

    if args.mmdb:
        v4 = v6 = open_db(args.mmdb, mode)
        used = [args.mmdb]
    else:
        files = load_listing(args.db_dir)
        if not args.combined and "ipv4" in files and "ipv6" in files:
            v4 = open_db(files["ipv4"], mode)
            v6 = open_db(files["ipv6"], mode)
            used = [files["ipv4"], files["ipv6"]]
        elif "any" in files:
            v4 = v6 = open_db(files["any"], mode)
            used = [files["any"]]
        else:
            sys.exit(f"no usable mmdb listed in {args.db_dir}/mmdb-files.txt")

    if args.input == "-":
        src = open(sys.stdin.fileno(), "r", encoding="utf-8", errors="replace",
                   buffering=1 << 16, closefd=False)
    else:
        src = open(args.input, "r", encoding="utf-8", errors="replace", buffering=1 << 16)
    out = open(sys.stdout.fileno(), "w", encoding="utf-8", buffering=1 << 16, closefd=False)

    match = LINE_RE.match
    get4 = v4.get
    get6 = v6.get
    dumps = json.dumps
    write = out.write

    n = found = no_ip = bad_ip = 0
    t0 = time.perf_counter()
    for line in src:
        line = line.rstrip("\r\n")
        n += 1
        m = match(line)
        if m is None:
            ip = None
            record = None
            no_ip += 1
        else:
            ip = m.group(1)
            if ":" in ip:
                get = get6
                key = ip
                # IPv4-mapped IPv6 (::ffff:a.b.c.d or ::ffff:xxxx:xxxx): the
                # databases have no ::ffff:0:0/96 branch, so ask the IPv4 data.
                if ip[:7].lower() == "::ffff:":
                    try:
                        mapped = ipaddress.IPv6Address(ip).ipv4_mapped
                    except ValueError:
                        mapped = None
                    if mapped is not None:
                        get = get4
                        key = str(mapped)
            else:
                get = get4
                key = ip
            try:
                record = get(key)
            except ValueError:  # not an IP address
                record = None
                bad_ip += 1
            if record is not None:
                found += 1
        write(dumps({"ip": ip, "record": record, "line": line}))
        write("\n")
    out.flush()
    elapsed = time.perf_counter() - t0

    rate = n / elapsed if elapsed > 0 else float("inf")
    print(
        f"seed_pipeline: {n} lines in {elapsed:.3f} s = {rate:,.0f} lines/s "
        f"(found {found}, no ip {no_ip}, invalid ip {bad_ip}; "
        f"mode {args.mode}; db {', '.join(os.path.basename(p) for p in used)})",
        file=sys.stderr,
    )
    src.close()
    v4.close()
    if v6 is not v4:
        v6.close()


if __name__ == "__main__":
    main()
