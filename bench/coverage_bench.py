"""Benchmark of geogrid's coverage engine against the obvious GeoPandas approach.

    .venv/bin/python bench/coverage_bench.py [--grids 50000] [--repeat 3] [--baseline-timeout 600]
                                             [--gaps 20] [--overlaps 20] [--seed 20240601]
                                             [--skip-real] [--profile]

1. A synthetic layer of ``--grids`` lon/lat polygons (Voronoi cells of random seeds, built in
   metres in a LAEA projection around lon 120.3, lat 30.2, clipped to a star-shaped parent and
   reprojected to EPSG:4326 all at once, so neighbours share vertices exactly), with a known
   number of injected gaps (half holes inside grids, half missing grids) and overlaps (a grid
   grown by a disc into its neighbour), each of known area.
2. ``geogrid.geo.coverage.check_coverage`` on it: best/median time, peak memory, and a check that it
   found exactly the injected gaps and overlaps (counts, and areas within 0.1 %).
3. The obvious GeoPandas approach on the same layer, in the same run: ``to_crs`` (same LAEA),
   ``union_all()`` + ``parent.difference(union)`` exploded into gaps, and a self-overlay
   (``geopandas.overlay(gdf, gdf, "intersection", keep_geom_type=True)``, self pairs and mirrored
   duplicates dropped) for overlaps. Each method runs in its own fresh process (clean peak
   RSS). If the full baseline exceeds ``--baseline-timeout`` it is stopped and run instead on two
   spatially compact subsets (N/10 and N/5 grids, both methods, verified too) and extrapolated
   linearly from the larger one; the output then says so.
4. Real data, when ``<repo>/../shared/data/real/zhejiang`` exists: each city's districts against
   the city polygon, and the 11 cities against the province outline.

Both methods ignore pieces smaller than 1 m² (geogrid's ``CoverageOptions.min_area_m2``):
floating-point noise, not problems.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import math
import multiprocessing as mp
import os
import pickle
import pstats
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pyproj
import shapely
from machine import describe  # noqa: E402  (bench/ is on sys.path when run)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

REAL = Path(__file__).resolve().parents[2] / "shared/data/real/zhejiang"
CENTRE = (120.3, 30.2)
CELL_M2 = 9_000.0  # mean grid area of the synthetic layer (about 95 m across)
MIN_AREA_M2 = 1.0  # same noise threshold as geogrid's CoverageOptions.min_area_m2
AREA_TOL = 1e-3  # 0.1 %


# --------------------------------------------------------------------------------------------
# helpers


def laea_crs(lon: float, lat: float) -> pyproj.CRS:
    """The same LAEA geogrid uses (geogrid.geo.coverage.local_projection), centred on lon/lat."""
    return pyproj.CRS.from_proj4(f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs")


def transform_all(transformer: pyproj.Transformer, geoms):
    """Reproject every coordinate of ``geoms`` in one call: equal input coordinates give equal
    output coordinates, so vertices shared by neighbours stay shared exactly."""
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset this process' RSS high-water mark (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_now_mb() -> float:
    now = _status_mb("VmRSS")
    return now if now is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_peak_mb() -> float:
    """Peak RSS: VmHWM when available. ru_maxrss is the fallback only: in a spawned child it also
    counts the parent's RSS at fork time (kept in the signal struct across exec)."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fmt_s(x) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


# --------------------------------------------------------------------------------------------
# 1. synthetic layer


def densify(geoms, step: float) -> np.ndarray:
    """Extra vertices every ~``step`` metres along every edge of polygonal ``geoms``, computed from
    the edge's lexicographically smaller end: an edge shared by two polygons gets bit-identical
    new vertices in both (shapely.segmentize interpolates from each ring's own direction, so a
    shared edge could differ in the last bit and stop being matched)."""
    geoms = np.asarray(geoms, dtype=object)
    parts, part_geom = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    seg = np.flatnonzero(ring_of[:-1] == ring_of[1:])  # segment k runs from xy[k] to xy[k + 1]
    p, q = xy[seg], xy[seg + 1]
    swap = (p[:, 0] > q[:, 0]) | ((p[:, 0] == q[:, 0]) & (p[:, 1] > q[:, 1]))
    a, b = np.where(swap[:, None], q, p), np.where(swap[:, None], p, q)
    pieces = np.maximum(1, np.ceil(np.hypot(*(b - a).T) / step)).astype(np.int64)
    row_seg = np.repeat(np.arange(len(seg)), pieces)  # output row -> segment
    k = np.arange(len(row_seg)) - np.repeat(np.cumsum(pieces) - pieces, pieces)  # 0 .. pieces-1
    kk = np.where(swap[row_seg], pieces[row_seg] - k, k)
    frac = (kk / pieces[row_seg])[:, None]
    out = a[row_seg] + (b[row_seg] - a[row_seg]) * frac
    out[k == 0] = p[row_seg[k == 0]]  # original vertices kept exactly
    new_rings = shapely.linearrings(out, indices=ring_of[seg][row_seg])  # closed automatically
    polys = shapely.polygons(new_rings, indices=ring_part)
    single = np.bincount(part_geom, minlength=len(geoms)) == 1
    if single.all():
        return polys
    result = shapely.multipolygons(polys, indices=part_geom)
    result[single] = polys[single[part_geom]]
    return result


