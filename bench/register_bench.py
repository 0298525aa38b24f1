"""Benchmark of the household register import: a county register of 500,000 households
(~1.4 M residents, one CSV row each) imported and assigned to grids, against the obvious
alternatives measured in the same run.

    .venv/bin/python bench/register_bench.py [--households 500000] [--grids 1700] [--sample 2000]
                                             [--seed 20261124] [--keep]

1. A scratch database with a synthetic county: ``--grids`` comprehensive grids (Voronoi
   cells of ~300 m, edge-matched, 20 holes, from ``routing_bench.synthetic_layer``) under
   villages of at most 500 grids (strips by longitude) in one town; built with
   ``import_areas`` and not timed.
2. A register CSV (Chinese headers, one row per resident, household columns repeated):
   ``--households`` households at random points in the town (about 1 % in holes: in no
   grid), 1-5 residents each (mean 2.85), unique synthetic ID numbers, 3 % tagged 低保.
   Written first, not timed.
3. **geogrid**: ``register_import.import_register`` in one transaction, commit included
   (parse and check every row, HMAC of every ID number, bulk routing with PointRouter,
   COPY of households, residents and tags, history rows). Target: < 60 s.
4. **Alternatives**, on a sample of ``--sample`` households, extrapolated linearly:
   (a) row by row: per household an INSERT ... RETURNING id with its grid from a
   per-point PostGIS ``ST_Covers`` lookup (the tie rule in SQL, as ``GET /api/locate``),
   then one INSERT per resident; (b) the grid lookup alone, per point in PostGIS; and
   (c) set-based PostGIS: one ``UPDATE ... FROM`` spatial join for 10 x the sample.
5. Checks: the counts in the tables; for the sample, the stored grid equals PostGIS's
   answer by the tie rule (100 % required); the redraw of one grid (``update_area``, its
   households derived again with history) timed.

The scratch database is dropped at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from machine import describe, loadavg, scratch_database  # noqa: E402
from routing_bench import synthetic_layer  # noqa: E402

from geogrid.areas import importing, versions  # noqa: E402
from geogrid.core.settings import Settings  # noqa: E402
from geogrid.db import engine as db  # noqa: E402
from geogrid.people import register_import  # noqa: E402

DB_PREFIX = "geogrid_bench_register_"
COUNTY, TOWN = "339901", "339901100"
TARGET_S = 60.0
HEADER = ["户编号", "户主", "乡镇", "村社区", "街路巷", "门牌号", "经度", "纬度", "户类型", "出租", "姓名",
          "与户主关系", "性别", "出生日期", "身份证号", "电话", "特殊人群"]
KINDS = ["户籍", "户籍", "户籍", "流动", "人户分离"]
RELATIONS = ["户主", "配偶", "子女", "子女", "父母"]

LOCATE_SQL = """
    SELECT a.id FROM boundary b JOIN area a ON a.id = b.area_id
    WHERE a.layer_key = 'comprehensive' AND upper_inf(b.valid)
      AND ST_Covers(b.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))
    ORDER BY NOT ST_Contains(b.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)), a.code LIMIT 1
"""


def build_areas(engine, settings, n_grids: int, seed: int):
    """The county, one town, villages of <= 500 grids, the grids; returns the town's outline."""
    codes, cells, _ = synthetic_layer(n_grids, seed, None, n_gaps=20, n_overlaps=0)
    outline = shapely.union_all(shapely.buffer(cells, 1e-9)).convex_hull
    n_villages = int(np.ceil(len(cells) / 500))
    cx = shapely.get_x(shapely.centroid(cells))
    edges = np.quantile(cx, np.linspace(0, 1, n_villages + 1))
    village_of = np.clip(np.searchsorted(edges, cx, side="right") - 1, 0, n_villages - 1)
    x0, y0, x1, y1 = outline.bounds
    records, geoms = [], []
    records.append({"code": COUNTY, "name": "基准县", "level": "county"})
    geoms.append(shapely.box(x0 - 0.05, y0 - 0.05, x1 + 0.05, y1 + 0.05))
    records.append({"code": TOWN, "name": "基准镇", "level": "town", "parent": COUNTY})
    geoms.append(outline)
    for v in range(n_villages):
        lo = edges[v] if v else x0 - 0.01
        hi = edges[v + 1] if v < n_villages - 1 else x1 + 0.01
        records.append({"code": f"{TOWN}{v + 1:03d}", "name": f"基准村{v + 1}", "level": "village", "parent": TOWN})
        geoms.append(shapely.intersection(outline, shapely.box(lo, y0 - 0.01, hi, y1 + 0.01)))
    with db.transaction(engine) as session:
        importing.import_areas(session, records, geoms, settings, max_spill_ratio=1.0)
    grids = [{"name": f"网格{i}", "level": "grid", "layer": "comprehensive",
              "parent": f"{TOWN}{village_of[i] + 1:03d}"} for i in range(len(cells))]
    with db.transaction(engine) as session:
        importing.import_areas(session, grids, list(cells), settings, max_spill_ratio=1.0)
    return outline, len(cells)


