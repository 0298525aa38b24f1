"""Publication at province scale: vector tiles, OGC API Features pages, ogr2ogr and the
public map of N grids, each beside the obvious alternative in the same run.

    .venv/bin/python bench/publication_bench.py [--grids 50000] [--repeat 3] [--tiles 30]
                                                [--skip-real] [--keep-db]

1. Data: N edge-matched lon/lat grids (Voronoi cells of random seeds built in metres in a
   LAEA projection around lon 120.5, lat 29.25, clipped to a star-shaped outline of about
   Zhejiang's size, 118-123 E / 27-31.5 N, and reprojected all at once, so neighbours share
   vertices exactly) under towns (nearest-seed groups of about 60 grids, the union of their
   grids) under one county (their union: the public map's ``area`` selects by code prefix, so
   one county is what one page of N grids needs). Loaded with ``importing.import_areas``
   (codes of the grids generated) into a scratch database and published with
   ``generations.publish`` (timed: it includes the coverage simplification of the tile
   bands), then published again after a few grids were redrawn (timed).
2. Tiles over zooms 8-16 at random points inside grids: through HTTP to a live uvicorn of the
   app (its own process), COLD (tile_cache emptied) and WARM (cached) apart, and the bare
   render in-process (no cache, no HTTP); beside it, pg_tileserv-style direct SQL (ST_AsMVT /
   ST_AsMVTGeom over the raw current ``boundary`` rows, no simplification, no cache).
3. OGC API Features: every page of ``limit=1000`` following the next links, and bbox pages;
   beside it, pg_featureserv-style direct SQL building the same GeoJSON page.
4. ``ogr2ogr -f GPKG out.gpkg OAPIF:.../ogc <collection>`` of the whole layer, and the count.
5. The public map of the N grids in headless Chromium, phone and desktop: navigation start
   until the grids are drawn; beside it, the embedded-GeoJSON page (its size and load time).
6. The real Zhejiang data (``<repo>/../shared/data/real/zhejiang``, skipped when absent):
   province, cities and districts imported with repair as ``geogrid import --repair`` would,
   the admin layer published, then 2-4 on it.

Parts not built yet (no tile route, no OGC API, no tile map) are reported as such. Prints the
machine first, then one table: figure, target, PASS/FAIL; exits 0 only when every measured
target passes.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intake_load import Server  # noqa: E402  (bench/ is on sys.path when run)
from machine import describe, loadavg, scratch_database  # noqa: E402
from sqlalchemy import text  # noqa: E402

from geogrid.areas import importing, versions  # noqa: E402
from geogrid.core.settings import Settings  # noqa: E402
from geogrid.db import engine as db  # noqa: E402
from geogrid.publication import generations  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared/data/real/zhejiang"
COUNTY = "339901"
LAYER = "comprehensive"
CENTER = (120.5, 29.25)
METRIC_CRS = f"+proj=laea +lat_0={CENTER[1]} +lon_0={CENTER[0]} +datum=WGS84 +units=m +no_defs"
RADIUS_M = 190_000.0  # the outline's mean radius: about 113,000 km², Zhejiang is 105,500 km²
GRIDS_PER_TOWN = 60
ZOOMS = range(8, 17)
TILE_P50_MS, TILE_P99_MS, ITEMS_P99_MS, OGR_S, MAP_S = 10.0, 50.0, 100.0, 30.0, 2.0
VIEWPORTS = {"phone 390x844": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3,
                               "is_mobile": True, "has_touch": True},
             "desktop 1280x800": {"viewport": {"width": 1280, "height": 800}}}
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOT_BUILT = "not built yet"
GRID_ZOOM = 12  # a page opened at a grid (about 2 km² at 50,000 grids) shows it at this zoom or deeper

# --------------------------------------------------------------------------- results


class Results:
    """Rows of the final table: (section, measurement, figure, target, verdict)."""

    def __init__(self):
        self.rows: list[tuple[str, str, str, str, bool | None]] = []

    def add(self, section: str, what: str, figure: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append((section, what, figure, target, ok))
        mark = "" if ok is None else ("  PASS" if ok else "  FAIL")
        print(f"  [{section}] {what}: {figure}" + (f"  (target {target}){mark}" if target else ""), flush=True)

    def missing(self, section: str, what: str, why: str = NOT_BUILT) -> None:
        self.add(section, what, why, "", None)

    def print(self) -> bool:
        widths = [max(len(r[i]) for r in self.rows) for i in range(4)] if self.rows else [0] * 4
        print()
        head = ("section", "measurement", "figure", "target")
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  verdict")
        for section, what, figure, target, ok in self.rows:
            verdict = "" if ok is None else ("PASS" if ok else "FAIL")
            print("  ".join(s.ljust(w) for s, w in zip((section, what, figure, target), widths)) + "  " + verdict)
        failed = [r for r in self.rows if r[4] is False]
        missing = [r for r in self.rows if r[2] == NOT_BUILT]
        passed = [r for r in self.rows if r[4] is True]
        print(f"\nVERDICT: {'PASS' if not failed else 'FAIL'}: {len(passed)} targets met, {len(failed)} missed"
              + (f", {len(missing)} parts not built yet (not measured)" if missing else ""))
        return not failed


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def ms(values) -> str:
    return f"p50 {pct(values, 50) * 1000:7.2f} ms  p99 {pct(values, 99) * 1000:7.2f} ms  (n={len(values)})"


# --------------------------------------------------------------------------- synthetic province


def outline(radius: float) -> shapely.Polygon:
    """A star-shaped outline around the origin (metres)."""
    t = np.linspace(0, 2 * np.pi, 721)[:-1]
    r = 1 + 0.10 * np.sin(3 * t + 0.5) + 0.05 * np.sin(7 * t + 1.3) + 0.02 * np.sin(17 * t)
    return shapely.Polygon(np.c_[radius * r * np.cos(t), radius * r * np.sin(t)])


def synthetic_layer(n: int, seed: int) -> dict:
    """N lon/lat grids (an edge-matched coverage), their seeds (a point inside each), the town
    of each grid (nearest of N/60 town seeds) and the towns' and county's outlines."""
    rng = np.random.default_rng(seed)
    shape = outline(RADIUS_M)
    x0, y0, x1, y1 = shape.bounds
    pts = np.empty((0, 2))
    while len(pts) < n:
        p = rng.uniform((x0, y0), (x1, y1), (2 * n, 2))
        pts = np.vstack([pts, p[shapely.contains_xy(shape, p[:, 0], p[:, 1])]])
    pts = pts[:n]
    frame = shapely.box(x0, y0, x1, y1).buffer(RADIUS_M)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame, ordered=True))
    edge = ~shapely.contains(shape, cells)  # only the cells crossing the outline need clipping
    cells[edge] = shapely.intersection(cells[edge], shape)
    to_lonlat = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)
    # All coordinates at once: a vertex shared by neighbours becomes the same lon/lat in each.
    xy = shapely.get_coordinates(cells)
    lon, lat = to_lonlat.transform(xy[:, 0], xy[:, 1])
    grids = shapely.set_coordinates(cells.copy(), np.round(np.c_[lon, lat], 7))
    seeds = np.c_[to_lonlat.transform(pts[:, 0], pts[:, 1])]
    n_towns = min(999, max(1, math.ceil(n / GRIDS_PER_TOWN)))  # town codes have 3 digits
    town_of = cKDTree(pts[rng.choice(n, n_towns, replace=False)]).query(pts)[1]
    used = np.unique(town_of)
    town_of = np.searchsorted(used, town_of)
    order = np.argsort(town_of, kind="stable")  # grids town by town: their generated codes follow
    grids, seeds, town_of = grids[order], seeds[order], town_of[order]
    towns = np.array([shapely.coverage_union_all(grids[town_of == t]) for t in range(len(used))], dtype=object)
    return {"grids": grids, "seeds": seeds, "town_of": town_of, "towns": towns,
            "county": shapely.coverage_union_all(towns)}


def load_synthetic(settings: Settings, data: dict) -> list[str]:
    """County and towns (admin), then the grids (comprehensive; codes generated)."""
    engine = db.get_engine(settings)
    town_codes = [f"{COUNTY}{t + 1:03d}" for t in range(len(data["towns"]))]
    with db.transaction(engine) as session:
        importing.import_areas(
            session, [{"code": COUNTY, "name": "基准县", "level": "county"}]
            + [{"code": c, "name": f"基准第{t + 1}镇", "level": "town", "parent": COUNTY}
               for t, c in enumerate(town_codes)],
            [data["county"], *data["towns"]], settings, note="bench")
        seq: dict[int, int] = {}
        records = []
        for t in data["town_of"]:
            seq[t] = seq.get(t, 0) + 1
            records.append({"name": f"基准第{t + 1}镇第{seq[t]}网格", "level": "grid", "layer": LAYER,
                            "parent": town_codes[t], "households": 400, "population": 1200})
        report = importing.import_areas(session, records, list(data["grids"]), settings, note="bench",
                                        max_spill_ratio=0.05)
    return report.codes


def redraw_some(settings: Settings, data: dict, codes: list[str], count: int, rng) -> list[str]:
    """Move ``count`` interior vertices shared by three grids a little, in all three (the
    layer stays edge-matched): a planner's small redraw. Returns the codes changed."""
    grids = data["grids"]
    tree = shapely.STRtree(grids)
    changed: dict[int, shapely.Geometry] = {}
    for i in rng.permutation(len(grids)):
        if len(changed) >= 3 * count:
            break
        if i in changed:
            continue
        for v in shapely.get_coordinates(grids[i])[:-1]:
            holders = [j for j in tree.query(shapely.points(v), predicate="intersects") if j not in changed]
            if len(holders) != 3 or len({int(data["town_of"][j]) for j in holders}) != 1:
                continue  # three grids of one town: the town's outline stays as it is
            centre = shapely.get_coordinates(shapely.centroid(grids[i]))[0]
            new = v + 0.1 * (centre - v)

            def moved(g, v=v, new=new):
                def swap(xy):
                    xy = xy.copy()
                    xy[(xy == v).all(axis=1)] = new
                    return xy
                return shapely.transform(g, swap)

            candidate = {j: moved(grids[j]) for j in holders}
            if all(shapely.is_valid(g) for g in candidate.values()):
                changed.update(candidate)
                break
    engine = db.get_engine(settings)
    with db.transaction(engine) as session:
        for j, g in changed.items():
            versions.update_area(session, codes[j], settings, geometry=g, note="bench redraw")
    return [codes[j] for j in changed]