def build_layer(n: int, n_gaps: int, n_overlaps: int, seed: int, subset_sizes: list[int],
                densify_m: float = 0.0) -> dict:
    rng = np.random.default_rng(seed)
    n_missing = n_gaps // 2  # gaps made by deleting a whole grid
    n_holes = n_gaps - n_missing  # gaps made by a hole inside a grid
    n_cells = n + n_missing

    # Parent: a star-shaped polygon of area ~ n_cells * CELL_M2, in metres.
    theta = np.linspace(0.0, 2 * np.pi, 721)[:-1]
    shape = 1 + 0.12 * np.sin(3 * theta + 0.5) + 0.06 * np.sin(7 * theta + 1.3) + 0.03 * np.sin(17 * theta)
    unit = shapely.Polygon(np.column_stack([shape * np.cos(theta), shape * np.sin(theta)]))
    radius = math.sqrt(n_cells * CELL_M2 / unit.area)
    outline = shapely.Polygon(np.column_stack([radius * shape * np.cos(theta), radius * shape * np.sin(theta)]))

    # Seeds uniformly inside the parent; Voronoi cells clipped to it.
    minx, miny, maxx, maxy = outline.bounds
    chunks, got = [], 0
    while got < n_cells:
        xy = rng.uniform([minx, miny], [maxx, maxy], size=(n_cells, 2))
        xy = xy[shapely.contains_xy(outline, xy[:, 0], xy[:, 1])]
        chunks.append(xy)
        got += len(xy)
    seeds = np.concatenate(chunks)[:n_cells]
    vor = shapely.get_parts(shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=outline))
    # voronoi_polygons does not return cells in seed order: pair each cell with its seed.
    tree = shapely.STRtree(vor)
    seed_idx, cell_idx = tree.query(shapely.points(seeds), predicate="intersects")
    order = np.full(n_cells, -1)
    order[seed_idx] = cell_idx
    cells = shapely.intersection(vor[order], outline)
    assert shapely.get_type_id(cells).max() == 3 and not shapely.is_empty(cells).any()
    # The parent is the union of the clipped cells (vertex for vertex the grids' outer edges),
    # so that the clean layer covers it exactly and every problem found is an injected one.
    parent_m = shapely.coverage_union_all(cells)
    spacing = math.sqrt(CELL_M2)

    # Injection sites: interior grids, far from the parent's edge and from each other.
    edge_dist = shapely.distance(shapely.points(seeds), parent_m.exterior)
    n_sites = n_holes + n_missing + n_overlaps
    sites: list[int] = []
    for sep in (8, 6, 5, 4, 3):
        sites = []
        for i in rng.permutation(np.flatnonzero(edge_dist > 4 * spacing)):
            if all(np.hypot(*(seeds[i] - seeds[j])) > sep * spacing for j in sites):
                sites.append(int(i))
                if len(sites) == n_sites:
                    break
        if len(sites) == n_sites:
            break
    if len(sites) < n_sites:
        raise SystemExit(f"cannot place {n_sites} separated problems in {n} grids: use more grids or fewer problems")
    hole_sites = sites[:n_holes]
    missing_sites = sites[n_holes:n_holes + n_missing]
    overlap_sites = sites[n_holes + n_missing:]

    grids = cells.copy()
    gaps_m, gap_host = [], []
    for i in hole_sites:
        mic = shapely.maximum_inscribed_circle(cells[i], 0.01)
        centre = shapely.get_point(mic, 0)
        disc = shapely.buffer(centre, mic.length * rng.uniform(0.3, 0.7), quad_segs=16)
        grids[i] = shapely.difference(cells[i], disc)
        gaps_m.append(disc)
        gap_host.append(i)
    for i in missing_sites:
        gaps_m.append(cells[i])
        gap_host.append(i)
    cell_tree = shapely.STRtree(cells)
    overlaps_m, overlap_pair = [], []
    for a in overlap_sites:
        neigh = [j for j in cell_tree.query(cells[a], predicate="touches") if j != a]
        shared = [shapely.intersection(cells[a], cells[j]) for j in neigh]
        lengths = [shapely.length(s) for s in shared]
        k = int(np.argmax(lengths))
        b, edge = int(neigh[k]), shared[k]
        mid = shapely.line_interpolate_point(shapely.line_merge(edge), 0.5, normalized=True)
        pair = shapely.union(cells[a], cells[b])
        r = shapely.distance(mid, shapely.boundary(pair)) * rng.uniform(0.4, 0.8)
        disc = shapely.buffer(mid, r, quad_segs=16)
        grids[a] = shapely.union(cells[a], disc)
        overlaps_m.append(shapely.intersection(disc, cells[b]))
        overlap_pair.append((a, b))

    keep = np.ones(n_cells, dtype=bool)
    keep[missing_sites] = False
    cell_of_grid = np.flatnonzero(keep)  # grid k is cell cell_of_grid[k]
    grids = grids[keep]

    # Subsets for a scaled-down baseline: the k cells nearest the centre (compact blobs); the
    # subset's parent is the union of its clean cells.
    dist_centre = np.hypot(seeds[:, 0], seeds[:, 1])
    rank = np.argsort(dist_centre, kind="stable")
    subsets = {}
    for size in subset_sizes:
        cells_in = np.zeros(n_cells, dtype=bool)
        cells_in[rank[:size]] = True
        subsets[size] = {
            "grids": np.flatnonzero(cells_in[cell_of_grid]),  # indices into the grids array
            "parent_m": shapely.coverage_union_all(cells[cells_in]),
            "gaps": [k for k, h in enumerate(gap_host) if cells_in[h]],
            "overlaps": [k for k, (a, b) in enumerate(overlap_pair) if cells_in[a] and cells_in[b]],
        }

    if densify_m > 0:
        grids = densify(grids, densify_m)
        parent_m = densify([parent_m], densify_m)[0]
        for s in subsets.values():
            s["parent_m"] = densify([s["parent_m"]], densify_m)[0]

    # Everything to lon/lat in one go per array (same transformer: shared vertices stay shared).
    inv = pyproj.Transformer.from_crs(laea_crs(*CENTRE), "EPSG:4326", always_xy=True)
    grids_ll = transform_all(inv, grids)
    parent_ll = transform_all(inv, parent_m)
    codes = np.array([f"G{c:06d}" for c in cell_of_grid], dtype=object)
    layer = {
        "parent": parent_ll,
        "grids": grids_ll,
        "codes": codes,
        "gaps": transform_all(inv, np.array(gaps_m, dtype=object)),
        "gap_m2": np.array([g.area for g in gaps_m]),
        "overlaps": transform_all(inv, np.array(overlaps_m, dtype=object)),
        "overlap_m2": np.array([g.area for g in overlaps_m]),
        "n_missing": n_missing,
        "n_holes": n_holes,
        "subsets": {},
    }
    for size, s in subsets.items():
        layer["subsets"][size] = {"grids": s["grids"], "parent": transform_all(inv, s["parent_m"]),
                                  "gaps": s["gaps"], "overlaps": s["overlaps"]}
    return layer


