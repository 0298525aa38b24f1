"""The coverage engine: does a set of grids cover its parent with no gaps and no overlaps?
("全覆盖、无盲区", "网格边界清晰"). Pure geometry, no database: :mod:`geogrid.coverage`
feeds it from PostGIS and stores what it finds.

Method. Topology is computed in lon/lat, where edges are straight exactly as PostGIS stores
them (so the answers agree with ST_Union/ST_Difference); each piece found is then projected
to a Lambert azimuthal equal-area projection centred on the parent, so areas are exact in
m² and widths are metres. GEOS' coverage
validation (``coverage_invalid_edges``) marks the grids whose edges do not match their
neighbours': only those can take part in an overlap, so the pairwise intersection tests
(through an STRtree) run on that subset alone. The union needed for gaps is the
near-linear ``coverage_union_all`` of the clean grids plus an ordinary union of the few
flagged ones. A valid layer of 50,000 grids is thus checked without any all-pairs overlay
and without one big cascaded union. ``bench/coverage_bench.py`` compares this with the
obvious GeoPandas approach.

>>> import shapely
>>> parent = shapely.box(120.0, 30.0, 120.02, 30.01)
>>> grids = [shapely.box(120.0, 30.0, 120.0101, 30.01), shapely.box(120.01, 30.0, 120.018, 30.01)]
>>> result = check_coverage(parent, grids, ["a", "b"])
>>> sorted(p["kind"] for p in result.problems)
['gap', 'overlap']
>>> result.summary["coverage_pct"] < 100
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyproj
import shapely

from geogrid.geo.geometry import split_reason

GAP, OVERLAP, SPILL, INVALID, EXEMPT = "gap", "overlap", "spill_over", "invalid", "exempt"


@dataclass
class CoverageOptions:
    """Thresholds a county sets for itself (defaults from published plans; see DOMAIN.md)."""

    sliver_width_m: float = 2.0  # a gap narrower than this is a digitising sliver, not a blind spot
    min_area_m2: float = 1.0  # pieces smaller than this are floating-point noise
    households: tuple[int, int] = (300, 500)
    population: tuple[int, int] = (1000, 1500)
    area_outlier_z: float = 3.5  # robust z-score of log(area) beyond which a grid is an outlier
    expiring_within_days: int = 30
    max_grids_per_person: int = 5


@dataclass
class CoverageResult:
    summary: dict
    problems: list[dict] = field(default_factory=list)


def local_projection(geom: shapely.Geometry) -> tuple[pyproj.Transformer, pyproj.Transformer]:
    """Forward and inverse transformers lon/lat <-> equal-area metres around ``geom``."""
    c = geom.centroid
    laea = pyproj.CRS.from_proj4(f"+proj=laea +lat_0={c.y:.6f} +lon_0={c.x:.6f} +datum=WGS84 +units=m +no_defs")
    fwd = pyproj.Transformer.from_crs("EPSG:4326", laea, always_xy=True)
    inv = pyproj.Transformer.from_crs(laea, "EPSG:4326", always_xy=True)
    return fwd, inv


def project(transformer: pyproj.Transformer, geoms):
    """``geoms`` (one or an array) through ``transformer``, e.g. into the metres of :func:`local_projection`."""
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def polygonal_parts(geoms: np.ndarray) -> np.ndarray:
    """Keep the polygonal parts of each geometry (intersections also yield lines and points)."""
    out = np.asarray(geoms, dtype=object).copy()
    # Only collections need work (vectorised test first: this runs on whole layers).
    mixed = np.flatnonzero(~np.isin(shapely.get_type_id(out), (-1, 3, 6)) & ~shapely.is_empty(out))
    for i in mixed:
        parts = [p for p in shapely.get_parts(out[i]) if p.geom_type in ("Polygon", "MultiPolygon")]
        out[i] = shapely.union_all(parts) if parts else shapely.Polygon()
    return out


def width(geom: shapely.Geometry, sliver_width: float) -> float:
    """Width of a polygon in metres: the diameter of its largest inscribed circle.

    A polygon narrower than ``sliver_width`` (it vanishes when shrunk by half of it) is a
    strip: its width is then 2·area/perimeter, exact for a strip and far cheaper than the
    inscribed circle, which costs a lot on kilometre-long slivers."""
    if geom.is_empty:
        return 0.0
    if shapely.buffer(geom, -sliver_width / 2).is_empty:
        return 2.0 * geom.area / max(geom.length, 1e-12)
    tolerance = max(0.01, min(1.0, np.sqrt(geom.area) / 1000))
    return 2.0 * shapely.maximum_inscribed_circle(geom, tolerance).length


def check_coverage(
    parent: shapely.Geometry,
    children,
    codes: Sequence[str] | np.ndarray,
    *,
    exempt: shapely.Geometry | None = None,
    options: CoverageOptions | None = None,
) -> CoverageResult:
    """Find gaps, overlaps, spill-over and invalid geometries of ``children`` (lon/lat)
    inside ``parent``. Legitimate voids in ``exempt`` are not gaps (reported as ``exempt``).

    Every problem is a dict with ``kind``, ``codes``, ``area_m2``, ``geometry`` (lon/lat),
    ``point`` (lon, lat inside it) and kind-specific fields; the check completes on the
    valid part of the data when some geometries are invalid.
    """
    options = options or CoverageOptions()
    # Topology is computed in lon/lat, where edges are straight as PostGIS stores them;
    # only the pieces found are projected, to measure them in metres.
    fwd, _ = local_projection(parent)
    kids = np.asarray(children, dtype=object).copy()
    codes = np.asarray(codes, dtype=object)
    whole = parent
    problems: list[dict] = []

    def emit(kind: str, geom: shapely.Geometry, involved, *, measure_width: bool = False, **extra) -> None:
        metric = project(fwd, geom)
        if metric.area < options.min_area_m2:
            return
        point = shapely.point_on_surface(geom)
        if measure_width:
            extra["width_m"] = round(width(metric, options.sliver_width_m), 2)
        problems.append({"kind": kind, "codes": [str(c) for c in involved], "area_m2": round(metric.area, 2),
                         "geometry": geom, "point": (round(point.x, 7), round(point.y, 7)), **extra})

    # Invalid geometries: reported, then mended so that the rest of the check can run.
    missing = shapely.is_missing(kids) | shapely.is_empty(kids)
    kids[missing] = shapely.Polygon()
    polygonal = np.isin(shapely.get_type_id(kids), (3, 6)) | missing
    valid = shapely.is_valid(kids) & polygonal & ~missing
    for i in np.flatnonzero(~valid):
        if missing[i] or not polygonal[i]:
            problems.append({"kind": INVALID, "codes": [str(codes[i])], "area_m2": None, "geometry": None,
                             "reason": "missing or empty geometry" if missing[i] else f"not a polygon: {kids[i].geom_type}",
                             "point": None})
            kids[i] = shapely.Polygon()
            continue
        what, where = split_reason(shapely.is_valid_reason(kids[i]))
        problems.append({"kind": INVALID, "codes": [str(codes[i])], "reason": what, "area_m2": None,
                         "geometry": None, "point": where})
        kids[i] = shapely.make_valid(kids[i], method="structure")
    kids = polygonal_parts(kids)
    if not shapely.is_valid(whole):
        whole = shapely.make_valid(whole, method="structure")

    # Grids whose edges do not match their neighbours': only those can overlap anything.
    flagged = (~shapely.is_empty(shapely.coverage_invalid_edges(kids)) | ~valid) if len(kids) else np.zeros(0, bool)
    tree = shapely.STRtree(kids)
    f_idx = np.flatnonzero(flagged)
    if f_idx.size:
        src, dst = tree.query(kids[f_idx], predicate="intersects")
        a, b = f_idx[src], dst
        keep = a != b
        pairs = np.unique(np.column_stack([np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])]), axis=0)
        if len(pairs):
            shared = polygonal_parts(shapely.intersection(kids[pairs[:, 0]], kids[pairs[:, 1]]))
            for (i, j), geom in zip(pairs, shared):
                if not geom.is_empty:
                    emit(OVERLAP, geom, (codes[i], codes[j]), measure_width=True)

    # Union: linear coverage union for the clean grids, ordinary union for the flagged few.
    clean = kids[~flagged & ~shapely.is_empty(kids)]
    clean_union = shapely.coverage_union_all(clean) if len(clean) else shapely.Polygon()
    union = shapely.union_all([clean_union, *kids[flagged]]) if flagged.any() else clean_union

    # Spill-over: the part of each grid outside its parent (prepared: one parent, many grids).
    shapely.prepare(whole)
    outside = np.flatnonzero(~shapely.covers(whole, kids))
    if outside.size:
        spills = polygonal_parts(shapely.difference(kids[outside], whole))
        for i, geom in zip(outside, spills):
            if not geom.is_empty:
                emit(SPILL, geom, (codes[i],), share=round(shapely.area(geom) / max(kids[i].area, 1e-18), 6))

    # Gaps: the parent's land no grid claims, less the exemption mask.
    uncovered = shapely.difference(whole, union)
    if exempt is not None and not exempt.is_empty:
        for piece in shapely.get_parts(polygonal_parts(np.array([shapely.intersection(uncovered, exempt)]))[0]):
            emit(EXEMPT, piece, ())
        uncovered = shapely.difference(uncovered, exempt)
    gaps = np.asarray(shapely.get_parts(polygonal_parts(np.array([uncovered]))[0]), dtype=object)
    if gaps.size:
        near_src, near_dst = tree.query(gaps, predicate="dwithin", distance=1e-7)
        order = np.argsort(near_src, kind="stable")
        neighbours = np.split(near_dst[order], np.searchsorted(near_src[order], np.arange(1, len(gaps))))
        for k, gap in enumerate(gaps):
            before = len(problems)
            emit(GAP, gap, sorted(codes[neighbours[k]]), measure_width=True)
            if len(problems) > before:
                w = problems[-1]["width_m"]
                problems[-1]["width_class"] = "sliver" if w < options.sliver_width_m else "blind_spot"

    parent_m2 = project(fwd, whole).area
    has_exempt = exempt is not None and not exempt.is_empty
    exempt_m2 = project(fwd, shapely.intersection(whole, exempt)).area if has_exempt else 0.0
    # Coverage is measured on the land that must be covered: grid land inside the
    # exemption counts neither way. The land left uncovered is already at hand (small
    # pieces), so no overlay of the whole layer is needed for it.
    land = parent_m2 - exempt_m2
    covered_m2 = land - project(fwd, uncovered).area
    counts: dict[str, int] = {}
    for p in problems:
        counts[p["kind"]] = counts.get(p["kind"], 0) + 1
    summary = {
        "grids": int(len(kids)),
        "parent_area_m2": round(parent_m2, 1),
        "exempt_area_m2": round(exempt_m2, 1),
        "covered_area_m2": round(covered_m2, 1),
        "coverage_pct": round(100.0 * min(covered_m2, land) / land, 4) if land > 0 else 100.0,
        "gap_area_m2": round(sum(p["area_m2"] for p in problems if p["kind"] == GAP), 2),
        "overlap_area_m2": round(sum(p["area_m2"] for p in problems if p["kind"] == OVERLAP), 2),
        "spill_area_m2": round(sum(p["area_m2"] for p in problems if p["kind"] == SPILL), 2),
        "counts": counts,
        "grids_with_unmatched_edges": int(flagged.sum()),
        "edge_matched": bool(not flagged.any()),
    }
    return CoverageResult(summary, problems)


def simplify_layer(geoms, tolerance_m: float, *, around: shapely.Geometry | None = None) -> np.ndarray:
    """Topology-preserving simplification of a whole layer (lon/lat in and out): neighbours
    keep exactly shared edges, so a simplified map shows no slivers. ``tolerance_m`` is in
    metres. Needs an edge-matched coverage (run :func:`propose_clean` first otherwise)."""
    geoms = np.asarray(geoms, dtype=object)
    # Only the projection's centre depends on ``around``: the layer's bounding box will do.
    fwd, inv = local_projection(around if around is not None else shapely.box(*shapely.total_bounds(geoms)))
    return project(inv, shapely.coverage_simplify(project(fwd, geoms), tolerance_m))


def metres_to_degrees(metres: float, around: shapely.Geometry) -> float:
    """A distance in metres as degrees near ``around``, on the longitude scale (the
    shorter one), so that nothing narrower than ``metres`` escapes a degree threshold."""
    lat = np.radians(around.centroid.y)
    return metres / (111_320.0 * max(np.cos(lat), 0.01))


def propose_clean(parent: shapely.Geometry, children, *, gap_width_m: float = 5.0,
                  merge_strategy: str = "longest_border", snapping_distance_m: float = -1) -> np.ndarray:
    """GEOS coverage cleaning of ``children`` (lon/lat in and out): overlaps merged into one
    grid by ``merge_strategy``, gaps narrower than ``gap_width_m`` given to a neighbour,
    shared edges made identical; then clipped to the parent. Nothing is stored here.

    Cleaning runs in lon/lat, so grids it does not touch come back vertex for vertex."""
    kids = np.asarray(children, dtype=object)
    kids = polygonal_parts(np.asarray([g if g.is_valid else shapely.make_valid(g, method="structure") for g in kids],
                                 dtype=object))
    snap = snapping_distance_m if snapping_distance_m < 0 else metres_to_degrees(snapping_distance_m, parent)
    cleaned = shapely.coverage_clean(kids, gap_width=metres_to_degrees(gap_width_m, parent), snapping_distance=snap,
                                     merge_strategy=merge_strategy)
    shapely.prepare(parent)
    inside = shapely.covers(parent, cleaned)
    cleaned[~inside] = polygonal_parts(shapely.intersection(cleaned[~inside], parent))
    return cleaned
