"""The pure geometry of boundary editing (geogrid.geo.topology): shared-vertex moves keep
an edge-matched partition edge-matched and its area whole; splits and merges give back
what they took; the region diff finds what an edit creates, measured like the coverage
check measures it."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from conftest import Partition, close, geod_area
from hypothesis import given, settings
from hypothesis import strategies as st

from geogrid.geo import topology


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dx=st.floats(-0.15, 0.15), dy=st.floats(-0.15, 0.15))
def test_shared_vertex_move_keeps_the_coverage_valid_and_the_area(seed, dx, dy):
    part = Partition(np.random.default_rng(seed), (120.0, 30.0, 120.03, 30.03), 3, 3)
    grids = part.polygons()
    assert shapely.coverage_is_valid(grids)
    r, c = 1 + seed % 2, 1 + (seed // 2) % 2  # an interior vertex, shared by four cells
    src = tuple(part.v[r, c])
    dst = (src[0] + dx * part.dx, src[1] + dy * part.dy)
    moved, changed, missed = topology.move_vertices(grids, [(src, dst)], 1e-9)
    assert missed == [] and changed.sum() == (4 if dst != src else 0)  # a move onto itself changes nothing
    assert all(moved[i].is_valid for i in range(len(moved)))
    assert shapely.coverage_is_valid(moved)
    assert close(shapely.union_all(moved).area, part.parent.area, 1e-9)


def test_move_onto_an_edge_inserts_the_vertex_in_both_neighbours():
    a, b = shapely.box(0, 0, 1, 1), shapely.box(0, 1, 1, 2)
    moved, changed, _ = topology.move_vertices([a, b], [((0.3, 1.0), (0.3, 1.2))], 1e-6)
    assert changed.tolist() == [True, True]
    assert shapely.coverage_is_valid(moved)
    assert moved[0].area == pytest.approx(1.1) and moved[1].area == pytest.approx(0.9)
    # Onto itself (where a split line crosses a shared edge): the vertex is added to the
    # grid that lacks it, and the one that has it already is unchanged.
    c = shapely.Polygon([(0, 1), (0.3, 1), (1, 1), (1, 2), (0, 2)])
    added, changed, _ = topology.move_vertices([a, c], [((0.3, 1.0), (0.3, 1.0))], 1e-6)
    assert changed.tolist() == [True, False] and shapely.get_num_coordinates(added[0]) == 6
    assert added[0].equals(a)


def test_split_keeps_holes_orders_pieces_and_attaches_uncut_parts():
    hole = [(0.2, 0.2), (0.4, 0.2), (0.4, 0.4), (0.2, 0.4)]
    grid = shapely.MultiPolygon([shapely.Polygon([(0, 0), (2, 0), (2, 1), (0, 1)], [hole]),
                                 shapely.box(1.8, 1.2, 1.9, 1.3)])  # an island the line misses
    pieces = topology.split_polygon(grid, shapely.LineString([(1, -1), (1, 2)]))
    assert len(pieces) == 2
    west, east = pieces
    assert west.bounds[0] == 0 and len(west.interiors) == 1  # the hole stays
    assert east.geom_type == "MultiPolygon"  # the island joined the piece nearest to it
    assert shapely.union_all(pieces).equals(grid)
    assert sum(p.area for p in pieces) == pytest.approx(grid.area)
    # North to south: a horizontal cut gives the northern piece first.
    north, south = topology.split_polygon(shapely.box(0, 0, 1, 2), shapely.LineString([(-1, 1), (2, 1)]))
    assert north.bounds[1] == 1 and south.bounds[3] == 1


def test_a_line_that_does_not_cross_cuts_nothing():
    with pytest.raises(topology.NotCut):
        topology.split_polygon(shapely.box(0, 0, 1, 1), shapely.LineString([(0.2, 0.5), (0.8, 0.5)]))


def test_merge_keeps_holes_and_names_the_stray():
    ring = shapely.box(0, 0, 3, 3).difference(shapely.box(1, 1, 2, 2))
    west, east = ring.intersection(shapely.box(0, 0, 1.5, 3)), ring.intersection(shapely.box(1.5, 0, 3, 3))
    merged = topology.merge_polygons([west, east])
    assert merged.geom_type == "Polygon" and len(merged.interiors) == 1 and merged.area == pytest.approx(8)
    with pytest.raises(topology.NotAdjacent) as exc:
        topology.merge_polygons([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(5, 5, 6, 6)])
    assert exc.value.index == 2


def test_problem_diff_finds_the_gap_an_edit_leaves():
    parent = shapely.box(120.0, 30.0, 120.02, 30.01)
    before = [shapely.box(120.0, 30.0, 120.01, 30.01), shapely.box(120.01, 30.0, 120.02, 30.01)]
    after = [shapely.box(120.0, 30.0, 120.009, 30.01), before[1]]
    created, removed = topology.problem_diff(parent, before, ["a", "b"], after, ["a", "b"])
    [gap] = created
    assert removed == [] and gap["kind"] == "gap" and gap["codes"] == ["a", "b"]
    assert close(gap["area_m2"], geod_area(shapely.box(120.009, 30.0, 120.01, 30.01)), 0.01)
    created, removed = topology.problem_diff(parent, after, ["a", "b"], before, ["a", "b"])
    assert created == [] and len(removed) == 1