def write_register(path: Path, outline, n: int, seed: int) -> tuple[int, np.ndarray]:
    """The register CSV; returns the number of residents and the households' points."""
    rng = np.random.default_rng(seed + 1)
    x0, y0, x1, y1 = outline.bounds
    pts = []
    while sum(len(p) for p in pts) < n:
        px, py = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
        pts.append(np.column_stack([px, py])[shapely.contains_xy(outline, px, py)])
    xy = np.concatenate(pts)[:n]
    sizes = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.15, 0.25, 0.3, 0.2, 0.1])
    tagged = rng.random(int(sizes.sum())) < 0.03
    k = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(n):
            ref = f"H{i:08d}"
            head = f"户主{i}"
            lon, lat = f"{xy[i, 0]:.7f}", f"{xy[i, 1]:.7f}"
            kind = KINDS[i % 5]
            rental = "是" if i % 7 == 0 else "否"
            for m in range(sizes[i]):
                w.writerow([ref, head, "基准镇", "", "幸福路", f"{i % 300 + 1}号", lon, lat, kind, rental,
                            head if m == 0 else f"成员{i}-{m}", RELATIONS[m], "男" if (i + m) % 2 else "女",
                            f"{1940 + (i + 7 * m) % 80}-{1 + m * 2}-{1 + i % 28}", f"{339901000000000000 + k}",
                            "", "低保" if tagged[k] else ""])
                k += 1
    return k, xy


def row_by_row(engine, xy: np.ndarray, sizes: int) -> tuple[float, float]:
    """(a) row-by-row INSERTs with a per-point PostGIS grid lookup, and (b) the lookups alone,
    for len(xy) households of ``sizes`` residents each; seconds. Rolled back."""
    with engine.connect() as conn:
        trans = conn.begin()
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(xy):
            grid = conn.execute(text(LOCATE_SQL), {"x": float(x), "y": float(y)}).scalar()
            hid = conn.execute(text("""
                INSERT INTO household (ref, geom, located_by, grid_id, head_name, kind, rental)
                VALUES (:ref, ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'own', :g, '户主', 'registered', false)
                RETURNING id"""), {"ref": f"R{i}", "x": float(x), "y": float(y), "g": grid}).scalar_one()
            conn.execute(text("INSERT INTO household_grid (household_id, grid_id, reason) VALUES (:h, :g, 'register')"),
                         {"h": hid, "g": grid})
            for m in range(sizes):
                conn.execute(text("INSERT INTO resident (household_id, name, id_hash, id_last4) "
                                  "VALUES (:h, :n, :hash, '0000')"),
                             {"h": hid, "n": f"R{i}-{m}", "hash": f"{i:032d}{m:032d}"})
        rows = time.perf_counter() - t0
        trans.rollback()
        t0 = time.perf_counter()
        for x, y in xy:
            conn.execute(text(LOCATE_SQL), {"x": float(x), "y": float(y)}).scalar()
        lookups = time.perf_counter() - t0
    return rows, lookups


