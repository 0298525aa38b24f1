"""Checking and normalising incoming boundaries, vectorised over arrays of geometries.

Every boundary that enters geogrid (one feature from the API or a whole file) passes
through :func:`check_polygons`, so a self-intersection, a swapped lat/lon or an empty
polygon gets the same message wherever it comes from. GeoJSON geometries (API bodies and
GeoJSON files) are read by :func:`parse_geojson_geometries` first, which counts their
vertices from the list lengths and refuses oversized input before any geometry is built.

Limits (``Settings.max_vertices_per_feature`` and ``max_vertices_per_request``): a feature
over its limit is a 422 problem naming the feature, its count and the limit; a request
over its limit is refused whole with 413 (Content Too Large), since the remedy is to
split the request, not to fix a feature. Rings must be closed as GeoJSON requires (first
and last position equal): an unclosed ring is refused, never closed silently. Altitude
(Z) is accepted, since GeoJSON allows it, but boundaries are 2D: it is dropped with a
warning in the answer, never silently.

>>> import shapely
>>> bow_tie = shapely.Polygon([(120, 30), (120.01, 30.01), (120.01, 30), (120, 30.01)])
>>> result = check_polygons([bow_tie], extent=(73, 3, 136, 54))
>>> result.problems[0].message
'invalid polygon: Self-intersection'
>>> result.problems[0].location
(120.005, 30.005)
>>> fixed = check_polygons([bow_tie], extent=(73, 3, 136, 54), repair=True)
>>> fixed.problems, fixed.repaired, fixed.geoms[0].geom_type
([], [0], 'MultiPolygon')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from geogrid.core.errors import GeogridError, Problem

POLYGONAL = {"Polygon", "MultiPolygon"}
_REASON = re.compile(r"^(?P<what>.*?)\s*\[(?P<x>[-+\d.eE]+|nan) (?P<y>[-+\d.eE]+|nan)\]$")


@dataclass
class Checked:
    """Result of :func:`check_polygons`: cleaned geometries (None where rejected)."""

    geoms: np.ndarray
    problems: list[Problem] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def count_positions(obj: object) -> int:
    """Vertices of a GeoJSON geometry dict, summed from list lengths: O(rings), so that an
    oversized geometry is refused before its positions are visited or built. Malformed
    nesting counts what it can; :func:`parse_geojson_geometry` names the error."""
    if not isinstance(obj, dict):
        return 0
    kind, coords = obj.get("type"), obj.get("coordinates")
    if kind == "GeometryCollection":
        members = obj.get("geometries")
        return sum(count_positions(g) for g in members) if isinstance(members, list) else 0
    depths: dict[object, int] = {"Point": 0, "LineString": 1, "MultiPoint": 1, "Polygon": 2, "MultiLineString": 2,
                                 "MultiPolygon": 3}
    depth = depths.get(kind)
    if depth is None or not isinstance(coords, list):
        return 0
    if depth == 0:
        return 1
    level = [coords]
    for _ in range(depth - 1):
        level = [item for lst in level for item in lst if isinstance(item, list)]
    return sum(len(lst) for lst in level)


def vertex_limit_problems(counts: Sequence[int] | np.ndarray, *, per_feature: int | None,
                          per_request: int | None, codes: Sequence[str | None] | None = None) -> list[Problem]:
    """Problems for features over ``per_feature`` vertices; raises 413 when all of them
    together are over ``per_request`` (the request must be split, whatever its features)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if per_request is not None and total > per_request:
        raise GeogridError(f"{total:,} vertices in this request, more than the limit of {per_request:,} "
                           "(max_vertices_per_request): split it into smaller requests", status=413,
                           extra={"vertices": total, "limit": per_request})
    if per_feature is None:
        return []
    return [Problem(f"{int(counts[i]):,} vertices, more than the limit of {per_feature:,} per feature "
                    "(max_vertices_per_feature): simplify the boundary or split the feature",
                    field="geometry", index=int(i), code=codes[int(i)] if codes is not None else None)
            for i in np.flatnonzero(counts > per_feature)]