def timed_publish(settings: Settings, area: str, layer: str) -> tuple[float, dict]:
    engine = db.get_engine(settings)
    t = time.perf_counter()
    with db.transaction(engine) as session:  # no principal: the trusted local operator
        out = generations.publish(session, area, layer=layer, note="bench")
    return time.perf_counter() - t, out


# --------------------------------------------------------------------------- HTTP


class Http:
    """One keep-alive connection (http.client: a fraction of a millisecond of client CPU a
    request, so the figures are the server's)."""

    def __init__(self, base: str):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes, dict, float]:
        if path.startswith("http"):
            u = urllib.parse.urlsplit(path)
            path = u.path + (f"?{u.query}" if u.query else "")
        for attempt in (0, 1):
            try:
                t = time.perf_counter()
                self.conn.request("GET", path, headers=headers or {})
                r = self.conn.getresponse()
                body = r.read()
                return r.status, body, {k.lower(): v for k, v in r.getheaders()}, time.perf_counter() - t
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def api_paths(http_: Http) -> set[str]:
    status, body, _, _ = http_.get("/openapi.json")
    return set(json.loads(body)["paths"]) if status == 200 else set()


def tile_route(paths: set[str]) -> str | None:
    """The vector tile route's template, e.g. /tiles/{layer}/{z}/{x}/{y}.mvt."""
    found = sorted(p for p in paths if p.startswith("/tiles/") and "{z}" in p and "{x}" in p and "{y}" in p)
    return next((p for p in found if p.endswith(".mvt") or p.endswith(".pbf")), found[0] if found else None)


