#!/usr/bin/env python3
"""Baseline benchmarks of the original Python Whip (wbolster/whip 0.1).

whipstream re-implements Whip; these numbers are what it is compared against.
Each subcommand prints exactly one JSON line of results on stdout (progress
and Whip's own logging go to stderr).

  load --db DIR [--force] [--incremental] SNAPSHOT...
      Load Whip snapshot files (JSON lines {"begin","end","datetime",...},
      optionally gzipped) into a fresh Whip database, the way `whip-cli load`
      does: one Database.load() call that merges all snapshots (or, with
      --incremental, one call per snapshot in datetime order, as a daily
      update job would). Measures wall and CPU seconds (CPU includes
      LevelDB's background threads), peak RSS, and the DB's size on disk
      after Whip's final compaction. Also writes DIR/whip-baseline-meta.json
      (snapshot paths and first/last datetimes) that the other subcommands
      use for their defaults; it is written after the size is measured.

  lookups --db DIR --n N --seed S [--latest] [--sample-from FILE] [--no-cache]
      In-process, single thread: N calls of Database.lookup(ip, datetime).
      IPs are drawn from the ranges of one snapshot file (a range uniformly,
      then an address uniformly inside it; 25% IPv6, 75% IPv4); datetimes are
      uniform (to the second) between the first and last loaded snapshot
      datetimes, or None (= latest version) with --latest. Queries are
      generated before timing; a short untimed warm-up (other queries)
      opens LevelDB's iterator, then Whip's lru_cache is cleared. Note that
      Whip wraps Database.lookup in functools.lru_cache(131072); random
      queries almost never repeat, and --no-cache bypasses it entirely.

  rest --db DIR --n N [--seed S] [--historical] [--sample-from FILE]
      Starts Whip's REST API (`python -m whip --db DIR serve`, i.e. Flask's
      development server, threaded, as Whip ships it) on 127.0.0.1 on a
      free port in a subprocess, sends N sequential GET /ip/<ip> requests
      (plus ?datetime=... with --historical) with http.client over one
      keep-alive connection (reconnecting whenever the server closes it; the
      count is reported), reports requests/s and the server's CPU seconds,
      and stops the server. Same query generator as `lookups`. Note: the
      Werkzeug 2.2 development server answers every request with
      "Connection: close", so in practice each request uses a new TCP
      connection (connections_opened == n); it also logs every request
      (to a temporary file here), as it does when Whip is served this way.

Install Whip first (rerunnable, idempotent; see the comments in it for why
msgpack needs a rebuild on Python 3.11):

    benches/whip/install-whip.sh [VENV]   # default ~/.cache/whipstream-data/whip-venv

Run with that venv's python, or with any python3: if `whip` cannot be
imported, this script re-executes itself with $WHIP_VENV/bin/python
(default ~/.cache/whipstream-data/whip-venv). Only the standard library and
Whip (with its dependencies) are used.

Example:

    PY=~/.cache/whipstream-data/whip-venv/bin/python
    $PY whip_baseline.py load --db /tmp/whipdb SNAPDIR/*.jsonl.gz
    $PY whip_baseline.py lookups --db /tmp/whipdb --n 200000 --seed 1
    $PY whip_baseline.py lookups --db /tmp/whipdb --n 200000 --seed 1 --latest
    $PY whip_baseline.py rest --db /tmp/whipdb --n 2000 --seed 1
"""

import argparse
import datetime as dt
import gzip
import http.client
import io
import ipaddress
import json
import logging
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

DEFAULT_VENV = os.path.join(
    os.path.expanduser("~"), ".cache", "whipstream-data", "whip-venv")


def _import_whip_or_reexec():
    """Import whip, re-executing with the Whip venv's python if needed."""
    try:
        import whip  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.environ.get("WHIP_VENV", DEFAULT_VENV)
    venv_python = os.path.join(venv, "bin", "python")
    already = os.environ.get("WHIP_BASELINE_REEXEC") == "1"
    if os.path.exists(venv_python) and not already:
        os.environ["WHIP_BASELINE_REEXEC"] = "1"
        os.execv(venv_python, [venv_python] + sys.argv)
    sys.exit("whip_baseline: cannot import whip; install it with "
             "benches/whip/install-whip.sh (venv %s), or set WHIP_VENV"
             % venv)


_import_whip_or_reexec()

import msgpack  # noqa: E402
from whip.db import Database  # noqa: E402
from whip.reader import iter_json  # noqa: E402

log = logging.getLogger("whip_baseline")

