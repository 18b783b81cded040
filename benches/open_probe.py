#!/usr/bin/env python3
"""Open cost of a whipstream store, as whole processes: prints one JSON object.

  open_probe.py --bin WHIPSTREAM --db STORE [--runs 5] [--ip 1.2.3.4]

- lookup_wall_s: best wall time of `lookup --db STORE IP` (process start to exit).
- lookup_rss_anon_kb: RssAnon (/proc/PID/status) of a `lookup --batch` process
  after it answered its first query (the open done, one lookup made), sampled
  while it waits for more input; the one-shot `lookup` exits too fast to sample.
- serve_ready_s: best time from starting `serve` until it announces its address
  (the index is open by then).
- serve_rss_anon_kb: RssAnon of that `serve` after one request.
- run_ready_s: best time from starting `run` (enriching stdin) until its
  /readyz answers 200; run_rss_anon_kb: its RssAnon then.

Used by benches/open-bench.sh; works with any whipstream build (no new flags).
"""
import argparse
import json
import subprocess
import time
import urllib.error
import urllib.request


def rss_anon_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return None


def lookup_wall(bin_, db, ip, runs):
    best = None
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([bin_, "lookup", "--db", db, ip], check=True, stdout=subprocess.DEVNULL)
        took = time.perf_counter() - t
        best = took if best is None else min(best, took)
    return best


def lookup_rss(bin_, db, ip):
    p = subprocess.Popen([bin_, "lookup", "--db", db, "--batch"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdin.write(json.dumps({"ip": ip}).encode() + b"\n")
    p.stdin.flush()
    p.stdout.readline()
    rss = rss_anon_kb(p.pid)
    p.stdin.close()
    p.wait()
    return rss


def serve(bin_, db, ip, runs):
    best, rss = None, None
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen([bin_, "serve", "--db", db, "--listen", "127.0.0.1:0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        addr = None
        for line in p.stderr:
            if "http://" in line:
                addr = line.strip().rsplit("http://", 1)[1]
                break
        took = time.perf_counter() - t
        best = took if best is None else min(best, took)
        with urllib.request.urlopen(f"http://{addr}/ip/{ip}") as r:
            r.read()
        rss = rss_anon_kb(p.pid)
        p.terminate()
        p.wait()
    return best, rss


def run_ready(bin_, db, runs):
    """Best time from starting `run` (enriching stdin) until its /readyz answers
    200, and its RssAnon then: the daemon is ready once its index is open."""
    best, rss = None, None
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen([bin_, "run", "--db", db, "--source", "stdin", "--listen",
                              "127.0.0.1:0"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        addr = None
        for line in p.stderr:
            if "http://" in line:
                addr = line.strip().rsplit("http://", 1)[1].split()[0].rstrip("/")
                break
        while True:
            try:
                with urllib.request.urlopen(f"http://{addr}/readyz") as r:
                    if r.status == 200:
                        break
            except urllib.error.URLError:
                time.sleep(0.001)
        took = time.perf_counter() - t
        best = took if best is None else min(best, took)
        rss = rss_anon_kb(p.pid)
        p.stdin.close()
        p.terminate()
        p.wait()
    return best, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ip", default="1.2.3.4")
    a = ap.parse_args()
    # A first run warms the page cache (both builds are measured warm).
    lookup_wall(a.bin, a.db, a.ip, 1)
    out = {"lookup_wall_s": round(lookup_wall(a.bin, a.db, a.ip, a.runs), 4),
           "lookup_rss_anon_kb": lookup_rss(a.bin, a.db, a.ip)}
    ready, rss = serve(a.bin, a.db, a.ip, max(1, a.runs // 2))
    out["serve_ready_s"] = round(ready, 4)
    out["serve_rss_anon_kb"] = rss
    ready, rss = run_ready(a.bin, a.db, max(1, a.runs // 2))
    out["run_ready_s"] = round(ready, 4)
    out["run_rss_anon_kb"] = rss
    print(json.dumps(out))


if __name__ == "__main__":
    main()
