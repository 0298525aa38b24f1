"""Benchmark of bulk point-in-grid routing: geogrid's PointRouter against geopandas.sjoin.

    .venv/bin/python bench/routing_bench.py [--points 1000000] [--grids 10000] [--repeat 5]
                                            [--sample 2000] [--densify M] [--seed 20240601]
                                            [--skip-real] [--skip-postgis]

1. A synthetic layer of ``--grids`` lon/lat polygons: Voronoi cells of random seeds around
   lon 120.3, lat 30.2, clipped to a wavy outline, so neighbours share vertices exactly. 20
   grids are grown into their neighbours (overlaps: points inside two interiors) and 20 seeds'
   grids are dropped (holes: points in no grid). Codes are a random permutation, so "lowest
   code" differs from "lowest index". ``--densify M`` adds a vertex every ~M metres along every
   edge (bit-identical on both sides of a shared edge).
2. ``--points`` points: uniform in the layer's bounding box (with a margin), 1 % of them exactly
   on grid vertices or edge midpoints (points on shared boundaries).
3. Build and routing timed separately, best/median of ``--repeat`` runs:
   ``PointRouter(codes, geoms)`` then ``route(x, y)``; GeoPandas: GeoDataFrame + ``.sindex``
   (build), ``points_from_xy`` (reported apart), ``geopandas.sjoin(points, grids,
   predicate="intersects")`` (routing) and, apart, the resolution of points with several rows
   by PointRouter's rule (interior first, then lowest code). The answers (index arrays) must be
   identical. The verdict compares sjoin alone with route (the conservative ratio).
4. The real Zhejiang districts, when ``<repo>/../shared/data/real/zhejiang`` exists (90
   districts from city_*_districts.json; invalid ones made valid with shapely.make_valid):
   the same with ``--points`` random points in the province's bounding box.
5. PostGIS: both layers loaded into a scratch database (plain table + GiST index); for a
   ``--sample`` of points (uniform, grid vertices, edge midpoints, points in overlaps) the
   covering grids come from ``ST_Covers`` and the tie rule is applied in SQL (``NOT
   ST_Contains`` first, then code), as ``GET /api/locate`` does. 100 % agreement required.
   The scratch database is dropped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import shapely

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from machine import describe, loadavg  # noqa: E402  (bench/ is on sys.path when run)

from geogrid.geo.routing import PointRouter  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared/data/real/zhejiang"
CENTRE = (120.3, 30.2)
CELL_M = 300.0  # mean synthetic grid: about 300 m across
M_PER_DEG = 111_320.0
TARGET_SPEEDUP = 5.0


# --------------------------------------------------------------------------------------------
# helpers


def fmt_s(x: float) -> str:
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def timed(fn, repeat: int, setup=None):
    """Best and median wall time of ``repeat`` calls of fn (setup() untimed before each);
    also the last result."""
    times, out = [], None
    for _ in range(repeat):
        arg = setup() if setup else None
        gc.collect()
        t = time.perf_counter()
        out = fn(arg) if setup else fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), out


def copies(geoms) -> np.ndarray:
    """Fresh geometry objects (shapely.prepare mutates its input: every build starts cold)."""
    return shapely.from_wkb(shapely.to_wkb(geoms))


def polygonal(geom):
    """Polygon or MultiPolygon parts of a make_valid result."""
    if shapely.get_type_id(geom) in (3, 6):
        return geom
    parts = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in (3, 6)]
    return shapely.union_all(parts)


def densify(geoms, step: float) -> np.ndarray:
    """A vertex every ~step (same units) along every edge, interpolated from the edge's
    lexicographically smaller end: a shared edge gets bit-identical new vertices in both of
    its polygons (shapely.segmentize interpolates in each ring's own direction)."""
    geoms = np.asarray(geoms, dtype=object)
    parts, part_geom = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    seg = np.flatnonzero(ring_of[:-1] == ring_of[1:])
    p, q = xy[seg], xy[seg + 1]
    swap = (p[:, 0] > q[:, 0]) | ((p[:, 0] == q[:, 0]) & (p[:, 1] > q[:, 1]))
    a, b = np.where(swap[:, None], q, p), np.where(swap[:, None], p, q)
    pieces = np.maximum(1, np.ceil(np.hypot(*(b - a).T) / step)).astype(np.int64)
    row = np.repeat(np.arange(len(seg)), pieces)
    k = np.arange(len(row)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    kk = np.where(swap[row], pieces[row] - k, k)
    out = a[row] + (b[row] - a[row]) * (kk / pieces[row])[:, None]
    out[k == 0] = p[row[k == 0]]
    polys = shapely.polygons(shapely.linearrings(out, indices=ring_of[seg][row]), indices=ring_part)
    if (np.bincount(part_geom, minlength=len(geoms)) == 1).all():
        return polys
    return shapely.multipolygons(polys, indices=part_geom)


def resolve(p_idx, g_idx, x, y, geoms, rank, n_points) -> tuple[np.ndarray, int]:
    """One grid per point from (point, grid) pairs: interior first, then lowest code (rank);
    -1 for points without a pair. Also the number of points with several pairs."""
    out = np.full(n_points, -1, dtype=np.int64)
    if len(p_idx) == 0:
        return out, 0
    counts = np.bincount(p_idx, minlength=n_points)
    single = counts[p_idx] == 1
    out[p_idx[single]] = g_idx[single]
    mp, mg = p_idx[~single], g_idx[~single]
    if len(mp):
        on_edge = ~shapely.contains_xy(geoms[mg], x[mp], y[mp])
        order = np.lexsort((rank[mg], on_edge, mp))
        mp, mg = mp[order], mg[order]
        first = np.r_[True, mp[1:] != mp[:-1]]
        out[mp[first]] = mg[first]
    return out, int((counts > 1).sum())


def code_rank(codes) -> np.ndarray:
    codes = np.asarray(codes, dtype=object).astype(str)
    return np.argsort(np.argsort(codes, kind="stable"), kind="stable")


# --------------------------------------------------------------------------------------------
# layers and points


def synthetic_layer(n: int, seed: int, densify_m: float | None, n_gaps: int = 20, n_overlaps: int = 20):
    rng = np.random.default_rng(seed)
    cx, cy = CENTRE
    kx = 1 / (M_PER_DEG * np.cos(np.radians(cy)))  # degrees of lon per metre
    ky = 1 / M_PER_DEG
    radius = np.sqrt((n + n_gaps) * CELL_M**2 / np.pi)  # outline area ~ cells x cell area
    theta = np.linspace(0, 2 * np.pi, 721)[:-1]
    r = radius * (1 + 0.12 * np.sin(5 * theta) + 0.05 * np.sin(13 * theta + 1))
    outline = shapely.Polygon(np.column_stack([cx + r * np.cos(theta) * kx, cy + r * np.sin(theta) * ky]))
    seeds = []
    need = n + n_gaps
    x0, y0, x1, y1 = outline.bounds
    while sum(len(s) for s in seeds) < need:
        sx, sy = rng.uniform(x0, x1, need), rng.uniform(y0, y1, need)
        seeds.append(np.column_stack([sx, sy])[shapely.contains_xy(outline, sx, sy)])
    seeds = np.concatenate(seeds)[:need]
    box = shapely.box(x0 - 0.01, y0 - 0.01, x1 + 0.01, y1 + 0.01)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=box))
    cells = shapely.intersection(cells, outline)
    cells = cells[~shapely.is_empty(cells) & (shapely.area(cells) > 0)]
    cells = np.array([polygonal(c) for c in cells], dtype=object)
    keep = np.ones(len(cells), dtype=bool)
    keep[rng.choice(len(cells), n_gaps, replace=False)] = False  # holes: points in no grid
    cells = cells[keep][:n]
    if densify_m:
        cells = densify(cells, densify_m * ky)
    grown = rng.choice(len(cells), n_overlaps, replace=False)  # overlaps: two interiors
    cells[grown] = shapely.buffer(cells[grown], 0.15 * CELL_M * ky, quad_segs=4)
    codes = np.array([f"3399{c:08d}" for c in rng.permutation(len(cells))], dtype=object)
    return codes, cells, grown


