#!/usr/bin/env python3
"""How soon a running `serve` or `run` sees a load committed by another process.

  daemon_follow_probe.py --bin WHIPSTREAM --store STORE --snapshot FILE
                         [--cmd serve|run] [--runs 3] [--work DIR]

Each run copies STORE, starts `WHIPSTREAM serve` (or `run`, fed nothing) on the
copy, then runs `WHIPSTREAM load --no-progress` of FILE into it as another
process, and polls every 5 ms: the index file's identity (inode, size, mtime:
when the load's new index file is in place) and the server's /healthz snapshot
count (when it answers from the new index). Prints one JSON object a run:

- load_s: the load process, start to exit;
- written_after_s: from the load's start until its index file is in place;
- seen_after_write_s: from the index file in place until /healthz shows the
  new snapshot (the follower's poll, 0.5 s, plus mapping the file);
- seen_after_exit_s: from the load process's exit until then (negative: seen
  before the process ended);
- rss_anon_kb_before / rss_anon_kb_after: the server's RssAnon before the load
  and 3 s after it was seen.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from open_probe import rss_anon_kb


def file_id(path):
    try:
        s = os.stat(path)
    except FileNotFoundError:
        return None
    return (s.st_ino, s.st_size, s.st_mtime_ns)


def snapshots(addr):
    try:
        with urllib.request.urlopen(f"http://{addr}/healthz", timeout=1) as r:
            return json.loads(r.read())["snapshots"]
    except OSError:
        return None


def one_run(a, work):
    store = os.path.join(work, "store")
    shutil.copytree(a.store, store)
    index = os.path.join(store, "whipstream.index")
    if a.cmd == "serve":
        args = [a.bin, "serve", "--db", store, "--listen", "127.0.0.1:0"]
    else:
        args = [a.bin, "run", "--no-line", "--db", f"geo={store}", "--listen", "127.0.0.1:0"]
    server = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    addr = None
    for line in server.stderr:
        if "http://" in line:
            addr = line.strip().rsplit("http://", 1)[1]
            break
    # Keep reading its log so that it never blocks on a full pipe.
    drain = subprocess.Popen(["cat"], stdin=server.stderr, stdout=subprocess.DEVNULL)
    while True:
        before = snapshots(addr)
        if before:
            break
        time.sleep(0.05)
    time.sleep(1)
    rss_before = rss_anon_kb(server.pid)
    first = file_id(index)
    started = time.perf_counter()
    load = subprocess.Popen([a.bin, "load", "--no-progress", "--db", store, a.snapshot],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    written = seen = exited = None
    while seen is None or exited is None:
        now = time.perf_counter()
        if exited is None and load.poll() is not None:
            exited = now
            if load.returncode != 0:
                raise SystemExit(f"load failed: {load.returncode}")
        if written is None and file_id(index) != first:
            written = now
        if seen is None and (snapshots(addr) or 0) > before:
            seen = now
        if now - started > 1800:
            raise SystemExit("not seen within 30 minutes")
        time.sleep(0.005)
    time.sleep(3)
    rss_after = rss_anon_kb(server.pid)
    server.terminate()
    server.wait()
    drain.wait()
    shutil.rmtree(store)
    return {
        "cmd": a.cmd,
        "load_s": round(exited - started, 3),
        "written_after_s": round(written - started, 3),
        "seen_after_write_s": round(seen - written, 3),
        "seen_after_exit_s": round(seen - exited, 3),
        "rss_anon_kb_before": rss_before,
        "rss_anon_kb_after": rss_after,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--snapshot", required=True)
    ap.add_argument("--cmd", choices=("serve", "run"), default="serve")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default=None)
    a = ap.parse_args()
    for _ in range(a.runs):
        with tempfile.TemporaryDirectory(dir=a.work) as work:
            print(json.dumps(one_run(a, work)), flush=True)


if __name__ == "__main__":
    main()
