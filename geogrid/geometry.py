"""Checking and normalising incoming boundaries, vectorised over arrays of geometries.

Every boundary that enters geogrid (one feature from the API or a whole file) passes
through :func:`check_polygons`, so a self-intersection, a swapped lat/lon or an empty
polygon gets the same message wherever it comes from.

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

from geogrid.errors import Problem

POLYGONAL = {"Polygon", "MultiPolygon"}
_REASON = re.compile(r"^(?P<what>.*?)\s*\[(?P<x>[-+\d.eE]+|nan) (?P<y>[-+\d.eE]+|nan)\]$")


@dataclass
class Checked:
    """Result of :func:`check_polygons`: cleaned geometries (None where rejected)."""

    geoms: np.ndarray
    problems: list[Problem] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)


def parse_geojson_geometry(obj: object) -> shapely.Geometry | None:
    """A GeoJSON geometry object (dict) to shapely; raises ValueError with the reason."""
    if obj is None:
        return None
    if not isinstance(obj, dict) or "type" not in obj:
        raise ValueError("geometry must be a GeoJSON geometry object with a 'type'")
    _check_positions(obj.get("coordinates"), obj.get("type"))
    try:
        return shapely.geometry.shape(obj)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise ValueError(f"malformed {obj.get('type')} geometry: {exc}") from None


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
) -> Checked:
    """Check lon/lat boundaries and return them as valid, counter-clockwise MultiPolygons.

    Rejects: missing or empty geometry, a non-polygonal type, coordinates outside lon/lat
    range or outside ``extent`` (with a hint when swapping lat and lon would fit), and
    invalid polygons (GEOS' reason and the location). With ``repair`` an invalid polygon
    is mended with ``make_valid`` (structure method) and listed in ``repaired`` instead.
    """
    arr = np.asarray(geoms, dtype=object)
    n = len(arr)
    present_ = np.array([g is not None for g in arr], dtype=bool)
    if present_.any():  # altitude is allowed in GeoJSON, but boundaries are 2D
        arr[present_] = shapely.force_2d(arr[present_])
    codes = list(codes) if codes is not None else [None] * n
    problems: list[Problem] = []
    repaired: list[int] = []
    ok = np.ones(n, dtype=bool)

    def reject(i: int, message: str, location=None) -> None:
        ok[i] = False
        problems.append(Problem(message, field="geometry", index=i, code=codes[i], location=location))

    missing = np.array([g is None for g in arr], dtype=bool)
    for i in np.flatnonzero(missing):
        reject(i, "missing geometry")
    present = np.flatnonzero(~missing)
    if present.size:
        sub = arr[present]
        types = shapely.get_type_id(sub)
        empty = shapely.is_empty(sub)
        bounds = shapely.bounds(sub)
        finite = np.isfinite(bounds).all(axis=1)
        for j, i in enumerate(present):
            if types[j] not in (3, 6):  # Polygon, MultiPolygon
                reject(i, f"expected a Polygon or MultiPolygon, got {sub[j].geom_type}")
            elif empty[j]:
                reject(i, "empty geometry")
            elif not finite[j]:
                reject(i, "coordinates are not finite numbers")
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
        for j in np.flatnonzero(~valid):
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
    problems.sort(key=lambda p: p.index)
    return Checked(out, problems, repaired)