def parse_geojson_geometries(objs: Sequence[object], *, codes: Sequence[str | None] | None = None,
                             max_vertices_per_feature: int | None = None,
                             max_vertices_per_request: int | None = None,
                             label: str | None = None) -> list[shapely.Geometry | None]:
    """GeoJSON geometry dicts (API bodies, GeoJSON files) to shapely, all or nothing.

    Vertex limits are checked first, on counts from the list lengths, so a polygon of a
    million vertices costs a few list lookups, not a million shapely points. Raises
    :class:`GeogridError`: 413 over the request limit, else 422 listing every feature
    that is over its limit or malformed. ``label`` (a file's name) prefixes the message.
    """
    n = len(objs)
    problems = vertex_limit_problems([count_positions(o) for o in objs], per_feature=max_vertices_per_feature,
                                     per_request=max_vertices_per_request, codes=codes)
    too_big = {p.index for p in problems}
    geoms: list[shapely.Geometry | None] = []
    for i, obj in enumerate(objs):
        if i in too_big:
            geoms.append(None)
            continue
        try:
            geoms.append(parse_geojson_geometry(obj))
        except ValueError as exc:
            geoms.append(None)
            problems.append(Problem(str(exc), field="geometry", index=i, code=codes[i] if codes is not None else None))
    if problems:
        bad = len({p.index for p in problems})
        raise GeogridError(f"{label + ': ' if label else ''}{bad} of {n} features rejected; nothing was imported",
                           problems=sorted(problems, key=lambda p: p.index or 0))
    return geoms


def parse_geojson_geometry(obj: object, *, max_vertices: int | None = None) -> shapely.Geometry | None:
    """A GeoJSON geometry object (dict) to shapely; raises ValueError with the reason
    (over ``max_vertices``, malformed positions, an unclosed ring)."""
    if obj is None:
        return None
    if not isinstance(obj, dict) or "type" not in obj:
        raise ValueError("geometry must be a GeoJSON geometry object with a 'type'")
    if max_vertices is not None and (count := count_positions(obj)) > max_vertices:
        raise ValueError(f"{count:,} vertices, more than the limit of {max_vertices:,} per feature "
                         "(max_vertices_per_feature): simplify the boundary or split the feature")
    _check_positions(obj.get("coordinates"), obj.get("type"))
    _check_rings_closed(obj)
    try:
        return shapely.geometry.shape(obj)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise ValueError(f"malformed {obj.get('type')} geometry: {exc}") from None


def request_geometry(obj: object, *, rejected: str, max_vertices: int | None = None,
                     code: str | None = None) -> shapely.Geometry | None:
    """:func:`parse_geojson_geometry` for one geometry of a request: a bad one is refused as
    a 422 :class:`GeogridError` (``rejected``) whose problem names the reason, the field
    ``geometry`` and the feature's ``code``.

    >>> try:
    ...     request_geometry({"type": "Point"}, rejected="exemption rejected")
    ... except GeogridError as exc:
    ...     print(exc.status, exc.message, [p.field for p in exc.problems])
    422 exemption rejected ['geometry']
    """
    try:
        return parse_geojson_geometry(obj, max_vertices=max_vertices)
    except ValueError as exc:
        raise GeogridError(rejected, problems=[Problem(str(exc), field="geometry", code=code)]) from None