META_FILE = "whip-baseline-meta.json"
DT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # the snapshots' format; Whip compares strings
IPV6_FRACTION = 0.25
WARMUP_QUERIES = 1000
REST_WARMUP_REQUESTS = 50


# ---------------------------------------------------------------- helpers

def emit(result):
    """Print one JSON line of results."""
    print(json.dumps(result, sort_keys=False), flush=True)


def environment():
    """Versions that matter for comparing numbers."""
    import plyvel
    import ujson
    return {
        "python": platform.python_version(),
        "msgpack": ".".join(map(str, msgpack.version)),
        "msgpack_c_ext": msgpack.Packer.__module__ == "msgpack._packer",
        "plyvel": plyvel.__version__,
        "leveldb": str(getattr(plyvel, "__leveldb_version__", None)),
        "ujson": ujson.__version__,
        "cpus": os.cpu_count(),
    }


def open_text(path):
    """Open a snapshot file (gzipped or not) as text, like whip-cli does."""
    if path.endswith(".gz"):
        return gzip.open(path, mode="rt", encoding="UTF-8")
    return io.open(path, mode="rt", encoding="UTF-8")


def snapshot_datetime(path):
    """The 'datetime' field of a snapshot's first record."""
    with open_text(path) as fp:
        for line in fp:
            if line.strip():
                return json.loads(line)["datetime"]
    raise SystemExit("whip_baseline: empty snapshot %s" % path)


def parse_dt(s):
    return dt.datetime.strptime(s, DT_FORMAT).replace(tzinfo=dt.timezone.utc)


def dir_size(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def read_meta(db_dir):
    path = os.path.join(db_dir, META_FILE)
    try:
        with open(path) as fp:
            return json.load(fp)
    except FileNotFoundError:
        return None


def check_db(db_dir):
    if not os.path.exists(os.path.join(db_dir, "CURRENT")):
        raise SystemExit("whip_baseline: %s is not a Whip (LevelDB) database;"
                         " run `load` first" % db_dir)


# ----------------------------------------------------------------- load

def cmd_load(args):
    db_dir = args.db
    if os.path.isdir(db_dir) and os.listdir(db_dir):
        if not args.force:
            raise SystemExit("whip_baseline: %s is not empty (use --force to "
                             "replace it)" % db_dir)
        if not os.path.exists(os.path.join(db_dir, "CURRENT")):
            raise SystemExit("whip_baseline: refusing to delete %s: not a "
                             "LevelDB directory" % db_dir)
        shutil.rmtree(db_dir)

    snapshots = [(snapshot_datetime(p), os.path.abspath(p))
                 for p in args.snapshots]
    snapshots.sort()
    log.info("loading %d snapshot(s) into %s (%s)", len(snapshots), db_dir,
             "incremental" if args.incremental else "one merged load")

    wall0, cpu0 = time.perf_counter(), time.process_time()
    db = Database(db_dir, create_if_missing=True)
    if args.incremental:
        per_snapshot = []
        for datetime_str, path in snapshots:
            w0 = time.perf_counter()
            with open_text(path) as fp:
                db.load(iter_json(fp))
            per_snapshot.append(round(time.perf_counter() - w0, 3))
    else:
        files = [open_text(path) for _, path in snapshots]
        try:
            db.load(*[iter_json(fp) for fp in files])
        finally:
            for fp in files:
                fp.close()
        per_snapshot = None
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0

    # Untimed: count records, then close so that the size on disk is final.
    records = sum(1 for _ in db.db.iterator(include_value=False))
    db.db.close()
    size = dir_size(db_dir)

    meta = {
        "snapshots": [p for _, p in snapshots],
        "first_datetime": snapshots[0][0],
        "last_datetime": snapshots[-1][0],
    }
    with open(os.path.join(db_dir, META_FILE), "w") as fp:
        json.dump(meta, fp, indent=1)

    result = {
        "bench": "whip-load",
        "db": os.path.abspath(db_dir),
        "snapshots": len(snapshots),
        "first_datetime": meta["first_datetime"],
        "last_datetime": meta["last_datetime"],
        "mode": "incremental" if args.incremental else "merged",
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF)
                             .ru_maxrss / 1024, 1),
        "db_bytes": size,
        "db_mib": round(size / 2**20, 2),
        "records": records,
    }
    if per_snapshot is not None:
        result["per_snapshot_wall_s"] = per_snapshot
    result["env"] = environment()
    emit(result)


# --------------------------------------------------------------- queries

