#!/usr/bin/env python3
"""Random lookup queries for `whipstream lookup --batch` benchmarks.

    gen-queries.py --snapshot FILE --from T0 --to T1 [-n 1000000] [--seed 1] [--latest]

Writes JSON lines {"ip": .., "t": ..}: addresses drawn from the ranges of FILE (a
range uniformly, then an address uniformly inside it; 25% IPv6), times uniform
between T0 and T1 (RFC 3339), or no "t" with --latest. Deterministic per seed.
Python standard library only.
"""
import argparse
import datetime as dt
import gzip
import ipaddress
import json
import random
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot", required=True)
    ap.add_argument("--from", dest="t0", required=True)
    ap.add_argument("--to", dest="t1", required=True)
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latest", action="store_true")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    opener = gzip.open if a.snapshot.endswith(".gz") else open
    v4, v6 = [], []
    with opener(a.snapshot, "rt") as f:
        for line in f:
            o = json.loads(line)
            b, e = ipaddress.ip_address(o["begin"]), ipaddress.ip_address(o["end"])
            (v4 if b.version == 4 else v6).append((int(b), int(e), b.version))
    t0 = dt.datetime.fromisoformat(a.t0.replace("Z", "+00:00")).timestamp()
    t1 = dt.datetime.fromisoformat(a.t1.replace("Z", "+00:00")).timestamp()
    out = sys.stdout
    for _ in range(a.n):
        pool = v6 if rng.random() < 0.25 else v4
        b, e, ver = pool[rng.randrange(len(pool))]
        ip = rng.randint(b, e)
        text = str(ipaddress.IPv4Address(ip) if ver == 4 else ipaddress.IPv6Address(ip))
        q = {"ip": text}
        if not a.latest:
            t = dt.datetime.fromtimestamp(rng.uniform(t0, t1), dt.timezone.utc)
            q["t"] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.write(json.dumps(q, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