def real_layer():
    codes, geoms = [], []
    for f in sorted(glob.glob(str(REAL / "city_*_districts.json"))):
        for feat in json.loads(Path(f).read_text(encoding="utf-8"))["features"]:
            codes.append(str(feat["properties"]["adcode"]))
            geoms.append(shapely.geometry.shape(feat["geometry"]))
    geoms = np.array(geoms, dtype=object)
    invalid = ~shapely.is_valid(geoms)
    geoms[invalid] = [polygonal(g) for g in shapely.make_valid(geoms[invalid])]
    return np.array(codes, dtype=object), geoms, int(invalid.sum())


def boundary_points(geoms, k: int, rng) -> np.ndarray:
    """k points on grid boundaries: half vertices (shared by neighbours), half edge midpoints."""
    xy, ring = shapely.get_coordinates(shapely.boundary(geoms), return_index=True)
    nv = k - k // 2
    verts = xy[rng.integers(0, len(xy), nv)]
    i = rng.integers(0, len(xy) - 1, 4 * (k // 2) + 4)
    i = i[ring[i] == ring[i + 1]][: k // 2]
    mids = (xy[i] + xy[i + 1]) / 2
    return np.vstack([verts, mids])


def overlap_points(geoms, grown, k: int, rng) -> np.ndarray:
    """k points inside the overlaps of grown grids with their neighbours, and on the grown
    grids' boundaries (inside a neighbour: the interior-first rule decides)."""
    tree = shapely.STRtree(geoms)
    pieces = []
    for g in grown:
        for o in tree.query(geoms[g], predicate="intersects"):
            if o != g:
                inter = shapely.intersection(geoms[g], geoms[o])
                if shapely.area(inter) > 0:
                    pieces.append(inter)
    union = shapely.union_all(pieces)
    shapely.prepare(union)
    out = []
    x0, y0, x1, y1 = union.bounds
    while sum(len(o) for o in out) < k // 2:
        px, py = rng.uniform(x0, x1, 20 * k), rng.uniform(y0, y1, 20 * k)
        hit = shapely.contains_xy(union, px, py)
        out.append(np.column_stack([px, py])[hit])
    inside = np.concatenate(out)[: k // 2]
    edge_xy = shapely.get_coordinates(shapely.boundary(geoms[grown]))
    edge = edge_xy[rng.integers(0, len(edge_xy), k - len(inside))]
    return np.vstack([inside, edge])


def random_points(geoms, n: int, rng, edge_share: float = 0.01):
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    mx, my = 0.02 * (x1 - x0), 0.02 * (y1 - y0)
    n_edge = int(n * edge_share)
    x = rng.uniform(x0 - mx, x1 + mx, n - n_edge)
    y = rng.uniform(y0 - my, y1 + my, n - n_edge)
    if n_edge:
        b = boundary_points(geoms, n_edge, rng)
        x, y = np.r_[x, b[:, 0]], np.r_[y, b[:, 1]]
        perm = rng.permutation(n)
        x, y = x[perm], y[perm]
    return np.ascontiguousarray(x), np.ascontiguousarray(y), n_edge


# --------------------------------------------------------------------------------------------
# the two methods


def bench_layer(name: str, codes, geoms, x, y, repeat: int) -> dict:
    import geopandas

    n = len(x)
    rank = code_rank(codes)
    print(f"\n[{name}] {len(geoms):,} grids, {shapely.get_num_coordinates(geoms).sum():,} vertices "
          f"(mean {shapely.get_num_coordinates(geoms).mean():.1f}); {n:,} points", flush=True)

    # PointRouter: build on fresh geometry objects every time (prepare() is cached on them)
    b_best, b_med, router = timed(lambda g: PointRouter(codes, g), max(1, min(repeat, 3)), setup=lambda: copies(geoms))
    r_best, r_med, ours = timed(lambda: router.route(x, y), repeat)
    boundary_cells = float((router.owner == -2).mean())
    print(f"  PointRouter: build {fmt_s(b_med)} (lattice {router.nx}x{router.ny}, {boundary_cells:.1%} boundary cells), "
          f"route {fmt_s(r_med)}", flush=True)

    # GeoPandas, on its own copies of the geometries
    gp_geoms = copies(geoms)

    def frame(g):
        gdf = geopandas.GeoDataFrame({"code": codes}, geometry=g, crs=4326)
        gdf.sindex  # noqa: B018 - builds and caches the STRtree
        return gdf

    s_best, s_med, grids = timed(frame, max(1, min(repeat, 3)), setup=lambda: copies(gp_geoms))
    p_best, p_med, points = timed(
        lambda: geopandas.GeoDataFrame(geometry=geopandas.points_from_xy(x, y), crs=4326), repeat)
    j_best, j_med, joined = timed(lambda: geopandas.sjoin(points, grids, predicate="intersects"), repeat)
    p_idx = joined.index.to_numpy().astype(np.int64)
    g_idx = joined["index_right"].to_numpy().astype(np.int64)
    t_best, t_med, (theirs, multi) = timed(lambda: resolve(p_idx, g_idx, x, y, gp_geoms, rank, n), repeat)
    print(f"  sjoin: GeoDataFrame+sindex {fmt_s(s_med)}, points_from_xy {fmt_s(p_med)}, sjoin {fmt_s(j_med)} "
          f"({len(joined):,} rows), ties {fmt_s(t_med)}", flush=True)

    diff = np.flatnonzero(ours != theirs)
    for i in diff[:5]:
        print(f"    MISMATCH point {i} ({x[i]!r}, {y[i]!r}): PointRouter {ours[i]}, sjoin {theirs[i]}")
    return {
        "name": name, "grids": len(geoms), "points": n, "build": (b_best, b_med), "route": (r_best, r_med),
        "sindex": (s_best, s_med), "pts": (p_best, p_med), "sjoin": (j_best, j_med), "ties": (t_best, t_med),
        "multi": multi, "routed": int((ours >= 0).sum()), "mismatch": len(diff), "boundary_cells": boundary_cells,
        "router": router,
    }


# --------------------------------------------------------------------------------------------
# PostGIS


def postgis_check(layers: list[tuple[str, np.ndarray, np.ndarray, PointRouter, np.ndarray]]) -> list[dict]:
    """For each layer: load grids and sample points into a scratch database, ask ST_Covers,
    apply the tie rule in SQL and compare with PointRouter.route."""
    import psycopg
    from sqlalchemy.engine import make_url

    from geogrid.core.settings import Settings
    from geogrid.db import cluster

    settings = Settings()
    name = f"geogrid_bench_routing_{os.getpid()}"
    url = cluster.create_database(settings, name, drop_existing=True)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    results = []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
            pg = conn.execute("SHOW server_version").fetchone()[0].split()[0]
            for label, codes, geoms, router, sample in layers:
                conn.execute("DROP TABLE IF EXISTS grids, pts")
                conn.execute("CREATE TABLE grids (idx int PRIMARY KEY, code text NOT NULL, geom geometry(Geometry, 4326))")
                conn.execute("CREATE TABLE pts (i int PRIMARY KEY, geom geometry(Point, 4326))")
                t = time.perf_counter()
                wkb = shapely.to_wkb(shapely.set_srid(geoms, 4326), hex=True, include_srid=True)
                with conn.cursor().copy("COPY grids (idx, code, geom) FROM STDIN") as cp:
                    for i, (c, w) in enumerate(zip(codes, wkb)):
                        cp.write_row((i, c, w))
                pwkb = shapely.to_wkb(shapely.set_srid(shapely.points(sample), 4326), hex=True, include_srid=True)
                with conn.cursor().copy("COPY pts (i, geom) FROM STDIN") as cp:
                    for i, w in enumerate(pwkb):
                        cp.write_row((i, w))
                conn.execute("CREATE INDEX ON grids USING gist (geom)")
                conn.execute("ANALYZE grids")
                conn.execute("ANALYZE pts")
                load = time.perf_counter() - t
                # Exactly as GET /api/locate orders candidates: interior first, then code.
                t = time.perf_counter()
                rows = conn.execute("""
                    SELECT DISTINCT ON (p.i) p.i, g.idx, count(*) OVER (PARTITION BY p.i) AS n,
                           first_value(g.idx) OVER (PARTITION BY p.i ORDER BY g.code) AS lowest_code
                    FROM pts p JOIN grids g ON ST_Covers(g.geom, p.geom)
                    ORDER BY p.i, NOT ST_Contains(g.geom, p.geom), g.code
                """).fetchall()
                query = time.perf_counter() - t
                db = np.full(len(sample), -1, dtype=np.int64)
                multi = interior_decides = 0
                for i, idx, n, lowest in rows:
                    db[i] = idx
                    multi += n > 1
                    interior_decides += idx != lowest  # "lowest code" alone would answer otherwise
                ours = router.route(sample[:, 0], sample[:, 1])
                diff = np.flatnonzero(ours != db)
                for i in diff[:5]:
                    print(f"    POSTGIS MISMATCH {label} point ({sample[i, 0]!r}, {sample[i, 1]!r}): "
                          f"PointRouter {ours[i]}, ST_Covers {db[i]}")
                results.append({"name": label, "n": len(sample), "agree": len(sample) - len(diff), "multi": multi,
                                "interior": interior_decides,
                                "covered": int((db >= 0).sum()), "load": load, "query": query,
                                "versions": f"PostgreSQL {pg} / PostGIS {postgis}"})
    finally:
        cluster.drop_database(settings, name)
    return results


# --------------------------------------------------------------------------------------------


def machine() -> str:
    import geopandas
    import scipy

    return describe(numpy=np.__version__, scipy=scipy.__version__,
                    shapely=f"{shapely.__version__} / GEOS {shapely.geos_version_string}", geopandas=geopandas.__version__)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--grids", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each step (builds: at most 3)")
    ap.add_argument("--sample", type=int, default=2000, help="points checked against PostGIS ST_Covers")
    ap.add_argument("--densify", type=float, default=None, metavar="M",
                    help="a vertex every ~M metres along the synthetic edges (default: plain Voronoi cells)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-postgis", action="store_true")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed + 1)

    print(machine())
    t = time.perf_counter()
    codes, geoms, grown = synthetic_layer(args.grids, args.seed, args.densify)
    x, y, n_edge = random_points(geoms, args.points, rng)
    print(f"synthetic layer: {len(geoms):,} Voronoi grids around {CENTRE} (~{CELL_M:.0f} m across"
          + (f", a vertex every {args.densify:g} m" if args.densify else "") + f"), 20 holes, {len(grown)} grown "
          f"into neighbours; {args.points:,} points ({n_edge:,} on grid boundaries); built in {time.perf_counter() - t:.1f} s "
          "(not timed)")
    results = [bench_layer("synthetic", codes, geoms, x, y, args.repeat)]
    samples = []
    if not args.skip_postgis:
        k = args.sample
        uniform = np.column_stack(random_points(geoms, k // 2, rng, edge_share=0)[:2])
        samples.append(("synthetic", codes, geoms, results[0]["router"],
                        np.vstack([uniform, boundary_points(geoms, k * 2 // 5, rng),
                                   overlap_points(geoms, grown, k - k // 2 - k * 2 // 5, rng)])))

    if args.skip_real:
        print("\n[real] skipped (--skip-real)")
    elif not REAL.exists():
        print(f"\n[real] skipped: {REAL} not found")
    else:
        rcodes, rgeoms, invalid = real_layer()
        rx, ry, rn_edge = random_points(rgeoms, args.points, rng)
        print(f"\nreal layer: {len(rgeoms)} Zhejiang districts ({invalid} invalid, made valid); {args.points:,} points "
              f"in the province's bounding box ({rn_edge:,} on district boundaries)")
        results.append(bench_layer("zhejiang", rcodes, rgeoms, rx, ry, args.repeat))
        if not args.skip_postgis:
            k = args.sample
            uniform = np.column_stack(random_points(rgeoms, k // 2, rng, edge_share=0)[:2])
            samples.append(("zhejiang", rcodes, rgeoms, results[-1]["router"],
                            np.vstack([uniform, boundary_points(rgeoms, k - k // 2, rng)])))

    checks = []
    if samples:
        print("\n[postgis] loading the layers and samples into a scratch database ...", flush=True)
        checks = postgis_check(samples)

    # ---------------------------------------------------------------------------- summary
    print("\nTimes best / median of the runs; sjoin excludes points_from_xy and the tie resolution.")
    head = f"{'layer':<10} {'grids':>7} {'points':>10}  {'step':<34} {'best':>10} {'median':>10}"
    print(head)
    print("-" * len(head))
    for r in results:
        rows = [("PointRouter build", r["build"]), ("PointRouter.route", r["route"]),
                ("sjoin build (GeoDataFrame+sindex)", r["sindex"]), ("points_from_xy", r["pts"]),
                ("geopandas.sjoin intersects", r["sjoin"]), ("sjoin tie resolution", r["ties"])]
        for i, (step, (best, med)) in enumerate(rows):
            lead = f"{r['name']:<10} {r['grids']:>7,} {r['points']:>10,}" if i == 0 else " " * 29
            print(f"{lead}  {step:<34} {fmt_s(best):>10} {fmt_s(med):>10}")
        speed = r["sjoin"][1] / r["route"][1]
        full = (r["pts"][1] + r["sjoin"][1] + r["ties"][1]) / r["route"][1]
        r["speedup"] = speed
        print(f"{'':29}  speed-up (median): {speed:.1f}x vs sjoin, {full:.1f}x vs points_from_xy+sjoin+ties; "
              f"routed {r['routed']:,}, {r['multi']:,} points with 2+ sjoin rows, {r['mismatch']:,} mismatches")
    for c in checks:
        print(f"postgis    {c['name']:<10} {c['agree']:,}/{c['n']:,} agree with ST_Covers + tie rule "
              f"({c['covered']:,} covered, {c['multi']:,} by 2+ grids, {c['interior']:,} decided by interior-first); load {fmt_s(c['load'])}, "
              f"query {fmt_s(c['query'])}; {c['versions']}")

    syn = results[0]
    fails = []
    if syn["speedup"] < TARGET_SPEEDUP:
        fails.append(f"synthetic speed-up {syn['speedup']:.2f}x < {TARGET_SPEEDUP:g}x")
    fails += [f"{r['name']}: {r['mismatch']:,} answers differ from sjoin" for r in results if r["mismatch"]]
    fails += [f"{c['name']}: {c['n'] - c['agree']:,} disagree with PostGIS" for c in checks if c["agree"] != c["n"]]
    notes = [f"{r['name']} {r['speedup']:.1f}x" for r in results]
    verdict = "PASS" if not fails else "FAIL"
    print(f"\nload average at the end: {loadavg()} on {os.cpu_count()} CPUs")
    print(f"VERDICT: {verdict} (target: >= {TARGET_SPEEDUP:g}x faster than sjoin at {args.points:,} points, "
          f"identical answers, 100 % PostGIS agreement; speed-up {', '.join(notes)})"
          + ("" if not fails else ": " + "; ".join(fails)))
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main())