def layer_checks(layer: dict) -> list[str]:
    """Sanity of the construction itself (not timed)."""
    grids = layer["grids"]
    notes = []
    valid = shapely.is_valid(grids)
    notes.append(f"all grids valid: {bool(valid.all())}")
    flagged = ~shapely.is_empty(shapely.coverage_invalid_edges(grids))
    notes.append(f"grids with unmatched edges (expected: the 2 x {len(layer['overlap_m2'])} overlapping ones): "
                 f"{int(flagged.sum())}")
    return notes


# --------------------------------------------------------------------------------------------
# the two methods (run inside a worker process)


def run_geogrid(parent, grids, codes, profile: bool = False):
    from geogrid.geo.coverage import check_coverage

    if profile:
        prof = cProfile.Profile()
        prof.enable()
    result = check_coverage(parent, grids, list(codes))
    if profile:
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
        return result, buf.getvalue()
    return result, None


def geogrid_found(result) -> dict:
    out = {"gap": [], "overlap": [], "other": {}}
    for p in result.problems:
        if p["kind"] in ("gap", "overlap"):
            out[p["kind"]].append((shapely.to_wkb(p["geometry"]), p["area_m2"]))
        else:
            out["other"][p["kind"]] = out["other"].get(p["kind"], 0) + 1
    return out