def tile_url(template: str, layer: str, z: int, x: int, y: int) -> str:
    out = template.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))
    head, _, rest = out.partition("{")
    return head + layer + rest.partition("}")[2] if rest else out


# --------------------------------------------------------------------------- tiles


def tile_xy(lon: np.ndarray, lat: np.ndarray, z: int) -> np.ndarray:
    n = 2 ** z
    x = np.floor((lon + 180.0) / 360.0 * n).astype(int)
    r = np.radians(lat)
    y = np.floor((1.0 - np.log(np.tan(r) + 1 / np.cos(r)) / np.pi) / 2.0 * n).astype(int)
    return np.c_[np.clip(x, 0, n - 1), np.clip(y, 0, n - 1)]


def pick_tiles(points: np.ndarray, per_zoom: int, rng) -> dict[int, list[tuple[int, int]]]:
    """Up to ``per_zoom`` distinct tiles a zoom, each over a point inside the layer."""
    out = {}
    pts = points[rng.permutation(len(points))]
    for z in ZOOMS:
        seen: dict[tuple[int, int], None] = {}
        for x, y in tile_xy(pts[:, 0], pts[:, 1], z):
            seen[(int(x), int(y))] = None
            if len(seen) >= per_zoom:
                break
        out[z] = list(seen)
    return out


# pg_tileserv's query for a table layer: the envelope in the table's SRID for the index, the raw
# geometries clipped and quantised by ST_AsMVTGeom, no simplification, no cache.
BASELINE_TILE_SQL = """
    WITH bounds AS (SELECT ST_TileEnvelope(:z, :x, :y) AS geom, ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => 256.0 / 4096), 4326) AS env),
    mvtgeom AS (
        SELECT ST_AsMVTGeom(ST_Transform(ST_Force2D(b.geom), 3857), bounds.geom, 4096, 256, true) AS geom,
               a.code, a.name, a.level_key AS level
        FROM boundary b JOIN area a ON a.id = b.area_id, bounds
        WHERE b.geom && bounds.env AND upper_inf(b.valid) AND a.layer_key = :layer AND a.retired_at IS NULL
    )
    SELECT ST_AsMVT(mvtgeom, :layer, 4096, 'geom') FROM mvtgeom"""


def tile_renderer():
    """The tile module's cache-less render, as ``f(session, layer, z, x, y) -> bytes | None``;
    None when the module is not there yet."""
    try:
        from geogrid.publication import tiles  # type: ignore[attr-defined]
    except ImportError:
        return None
    for name in ("render", "render_tile", "build_tile", "mvt"):
        fn = getattr(tiles, name, None)
        if callable(fn):
            return fn
    return None