def _check_rings_closed(obj: dict) -> None:
    """GeoJSON rings have at least four positions and end where they start (RFC 7946
    3.1.6); shapely would close an open ring silently, turning a truncated or mis-ordered
    boundary into a different area."""
    kind, coords = obj.get("type"), obj.get("coordinates")
    polygons: object
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon":
        polygons = coords
    else:
        return
    if not isinstance(polygons, list):
        return  # shapely names the malformed structure
    for p, rings in enumerate(polygons):
        if not isinstance(rings, list):
            continue
        for r, ring in enumerate(rings):
            if not isinstance(ring, list):
                continue  # shapely names the malformed structure
            which = "exterior ring" if r == 0 else f"ring {r} (hole {r})"
            where = f" of polygon {p}" if kind == "MultiPolygon" else ""
            if len(ring) < 4:
                # An empty hole is valid to GEOS but not to PostGIS: refused here, not at the insert.
                raise ValueError(f"malformed {kind} geometry: {which}{where} has {len(ring)} positions; "
                                 "a ring needs at least 4 "
                                 "(three corners and the first repeated at the end)")
            if ring[0] == ring[-1]:
                continue
            raise ValueError(f"{which}{where} is not closed: first point {_position(ring[0])} differs from "
                             f"last point {_position(ring[-1])}; repeat the first point at the end")


def _position(item) -> str:
    return "[" + ", ".join(map(str, item)) + "]" if isinstance(item, list | tuple) else repr(item)[:60]


def _check_positions(coords, kind) -> None:
    """GeoJSON positions are arrays of 2 or 3 JSON numbers; shapely would coerce strings."""
    stack = [coords]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple) and item and not isinstance(item[0], list | tuple):
            if not 2 <= len(item) <= 3 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item):
                raise ValueError(f"malformed {kind} geometry: a position must be 2 or 3 numbers, got {item!r}"[:300])
        elif isinstance(item, list | tuple):
            stack.extend(item)


