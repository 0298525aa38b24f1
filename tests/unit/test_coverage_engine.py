"""The pure coverage engine ("全覆盖、无盲区"), no database: against partitions with known,
independently measured defects (tests/conftest.py's Partition), invalid input,
simplification, and the real Zhejiang boundaries."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from conftest import REAL_DATA, Partition, close, geod_area, inject
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from geogrid.geo.coverage import CoverageOptions, check_coverage, simplify_layer


def of_kind(problems, kind: str) -> list[dict]:
    return [p for p in problems if p["kind"] == kind]



def match_pieces(found: list[dict], injected: list, codes: list[str], rel: float, kind: str) -> None:
    """Every injected piece is found once, with its codes and its area within ``rel``."""
    assert len(found) == len(injected), (kind, [(p["codes"], p["area_m2"]) for p in found], len(injected))
    for cells, piece in injected:
        want = sorted(codes[i] for i in cells)
        expected = geod_area(piece)
        hits = [p for p in found if sorted(p["codes"]) == want]
        assert len(hits) == 1, (kind, want, [p["codes"] for p in found])
        hit = hits[0]
        assert close(hit["area_m2"], expected, rel), (kind, want, hit["area_m2"], expected)
        assert shapely.Point(hit["point"]).buffer(1e-7).intersects(piece), (kind, hit["point"])  # 7 decimals


def test_overlaps_with_matching_edges_are_found():
    """Coverage validation flags only unmatched edges; overlaps whose edges all match
    (a grid imported twice, a grid drawn again as two halves) must still be found."""
    a, b = shapely.box(120.0, 30.0, 120.01, 30.04), shapely.box(120.01, 30.0, 120.02, 30.04)
    parent = shapely.box(120.0, 30.0, 120.02, 30.04)
    twice = check_coverage(parent, [a, b, shapely.Polygon(list(a.exterior.coords)[::-1])], ["A", "B", "A2"])
    assert [(p["kind"], p["codes"]) for p in twice.problems] == [("overlap", ["A", "A2"])]
    assert close(twice.problems[0]["area_m2"], geod_area(a), 1e-3)
    halves = [shapely.box(120.0, 30.0, 120.01, 30.02), shapely.box(120.0, 30.02, 120.01, 30.04)]
    split = check_coverage(parent, [a, b, *halves], ["A", "B", "C", "D"])
    overlaps = {tuple(p["codes"]): p["area_m2"] for p in split.problems if p["kind"] == "overlap"}
    assert overlaps.keys() == {("A", "C"), ("A", "D")}
    assert close(sum(overlaps.values()), geod_area(a), 1e-3)
    assert split.summary["coverage_pct"] == 100.0 and not of_kind(split.problems, "gap")


@given(rows=st.integers(2, 5), cols=st.integers(2, 5), seed=st.integers(0, 2**32 - 1),
       gaps=st.integers(0, 3), overlaps=st.integers(0, 3), spills=st.integers(0, 2))
@hsettings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_engine_finds_exactly_the_injected_gaps_and_overlaps(rows, cols, seed, gaps, overlaps, spills):
    rng = np.random.default_rng(seed)
    width = rng.uniform(0.02, 0.06)  # 2-6 km wide around 120.3E 30.2N
    height = rng.uniform(0.015, 0.04)
    x0, y0 = 120.3 - width / 2 + rng.uniform(-0.01, 0.01), 30.2 - height / 2 + rng.uniform(-0.01, 0.01)
    part = Partition(rng, (x0, y0, x0 + width, y0 + height), rows, cols)
    pairs_available = (rows * cols) // 2
    gaps = min(gaps, pairs_available)
    overlaps = min(overlaps, pairs_available - gaps)
    injected = inject(part, rng, gaps, overlaps, spills)
    codes = [f"g{i:03d}" for i in range(rows * cols)]
    kids = part.polygons()
    result = check_coverage(part.parent, kids, codes)
    problems = result.problems

    # The greedy placement may find fewer disjoint pairs than asked; what was injected counts.
    k, m, s = (len(injected[x]) for x in ("gap", "overlap", "spill_over"))
    assert {p["kind"] for p in problems} <= {"gap", "overlap", "spill_over"}
    match_pieces(of_kind(problems, "gap"), injected["gap"], codes, 1e-3, "gap")
    match_pieces(of_kind(problems, "overlap"), injected["overlap"], codes, 1e-3, "overlap")
    match_pieces(of_kind(problems, "spill_over"), injected["spill_over"], codes, 1e-3, "spill_over")
    for p in of_kind(problems, "gap") + of_kind(problems, "overlap"):
        assert p["width_m"] > 0
    for p in of_kind(problems, "gap"):
        assert p["width_class"] == "blind_spot"  # every injected notch is metres wide

    summary = result.summary
    assert summary["counts"] == {kind: n for kind, n in (("gap", k), ("overlap", m), ("spill_over", s)) if n}
    gap_m2 = sum(geod_area(piece) for _, piece in injected["gap"])
    parent_m2 = geod_area(part.parent)
    assert close(summary["parent_area_m2"], parent_m2, 1e-3)
    assert close(summary["gap_area_m2"], gap_m2, 1e-3) if k else summary["gap_area_m2"] == 0
    assert summary["overlap_area_m2"] == pytest.approx(sum(geod_area(x) for _, x in injected["overlap"]), rel=1e-3)
    # (the engine measures straight lon/lat edges as chords in its projection: 1e-5 at most here)
    assert summary["coverage_pct"] == pytest.approx(100 * (1 - gap_m2 / parent_m2), abs=5e-3)
    # a noded notch or a bump out of the parent leaves the shared edges matched; an overlap does not
    assert summary["edge_matched"] == (m == 0)
    assert summary["grids_with_unmatched_edges"] == 2 * m
    assert summary["grids"] == rows * cols


def test_engine_on_a_clean_partition_reports_nothing():
    rng = np.random.default_rng(7)
    part = Partition(rng, (120.28, 30.19, 120.32, 30.21), 4, 5)
    result = check_coverage(part.parent, part.polygons(), [str(i) for i in range(20)])
    assert result.problems == []
    assert result.summary["coverage_pct"] == 100.0 and result.summary["edge_matched"]
    assert result.summary["grids_with_unmatched_edges"] == 0


def test_a_sliver_gap_is_classified_by_its_width():
    """A 1 m wide notch is a digitising sliver, a 5 m one a blind spot (default 2 m)."""
    metre_lon = 1 / (111_320 * np.cos(np.radians(30.2)))
    for width_m, expected in ((1.0, "sliver"), (5.0, "blind_spot")):
        part = Partition(np.random.default_rng(1), (120.29, 30.19, 120.31, 30.21), 2, 2, jitter=0.0)
        i, j, a, b = next(e for e in part.interior_edges() if e[2][0] == e[3][0])  # a vertical edge
        piece = part.bend(i, a, b, inward=True, half=0.3, depth=width_m * metre_lon)
        gap = of_kind(check_coverage(part.parent, part.polygons(), ["a", "b", "c", "d"]).problems, "gap")
        assert len(gap) == 1 and gap[0]["width_class"] == expected
        assert gap[0]["width_m"] == pytest.approx(width_m, rel=0.05)
        assert close(gap[0]["area_m2"], geod_area(piece), 1e-3)
        # a county may call 6 m gaps slivers
        wide = check_coverage(part.parent, part.polygons(), ["a", "b", "c", "d"],
                              options=CoverageOptions(sliver_width_m=6.0)).problems
        assert of_kind(wide, "gap")[0]["width_class"] == "sliver"


# --------------------------------------------------------------------------- invalid input


def test_a_bow_tie_is_reported_invalid_and_the_rest_still_checked():
    u = 0.01
    x0, y0 = 120.3, 30.2

    def box(a, b, c, d):
        return shapely.box(x0 + a * u, y0 + b * u, x0 + c * u, y0 + d * u)

    parent = box(0, 0, 4, 1)
    a = box(0, 0, 1.1, 1)  # overlaps b by 0.1 x 1
    notch = box(1.4, 0.8, 1.6, 1)
    b = box(1, 0, 2, 1).difference(notch)  # a gap on the parent's edge
    bow = shapely.Polygon([(x0 + 2 * u, y0), (x0 + 3 * u, y0 + u), (x0 + 3 * u, y0), (x0 + 2 * u, y0 + u)])
    assert not bow.is_valid
    d = box(3, 0, 4, 1)
    result = check_coverage(parent, [a, b, bow, d], ["A", "B", "C", "D"])
    invalid = of_kind(result.problems, "invalid")
    assert len(invalid) == 1 and invalid[0]["codes"] == ["C"]
    assert "Self-intersection" in invalid[0]["reason"]
    assert invalid[0]["point"] == pytest.approx((x0 + 2.5 * u, y0 + 0.5 * u), abs=1e-7)
    overlap = of_kind(result.problems, "overlap")
    assert [sorted(p["codes"]) for p in overlap] == [["A", "B"]]
    assert close(overlap[0]["area_m2"], geod_area(box(1, 0, 1.1, 1)), 1e-3)
    gaps = of_kind(result.problems, "gap")
    notch_gap = [g for g in gaps if shapely.Point(g["point"]).within(notch.buffer(1e-9))]
    assert len(notch_gap) == 1 and notch_gap[0]["codes"] == ["B"]
    assert close(notch_gap[0]["area_m2"], geod_area(notch), 1e-3)
    # the bow-tie, read as its two lobes, leaves its top and bottom triangles uncovered
    lobes = box(2, 0, 3, 1).difference(shapely.make_valid(bow, method="structure"))
    assert sum(g["area_m2"] for g in gaps) == pytest.approx(geod_area(notch) + geod_area(lobes), rel=1e-3)
    assert result.summary["counts"]["invalid"] == 1
    assert 80 < result.summary["coverage_pct"] < 100


def test_an_invalid_parent_and_a_missing_kid_do_not_stop_the_check():
    parent = shapely.Polygon([(120.3, 30.2), (120.32, 30.22), (120.32, 30.2), (120.3, 30.22)])  # bow-tie parent
    kids = [shapely.box(120.3, 30.2, 120.31, 30.22), shapely.Polygon()]
    result = check_coverage(parent, kids, ["a", "b"])
    assert result.summary["grids"] == 2
    assert of_kind(result.problems, "spill_over")  # the kid covers more than the parent's left lobe


# --------------------------------------------------------------------------- simplification


def wiggly_partition(rng, bbox, rows, cols, points_per_edge=25):
    """An edge-matched partition whose shared edges carry many noisy vertices (as digitised
    boundaries do); each shared edge is the same vertex list in both neighbours."""
    base = Partition(rng, bbox, rows, cols)
    cache: dict = {}

    def edge(a, b, interior):
        key = (a, b)
        if (b, a) in cache:
            return cache[(b, a)][::-1]
        t = np.linspace(0, 1, points_per_edge + 2)[1:-1]
        pa, pb = np.array(a), np.array(b)
        pts = pa + np.outer(t, pb - pa)
        if interior:
            d = pb - pa
            normal = np.array([-d[1], d[0]]) / np.hypot(*d)
            pts += np.outer(np.sin(t * np.pi) * rng.normal(0, 0.02, len(t)), normal) * np.hypot(*d)
        cache[key] = [tuple(p) for p in pts]
        return cache[key]

    px0, py0, px1, py1 = bbox
    polys = []
    for ring in base.rings:
        out = []
        for k in range(4):
            a, b = ring[k], ring[(k + 1) % 4]
            on_border = (a[0] == b[0] and a[0] in (px0, px1)) or (a[1] == b[1] and a[1] in (py0, py1))
            out += [a, *edge(a, b, not on_border)]
        polys.append(shapely.Polygon(out))
    return base.parent, polys


def test_simplify_layer_keeps_shared_edges():
    parent, polys = wiggly_partition(np.random.default_rng(3), (120.28, 30.19, 120.32, 30.21), 3, 4)
    assert all(p.is_valid for p in polys) and shapely.coverage_is_valid(polys)
    simple = simplify_layer(polys, 30.0, around=parent)
    assert len(simple) == len(polys)
    assert shapely.coverage_is_valid(simple)
    assert all(shapely.is_valid(simple))
    before = shapely.get_num_coordinates(polys).sum()
    after = shapely.get_num_coordinates(simple).sum()
    assert after < 0.6 * before
    # still a partition of the parent: nothing lost, nothing doubled
    check = check_coverage(parent, simple, [str(i) for i in range(len(simple))])
    assert not of_kind(check.problems, "overlap")
    assert check.summary["coverage_pct"] == pytest.approx(100, abs=0.01)
    # neighbours still share one line each, vertex for vertex
    for i in range(len(simple)):
        for j in range(i + 1, len(simple)):
            if shapely.intersects(polys[i], polys[j]) and shapely.intersection(polys[i], polys[j]).length > 0:
                assert shapely.intersection(simple[i], simple[j]).length > 0
                assert shapely.area(shapely.intersection(simple[i], simple[j])) == pytest.approx(0, abs=1e-14)


# --------------------------------------------------------------------------- real data


ZJ = REAL_DATA / "zhejiang"


@pytest.mark.realdata
@pytest.mark.skipif(not ZJ.exists(), reason="../shared/data/real is not present")
def test_real_districts_against_their_cities():
    cities = {str(f["properties"]["adcode"]): shapely.geometry.shape(f["geometry"])
              for f in json.loads((ZJ / "province_330000_cities.json").read_text(encoding="utf-8"))["features"]}
    files = sorted(ZJ.glob("city_*_districts.json"))
    assert len(files) == 11
    invalid_seen = set()
    for path in files:
        city = path.name.split("_")[1]
        features = json.loads(path.read_text(encoding="utf-8"))["features"]
        geoms = [shapely.geometry.shape(f["geometry"]) for f in features]
        codes = [str(f["properties"]["adcode"]) for f in features]
        known_invalid = {c for c, g in zip(codes, geoms) if not g.is_valid}
        result = check_coverage(cities[city], geoms, codes)
        invalid = of_kind(result.problems, "invalid")
        assert {p["codes"][0] for p in invalid} == known_invalid, city
        for p in invalid:
            assert p["reason"] and p["point"] is not None
            assert cities[city].buffer(0.5).contains(shapely.Point(p["point"]))
        invalid_seen |= known_invalid
        # each level was digitised on its own: thin gaps and spill-over along the edges
        assert of_kind(result.problems, "gap") and of_kind(result.problems, "spill_over"), city
        assert 90 < result.summary["coverage_pct"] < 100, (city, result.summary["coverage_pct"])
        assert result.summary["grids"] == len(features)
        for p in result.problems:
            if p["kind"] != "invalid":
                assert p["area_m2"] >= 1.0 and set(p["codes"]) <= set(codes)
        # the spill-over is a small share of the district each time
        for p in of_kind(result.problems, "spill_over"):
            assert 0 < p["share"] < 0.5
    assert "330902" in invalid_seen  # 定海区 has a self-intersecting ring