def bench_tiles(res: Results, section: str, server: str, engine, layer: str, tiles: dict, repeat: int,
                template: str | None) -> None:
    sizes_base: dict[int, list[int]] = {z: [] for z in ZOOMS}
    base_t: dict[int, list[float]] = {z: [] for z in ZOOMS}
    for _ in range(repeat):
        with engine.connect() as conn:
            for z in ZOOMS:
                for x, y in tiles[z]:
                    t = time.perf_counter()
                    mvt = conn.execute(text(BASELINE_TILE_SQL), {"z": z, "x": x, "y": y, "layer": layer}).scalar()
                    base_t[z].append(time.perf_counter() - t)
                    sizes_base[z].append(len(mvt or b""))
    if template is None:
        res.missing(section, "tiles HTTP cold/warm (route /tiles/...)")
        for z in ZOOMS:
            res.add(section, f"z{z:<2} baseline direct SQL (pg_tileserv-style)",
                    f"{ms(base_t[z])}  {statistics.mean(sizes_base[z]) / 1024:6.1f} KB")
        return
    cold: dict[int, list[float]] = {z: [] for z in ZOOMS}
    warm: dict[int, list[float]] = {z: [] for z in ZOOMS}
    sizes: dict[int, list[int]] = {z: [] for z in ZOOMS}
    statuses: dict[int, int] = {}
    cache: dict[str, list[tuple[int, str]]] = {"cold": [], "warm": []}
    revalidate: list[float] = []
    etags: dict[str, str] = {}
    h = Http(server)
    try:
        for _ in range(repeat):
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE tile_cache"))
            for label, bucket in (("cold", cold), ("warm", warm)):
                for z in ZOOMS:
                    for x, y in tiles[z]:
                        url = tile_url(template, layer, z, x, y)
                        status, body, headers, s = h.get(url)
                        bucket[z].append(s)
                        statuses[status] = statuses.get(status, 0) + 1
                        cache[label].append((z, headers.get("x-tile-cache", "?")))
                        if headers.get("etag"):
                            etags[url] = headers["etag"]
                        if label == "cold":
                            sizes[z].append(len(body))
            for url, etag in etags.items():  # a browser's revalidation of a tile it holds
                status, _, _, s = h.get(url, {"If-None-Match": etag})
                revalidate.append(s)
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        h.close()
    render = tile_renderer()
    bare: dict[int, list[float]] = {z: [] for z in ZOOMS}
    if render is not None:
        from sqlalchemy.orm import Session

        for _ in range(repeat):
            with Session(engine) as session:
                for z in ZOOMS:
                    for x, y in tiles[z]:
                        t = time.perf_counter()
                        render(session, layer, z, x, y)
                        bare[z].append(time.perf_counter() - t)
    with engine.connect() as conn:
        first = conn.execute(text("SELECT min_zoom FROM published_layer WHERE layer_key = :layer"),
                             {"layer": layer}).scalar_one_or_none() or 0
    # Below the layer's first zoom a tile is empty by design (204, answered at once): such
    # zooms are reported, not counted in the figures over all zooms.
    shown = [z for z in ZOOMS if z >= first]
    res.add(section, "layer's first zoom (published_layer.min_zoom)", str(first),
            "grids from where a tile holds <= 500 on average")
    every_cold = [s for z in shown for s in cold[z]]
    every_warm = [s for z in shown for s in warm[z]]
    res.add(section, "tile answers (status: count)", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
            "200 (tiles over data), 204 below the first zoom, 304", set(statuses) <= {200, 204, 304})
    for label in ("cold", "warm"):
        found = [h for z, h in cache[label] if z >= first]  # below the first zoom nothing is cached
        seen = {k: found.count(k) for k in sorted(set(found))}
        want = "miss" if label == "cold" else "hit"
        res.add(section, f"X-Tile-Cache of the {label} pass", ", ".join(f"{k}: {v}" for k, v in seen.items()),
                f"all {want}", set(seen) == {want})
    for label, values in (("cold", cold), ("warm", warm)):
        for z in ZOOMS:
            v = values[z]
            if z < first:
                res.add(section, f"z{z:<2} HTTP {label} p50 / p99", ms(v) + "  (below the first zoom: 204)")
                continue
            res.add(section, f"z{z:<2} HTTP {label} p50 / p99", ms(v) + (f"  {statistics.mean(sizes[z]) / 1024:6.1f} KB"
                                                                     if label == "cold" else ""),
                    f"< {TILE_P50_MS:g} / < {TILE_P99_MS:g} ms",
                    pct(v, 50) * 1000 < TILE_P50_MS and pct(v, 99) * 1000 < TILE_P99_MS)
    for z in ZOOMS:
        if render is not None:
            res.add(section, f"z{z:<2} bare render in-process (no cache)", ms(bare[z]))
        res.add(section, f"z{z:<2} baseline direct SQL (pg_tileserv-style)",
                f"{ms(base_t[z])}  {statistics.mean(sizes_base[z]) / 1024:6.1f} KB")
    if render is None:
        res.missing(section, "bare render in-process (geogrid.publication.tiles)")
    res.add(section, "all zooms HTTP cold", ms(every_cold), f"< {TILE_P50_MS:g} / < {TILE_P99_MS:g} ms",
            pct(every_cold, 50) * 1000 < TILE_P50_MS and pct(every_cold, 99) * 1000 < TILE_P99_MS)
    res.add(section, "all zooms HTTP warm", ms(every_warm), f"< {TILE_P50_MS:g} / < {TILE_P99_MS:g} ms",
            pct(every_warm, 50) * 1000 < TILE_P50_MS and pct(every_warm, 99) * 1000 < TILE_P99_MS)
    res.add(section, "all zooms HTTP 304 (If-None-Match)", ms(revalidate))
    res.add(section, "all zooms baseline direct SQL", ms([s for z in ZOOMS for s in base_t[z]]))


# --------------------------------------------------------------------------- OGC API Features


def collection_id(h: Http, layer: str) -> str | None:
    """The OGC collection of a published layer: the one whose id is the layer's key or names it."""
    status, body, _, _ = h.get("/ogc/collections?f=json", {"Accept": "application/json"})
    if status != 200:
        if status != 404:
            print(f"    /ogc/collections answered {status}: {body[:300]!r}")
        return None
    ids = [c["id"] for c in json.loads(body).get("collections", [])]
    return next((i for i in ids if i == layer), next((i for i in ids if layer in i), None))


