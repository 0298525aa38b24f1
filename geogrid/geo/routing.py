"""Bulk point-in-grid routing: which grid holds each of a million points.

:class:`PointRouter` lays a lattice of cells over the layer. Cells that no grid boundary
crosses lie wholly inside one grid (or outside all), so a point in such a cell is
answered by an array lookup; only points in cells that a boundary crosses get an exact
GEOS test. The boundary cells are found by sampling every edge at a quarter cell (and
filling the corner cells of diagonal steps, so no crossed cell is missed); the remaining cells are grouped into
connected regions (``scipy.ndimage.label``) and one point per region decides its grid.

The answer for a point on a shared boundary is the same as ``GET /api/locate``'s
primary: a grid whose interior holds the point if there is one (overlapping grids), else
the one with the lowest code among those whose boundary it lies on.

>>> import shapely
>>> router = PointRouter(["b", "a"], [shapely.box(1, 0, 2, 1), shapely.box(0, 0, 1, 1)])
>>> router.route([0.5, 1.5, 1.0, 3.0], [0.5, 0.5, 0.5, 0.5]).tolist()   # the shared edge goes to "a"
[1, 0, 1, -1]
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy import ndimage

OUTSIDE = -1
BOUNDARY = -2


class PointRouter:
    def __init__(self, codes, geoms, *, cells_per_grid: float = 1600.0, max_cells: int = 16_000_000):
        self.codes = np.asarray(codes, dtype=object)
        self.geoms = np.asarray(geoms, dtype=object)
        # Ties on shared boundaries go to the lowest code: rank grids by code once.
        self.rank = np.argsort(np.argsort(self.codes.astype(str)))
        self.tree = shapely.STRtree(self.geoms)
        shapely.prepare(self.geoms)
        x0, y0, x1, y1 = shapely.total_bounds(self.geoms)
        span = max(x1 - x0, y1 - y0, 1e-9)
        # Enough cells for many grids and for long, detailed boundaries alike.
        vertices = int(shapely.get_num_coordinates(self.geoms).sum())
        n_cells = min(max_cells, max(1024, int(len(self.geoms) * cells_per_grid), 20 * vertices))
        self.cell = span / np.sqrt(n_cells)
        self.x0, self.y0 = x0 - self.cell, y0 - self.cell
        self.nx = int(np.ceil((x1 - self.x0) / self.cell)) + 2
        self.ny = int(np.ceil((y1 - self.y0) / self.cell)) + 2
        self.owner = self._build()

    def _cells(self, x, y):
        return ((np.asarray(y) - self.y0) // self.cell).astype(np.int64), ((np.asarray(x) - self.x0) // self.cell).astype(np.int64)

    def _build(self) -> np.ndarray:
        crossed = np.zeros((self.ny, self.nx), dtype=bool)
        edges = shapely.segmentize(shapely.boundary(self.geoms), self.cell / 4)
        xy = shapely.get_coordinates(edges)
        rows, cols = self._cells(xy[:, 0], xy[:, 1])
        crossed[rows, cols] = True
        # Samples are under a cell apart, so consecutive ones sit in the same or adjacent
        # cells; a straight step between side neighbours stays in those two cells, and a
        # diagonal step passes through one of the two others: mark both. The crossed
        # cells then form closed walls for 4-connected labelling.
        dr, dc = np.diff(rows), np.diff(cols)
        diagonal = (np.abs(dr) == 1) & (np.abs(dc) == 1)
        crossed[rows[:-1][diagonal] + dr[diagonal], cols[:-1][diagonal]] = True
        crossed[rows[:-1][diagonal], cols[:-1][diagonal] + dc[diagonal]] = True
        labels, n = ndimage.label(~crossed)
        owner = np.full((self.ny, self.nx), BOUNDARY, dtype=np.int32)
        if n:
            # One cell centre per region decides the region's grid.
            flat = labels.ravel()
            first = np.full(n + 1, -1, dtype=np.int64)
            order = np.flatnonzero(flat)
            first[flat[order[::-1]]] = order[::-1]
            reps = first[1:]
            r, c = np.divmod(reps, self.nx)
            px, py = self.x0 + (c + 0.5) * self.cell, self.y0 + (r + 0.5) * self.cell
            region_owner = self._exact(px, py)
            owner[~crossed] = region_owner[labels[~crossed] - 1]
        return owner

    def _exact(self, x, y) -> np.ndarray:
        """GEOS: the covering grid of each point, lowest code on shared boundaries."""
        out = np.full(len(x), OUTSIDE, dtype=np.int64)
        if len(x) == 0:
            return out
        points = shapely.points(x, y)
        # Bounding boxes from the tree, then the exact test on the prepared grids (a predicate
        # in the tree query would prepare the points instead, and test grids unprepared).
        p_idx, g_idx = self.tree.query(points)
        hit = shapely.intersects_xy(self.geoms[g_idx], x[p_idx], y[p_idx])
        p_idx, g_idx = p_idx[hit], g_idx[hit]
        if p_idx.size:
            # As GET /api/locate: a grid whose interior holds the point first, then the lowest code.
            on_edge = ~shapely.contains_xy(self.geoms[g_idx], x[p_idx], y[p_idx])
            order = np.lexsort((self.rank[g_idx], on_edge, p_idx))
            p_idx, g_idx = p_idx[order], g_idx[order]
            first = np.r_[True, p_idx[1:] != p_idx[:-1]]
            out[p_idx[first]] = g_idx[first]
        return out

    def route(self, x, y) -> np.ndarray:
        """Index into ``codes`` of the grid covering each point, -1 where none does."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        rows, cols = self._cells(x, y)
        inside = (rows >= 0) & (rows < self.ny) & (cols >= 0) & (cols < self.nx)
        out = np.full(len(x), OUTSIDE, dtype=np.int64)
        out[inside] = self.owner[rows[inside], cols[inside]]
        exact = np.flatnonzero(out == BOUNDARY)
        out[exact] = self._exact(x[exact], y[exact])
        return out

    def route_codes(self, x, y) -> np.ndarray:
        found = self.route(x, y)
        codes = np.full(len(found), None, dtype=object)
        codes[found >= 0] = self.codes[found[found >= 0]]
        return codes
