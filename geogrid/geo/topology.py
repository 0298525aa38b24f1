"""Topological editing of grid boundaries, pure geometry in lon/lat (no database).

- :func:`move_vertices`: a vertex dragged on the map moves in every geometry that has it
  (or whose edge passes by it: the vertex is inserted there first), so neighbours stay
  edge-matched;
- :func:`split_polygon`: a (Multi)Polygon cut by a drawn (Multi)LineString into pieces in
  reading order;
- :func:`merge_polygons`: the union of adjacent grids (coverage union: holes kept);
- :func:`problem_diff`: the gaps and overlaps an edit creates and removes in the region it
  touches, measured by the coverage engine (:mod:`geogrid.geo.coverage`).

Two unit squares sharing an edge; dragging their shared corner (1, 1) keeps them matched:

>>> import shapely
>>> a, b = shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)
>>> moved, changed, missed = move_vertices([a, b], [((1, 1), (1.2, 1))], 1e-9)
>>> changed.tolist(), bool(shapely.coverage_is_valid(moved)), float(shapely.union_all(moved).area)
([True, True], True, 2.0)

A point on an edge (not a vertex) is inserted there, then moved:

>>> moved, changed, missed = move_vertices([a], [((0.5, 1), (0.5, 1.5)), ((5, 5), (6, 6))], 1e-9)
>>> changed.tolist(), float(moved[0].area), missed
([True], 1.25, [1])

>>> [p.bounds for p in split_polygon(shapely.box(0, 0, 2, 1), shapely.LineString([(1, -1), (1, 2)]))]
[(0.0, 0.0, 1.0, 1.0), (1.0, 0.0, 2.0, 1.0)]
>>> merge_polygons([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)]).bounds
(0.0, 0.0, 2.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from geogrid.geo import codes as codelib
from geogrid.geo.coverage import GAP, OVERLAP, CoverageOptions, check_coverage, polygonal_parts

Move = tuple[tuple[float, float], tuple[float, float]]


class NotCut(ValueError):
    """The line does not cut the polygon into two or more pieces."""


class NotAdjacent(ValueError):
    """A polygon of a merge does not touch the others along an edge; ``index`` names it."""

    def __init__(self, index: int) -> None:
        super().__init__(f"polygon {index} is not adjacent to the others")
        self.index = index


def move_vertices(geoms: Sequence[shapely.Geometry] | np.ndarray, moves: Sequence[Move],
                  tolerance: float) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Apply each move ``(from, to)`` to every geometry with a vertex within ``tolerance``
    (degrees) of ``from``, or an edge passing that close (a vertex is inserted there, then
    moved). Returns the new geometries, a mask of those that changed and the indices of
    the moves that reached no geometry.

    GEOS snapping does the finding and the inserting for a whole array at once: a vertex
    near ``from`` takes its exact coordinates, an edge near it gets it as a new vertex;
    then every coordinate equal to ``from`` becomes ``to``. Moves apply in order."""
    out = np.asarray(geoms, dtype=object).copy()
    changed = np.zeros(len(out), dtype=bool)
    missed = []
    for k, (src, dst) in enumerate(moves):
        point = shapely.Point(src)
        near = np.flatnonzero(shapely.dwithin(out, point, tolerance))
        if not near.size:
            missed.append(k)
            continue
        snapped = shapely.snap(out[near], point, tolerance)
        coords, owner = shapely.get_coordinates(snapped, return_index=True)
        hit = (coords[:, 0] == src[0]) & (coords[:, 1] == src[1])
        if not hit.any():
            missed.append(k)
            continue
        coords[hit] = dst
        moved = shapely.set_coordinates(snapped.copy(), coords)
        which = np.unique(owner[hit])
        out[near[which]] = moved[which]
        changed[near[which]] = True
    # A move onto itself (a vertex added where a split line crosses a shared edge) changes
    # only the grids that did not have that vertex yet.
    changed &= ~shapely.equals_exact(out, np.asarray(geoms, dtype=object), tolerance=0.0)
    return out, changed, missed


