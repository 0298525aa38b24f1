"""Public grid map (网格公示) of a large town: page size and time to first render.

Builds, in a scratch database, one town holding N synthetic edge-matched grids (default
10,000; codes generated on import) with one published grid worker each, renders the public
map as a standalone file with and without display simplification, and loads each file in
headless Chromium. Prints a table and a verdict against the targets (HTML < 5 MB, first
render < 3 s, with the default simplification); exits 0 only when both are met.

    .venv/bin/python bench/maps_bench.py [--grids 10000] [--repeat 3] [--densify 10] [--jitter 1]

The scratch database (``geogrid_mapsbench_<pid>``) is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import maps  # noqa: E402
from geogrid.access import scopes
from geogrid.areas import importing
from geogrid.core.settings import Settings  # noqa: E402
from geogrid.db import cluster
from geogrid.db import engine as db  # noqa: E402
from geogrid.people import assignments, persons
from maps.base import for_display  # noqa: E402

COUNTY, TOWN = "339905", "339905100"
CENTER = (120.60, 30.60)
METRIC_CRS = f"+proj=aeqd +lat_0={CENTER[1]} +lon_0={CENTER[0]} +datum=WGS84 +units=m +no_defs"
DB_PREFIX = "geogrid_mapsbench_"
TARGET_MB, TARGET_S = 5.0, 3.0
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Resolves with performance.now() (ms since navigation start) once the map has fired 'load'
# and a GeoJSON layer with all N grids is on it; polled on animation frames, so it is
# checked right after the page's scripts have run.
READY_JS = """(n) => {
    if (!window.L) return false;
    const map = Object.values(window).find(v => v instanceof L.Map);
    if (!map || !map._loaded) return false;
    const done = Object.values(window).some(v => v instanceof L.GeoJSON && map.hasLayer(v) && v.getLayers().length === n);
    return done ? performance.now() : false;
}"""


# --------------------------------------------------------------------------- synthetic town


def _outline(rng, radius: float) -> shapely.Polygon:
    """A smooth irregular star-shaped town outline around the origin (metres)."""
    t = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    r = np.ones_like(t)
    for m in range(2, 6):
        r += 0.25 / m * rng.uniform(0.5, 1.0) * np.cos(m * t + rng.uniform(0, 2 * np.pi))
    return shapely.Polygon(np.c_[radius * r * np.cos(t), radius * r * np.sin(t)])


def _jittered(line: shapely.LineString, rng, step: float, jitter: float) -> shapely.LineString:
    """A vertex every ``step`` metres, the inner ones moved up to ``jitter`` metres sideways:
    a digitised-looking edge. The end points (shared with other edges) stay put."""
    xy = shapely.get_coordinates(shapely.segmentize(line, step)) if step > 0 else shapely.get_coordinates(line)
    if jitter > 0 and len(xy) > 2:
        d = xy[-1] - xy[0]
        normal = np.array([-d[1], d[0]]) / (np.hypot(*d) or 1.0)
        xy[1:-1] += normal * rng.uniform(-jitter, jitter, (len(xy) - 2, 1))
    return shapely.LineString(xy)


def synthetic_town(n: int, *, cell_m2: float, densify: float, jitter: float, seed: int):
    """``n`` edge-matched lon/lat grids covering a town outline, and the outline.

    Voronoi cells of Lloyd-relaxed seeds; every Voronoi edge is densified and jittered once,
    then all edges and the outline are noded together and polygonized, so neighbours share
    their edges vertex for vertex. Faces are merged back into their seed's cell."""
    rng = np.random.default_rng(seed)
    shape = _outline(rng, 1.0)
    radius = np.sqrt(n * cell_m2 / shape.area)
    outline = _outline(np.random.default_rng(seed), radius)
    x0, y0, x1, y1 = outline.bounds
    pts = np.empty((0, 2))
    while len(pts) < n:
        p = rng.uniform((x0, y0), (x1, y1), (2 * n, 2))
        pts = np.vstack([pts, p[shapely.contains_xy(outline, p[:, 0], p[:, 1])]])
    pts = pts[:n]
    frame = shapely.box(x0, y0, x1, y1).buffer(radius)
    for _ in range(2):  # Lloyd relaxation: more even cells
        cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame))
        order = cKDTree(pts).query(shapely.get_coordinates(shapely.point_on_surface(cells)))[1]
        centroids = shapely.get_coordinates(shapely.centroid(shapely.intersection(cells, outline)))
        keep = shapely.contains_xy(outline, centroids[:, 0], centroids[:, 1])  # a seed never leaves the town
        pts[order[keep]] = centroids[keep]
    edges = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame, only_edges=True))
    lines = [_jittered(e, rng, densify, jitter) for e in edges]
    lines.append(_jittered(outline.exterior, rng, densify, 0.0))
    noded = shapely.unary_union(shapely.multilinestrings(lines))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    inside = shapely.contains_xy(outline.buffer(1e-6), shapely.get_coordinates(shapely.point_on_surface(faces)))
    faces = faces[inside]
    owner = cKDTree(pts).query(shapely.get_coordinates(shapely.point_on_surface(faces)))[1]
    grids = np.empty(n, dtype=object)
    for i in range(n):
        mine = faces[owner == i]
        grids[i] = mine[0] if len(mine) == 1 else shapely.coverage_union_all(mine)
    town = shapely.coverage_union_all(grids)
    to_lonlat = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)

    def lonlat(g):
        return shapely.set_precision(shapely.transform(g, lambda xy: np.c_[to_lonlat.transform(xy[:, 0], xy[:, 1])]),
                                     1e-7, mode="pointwise")

    grids = np.array([lonlat(g) for g in grids], dtype=object)
    town = lonlat(town)
    return grids, town