def run_baseline(parent_ll, gdf_ll, parts: dict, *, make_valid: bool = False):
    """The obvious GeoPandas approach. Fills ``parts`` with the seconds of each step."""
    import geopandas as gpd

    t0 = time.perf_counter()
    gdf = gdf_ll
    if make_valid:
        bad = ~gdf.is_valid
        if bad.any():
            gdf = gdf.copy()
            gdf.loc[bad, "geometry"] = gdf.loc[bad, "geometry"].make_valid()
    c = parent_ll.centroid
    crs = laea_crs(c.x, c.y)
    gdf = gdf.to_crs(crs)
    parent = gpd.GeoSeries([parent_ll], crs="EPSG:4326").to_crs(crs).iloc[0]
    if make_valid and not parent.is_valid:
        parent = shapely.make_valid(parent)
    t1 = time.perf_counter()
    union = gdf.union_all()
    gaps = gpd.GeoSeries([parent.difference(union)], crs=crs).explode(index_parts=False)
    gaps = gaps[gaps.geom_type.isin(["Polygon", "MultiPolygon"]) & (gaps.area >= MIN_AREA_M2)]
    t2 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "keep_geom_type=True dropped N geometries": expected
        ov = gpd.overlay(gdf, gdf, how="intersection", keep_geom_type=True)
    ov = ov[ov["gid_1"] < ov["gid_2"]]  # drop self pairs and the mirrored duplicates
    ov = ov[ov.area >= MIN_AREA_M2]
    t3 = time.perf_counter()
    parts.update({"to_crs": t1 - t0, "union_diff": t2 - t1, "overlay": t3 - t2})
    return gaps, ov


def baseline_found(gaps, ov) -> dict:
    g = gaps.to_crs("EPSG:4326")
    o = ov.geometry.to_crs("EPSG:4326")
    return {"gap": list(zip(shapely.to_wkb(g.values), gaps.area.to_numpy())),
            "overlap": list(zip(shapely.to_wkb(o.values), ov.area.to_numpy())), "other": {}}


def worker(task: dict, conn) -> None:
    """One method on one data set in a fresh process; sends one message per run, then totals."""
    try:
        with open(task["data"], "rb") as f:
            data = pickle.load(f)
        parent = shapely.from_wkb(data["parent"])
        grids = shapely.from_wkb(data["grids"])
        codes = data["codes"]
        if task["method"] == "baseline":
            import geopandas as gpd

            gdf = gpd.GeoDataFrame({"gid": np.arange(len(grids)), "code": codes}, geometry=grids, crs="EPSG:4326")
        else:
            import geogrid.geo.coverage  # noqa: F401  (import time is not the method's)
        gc.collect()
        reset_peak_rss()
        rss0 = rss_now_mb()
        conn.send({"ready": True})
        start = time.perf_counter()
        times = []
        for i in range(task["repeat"]):
            parts: dict = {}
            t = time.perf_counter()
            if task["method"] == "geogrid":
                out, _ = run_geogrid(parent, grids, codes)
            else:
                out = run_baseline(parent, gdf, parts)
            dt = time.perf_counter() - t
            times.append(dt)
            msg = {"run": i, "seconds": dt, "parts": parts}
            if i == 0:
                msg["found"] = geogrid_found(out) if task["method"] == "geogrid" else baseline_found(*out)
                if task["method"] == "geogrid":
                    msg["summary"] = {k: out.summary[k] for k in ("grids_with_unmatched_edges", "coverage_pct")}
            conn.send(msg)
            del out
            gc.collect()
            if time.perf_counter() - start + dt > task["budget"]:
                break
        rss1 = rss_peak_mb()
        tm_peak = None
        # Python-heap peak (tracemalloc: numpy and Python objects; GEOS' C++ heap is invisible
        # to it, which is why the RSS high-water mark is reported as well). Slower: not timed.
        if time.perf_counter() - start + 3 * min(times) < task["budget"]:
            tracemalloc.start()
            if task["method"] == "geogrid":
                out, _ = run_geogrid(parent, grids, codes)
            else:
                out = run_baseline(parent, gdf, {})
            tm_peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            del out
        prof = None
        if task.get("profile") and task["method"] == "geogrid":
            _, prof = run_geogrid(parent, grids, codes, profile=True)
        conn.send({"done": True, "rss0": rss0, "rss1": rss1, "tm_peak": tm_peak, "profile": prof})
    except BaseException as exc:  # noqa: BLE001 - report to the parent, whatever it is
        import traceback

        conn.send({"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"})
    finally:
        conn.close()


