"""The bulk PointRouter against brute force over the same shapely geometries (interior
first, then the lowest code): Voronoi layers with holes, exact shared edges, holes,
exclaves, multipolygons and slivers. No database."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from geogrid.geo.routing import PointRouter


def brute_force(geoms, codes, x, y) -> np.ndarray:
    """Index of the covering polygon: interior first, then the lowest code; -1 outside all."""
    points = shapely.points(x, y)
    covers = shapely.covers(np.asarray(geoms)[:, None], points[None, :])
    contains = shapely.contains(np.asarray(geoms)[:, None], points[None, :])
    order = sorted(range(len(codes)), key=lambda i: codes[i])
    out = np.full(len(points), -1)
    for j in range(len(points)):
        inner = [i for i in order if contains[i, j]]
        cover = [i for i in order if covers[i, j]]
        out[j] = (inner or cover or [-1])[0]
    return out


def voronoi_layer(rng, n: int):
    box = shapely.box(120.0, 30.0, 120.05, 30.04)
    seeds = shapely.multipoints(np.column_stack([rng.uniform(120.0, 120.05, n), rng.uniform(30.0, 30.04, n)]))
    cells = [g for g in shapely.get_parts(shapely.intersection(
        shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=box)), box)) if not g.is_empty]
    keep = rng.random(len(cells)) > 0.1  # holes: cells left out are blind spots
    geoms = [g for g, k in zip(cells, keep) if k]
    # An extra polygon overlapping others, with the lowest code: interior beats code on its edge.
    geoms.append(shapely.Point(120.025, 30.02).buffer(0.006, quad_segs=4))
    codes = [f"3399011000{int(v):05d}" for v in rng.choice(99999, len(geoms), replace=False)]
    codes[-1] = "339901100000000"
    return geoms, codes


def probe_points(rng, geoms, n_random: int):
    """Random points, every vertex, and points on the edges of every polygon."""
    xs, ys = [rng.uniform(119.995, 120.055, n_random)], [rng.uniform(29.995, 30.045, n_random)]
    for g in geoms:
        ring = shapely.get_coordinates(g.exterior)
        xs.append(ring[:, 0])
        ys.append(ring[:, 1])
        t = rng.random(len(ring) - 1)
        xs.append(ring[:-1, 0] + t * (ring[1:, 0] - ring[:-1, 0]))
        ys.append(ring[:-1, 1] + t * (ring[1:, 1] - ring[:-1, 1]))
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("seed, n, cells_per_grid", [(1, 5, 1000.0), (2, 30, 1000.0), (3, 120, 1000.0),
                                                     (4, 60, 3.0), (5, 200, 50.0), (6, 15, 20000.0)])
def test_point_router_agrees_with_brute_force_on_voronoi_layers(seed, n, cells_per_grid):
    rng = np.random.default_rng(seed)
    geoms, codes = voronoi_layer(rng, n)
    router = PointRouter(codes, geoms, cells_per_grid=cells_per_grid)
    x, y = probe_points(rng, geoms, 4000)
    got, want = router.route(x, y), brute_force(geoms, codes, x, y)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(x[i], y[i], got[i], want[i]) for i in bad[:10]]
    assert (want == -1).any() and (want >= 0).sum() > len(x) // 2
    codes_out = router.route_codes(x[:50], y[:50])
    assert all(c == (codes[w] if w >= 0 else None) for c, w in zip(codes_out, want[:50]))


def guillotine(draw_splits, box, depth):
    """Axis-aligned rectangles from recursive cuts at given fractions: edges are exact,
    so points placed on them lie exactly on two (or more) rectangles."""
    x0, y0, x1, y1 = box
    if depth == 0 or not draw_splits:
        return [box]
    frac, vertical = draw_splits.pop()
    if vertical:
        xm = round(x0 + (x1 - x0) * frac, 6)
        if not x0 < xm < x1:
            return [box]
        return guillotine(draw_splits, (x0, y0, xm, y1), depth - 1) + guillotine(draw_splits, (xm, y0, x1, y1), depth - 1)
    ym = round(y0 + (y1 - y0) * frac, 6)
    if not y0 < ym < y1:
        return [box]
    return guillotine(draw_splits, (x0, y0, x1, ym), depth - 1) + guillotine(draw_splits, (x0, ym, x1, y1), depth - 1)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(splits=st.lists(st.tuples(st.floats(0.05, 0.95), st.booleans()), min_size=1, max_size=30),
       code_seed=st.integers(0, 2**32 - 1), cells_per_grid=st.sampled_from([2.0, 30.0, 1000.0]))
def test_point_router_ties_on_exact_shared_edges(splits, code_seed, cells_per_grid):
    boxes = guillotine(list(splits), (120.0, 30.0, 120.04, 30.04), 6)
    geoms = [shapely.box(*b) for b in boxes]
    rng = np.random.default_rng(code_seed)
    codes = [f"{v:015d}" for v in rng.choice(10**6, len(geoms), replace=False)]
    router = PointRouter(codes, geoms, cells_per_grid=cells_per_grid)
    xs, ys = [], []
    for x0, y0, x1, y1 in boxes:  # corners and points exactly on every edge
        t = float(rng.uniform(0, 1))
        xs += [x0, x1, x0, x1, x0 + (x1 - x0) * t, x0 + (x1 - x0) * t, x0, x1]
        ys += [y0, y0, y1, y1, y0, y1, y0 + (y1 - y0) * t, y0 + (y1 - y0) * t]
    x = np.concatenate([xs, rng.uniform(119.99, 120.05, 300)])
    y = np.concatenate([ys, rng.uniform(29.99, 30.05, 300)])
    got, want = router.route(x, y), brute_force(geoms, codes, x, y)
    assert (got == want).all(), [(x[i], y[i], got[i], want[i]) for i in np.flatnonzero(got != want)[:10]]


@pytest.mark.parametrize("cells_per_grid", [1.0, 10.0, 1000.0, 100_000.0])
def test_point_router_with_holes_exclaves_multipolygons_and_slivers(cells_per_grid):
    x0, y0 = 120.0, 30.0
    u = 0.001

    def b(a, c, d, e):
        return shapely.box(x0 + a * u, y0 + c * u, x0 + d * u, y0 + e * u)

    geoms = [
        b(0, 0, 10, 10).difference(b(3, 3, 6, 6)),                          # a village with a hole
        b(3, 3, 6, 6),                                                      # the exclave filling it
        shapely.MultiPolygon([b(10, 0, 12, 2), b(10, 5, 12, 7)]),           # a grid in two parts
        b(10, 2, 12, 2.0001),                                               # a 0.1 mm-wide sliver
        shapely.Polygon([(x0 + 12 * u, y0), (x0 + 15 * u, y0), (x0 + 12 * u, y0 + 10 * u)]),  # a diagonal edge
        b(4, 4, 5, 5),                                                      # overlaps the exclave's interior
    ]
    codes = ["339901100001005", "339901100001001", "339901100001003", "339901100001004", "339901100001002",
             "339901100001000"]
    router = PointRouter(codes, geoms, cells_per_grid=cells_per_grid)
    rng = np.random.default_rng(int(cells_per_grid))
    steps = np.arange(-1, 16.01, 0.5)
    gx, gy = np.meshgrid(x0 + steps * u, y0 + steps * u)  # every vertex and many edge points, exactly
    vx = np.concatenate([shapely.get_coordinates(g)[:, 0] for g in geoms])
    vy = np.concatenate([shapely.get_coordinates(g)[:, 1] for g in geoms])
    t = rng.random(200)
    x = np.concatenate([gx.ravel(), vx, rng.uniform(x0 - u, x0 + 16 * u, 3000), x0 + 12 * u + 3 * u * t,
                        x0 + 10 * u + 2 * u * t])
    y = np.concatenate([gy.ravel(), vy, rng.uniform(y0 - u, y0 + 11 * u, 3000), y0 + 10 * u * (1 - t),
                        np.full(200, y0 + 2.00005 * u)])
    got, want = router.route(x, y), brute_force(geoms, codes, x, y)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(x[i], y[i], got[i], want[i]) for i in bad[:10]]
    assert set(want.tolist()) == {-1, 0, 1, 2, 3, 4, 5}