def split_reason(reason: str) -> tuple[str, tuple[float, float] | None]:
    """GEOS' ``is_valid_reason`` text to (message, location)."""
    m = _REASON.match(reason)
    if not m:
        return reason, None
    x, y = float(m["x"]), float(m["y"])
    return m["what"], (None if np.isnan(x) else (round(x, 7), round(y, 7)))


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a (repaired) geometry as a MultiPolygon; lines and points dropped."""
    parts = shapely.get_parts(geom)
    polys = [p for p in parts if p.geom_type in POLYGONAL]
    if not polys:
        return shapely.MultiPolygon()
    return shapely.multipolygons(shapely.get_parts(polys))


def _swapped_fits(bounds: np.ndarray, extent: Sequence[float]) -> np.ndarray:
    minx, miny, maxx, maxy = extent
    return (bounds[:, 1] >= minx) & (bounds[:, 3] <= maxx) & (bounds[:, 0] >= miny) & (bounds[:, 2] <= maxy)


def check_polygons(
    geoms: Sequence[shapely.Geometry | None] | np.ndarray,
    *,
    extent: Sequence[float],
    repair: bool = False,
    codes: Sequence[str | None] | None = None,
    max_vertices: int | None = None,
    max_total_vertices: int | None = None,
) -> Checked:
    """Check lon/lat boundaries and return them as valid, counter-clockwise MultiPolygons.

    Rejects: missing or empty geometry, a non-polygonal type, more than ``max_vertices``
    vertices (all of them together over ``max_total_vertices``: 413 for the whole request),
    coordinates outside lon/lat range or outside ``extent`` (with a hint when swapping lat
    and lon would fit), and invalid polygons (GEOS' reason and the location). With
    ``repair`` an invalid polygon is mended with ``make_valid`` (structure method) and
    listed in ``repaired`` instead. Altitude is dropped with a warning (boundaries are 2D).
    """
    arr = np.asarray(geoms, dtype=object)
    n = len(arr)
    codes = list(codes) if codes is not None else [None] * n
    present_ = np.array([g is not None for g in arr], dtype=bool)
    # Counted before anything else touches the coordinates: the limits bound all later work.
    counts = np.zeros(n, dtype=np.int64)
    if present_.any():
        counts[present_] = shapely.get_num_coordinates(arr[present_])
    too_big = vertex_limit_problems(counts, per_feature=max_vertices, per_request=max_total_vertices, codes=codes)
    warnings: list[Problem] = []
    if present_.any():  # altitude is allowed in GeoJSON, but boundaries are 2D: say so
        with_z = np.flatnonzero(present_)[shapely.has_z(arr[present_])]
        warnings += [Problem("altitude (Z) dropped: boundaries are stored in 2D", field="geometry", index=i,
                             code=codes[i]) for i in with_z]
        arr[present_] = shapely.force_2d(arr[present_])
    problems: list[Problem] = list(too_big)
    repaired: list[int] = []
    ok = np.ones(n, dtype=bool)
    ok[[p.index for p in too_big if p.index is not None]] = False

    def reject(i: int, message: str, location=None) -> None:
        ok[i] = False
        problems.append(Problem(message, field="geometry", index=i, code=codes[i], location=location))

    missing = np.array([g is None for g in arr], dtype=bool)
    for i in np.flatnonzero(missing):
        reject(int(i), "missing geometry")
    present = np.flatnonzero(~missing)
    if present.size:
        sub = arr[present]
        types = shapely.get_type_id(sub)
        empty = shapely.is_empty(sub)
        bounds = shapely.bounds(sub)
        finite = np.isfinite(bounds).all(axis=1)
        for j, i in enumerate(present):
            if not ok[i]:
                continue
            if types[j] not in (3, 6):  # Polygon, MultiPolygon
                reject(int(i), f"expected a Polygon or MultiPolygon, got {sub[j].geom_type}")
            elif empty[j]:
                reject(int(i), "empty geometry")
            elif not finite[j]:
                reject(int(i), "coordinates are not finite numbers")
        candidates = present[ok[present]]
        b = shapely.bounds(arr[candidates]) if candidates.size else np.empty((0, 4))
        out_of_range = (b[:, 0] < -180) | (b[:, 2] > 180) | (b[:, 1] < -90) | (b[:, 3] > 90)
        minx, miny, maxx, maxy = extent
        outside = (b[:, 0] < minx) | (b[:, 2] > maxx) | (b[:, 1] < miny) | (b[:, 3] > maxy)
        swapped = _swapped_fits(b, extent) if b.size else np.zeros(0, dtype=bool)
        for j, i in enumerate(candidates):
            if not (out_of_range[j] or outside[j]):
                continue
            corner = (float(b[j, 0]), float(b[j, 1]))
            if swapped[j]:
                reject(i, "latitude and longitude look swapped: GeoJSON wants longitude first", corner)
            elif out_of_range[j]:
                reject(i, "coordinates out of range for lon/lat degrees (lon -180..180, lat -90..90); "
                       "projected coordinates need their CRS declared", corner)
            else:
                reject(i, f"outside the service extent {tuple(extent)} (lon/lat)", corner)

    candidates = np.flatnonzero(ok)
    out = np.full(n, None, dtype=object)
    if candidates.size:
        sub = arr[candidates]
        valid = shapely.is_valid(sub)
        for j in np.flatnonzero(~valid).tolist():
            i = candidates[j]
            what, where = split_reason(shapely.is_valid_reason(sub[j]))
            if not repair:
                reject(i, f"invalid polygon: {what}", where)
                continue
            mended = _polygonal_part(shapely.make_valid(sub[j], method="structure", keep_collapsed=False))
            if mended.is_empty:
                reject(i, f"invalid polygon ({what}) that collapses to nothing when repaired", where)
            else:
                sub[j] = mended
                repaired.append(int(i))
        keep = ok[candidates]
        if keep.any():
            good = sub[keep]
            single = shapely.get_type_id(good) == 3
            if single.any():
                good[single] = shapely.multipolygons(good[single], indices=np.arange(single.sum()))
            out[candidates[keep]] = shapely.orient_polygons(good, exterior_cw=False)
    problems.sort(key=lambda p: p.index or 0)
    return Checked(out, problems, repaired, warnings)