def load_ranges(path):
    """Integer (begin, end) ranges of a snapshot, split into IPv4 and IPv6."""
    v4, v6 = [], []
    with open_text(path) as fp:
        for line in fp:
            if not line.strip():
                continue
            doc = json.loads(line)
            b = ipaddress.ip_address(doc["begin"])
            e = ipaddress.ip_address(doc["end"])
            (v4 if b.version == 4 else v6).append((int(b), int(e)))
    return v4, v6


def make_queries(n, rng, v4, v6, time_range):
    """n (ip, datetime-or-None) queries; see the module docstring."""
    if time_range is not None:
        t0 = int(parse_dt(time_range[0]).timestamp())
        t1 = int(parse_dt(time_range[1]).timestamp())
    queries = []
    for _ in range(n):
        if v6 and (not v4 or rng.random() < IPV6_FRACTION):
            b, e = rng.choice(v6)
            ip = str(ipaddress.IPv6Address(rng.randint(b, e)))
        else:
            b, e = rng.choice(v4)
            ip = str(ipaddress.IPv4Address(rng.randint(b, e)))
        when = None
        if time_range is not None:
            when = dt.datetime.fromtimestamp(
                rng.randint(t0, t1), dt.timezone.utc).strftime(DT_FORMAT)
        queries.append((ip, when))
    return queries


def query_setup(args, historical):
    """Resolve the sample file and time range; return the query params."""
    check_db(args.db)
    meta = read_meta(args.db) or {}
    sample = args.sample_from or (meta.get("snapshots") or [None])[-1]
    if not sample:
        raise SystemExit("whip_baseline: no --sample-from given and no %s in "
                         "the DB (not loaded by this script)" % META_FILE)
    time_range = None
    if historical:
        first = args.time_from or meta.get("first_datetime")
        last = args.time_to or meta.get("last_datetime")
        if not (first and last):
            raise SystemExit("whip_baseline: give --from and --to (no %s in "
                             "the DB)" % META_FILE)
        time_range = (first, last)
    log.info("sampling IPs from %s", sample)
    v4, v6 = load_ranges(sample)
    return sample, v4, v6, time_range


# --------------------------------------------------------------- lookups

def cmd_lookups(args):
    sample, v4, v6, time_range = query_setup(args, historical=not args.latest)
    rng = random.Random(args.seed)
    queries = make_queries(args.n, rng, v4, v6, time_range)
    warmup = make_queries(min(WARMUP_QUERIES, args.n),
                          random.Random("warmup-%d" % args.seed),
                          v4, v6, time_range)

    db = Database(args.db)
    if args.no_cache:
        uncached = Database.lookup.__wrapped__

        def lookup(ip, when):
            return uncached(db, ip, when)
    else:
        lookup = db.lookup
    for ip, when in warmup:
        lookup(ip, when)
    Database.lookup.cache_clear()

    no_hit = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for ip, when in queries:
        if lookup(ip, when) is None:
            no_hit += 1
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    cache = Database.lookup.cache_info()

    emit({
        "bench": "whip-lookups",
        "db": os.path.abspath(args.db),
        "n": args.n,
        "seed": args.seed,
        "latest": args.latest,
        "time_range": list(time_range) if time_range else None,
        "sample_from": sample,
        "ipv6_queries": sum(1 for ip, _ in queries if ":" in ip),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "lookups_per_s": round(args.n / wall, 1),
        "us_per_lookup": round(wall / args.n * 1e6, 2),
        "no_hit": no_hit,
        "lru_cache": "bypassed" if args.no_cache else
        {"hits": cache.hits, "misses": cache.misses},
        "env": environment(),
    })


# ------------------------------------------------------------------ rest

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid):
    """utime + stime of a process (all its threads), from /proc."""
    try:
        with open("/proc/%d/stat" % pid) as fp:
            fields = fp.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def request_path(ip, when):
    path = "/ip/" + urllib.parse.quote(ip, safe=":.")
    if when is not None:
        path += "?" + urllib.parse.urlencode({"datetime": when})
    return path