def split_polygon(geom: shapely.Geometry, line: shapely.Geometry) -> list[shapely.Geometry]:
    """The pieces of ``geom`` (Polygon or MultiPolygon) cut by ``line`` (LineString or
    MultiLineString), in reading order (north to south, west to east); holes are kept.

    A part of a MultiPolygon the line does not cut joins the piece nearest to it. Raises
    :class:`NotCut` when the line leaves fewer than two pieces (it must cross from edge
    to edge; a line ending inside is a dangle and cuts nothing)."""
    parts = np.asarray(shapely.get_parts(geom), dtype=object)
    # Noding the boundary with the line, then polygonizing: every face of the arrangement
    # inside the polygon is a piece (hole faces fall outside and are dropped).
    noded = shapely.union_all([shapely.boundary(geom), line])
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))), dtype=object)
    inside = faces[shapely.covers(geom, shapely.point_on_surface(faces))] if len(faces) else faces
    if len(inside) < 2:
        raise NotCut("the line does not cut the polygon into two or more pieces")
    owner = np.array([int(np.flatnonzero(shapely.covers(parts, shapely.point_on_surface(f)))[0]) for f in inside])
    counts = np.bincount(owner, minlength=len(parts))
    cut = [f for f, o in zip(inside, owner) if counts[o] > 1]
    if len(cut) < 2:
        raise NotCut("the line does not cut the polygon into two or more pieces")
    groups: list[list[shapely.Geometry]] = [[f] for f in cut]
    for k in np.flatnonzero(counts == 1):
        nearest = int(np.argmin(shapely.distance(np.asarray(cut, dtype=object), parts[k])))
        groups[nearest].append(parts[k])
    pieces = np.asarray([shapely.union_all(g) if len(g) > 1 else g[0] for g in groups], dtype=object)
    return [pieces[i] for i in reading_order(pieces)]


def reading_order(geoms: np.ndarray) -> np.ndarray:
    """Indices of ``geoms`` in reading order, as codes are generated
    (:func:`geogrid.geo.codes.reading_order` on points inside them)."""
    pts = shapely.point_on_surface(geoms)
    bounds = shapely.bounds(geoms)
    return codelib.reading_order(shapely.get_x(pts), shapely.get_y(pts), float(np.median(bounds[:, 3] - bounds[:, 1])))


def merge_polygons(geoms: Sequence[shapely.Geometry]) -> shapely.Geometry:
    """The union of ``geoms`` (holes kept), which must form one connected polygon; raises
    :class:`NotAdjacent` naming the first one outside the first one's component.

    Edge-matched grids get GEOS' coverage union (exact, linear); others an ordinary union."""
    arr = np.asarray(geoms, dtype=object)
    union = shapely.coverage_union_all(arr) if shapely.coverage_is_valid(arr) else shapely.union_all(arr)
    union = polygonal_parts(np.array([union], dtype=object))[0]
    if union.geom_type == "Polygon":
        return union
    components = np.asarray(shapely.get_parts(union), dtype=object)
    home = [int(np.argmax(shapely.area(shapely.intersection(components, g)))) for g in arr]
    stray = next(i for i, h in enumerate(home) if h != home[0])
    raise NotAdjacent(stray)


def crossings(geom: shapely.Geometry, line: shapely.Geometry) -> list[tuple[float, float]]:
    """The points where ``line`` crosses ``geom``'s boundary: the vertices a split adds
    there, which neighbours get too so that they stay edge-matched."""
    pts = shapely.get_coordinates(shapely.intersection(shapely.boundary(geom), line))
    return [(float(x), float(y)) for x, y in np.unique(pts, axis=0)]


def problem_diff(parent: shapely.Geometry, before, before_codes, after, after_codes, *,
                 exempt: shapely.Geometry | None = None,
                 options: CoverageOptions | None = None) -> tuple[list[dict], list[dict]]:
    """Gaps and overlaps inside ``parent`` (the region an edit touches, clipped to the
    parents' land) that the ``after`` grids have and the ``before`` grids had not
    (created), and the other way round (removed). Both states are checked by
    :func:`geogrid.geo.coverage.check_coverage`, so areas and widths are measured as the
    coverage check measures them. A problem counts as the same in both states when its
    kind matches and its geometries differ by less than 0.1 % of its area."""
    options = options or CoverageOptions()
    kinds = (GAP, OVERLAP)
    old = [p for p in check_coverage(parent, before, before_codes, exempt=exempt, options=options).problems
           if p["kind"] in kinds]
    new = [p for p in check_coverage(parent, after, after_codes, exempt=exempt, options=options).problems
           if p["kind"] in kinds]

    def unmatched(these: list[dict], others: list[dict]) -> list[dict]:
        out = []
        for p in these:
            same = False
            for q in others:
                if q["kind"] != p["kind"]:
                    continue
                diff = shapely.symmetric_difference(p["geometry"], q["geometry"]).area
                if diff <= max(1e-3 * p["geometry"].area, 1e-14):
                    same = True
                    break
            if not same:
                out.append(p)
        return out

    return unmatched(new, old), unmatched(old, new)