def set_based_postgis(engine, n: int) -> float:
    """(c) one UPDATE ... FROM spatial join of ``n`` stored households (tie rule in SQL); seconds. Rolled back."""
    with engine.connect() as conn:
        trans = conn.begin()
        t0 = time.perf_counter()
        conn.execute(text("""
            UPDATE household h SET grid_id = g.id
            FROM (SELECT h2.id AS hid,
                         (SELECT a.id FROM boundary b JOIN area a ON a.id = b.area_id
                          WHERE a.layer_key = 'comprehensive' AND upper_inf(b.valid) AND ST_Covers(b.geom, h2.geom)
                          ORDER BY NOT ST_Contains(b.geom, h2.geom), a.code LIMIT 1) AS id
                  FROM household h2 WHERE h2.id <= (SELECT min(id) FROM household) + :n) g
            WHERE h.id = g.hid"""), {"n": n})
        took = time.perf_counter() - t0
        trans.rollback()
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--households", type=int, default=500_000)
    ap.add_argument("--grids", type=int, default=1700)
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    with scratch_database(DB_PREFIX, keep=args.keep) as (base, url):
        # A fixed key: the benchmark never touches the service's own ID-hash key file.
        # The synthetic villages are strips that grids straddle: spill-over is allowed for every write.
        settings = Settings(database_url=url, state_dir=base.state_dir, id_hash_key="bench-only-key", max_spill_ratio=1.0)
        print(describe())
        engine = db.get_engine(settings)
        t0 = time.perf_counter()
        outline, n_grids = build_areas(engine, settings, args.grids, args.seed)
        print(f"areas: {n_grids} grids built in {time.perf_counter() - t0:.1f} s (not timed)")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "register.csv"
            t0 = time.perf_counter()
            residents, xy = write_register(path, outline, args.households, args.seed)
            print(f"register: {args.households:,} households, {residents:,} residents, "
                  f"{path.stat().st_size / 1e6:.0f} MB CSV written in {time.perf_counter() - t0:.1f} s (not timed)")
            marks: list[tuple[float, int, int]] = []
            start = time.perf_counter()
            with db.transaction(engine) as session:
                report = register_import.import_register(
                    session, path, settings, progress=lambda d, t: marks.append((time.perf_counter() - start, d, t)))
            took = time.perf_counter() - start
        checked = next((m[0] for m in marks if m[1] >= m[2] // 2), took)
        print(f"\ngeogrid import + assignment: {took:.1f} s  ({report['households']:,} households, "
              f"{report['residents']:,} residents, {report['tags']:,} tags; {report['grids_assigned']:,} in grids, "
              f"{report['outside_grids']:,} outside every grid)")
        print(f"  of which reading and checking every row: {checked:.1f} s; routing, COPY and history: "
              f"{took - checked:.1f} s")
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT (SELECT count(*) FROM household), (SELECT count(*) FROM resident), "
                                       "(SELECT count(*) FROM household_grid WHERE upper_inf(valid))")).one()
        assert tuple(stored) == (args.households, residents, args.households), stored

        # The assignment alone (what the import did inside): PointRouter over the layer, every point.
        from geogrid.people import households as hh

        t0 = time.perf_counter()
        with db.transaction(engine) as session:
            hh.route_points(session, hh.COMPREHENSIVE, xy[:, 0], xy[:, 1])
        routing = time.perf_counter() - t0
        print(f"  the grid assignment alone (PointRouter, all {args.households:,} points): {routing:.2f} s")

        # Agreement with PostGIS on a sample.
        rng = np.random.default_rng(args.seed + 2)
        sample = rng.choice(args.households, min(args.sample, args.households), replace=False)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT ref, grid_id, ST_X(geom) AS x, ST_Y(geom) AS y FROM household "
                                     "WHERE ref = ANY(:r)"), {"r": [f"H{i:08d}" for i in sample]}).all()
            agree = sum(conn.execute(text(LOCATE_SQL), {"x": r.x, "y": r.y}).scalar() == r.grid_id for r in rows)
        print(f"agreement with PostGIS ST_Covers + tie rule on {len(rows):,} households: {agree / len(rows):.2%}")

        # The alternatives.
        k = min(args.sample, args.households)
        mean = residents / args.households
        rbr, lookups = row_by_row(engine, xy[:k], int(round(mean)))
        per = args.households / k
        print(f"\n(a) row by row (INSERT per household and resident, per-point PostGIS lookup): {rbr:.2f} s for {k:,} "
              f"households x {int(round(mean))} residents -> {rbr * per:.0f} s extrapolated to {args.households:,}")
        print(f"(b) per-point PostGIS lookups alone: {lookups:.2f} s for {k:,} -> {lookups * per:.0f} s extrapolated")
        n_set = min(10 * k, args.households)
        setb = set_based_postgis(engine, n_set)
        print(f"(c) set-based PostGIS spatial join (UPDATE ... FROM): {setb:.2f} s for {n_set:,} -> "
              f"{setb * args.households / n_set:.0f} s extrapolated")

        # A redraw of one grid: its households derived again, with history.
        with engine.connect() as conn:
            code, wkb = conn.execute(text("""
                SELECT a.code, ST_AsBinary(b.geom) FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
                WHERE a.layer_key = 'comprehensive' ORDER BY a.code LIMIT 1""")).one()
        shrunk = shapely.buffer(shapely.from_wkb(bytes(wkb)), -0.0003)
        t0 = time.perf_counter()
        with db.transaction(engine) as session:
            versions.update_area(session, code, settings, geometry=shrunk)
        redraw = time.perf_counter() - t0
        with engine.connect() as conn:
            moved = conn.execute(text("SELECT count(*) FROM household_grid WHERE reason = 'redraw'")).scalar_one()
        print(f"redraw of grid {code} (boundary shrunk by ~30 m): {redraw * 1000:.0f} ms, {moved} households' grid "
              "changed (history rows opened)")

        at_target = took * 500_000 / args.households  # linear: every step is per row or per household
        ok = at_target < TARGET_S and agree == len(rows)
        print(f"\nload average {loadavg()}")
        print(f"verdict: import + assignment of {args.households:,} households in {took:.1f} s"
              + (f" (x{500_000 / args.households:g}: {at_target:.0f} s EXTRAPOLATED to 500,000)"
                 if args.households != 500_000 else "")
              + f" (target < {TARGET_S:.0f} s at 500,000): {'PASS' if ok else 'FAIL'}; "
              f"{rbr * per / took:.0f}x faster than row by row, {setb * args.households / n_set / routing:.0f}x faster "
              "assignment than the set-based PostGIS join")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