class Client(object):
    """Sequential GETs over one keep-alive connection, reconnecting if the
    server closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = None
        self.connects = 0

    def get(self, path):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                   timeout=30)
            self.connects += 1
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.will_close:
            self.close()
        return resp.status, body

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def wait_ready(proc, port, log_path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as fp:
                tail = fp.read()[-2000:]
            raise SystemExit("whip_baseline: Whip server exited with %s:\n%s"
                             % (proc.returncode, tail))
        try:
            client = Client(port)
            status, _ = client.get("/ip/127.0.0.1")
            client.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("whip_baseline: Whip server not ready after %ss" % timeout)


def cmd_rest(args):
    sample, v4, v6, time_range = query_setup(args, historical=args.historical)
    queries = make_queries(args.n, random.Random(args.seed), v4, v6,
                           time_range)
    warmup = make_queries(REST_WARMUP_REQUESTS,
                          random.Random("warmup-%d" % args.seed),
                          v4, v6, time_range)
    port = free_port()
    cmd = [sys.executable, "-m", "whip", "--db", os.path.abspath(args.db),
           "serve", "--host", "127.0.0.1", "--port", str(port)]
    log.info("starting %s", " ".join(cmd))
    with tempfile.TemporaryDirectory(prefix="whip-rest-") as tmp:
        log_path = os.path.join(tmp, "server.log")
        with open(log_path, "wb") as server_log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                    stdout=server_log, stderr=server_log,
                                    env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            wait_ready(proc, port, log_path)
            client = Client(port)
            for ip, when in warmup:
                client.get(request_path(ip, when))
            connects0 = client.connects
            paths = [request_path(ip, when) for ip, when in queries]

            empty = errors = 0
            cpu0 = proc_cpu_seconds(proc.pid)
            wall0 = time.perf_counter()
            for path in paths:
                status, body = client.get(path)
                if status != 200:
                    errors += 1
                elif body == b"{}":
                    empty += 1
            wall = time.perf_counter() - wall0
            cpu1 = proc_cpu_seconds(proc.pid)
            connects = client.connects - connects0
            client.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    emit({
        "bench": "whip-rest",
        "db": os.path.abspath(args.db),
        "server": "whip-cli serve (Flask %s development server, threaded)"
        % __import__("flask").__version__,
        "n": args.n,
        "seed": args.seed,
        "historical": args.historical,
        "time_range": list(time_range) if time_range else None,
        "sample_from": sample,
        "wall_s": round(wall, 3),
        "requests_per_s": round(args.n / wall, 1),
        "ms_per_request": round(wall / args.n * 1e3, 3),
        "server_cpu_s": round(cpu1 - cpu0, 2)
        if cpu0 is not None and cpu1 is not None else None,
        "connections_opened": connects,
        "keep_alive": connects <= 1,
        "empty_responses": empty,
        "errors": errors,
        "env": environment(),
    })


# ------------------------------------------------------------------ main

def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Baseline benchmarks of the original Python Whip.",
        epilog="See the module docstring for what each subcommand measures.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("load", help="time loading snapshots into a fresh DB")
    p.add_argument("--db", required=True, help="Whip DB directory to create")
    p.add_argument("--force", action="store_true",
                   help="replace an existing Whip DB at --db")
    p.add_argument("--incremental", action="store_true",
                   help="one Database.load() per snapshot, oldest first")
    p.add_argument("snapshots", nargs="+", metavar="SNAPSHOT")
    p.set_defaults(func=cmd_load)

    def query_args(p):
        p.add_argument("--db", required=True, help="Whip DB directory")
        p.add_argument("--n", type=int, required=True,
                       help="number of queries")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--sample-from", metavar="FILE",
                       help="snapshot whose ranges the IPs are drawn from "
                       "(default: the last snapshot `load` loaded)")
        p.add_argument("--from", dest="time_from", metavar="DATETIME",
                       help="earliest query time, " +
                       DT_FORMAT.replace("%", "%%") +
                       " (default: first loaded snapshot)")
        p.add_argument("--to", dest="time_to", metavar="DATETIME",
                       help="latest query time (default: last loaded "
                       "snapshot)")

    p = sub.add_parser("lookups", help="in-process Database.lookup() rate")
    query_args(p)
    p.add_argument("--latest", action="store_true",
                   help="query the latest version (datetime=None)")
    p.add_argument("--no-cache", action="store_true",
                   help="bypass the lru_cache around Database.lookup")
    p.set_defaults(func=cmd_lookups)

    p = sub.add_parser("rest", help="sequential GET /ip/<ip> rate")
    query_args(p)
    p.add_argument("--historical", action="store_true",
                   help="add ?datetime=<random time> to each request")
    p.set_defaults(func=cmd_rest)

    args = parser.parse_args(argv)
    if getattr(args, "n", 1) < 1:
        parser.error("--n must be positive")
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="%(asctime)s (%(name)s) %(levelname)s: %(message)s")
    args.func(args)


if __name__ == "__main__":
    main()