def measure(method: str, data_path: str, repeat: int, budget: float, profile: bool = False) -> dict:
    """Run ``method`` in a fresh process, collecting runs until done or ``budget`` seconds pass."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    task = {"method": method, "data": data_path, "repeat": repeat, "budget": budget, "profile": profile}
    proc = ctx.Process(target=worker, args=(task, send), daemon=True)
    proc.start()
    send.close()
    deadline = time.monotonic() + 300  # process start and loading the data; reset once the worker is ready
    runs, found, summary, done, error = [], None, None, None, None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not recv.poll(remaining):
            break
        try:
            msg = recv.recv()
        except EOFError:
            break
        if "error" in msg:
            error = msg["error"]
            break
        if msg.get("ready"):
            deadline = time.monotonic() + budget + 1  # +1 s: the last run's message
            continue
        if msg.get("done"):
            done = msg
            break
        runs.append(msg)
        found = msg.get("found", found)
        summary = msg.get("summary", summary)
    timed_out = done is None and error is None
    if proc.is_alive():
        proc.terminate()  # our own child: past its budget
    proc.join()
    if error:
        raise RuntimeError(f"{method} worker failed:\n{error}")
    if runs and runs[0]["seconds"] > budget:  # finished, but over budget: counts as timed out
        runs, timed_out = [], True
    secs = [r["seconds"] for r in runs]
    res = {"method": method, "runs": len(runs), "timed_out": timed_out, "found": found, "summary": summary,
           "best": min(secs) if secs else None, "median": statistics.median(secs) if secs else None,
           "rss_delta": None, "tm_peak": None, "profile": None}
    if runs and runs[0]["parts"]:
        res["parts"] = {k: min(r["parts"][k] for r in runs) for k in runs[0]["parts"]}
        res["parts_median"] = {k: statistics.median(r["parts"][k] for r in runs) for k in runs[0]["parts"]}
    if done:
        res.update(rss_delta=max(0.0, done["rss1"] - done["rss0"]), tm_peak=done["tm_peak"], profile=done["profile"])
    return res


# --------------------------------------------------------------------------------------------
# verification


def verify(found: dict, exp_gaps, exp_gap_m2, exp_ovl, exp_ovl_m2) -> tuple[bool, list[str]]:
    """Match found pieces to injected ones by location (1:1) and compare areas."""
    ok, lines = True, []
    for kind, exp, exp_m2 in (("gap", exp_gaps, exp_gap_m2), ("overlap", exp_ovl, exp_ovl_m2)):
        got = found[kind]
        geoms = shapely.from_wkb(np.array([g for g, _ in got], dtype=object)) if got else np.array([], dtype=object)
        # Pieces reprojected from metres can come back with collapsed spikes (invalid): repair
        # them for the matching only (the areas compared are the method's own).
        geoms = shapely.make_valid(geoms)
        areas = np.array([a for _, a in got], dtype=float)
        exp = np.asarray(exp, dtype=object)
        matched, rel = {}, []
        if len(geoms) and len(exp):
            tree = shapely.STRtree(exp)
            for k, g in enumerate(geoms):
                cand = tree.query(g, predicate="intersects")
                if len(cand):
                    inter = shapely.area(shapely.intersection(exp[cand], g))
                    j = int(cand[int(np.argmax(inter))])
                    if inter.max() > 0 and j not in matched.values():
                        matched[k] = j
                        rel.append(abs(areas[k] - exp_m2[j]) / exp_m2[j])
        extra = len(geoms) - len(matched)
        missed = len(exp) - len(matched)
        total_rel = abs(areas.sum() - np.sum(exp_m2)) / np.sum(exp_m2) if len(exp) else (0.0 if not len(geoms) else 1.0)
        good = extra == 0 and missed == 0 and total_rel <= AREA_TOL and (max(rel, default=0.0) <= AREA_TOL)
        ok &= good
        lines.append(f"{kind}s: found {len(geoms)}/{len(exp)} (missed {missed}, spurious {extra}); total "
                     f"{areas.sum():,.1f} m² vs injected {np.sum(exp_m2):,.1f} m² (diff {100 * total_rel:.4f} %, "
                     f"worst single {100 * max(rel, default=0.0):.4f} %) -> {'OK' if good else 'MISMATCH'}")
    other = found.get("other") or {}
    if other:
        ok = False
        lines.append(f"unexpected other problems: {other}")
    return ok, lines


# --------------------------------------------------------------------------------------------
# 4. real data


def ljust(text: str, width: int) -> str:
    """Left-justify counting East Asian wide characters as two columns."""
    import unicodedata

    cols = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - cols)


def real_data(repeat: int) -> list[str]:
    import geopandas as gpd

    from geogrid.geo.coverage import check_coverage

    out: list[str] = []
    if not REAL.is_dir():
        return [f"Real data: {REAL} not found, skipped."]
    cities = gpd.read_file(REAL / "province_330000_cities.json", engine="pyogrio")
    outline = gpd.read_file(REAL / "province_330000_outline.json", engine="pyogrio")
    cases = []
    for path in sorted(REAL.glob("city_*_districts.json")):
        code = int(path.stem.split("_")[1])
        row = cities[cities["adcode"] == code]
        if row.empty:
            out.append(f"  {path.name}: no city {code} in province_330000_cities.json, skipped")
            continue
        cases.append((f"{code} {row['name'].iloc[0]}", row.geometry.iloc[0],
                      gpd.read_file(path, engine="pyogrio")))
    cases.append(("330000 province (11 cities)", shapely.union_all(outline.geometry.values), cities))

    def best_med(fn):
        ts, res = [], None
        for _ in range(repeat):
            t = time.perf_counter()
            res = fn()
            ts.append(time.perf_counter() - t)
        return min(ts), statistics.median(ts), res

    header = (f"  {'case':<30} {'units':>5} {'inval':>5} {'verts':>7} | {'geogrid s':>9} {'gaps':>5} {'ovl':>5} "
              f"{'spill':>5} | {'baseline s':>10} {'gaps':>5} {'ovl':>5} | {'speed-up':>8}")
    out += [header, "  " + "-" * (len(header) - 2)]
    tot_g = tot_b = 0.0
    for name, parent, gdf in cases:
        geoms = gdf.geometry.values
        codes = [str(c) for c in gdf["adcode"]]
        g_best, _, g_res = best_med(lambda: check_coverage(parent, geoms, codes))
        c = g_res.summary["counts"]
        gdf_b = gpd.GeoDataFrame({"gid": np.arange(len(gdf))}, geometry=gdf.geometry.values, crs=gdf.crs)
        b_best, _, (b_gaps, b_ov) = best_med(lambda: run_baseline(parent, gdf_b, {}, make_valid=True))
        tot_g += g_best
        tot_b += b_best
        out.append(f"  {ljust(name, 30)} {len(gdf):>5} {int((~gdf.is_valid).sum()):>5} "
                   f"{int(shapely.get_num_coordinates(geoms).sum()):>7} | {g_best:>9.3f} {c.get('gap', 0):>5} "
                   f"{c.get('overlap', 0):>5} {c.get('spill_over', 0):>5} | {b_best:>10.3f} {len(b_gaps):>5} "
                   f"{len(b_ov):>5} | {b_best / g_best:>7.1f}x")
    out.append(f"  {'total (best of ' + str(repeat) + ')':<30} {'':>5} {'':>5} {'':>7} | {tot_g:>9.3f} {'':>5} {'':>5} "
               f"{'':>5} | {tot_b:>10.3f} {'':>5} {'':>5} | {tot_b / tot_g:>7.1f}x")
    out.append("  (counts: pieces >= 1 m²; gaps/ovl differ where the baseline's make_valid or its metric-CRS "
               "topology splits or merges slivers differently; 'spill' = parts of districts outside their parent, "
               "which the baseline does not look for)")
    return out


# --------------------------------------------------------------------------------------------


def machine() -> str:
    import geopandas

    return describe(shapely=f"{shapely.__version__} / GEOS {shapely.geos_version_string}",
                    geopandas=geopandas.__version__, pyproj=f"{pyproj.__version__} / PROJ {pyproj.proj_version_str}",
                    numpy=np.__version__)


def save(path: str, parent, grids, codes) -> None:
    with open(path, "wb") as f:
        pickle.dump({"parent": shapely.to_wkb(parent), "grids": shapely.to_wkb(grids), "codes": codes}, f,
                    protocol=pickle.HIGHEST_PROTOCOL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grids", type=int, default=50_000, help="grids in the synthetic layer (default 50000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per method (best and median shown)")
    ap.add_argument("--gaps", type=int, default=20, help="injected gaps (half holes, half missing grids)")
    ap.add_argument("--overlaps", type=int, default=20, help="injected overlaps")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--baseline-timeout", type=float, default=600.0,
                    help="seconds allowed for the full-size baseline before falling back to subsets + extrapolation")
    ap.add_argument("--densify", type=float, default=0.0, metavar="M",
                    help="add a vertex every ~M metres along the synthetic grids' edges (default 0: plain "
                         "Voronoi cells, ~7 vertices each), to see how the figures move with vertex count")
    ap.add_argument("--skip-real", action="store_true", help="skip the Zhejiang real-data benchmark")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one check_coverage run")
    args = ap.parse_args()
    n, repeat = args.grids, max(1, args.repeat)

    print(machine())
    print()
    subset_sizes = sorted({max(500, n // 10), max(1000, n // 5)})
    subset_sizes = [s for s in subset_sizes if s < n]
    t = time.perf_counter()
    layer = build_layer(n, args.gaps, args.overlaps, args.seed, subset_sizes, args.densify)
    built_s = time.perf_counter() - t
    fwd = pyproj.Transformer.from_crs("EPSG:4326", laea_crs(*CENTRE), always_xy=True)
    parent_km2 = transform_all(fwd, layer["parent"]).area / 1e6
    vertices = int(shapely.get_num_coordinates(layer["grids"]).sum())
    print(f"Synthetic layer: {len(layer['grids']):,} grids (Voronoi, seed {args.seed}"
          f"{f', densified every {args.densify:g} m' if args.densify > 0 else ''}) in a parent of "
          f"{parent_km2:,.1f} km² around lon {CENTRE[0]}, lat {CENTRE[1]}; {vertices:,} vertices; "
          f"built in {built_s:.1f} s (not timed below)")
    print(f"  injected: {len(layer['gap_m2'])} gaps ({layer['n_holes']} holes in grids, {layer['n_missing']} missing "
          f"grids), {layer['gap_m2'].sum():,.1f} m²; {len(layer['overlap_m2'])} overlaps, "
          f"{layer['overlap_m2'].sum():,.1f} m²")
    for note in layer_checks(layer):
        print("  " + note)
    print()

    rows = []  # (method, grids, best, median, rss, tm, gaps, overlaps, speed-up, note)
    verdict_ok = True
    with tempfile.TemporaryDirectory(prefix="coverage_bench_") as tmp:
        full = os.path.join(tmp, "full.pkl")
        save(full, layer["parent"], layer["grids"], layer["codes"])

        print(f"Running geogrid check_coverage x{repeat} ...", flush=True)
        g = measure("geogrid", full, repeat, budget=max(args.baseline_timeout, 600), profile=args.profile)
        if g["runs"] == 0:
            print("geogrid did not finish one run within its budget")
            return 1
        g_ok, g_lines = verify(g["found"], layer["gaps"], layer["gap_m2"], layer["overlaps"], layer["overlap_m2"])
        print("  geogrid verification: " + ("PASS" if g_ok else "FAIL"))
        for line in g_lines:
            print("    " + line)
        verdict_ok &= g_ok

        print(f"Running the GeoPandas baseline x{repeat} (budget {args.baseline_timeout:.0f} s) ...", flush=True)
        b = measure("baseline", full, repeat, budget=args.baseline_timeout)
        extrapolated = b["runs"] == 0
        sub_results = []
        if not extrapolated:
            b_ok, b_lines = verify(b["found"], layer["gaps"], layer["gap_m2"], layer["overlaps"], layer["overlap_m2"])
            print("  baseline verification: " + ("PASS" if b_ok else "FAIL")
                  + ("" if b["runs"] == repeat else f"  ({b['runs']} of {repeat} runs fitted in the budget)"))
            for line in b_lines:
                print("    " + line)
        else:
            print(f"  full baseline did not finish within {args.baseline_timeout:.0f} s: stopped; running it on "
                  f"subsets of {', '.join(f'{s:,}' for s in subset_sizes)} grids and extrapolating", flush=True)
            for size in subset_sizes:
                s = layer["subsets"][size]
                path = os.path.join(tmp, f"sub{size}.pkl")
                save(path, s["parent"], layer["grids"][s["grids"]], layer["codes"][s["grids"]])
                sg = measure("geogrid", path, repeat, budget=args.baseline_timeout)
                sb = measure("baseline", path, repeat, budget=args.baseline_timeout)
                eg = [layer["gaps"][k] for k in s["gaps"]], layer["gap_m2"][s["gaps"]]
                eo = [layer["overlaps"][k] for k in s["overlaps"]], layer["overlap_m2"][s["overlaps"]]
                for name, r in (("geogrid", sg), ("baseline", sb)):
                    if r["runs"]:
                        ok, lines = verify({**r["found"], "other": {}}, eg[0], eg[1], eo[0], eo[1])
                        print(f"  subset {size:,} grids, {name} verification: {'PASS' if ok else 'FAIL'}")
                        for line in lines:
                            print("    " + line)
                sub_results.append((size, len(s["grids"]), sg, sb))

        # ---- table
        def counts(r):
            return (len(r["found"]["gap"]), len(r["found"]["overlap"])) if r["found"] else ("-", "-")

        gg, go = counts(g)
        rows.append(("geogrid check_coverage", len(layer["grids"]), g["best"], g["median"], g["rss_delta"],
                     g["tm_peak"], gg, go, None))
        if not extrapolated:
            bg, bo = counts(b)
            p, pm = b["parts"], b["parts_median"]
            rows.append(("  baseline: to_crs", len(layer["grids"]), p["to_crs"], pm["to_crs"], None, None, "", "",
                         None))
            rows.append(("  baseline: union_all+difference", len(layer["grids"]), p["union_diff"], pm["union_diff"],
                         None, None, bg, "", p["union_diff"] / g["best"]))
            rows.append(("  baseline: self-overlay", len(layer["grids"]), p["overlay"], pm["overlay"], None, None, "",
                         bo, None))
            rows.append(("baseline total (GeoPandas)", len(layer["grids"]), b["best"], b["median"], b["rss_delta"],
                         b["tm_peak"], bg, bo, b["best"] / g["best"]))
            b_best, b_med, b_union = b["best"], b["median"], p["union_diff"] + p["to_crs"]
        else:
            for size, ng, sg, sb in sub_results:
                if not sb["runs"]:
                    continue
                rows.append(("geogrid (subset)", ng, sg["best"], sg["median"], sg["rss_delta"], sg["tm_peak"],
                             *counts(sg), None))
                rows.append(("  baseline (subset) union+diff", ng, sb["parts"]["union_diff"],
                             sb["parts_median"]["union_diff"], None, None, counts(sb)[0], "", None))
                rows.append(("  baseline (subset) overlay", ng, sb["parts"]["overlay"], sb["parts_median"]["overlay"],
                             None, None, "", counts(sb)[1], None))
                rows.append(("baseline total (subset)", ng, sb["best"], sb["median"], sb["rss_delta"], sb["tm_peak"],
                             *counts(sb), sb["best"] / sg["best"]))
            fit = [(ng, sb) for _, ng, _, sb in sub_results if sb["runs"]]
            if len(fit) < 1:
                print("baseline could not run even on the subsets within the budget")
                return 1

            def extrapolate(get):
                """Linear in the number of grids from the largest subset (the observed exponent
                between the two subsets is returned for information only: fitted on small,
                noisy timings it overshoots; measured full-size runs scale at most linearly)."""
                (n1, r1), (n2, r2) = (fit[0], fit[-1]) if len(fit) > 1 else (fit[0], fit[0])
                k = math.log(get(r2) / get(r1)) / math.log(n2 / n1) if n2 != n1 else float("nan")
                return get(r2) * len(layer["grids"]) / n2, k

            b_best, k_tot = extrapolate(lambda r: r["best"])
            b_med, _ = extrapolate(lambda r: r["median"])
            b_union, k_u = extrapolate(lambda r: r["parts"]["union_diff"] + r["parts"]["to_crs"])
            b_ovl, k_o = extrapolate(lambda r: r["parts"]["overlay"])
            rows.append(("  baseline union+diff EXTRAPOLATED", len(layer["grids"]), b_union, None, None, None, "", "",
                         b_union / g["best"]))
            rows.append(("  baseline overlay EXTRAPOLATED", len(layer["grids"]), b_ovl, None, None, None, "", "", None))
            rows.append(("baseline total EXTRAPOLATED", len(layer["grids"]), b_best, b_med, None, None, "", "",
                         b_best / g["best"]))

    print()
    head = (f"{'method':<36} {'grids':>7} {'best s':>8} {'median s':>8} {'RSS+ MB':>8} {'py MB':>7} {'gaps':>5} "
            f"{'overlaps':>8} {'speed-up':>8}")
    print(head)
    print("-" * len(head))
    for m, ng, best, med, rss, tm, ga, ov, sp in rows:
        print(f"{m:<36} {ng:>7,} {fmt_s(best):>8} {fmt_s(med):>8} "
              f"{('-' if rss is None else f'{rss:.0f}' if rss >= 10 else f'{rss:.1f}'):>8} "
              f"{('-' if tm is None else f'{tm:.0f}' if tm >= 10 else f'{tm:.1f}'):>7} {ga!s:>5} {ov!s:>8} "
              f"{('' if sp is None else f'{sp:.1f}x'):>8}")
    print("RSS+ MB: rise of the worker process' peak RSS (VmHWM, reset after loading the data) over its RSS then; "
          "py MB: tracemalloc peak (Python and numpy heap only, GEOS' own allocations are not seen); "
          "speed-up: baseline best / geogrid best.")
    if extrapolated:
        print(f"NOTE: the full-size baseline exceeded --baseline-timeout={args.baseline_timeout:.0f} s and was "
              f"stopped; its full-size figures are EXTRAPOLATED linearly from the {sub_results[-1][1]:,}-grid subset, "
              f"not measured (exponent observed between the two subsets: {k_tot:.2f} total, {k_u:.2f} "
              f"union+diff, {k_o:.2f} overlay).")
    if g.get("profile"):
        print()
        print("cProfile of one check_coverage run (by own time):")
        print(g["profile"])

    if not args.skip_real:
        print()
        print(f"Real data: Zhejiang districts ({REAL}), best of {repeat}")
        for line in real_data(repeat):
            print(line)

    print()
    g_med = g["median"]
    fast = g_med < 10.0
    speed = b_med / g_med
    tag = "" if len(layer["grids"]) == 50_000 else f" (run at {len(layer['grids']):,} grids; the target is for 50,000)"
    print(f"VERDICT: {len(layer['grids']):,} grids checked in {g_med:.2f} s median "
          f"({'PASS' if fast else 'FAIL'} < 10 s){tag}; {speed:.1f}x faster than the obvious GeoPandas approach "
          f"(median vs median{', baseline extrapolated' if extrapolated else ''}; "
          f"{'PASS' if speed >= 10 else 'FAIL'} >= 10x); injected problems found exactly: "
          f"{'PASS' if verdict_ok else 'FAIL'}.")
    return 0 if (fast and speed >= 10 and verdict_ok) else 1


if __name__ == "__main__":
    sys.exit(main())