# --------------------------------------------------------------------------- the scratch database


def load(settings: Settings, grids, town) -> list[str]:
    """County, town, the grids (codes generated) and a published grid worker per grid."""
    engine = db.get_engine(settings)
    with db.transaction(engine) as session:
        importing.import_areas(session, [{"code": COUNTY, "name": "基准县", "level": "county"},
                                     {"code": TOWN, "name": "基准镇", "level": "town", "parent": COUNTY}],
                           [shapely.buffer(town, 0.01), town], settings, note="bench")
        records = [{"name": f"基准镇第{i + 1}网格", "level": "grid", "layer": "comprehensive", "parent": TOWN,
                    "households": 400, "population": 1200} for i in range(len(grids))]
        report = importing.import_areas(session, records, list(grids), settings, note="bench", max_spill_ratio=0.05)
        codes = report.codes
        persons.create_persons(session, [
            {"ref": f"b{i:06d}", "name": f"网格员{i:05d}", "phone": f"138{i:08d}", "name_public": True,
             "phone_public": True, "photo_public": True, "photo_url": f"https://example.invalid/photos/b{i:06d}.jpg"}
            for i in range(len(codes))])
        assignments.create_assignments(session, [
            {"person": f"b{i:06d}", "area": code, "role": "grid_worker_fulltime", "start_date": "2024-01-01",
             "duties": "专职网格员：日常巡查走访、基础信息采集、矛盾纠纷排查、事件及时上报"}
            for i, code in enumerate(codes)])
    return codes


# --------------------------------------------------------------------------- measurements


def render_public(settings: Settings, repeat: int) -> tuple[str, list[float], int]:
    """The standalone page, the render times, and the bytes of inlined assets in it."""
    engine = db.get_engine(settings)
    times, html = [], ""
    for _ in range(repeat):
        with db.transaction(engine) as session:
            session.info["principal"] = scopes.ANONYMOUS
            t = time.perf_counter()
            html = maps.render("public", session, settings, area=TOWN, inline=True)
            times.append(time.perf_counter() - t)
    with db.transaction(engine) as session:  # the same page linking its assets instead (as served)
        session.info["principal"] = scopes.ANONYMOUS
        linked = maps.render("public", session, settings, area=TOWN, inline=False)
    return html, times, len(html.encode()) - len(linked.encode())


