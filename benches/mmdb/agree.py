#!/usr/bin/env python3
"""Do whipstream's answers agree with libmaxminddb's `mmdblookup` (Debian
mmdb-bin), address by address?

    agree.py WHIPSTREAM STORE ADDRESSES MMDB_V4 MMDB_V6

ADDRESSES: one IP per line. whipstream answers all of them in one `lookup`
call; mmdblookup is run once per address on the file of its family. Fields of
flat records are compared: strings exactly, floats (MaxMind stores 32-bit
floats; mmdblookup prints 6 decimals) to 1e-5; no match must be no match.
Prints `checked agreed matched` and the first disagreements; exits 1 on any.
"""
import json
import re
import subprocess
import sys

ws, store, addresses, mmdb_v4, mmdb_v6 = sys.argv[1:6]
ips = [l.strip() for l in open(addresses) if l.strip()]
out = subprocess.run([ws, "lookup", "--db", store, *ips], check=True,
                     capture_output=True, text=True).stdout.splitlines()
assert len(out) == len(ips), (len(out), len(ips))

PAIR = re.compile(r'^\s*"([^"]+)":\s*\n\s*(.*?) <(\w+)>\s*$', re.M)


def mmdb(ip):
    f = mmdb_v6 if ":" in ip else mmdb_v4
    p = subprocess.run(["mmdblookup", "--file", f, "--ip", ip],
                       capture_output=True, text=True)
    if p.returncode == 6 or "Could not find an entry" in p.stdout + p.stderr:
        return None
    if p.returncode != 0:
        raise SystemExit(f"mmdblookup {ip}: {p.stderr}")
    rec = {}
    for key, value, kind in PAIR.findall(p.stdout):
        if kind == "utf8_string":
            rec[key] = json.loads(value)
        elif kind in ("float", "double"):
            rec[key] = float(value)
        else:
            rec[key] = int(value)
    return rec


agreed = matched = 0
bad = []
for ip, line in zip(ips, out):
    mine = json.loads(line)
    theirs = mmdb(ip)
    if theirs is None:
        ok = mine == {}
    else:
        matched += 1
        fields = {k: v for k, v in mine.items() if k not in ("begin", "end", "datetime")}
        ok = fields.keys() == theirs.keys() and all(
            abs(fields[k] - v) <= 1e-5 if isinstance(v, float) else fields[k] == v
            for k, v in theirs.items())
    if ok:
        agreed += 1
    elif len(bad) < 5:
        bad.append((ip, mine, theirs))
print(len(ips), agreed, matched)
for b in bad:
    print("DISAGREE", *b, file=sys.stderr)
sys.exit(0 if agreed == len(ips) else 1)