# pg_featureserv's page: offset paging in a stable order, each row's geometry as GeoJSON,
# the FeatureCollection assembled (here in SQL, pg_featureserv does it in Go).
BASELINE_ITEMS_SQL = """
    SELECT json_build_object('type', 'FeatureCollection', 'numberReturned', count(*),
        'features', coalesce(json_agg(json_build_object('type', 'Feature', 'id', t.code,
            'geometry', ST_AsGeoJSON(t.geom, 7)::json,
            'properties', json_build_object('code', t.code, 'name', t.name, 'level', t.level_key,
                                            'parent', t.parent_code, 'version', t.version, 'area_m2', t.area_m2,
                                            'published_at', t.published_at))), '[]'::json))::text
    FROM (SELECT * FROM public_area WHERE layer_key = :layer {where} ORDER BY code LIMIT :limit OFFSET :offset) t"""


def walk_items(h: Http, path: str) -> tuple[list[float], int, set, list[int]]:
    """Every page from ``path`` on, following rel=next: times, features, ids, statuses."""
    times, ids, statuses, n = [], set(), [], 0
    while path:
        status, body, _, s = h.get(path, {"Accept": "application/geo+json"})
        statuses.append(status)
        times.append(s)
        if status != 200:
            break
        page = json.loads(body)
        n += len(page.get("features", []))
        ids.update(f.get("id") for f in page.get("features", []))
        path = next((link["href"] for link in page.get("links", []) if link.get("rel") == "next"), None)
        if len(times) > 100_000:
            break
    return times, n, ids, statuses


def bare_items(engine, layer: str, bboxes: list, repeat: int) -> tuple[list[float], list[float], int] | str:
    """The domain's items pages in-process (``features.items``, no HTTP): every page of the
    layer by its cursors, and the bbox pages; or why not."""
    try:
        from geogrid.publication import features
    except ImportError:
        return NOT_BUILT
    import datetime as dt
    from zoneinfo import ZoneInfo

    from sqlalchemy.orm import Session

    tz, today = ZoneInfo("Asia/Shanghai"), dt.date.today()
    pages, bbox_t, n = [], [], 0
    try:
        with Session(engine) as session:
            collection = features.resolve(session, layer)
            for _ in range(repeat):
                after, n = None, 0
                while True:
                    params = {"limit": "1000", **({"after": after} if after else {})}
                    t = time.perf_counter()
                    page = features.items(session, collection, features.item_query(collection, params, tz), today=today)
                    pages.append(time.perf_counter() - t)
                    n += page.returned
                    after = page.next_after
                    if not after:
                        break
                for b in bboxes:
                    params = {"limit": "1000", "bbox": ",".join(f"{v:.6f}" for v in b)}
                    t = time.perf_counter()
                    features.items(session, collection, features.item_query(collection, params, tz), today=today)
                    bbox_t.append(time.perf_counter() - t)
    except (AttributeError, TypeError) as exc:  # the module's interface moved on: say so, do not fail
        return f"features.items not callable as expected ({exc})"
    return pages, bbox_t, n


def bench_items(res: Results, section: str, server: str, engine, layer: str, expected: int, bboxes: list,
                repeat: int) -> str | None:
    repeat = max(repeat, math.ceil(20 / math.ceil(expected / 1000)))  # at least 20 full pages timed
    bare = bare_items(engine, layer, bboxes, repeat)
    if isinstance(bare, str):
        res.missing(section, "items pages in-process (geogrid.publication.features)", bare)
    else:
        res.add(section, f"items pages of 1,000 in-process (features.items, {bare[2]:,} features)", ms(bare[0]))
        res.add(section, "items bbox pages in-process", ms(bare[1]))
    base_pages, base_bbox = [], []
    with engine.connect() as conn:
        for _ in range(repeat):
            for offset in range(0, expected, 1000):
                t = time.perf_counter()
                conn.execute(text(BASELINE_ITEMS_SQL.format(where="")),
                             {"layer": layer, "limit": 1000, "offset": offset}).scalar()
                base_pages.append(time.perf_counter() - t)
            for b in bboxes:
                t = time.perf_counter()
                conn.execute(text(BASELINE_ITEMS_SQL.format(
                    where="AND geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326) "
                          "AND ST_Intersects(geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))")),
                    {"layer": layer, "limit": 1000, "offset": 0, **dict(zip(("x0", "y0", "x1", "y1"), b))}).scalar()
                base_bbox.append(time.perf_counter() - t)
    h = Http(server)
    try:
        cid = collection_id(h, layer)
        if cid is None:
            res.missing(section, "OGC items pages (/ogc/collections/{id}/items)")
            res.add(section, "baseline direct SQL pages of 1,000 (pg_featureserv-style)", ms(base_pages))
            res.add(section, "baseline direct SQL bbox pages", ms(base_bbox))
            return None
        pages, counts, bbox_t, statuses = [], [], [], []
        for _ in range(repeat):
            times, n, ids, st = walk_items(h, f"/ogc/collections/{cid}/items?limit=1000")
            pages += times
            counts.append((n, len(ids)))
            statuses += st
            for b in bboxes:
                status, _, _, s = h.get(f"/ogc/collections/{cid}/items?limit=1000&bbox=" + ",".join(f"{v:.6f}" for v in b),
                                        {"Accept": "application/geo+json"})
                statuses.append(status)
                bbox_t.append(s)
    finally:
        h.close()
    n, unique = counts[-1]
    res.add(section, f"items walk of collection {cid!r} (limit=1000, next links)",
            f"{n:,} features, {unique:,} distinct ids in {len(pages) // repeat} pages", f"{expected:,}",
            n == expected and unique == expected and set(statuses) == {200})
    res.add(section, "items page of 1,000", ms(pages), f"p99 < {ITEMS_P99_MS:g} ms", pct(pages, 99) * 1000 < ITEMS_P99_MS)
    res.add(section, "items bbox page (limit=1000)", ms(bbox_t), f"p99 < {ITEMS_P99_MS:g} ms",
            pct(bbox_t, 99) * 1000 < ITEMS_P99_MS)
    res.add(section, "baseline direct SQL pages of 1,000 (pg_featureserv-style)", ms(base_pages))
    res.add(section, "baseline direct SQL bbox pages", ms(base_bbox))
    return cid