def browser_times(browser, path: Path, n: int, repeat: int) -> tuple[list[float], list[float], list[str]]:
    first, load_event, problems = [], [], []
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:100]}"))
        page.goto(path.as_uri(), wait_until="commit", timeout=180_000)
        ms = page.wait_for_function(READY_JS, arg=n, polling="raf", timeout=180_000).json_value()
        page.wait_for_load_state("load")
        load_ms = page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
        first.append(ms / 1000)
        load_event.append(load_ms / 1000)
        context.close()
    return first, load_event, problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grids", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement (median and best shown)")
    ap.add_argument("--cell-m2", type=float, default=10_000.0, help="mean grid area (the 万米单元网格 size)")
    ap.add_argument("--densify", type=float, default=10.0, help="a boundary vertex every M metres (0: plain Voronoi)")
    ap.add_argument("--jitter", type=float, default=1.0, help="digitising noise of the inner vertices, metres")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--chromium", default=os.environ.get("GEOGRID_CHROMIUM") or shutil.which("chromium")
                    or "/usr/bin/chromium")
    ap.add_argument("--keep", action="store_true", help="keep the scratch database and the HTML files")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    base = Settings()
    cluster.up(base)
    name = f"{DB_PREFIX}{os.getpid()}"
    out_dir = Path(tempfile.mkdtemp(prefix="maps_bench_"))
    rows, ok = [], True
    try:
        t = time.perf_counter()
        grids, town = synthetic_town(args.grids, cell_m2=args.cell_m2, densify=args.densify, jitter=args.jitter,
                                     seed=args.seed)
        built = time.perf_counter() - t
        valid = bool(shapely.is_valid(grids).all())
        coverage_ok = bool(shapely.coverage_is_valid(grids))
        print(f"synthetic town: {len(grids):,} grids, {int(shapely.get_num_coordinates(grids).sum()):,} vertices, "
              f"mean {args.cell_m2:,.0f} m², vertex every {args.densify:g} m, jitter {args.jitter:g} m; "
              f"valid {valid}, edge-matched {coverage_ok} ({built:.1f} s)")
        name, url = cluster.process_database(base, DB_PREFIX)
        db.migrate(url)
        common = {"database_url": url, "state_dir": base.state_dir, "map_tiles": "none"}
        t = time.perf_counter()
        codes = load(Settings(**common), grids, town)
        print(f"loaded into {name}: {len(codes):,} grids under town {TOWN}, {len(codes):,} persons and assignments "
              f"({time.perf_counter() - t:.1f} s)")
        default_m = Settings.model_fields["map_simplify_m"].default
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            version = browser.version
            for simplify in (0.0, default_m):
                settings = Settings(**common, map_simplify_m=simplify)
                html, render_s, assets_bytes = render_public(settings, args.repeat)
                vertices = int(shapely.get_num_coordinates(for_display(grids, simplify)).sum())
                path = out_dir / f"public_simplify_{simplify:g}.html"
                path.write_text(html, encoding="utf-8")
                first, load_event, problems = browser_times(browser, path, len(codes), args.repeat)
                rows.append({"simplify": simplify, "default": simplify == default_m,
                             "mb": len(html.encode()) / 1e6, "assets_mb": assets_bytes / 1e6, "vertices": vertices,
                             "render": render_s, "first": first, "load": load_event, "problems": problems})
            browser.close()
    finally:
        if not args.keep:
            db.get_engine(Settings(database_url=cluster.database_url(base, name))).dispose()
            cluster.drop_database(base, name)
            shutil.rmtree(out_dir, ignore_errors=True)
        else:
            print(f"kept database {name} and pages in {out_dir}")

    def ms(values):
        return f"{statistics.median(values):6.2f} / {min(values):5.2f}"

    print(f"\npublic map, {args.grids:,} grids, standalone HTML (assets inlined), Chromium {version} headless, "
          f"{args.repeat} runs (median / best, seconds)")
    print(f"{'simplify_m':>12} {'HTML MB':>8} {'assets MB':>9} {'B/grid':>7} {'vertices':>10} {'python render':>16} "
          f"{'first render':>15} {'load event':>15}  errors")
    for r in rows:
        label = f"{r['simplify']:g}" + (" (default)" if r["default"] else "")
        per_grid = (r["mb"] - r["assets_mb"]) * 1e6 / args.grids
        print(f"{label:>12} {r['mb']:8.2f} {r['assets_mb']:9.2f} {per_grid:7,.0f} {r['vertices']:10,} {ms(r['render']):>16} "
              f"{ms(r['first']):>15} {ms(r['load']):>15}  {len(r['problems'])}")
    for r in rows:
        for p in r["problems"][:5]:
            print(f"  simplify {r['simplify']:g}: {p}")
    chosen = next(r for r in rows if r["default"])
    first_s = statistics.median(chosen["first"])
    ok = chosen["mb"] < TARGET_MB and first_s < TARGET_S and not chosen["problems"]
    raw = next(r for r in rows if not r["default"])
    print(f"VERDICT: {'PASS' if ok else 'FAIL'}: default simplification ({chosen['simplify']:g} m): "
          f"{chosen['mb']:.2f} MB (target < {TARGET_MB:g}), first render {first_s:.2f} s (target < {TARGET_S:g}); "
          f"without simplification {raw['mb']:.2f} MB, {statistics.median(raw['first']):.2f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
