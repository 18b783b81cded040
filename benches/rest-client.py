#!/usr/bin/env python3
"""Sequential GET /ip/<ip>[?datetime=t] requests against a running server.

    rest-client.py --port P --queries FILE [-n 20000] [--new-connection]

Reads {"ip","t"} query lines from FILE, sends them one after another over one
keep-alive connection (or a new connection per request), and prints one JSON line:
requests/s, errors, non-empty answers. Standard library only.
"""
import argparse
import http.client
import json
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--new-connection", action="store_true")
    a = ap.parse_args()
    paths = []
    with open(a.queries) as f:
        for line in f:
            q = json.loads(line)
            p = "/ip/" + urllib.parse.quote(q["ip"], safe=":.")
            if "t" in q:
                p += "?datetime=" + urllib.parse.quote(q["t"], safe=":")
            paths.append(p)
            if len(paths) >= a.n:
                break
    conn = None
    errors = found = 0
    t0 = time.perf_counter()
    for p in paths:
        if conn is None or a.new_connection:
            conn = http.client.HTTPConnection("127.0.0.1", a.port)
        conn.request("GET", p)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            errors += 1
        elif body != b"{}":
            found += 1
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = None
    secs = time.perf_counter() - t0
    print(json.dumps({"requests": len(paths), "seconds": round(secs, 3),
                      "requests_per_s": round(len(paths) / secs), "errors": errors,
                      "found": found, "keep_alive": not a.new_connection}))


if __name__ == "__main__":
    main()