def bench_ogr2ogr(res: Results, section: str, server: str, cid: str | None, expected: int, work: Path) -> None:
    if cid is None:
        res.missing(section, "ogr2ogr -f GPKG ... OAPIF:")
        return
    if shutil.which("ogr2ogr") is None:
        res.missing(section, "ogr2ogr -f GPKG ... OAPIF:", "ogr2ogr not installed (apt install gdal-bin)")
        return
    import pyogrio

    for label, extra, target in (("ogr2ogr (GDAL's default page size)", [], True),
                                 ("ogr2ogr -oo PAGE_SIZE=1000", ["-oo", "PAGE_SIZE=1000"], False)):
        out = work / f"out_{len(extra)}.gpkg"
        out.unlink(missing_ok=True)
        cmd = ["ogr2ogr", "-f", "GPKG", *extra, str(out), f"OAPIF:{server}/ogc", cid]
        env = {**os.environ, "CPL_DEBUG": "ON"}
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
        took = time.perf_counter() - t
        requests = sum(1 for line in done.stderr.splitlines() if "/items" in line and "http" in line.lower())
        if done.returncode != 0:
            res.add(section, label, f"failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}",
                    f"< {OGR_S:g} s", False if target else None)
            continue
        count = pyogrio.read_info(out)["features"]
        res.add(section, label, f"{took:6.1f} s, {count:,} features, ~{requests} item requests",
                f"< {OGR_S:g} s, {expected:,}" if target else "", (took < OGR_S and count == expected) if target
                else None)


# --------------------------------------------------------------------------- the public map

# The page is drawn when Leaflet has fired 'load' and either a GeoJSON layer with all N grids is
# on the map, or every vector-tile layer (Leaflet.VectorGrid: a GridLayer, not a TileLayer) has
# all its current tiles drawn, or sits below its minZoom (nothing to draw there) unless
# ``grids`` asks for the grid tiles themselves (a page opened at a grid: also not before the map
# has zoomed to it, ``zoom``). Polled on animation frames; answers the time
# (ms since navigation start), the zoom and how many vector tiles are drawn.
READY_JS = """(arg) => {
    if (!window.L) return false;
    const map = Object.values(window).find(v => v instanceof L.Map);
    if (!map || !map._loaded) return false;
    const zoom = map.getZoom();
    if (zoom < arg.zoom) return false;  // opened at a grid: not before the map has gone there
    let geojson = false, vector = [];
    map.eachLayer(l => {
        if (l instanceof L.GeoJSON && l.getLayers().length === arg.n) geojson = true;
        if (l instanceof L.GridLayer && !(l instanceof L.TileLayer)) vector.push(l);
    });
    if (geojson) return {ms: performance.now(), zoom: zoom, tiles: 0, below: false};
    if (!vector.length) return false;
    let drawn = 0, below = false;
    for (const l of vector) {
        if (zoom < (l.options.minZoom || 0)) { below = true; continue; }
        const tiles = Object.values(l._tiles).filter(t => t.current);
        if (l._loading || !tiles.length || !tiles.every(t => t.loaded)) return false;
        drawn += tiles.length;
    }
    if (arg.grids && (below || !drawn)) return false;
    return {ms: performance.now(), zoom: zoom, tiles: drawn, below: below};
}"""


def page_bytes(page) -> float:
    return page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation')[0];
        return (nav.encodedBodySize || 0) + performance.getEntriesByType('resource').reduce((s, e) => s + (e.encodedBodySize || 0), 0);
    }""")


def open_map(browser, url: str, n: int, viewport: dict, repeat: int, grids: bool) -> dict:
    first, sizes, tiles, zooms, below, problems = [], [], [], [], [], []
    for _ in range(repeat):
        context = browser.new_context(**viewport)
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:100]}"))
        page.goto(url, wait_until="commit", timeout=300_000)
        got = page.wait_for_function(READY_JS, arg={"n": n, "grids": grids, "zoom": GRID_ZOOM if grids else 0}, polling="raf",
                                     timeout=300_000).json_value()
        first.append(got["ms"] / 1000)
        zooms.append(got["zoom"])
        below.append(got["below"])
        page.wait_for_load_state("load")
        sizes.append(page_bytes(page))
        tiles.append(page.evaluate("() => performance.getEntriesByType('resource').filter(e => e.name.includes('/tiles/')).length"))
        context.close()
    return {"first": first, "bytes": statistics.median(sizes), "tiles": statistics.median(tiles),
            "zoom": statistics.median(zooms), "below": any(below), "problems": problems}


def bench_map(res: Results, section: str, settings: Settings, n: int, grid: str, repeat: int, chromium: str,
              logs: Path) -> None:
    """The public page of the whole area and opened at one grid (``grid=``: the printed
    board's QR code), tiled (default settings; the first visit after a publication with an
    empty tile cache, then warm) and with the grids embedded as GeoJSON."""
    from playwright.sync_api import sync_playwright

    has_switch = "tiles_above" in Settings.model_fields
    variants = [("tiles", {}), ("GeoJSON", {"GEOGRID_TILES_ABOVE": str(10 ** 9)} if has_switch else {})]
    pages = [("whole area", f"/maps/public?area={COUNTY}&layer={LAYER}", False),
             ("at a grid", f"/maps/public?area={COUNTY}&layer={LAYER}&grid={grid}", True)]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for label, extra in variants:
            if label == "tiles" and not has_switch:
                res.missing(section, "public map on tiles (settings.tiles_above)")
                continue
            saved = {k: os.environ.get(k) for k in extra}
            os.environ.update(extra)
            server = Server(settings.database_url, settings.state_dir, 1, logs / f"serve_map_{label}.log")
            try:
                server.wait_ready(120)
                h = Http(server.base)
                status, body, _, s = h.get(pages[0][1])
                h.close()
                uses_tiles = b"tiledLayer" in body or b"/tiles/" in body
                if label == "tiles" and not uses_tiles:
                    res.add(section, f"{label} page: the page does not use tiles at {n:,} grids",
                            "GeoJSON page served", "tiles", False)
                res.add(section, f"{label} page: server answer", f"{status}, {len(body) / 1e6:.2f} MB HTML in {s:.2f} s")
                for what, path, grids in pages:
                    for vp_name, vp in VIEWPORTS.items():
                        runs = [("cold", 1), ("warm", repeat)] if uses_tiles else [("", repeat)]
                        for cache, times in runs:
                            if cache == "cold":  # the first visitor after a publication
                                with db.get_engine(settings).begin() as conn:
                                    conn.execute(text("TRUNCATE tile_cache"))
                            got = open_map(browser, server.base + path, n, vp, times, grids)
                            report_map(res, section, f"{label} page {what}{', ' + cache if cache else ''}, {vp_name}",
                                       got, n, uses_tiles)
            finally:
                server.stop()
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        browser.close()


def report_map(res: Results, section: str, label: str, got: dict, n: int, uses_tiles: bool) -> None:
    shown = ("below the grids' first zoom: outlines only" if got["below"]
             else f"{got['tiles']:.0f} tiles" if uses_tiles else f"{n:,} grids")
    res.add(section, f"{label}: to drawn",
            f"median {statistics.median(got['first']):.2f} s, best {min(got['first']):.2f} s; "
            f"zoom {got['zoom']:.0f}, {shown}; {got['bytes'] / 1e6:.2f} MB transferred, {len(got['problems'])} errors",
            f"< {MAP_S:g} s" if uses_tiles else "",
            (statistics.median(got["first"]) < MAP_S and not got["problems"]) if uses_tiles else None)
    for p in got["problems"][:3]:
        print(f"    {p}")


# --------------------------------------------------------------------------- real data


def load_real(settings: Settings) -> dict:
    """Province, cities, districts as ``geogrid import --repair`` would take them."""
    from geogrid.io import files

    engine = db.get_engine(settings)
    counts = {}
    with db.transaction(engine) as session:
        for path, level, extra in [(REAL / "province_330000_outline.json", "province", {"fields": {"parent": "-"}}),
                                   (REAL / "province_330000_cities.json", "city", {})]\
                + [(p, "county", {}) for p in sorted(REAL.glob("city_*_districts.json"))]:
            read = files.read_features(path, fields=extra.get("fields"))
            report = importing.import_areas(session, read.records, read.geoms, settings, overrides={"level": level},
                                            repair=True, max_spill_ratio=0.25, note=f"import {path.name}")
            counts[level] = counts.get(level, 0) + report.imported
    return counts


def random_points_in(geoms, n: int, rng) -> np.ndarray:
    """``n`` random points inside the given polygons (area-weighted by bounding box)."""
    out = []
    tree = shapely.STRtree(geoms)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    while len(out) < n:
        p = rng.uniform((x0, y0), (x1, y1), (4 * n, 2))
        hit = tree.query(shapely.points(p), predicate="within")[0]
        out.extend(p[np.unique(hit)])
    return np.asarray(out[:n])


# --------------------------------------------------------------------------- main


def run_layer(res: Results, section: str, settings: Settings, layer: str, expected: int, points: np.ndarray,
              span: float, args, rng, work: Path, logs: Path) -> None:
    """Tiles, items and ogr2ogr of one published layer through a server of its own;
    ``span``: the side of the bbox pages, degrees."""
    engine = db.get_engine(settings)
    server = Server(settings.database_url, settings.state_dir, 1, logs / f"serve_{section}.log")
    try:
        server.wait_ready(120)
        h = Http(server.base)
        paths = api_paths(h)
        h.close()
        template = tile_route(paths)
        tiles = pick_tiles(points, args.tiles, rng)
        print(f"{section}: tiles a zoom " + ", ".join(f"z{z} {len(t)}" for z, t in tiles.items())
              + f"; route {template or NOT_BUILT}; load average {loadavg()}", flush=True)
        if "tiles" in args.parts:
            bench_tiles(res, section, server.base, engine, layer, tiles, args.repeat, template)
        bboxes = [(x - span / 2, y - span / 2, x + span / 2, y + span / 2) for x, y in points[:20]]
        cid = None
        if "items" in args.parts or "ogr2ogr" in args.parts:
            print(f"{section}: items; load average {loadavg()}", flush=True)
            cid = bench_items(res, section, server.base, engine, layer, expected, bboxes, args.repeat)
        if "ogr2ogr" in args.parts:
            print(f"{section}: ogr2ogr; load average {loadavg()}", flush=True)
            bench_ogr2ogr(res, section, server.base, cid, expected, work)
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grids", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3, help="passes over the sampled tiles and pages")
    ap.add_argument("--tiles", type=int, default=30, help="distinct tiles a zoom (fewer where the layer has fewer)")
    ap.add_argument("--redraw", type=int, default=2, help="vertices moved before the second publication (3 grids each)")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--parts", default="tiles,items,ogr2ogr,map",
                    type=lambda v: set(v.split(",")), help="what to measure (default all: tiles,items,ogr2ogr,map)")
    ap.add_argument("--keep-db", action="store_true", help="keep the scratch databases")
    ap.add_argument("--chromium", default=os.environ.get("GEOGRID_CHROMIUM") or shutil.which("chromium")
                    or "/usr/bin/chromium")
    args = ap.parse_args()

    import fastapi

    print(describe(shapely=shapely.__version__, GEOS=".".join(map(str, shapely.geos_version)),
                   fastapi=fastapi.__version__))
    res = Results()
    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="publication_bench_"))
    logs = work
    os.environ.setdefault("GEOGRID_MAP_TILES", "none")  # no basemap from the internet in the browser runs
    try:
        t = time.perf_counter()
        data = synthetic_layer(args.grids, args.seed)
        grids = data["grids"]
        print(f"synthetic layer: {len(grids):,} grids, {int(shapely.get_num_coordinates(grids).sum()):,} vertices, "
              f"{len(data['towns'])} towns in county {COUNTY}; bounds "
              + ", ".join(f"{v:.2f}" for v in shapely.total_bounds(grids))
              + f"; valid {bool(shapely.is_valid(grids).all())}, edge-matched {bool(shapely.coverage_is_valid(grids))} "
              f"({time.perf_counter() - t:.1f} s)", flush=True)
        sec = f"{args.grids // 1000}k grids" if args.grids >= 1000 else f"{args.grids} grids"
        with scratch_database("geogrid_pubbench_", keep=args.keep_db) as (base, url):
            settings = Settings(database_url=url, state_dir=base.state_dir, map_tiles="none")
            with db.get_engine(settings).connect() as conn:
                pg = conn.execute(text("SELECT split_part(version(), ' ', 2), postgis_lib_version()")).one()
            print(f"PostgreSQL {pg[0]}, PostGIS {pg[1]}; GDAL {gdal_version()}")
            t = time.perf_counter()
            codes = load_synthetic(settings, data)
            res.add(sec, "import (import_areas: county, towns, grids)", f"{time.perf_counter() - t:.1f} s, "
                    f"{len(codes):,} grids")
            took, out = timed_publish(settings, COUNTY, "admin")
            res.add(sec, "publish admin layer (county and towns)", f"{took:.2f} s, {out['added']:,} added")
            took, out = timed_publish(settings, COUNTY, LAYER)
            res.add(sec, "publish grid layer (first, with tile bands)", f"{took:.1f} s, {out['added']:,} added")
            changed = redraw_some(settings, data, codes, args.redraw, rng)
            took, out = timed_publish(settings, COUNTY, LAYER)
            res.add(sec, f"publish again after {len(changed)} grids redrawn", f"{took:.1f} s, {out['changed']} changed, "
                    f"{out['unchanged']:,} unchanged", f"{len(changed)} changed", out["changed"] == len(changed))
            points = data["seeds"]
            # bbox pages of about 1,000 grids where the layer is that large
            span = min(1.0, math.sqrt(data["county"].area * 1000 / len(codes)))
            run_layer(res, sec, settings, LAYER, len(codes), points, span, args, rng, work, logs)
            if "map" in args.parts:
                print(f"{sec}: public map; load average {loadavg()}", flush=True)
                grid = codes[int(rng.integers(len(codes)))]
                bench_map(res, sec, settings, len(codes), grid, args.repeat, args.chromium, logs)
        if args.skip_real:
            print("real data: skipped (--skip-real)")
        elif not REAL.exists():
            print(f"real data: skipped ({REAL} is not present)")
        else:
            with scratch_database("geogrid_pubbench_real_", keep=args.keep_db) as (base, url):
                settings = Settings(database_url=url, state_dir=base.state_dir, map_tiles="none")
                t = time.perf_counter()
                counts = load_real(settings)
                res.add("zhejiang", "import with repair", f"{time.perf_counter() - t:.1f} s, "
                        + ", ".join(f"{v} {k}" for k, v in counts.items()))
                took, out = timed_publish(settings, "330000", "admin")
                res.add("zhejiang", "publish admin layer (with tile bands)", f"{took:.1f} s, {out['added']} added")
                engine = db.get_engine(settings)
                with engine.connect() as conn:
                    wkb = conn.execute(text("SELECT ST_AsBinary(geom) FROM public_area WHERE level_key = 'county'")).scalars()
                    districts = shapely.from_wkb([bytes(w) for w in wkb])
                points = random_points_in(districts, 2000, rng)
                run_layer(res, "zhejiang", settings, "admin", sum(counts.values()), points, 0.5, args, rng, work, logs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at the end {loadavg()}")
    return 0 if res.print() else 1


def gdal_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        return subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True, timeout=10).stdout.split()[1].rstrip(",")
    return "?"


if __name__ == "__main__":
    sys.exit(main())
