"""Properties of the synthetic demo jurisdiction (geogrid.io.demo_data); no database needed."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from geogrid.io.demo_data import generate

ROLES = {"grid_leader", "grid_worker_fulltime", "grid_worker_parttime", "instructor", "building_head",
         "env_informant", "police"}
GRID_KEYS = {"code", "name", "level", "layer", "parent", "households", "population", "land_use", "notes"}
LAND_USES = {"residential", "rural", "commercial", "industrial", "mixed", "farmland"}


class Demo:
    def __init__(self, paths: dict[str, Path]):
        self.paths = paths
        self.fc = {k: json.loads(paths[k].read_text(encoding="utf-8")) for k in ("areas", "grids", "environment_grids")}
        self.persons = json.loads(paths["persons"].read_text(encoding="utf-8"))
        self.assignments = json.loads(paths["assignments"].read_text(encoding="utf-8"))
        meta = json.loads(paths["defects"].read_text(encoding="utf-8"))
        self.defects, self.as_of = meta["defects"], date.fromisoformat(meta["as_of"])
        to_m = Transformer.from_crs("EPSG:4326", meta["metric_crs"], always_xy=True)
        self.geom = {k: np.array([shapely.geometry.shape(f["geometry"]) for f in fc["features"]])
                     for k, fc in self.fc.items()}
        self.metric = {k: shapely.transform(g, lambda c: np.column_stack(to_m.transform(c[:, 0], c[:, 1])))
                       for k, g in self.geom.items()}
        self.props = {k: [f["properties"] for f in fc["features"]] for k, fc in self.fc.items()}
        levels = [p["level"] for p in self.props["areas"]]
        self.town = self.metric["areas"][levels.index("town")]
        self.county = self.metric["areas"][levels.index("county")]
        self.vil_codes = [p["code"] for p in self.props["areas"] if p["level"] == "village"]
        self.villages = self.metric["areas"][[lv == "village" for lv in levels]]
        self.grids = self.metric["grids"]
        self.gp = self.props["grids"]

    def of_kind(self, *kinds):
        return [d for d in self.defects if d["kind"] in kinds]

    def grids_of(self, village_code):
        return self.grids[[p["parent"] == village_code for p in self.gp]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    return Demo(generate(tmp_path_factory.mktemp("demo")))


def test_files_and_schema(demo):
    assert set(demo.paths) == {"areas", "grids", "environment_grids", "persons", "assignments", "defects"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in demo.paths.values())
    for fc in demo.fc.values():
        assert fc["type"] == "FeatureCollection" and "crs" not in fc
    assert all(set(p) == GRID_KEYS for p in demo.gp)
    assert {p["layer"] for p in demo.gp} == {"comprehensive"} and {p["level"] for p in demo.gp} == {"grid"}
    assert {p["layer"] for p in demo.props["areas"]} == {"admin"}
    assert [p["level"] for p in demo.props["areas"]][:2] == ["county", "town"]


def test_geometries_valid_ccw_rounded_and_local(demo):
    x0, y0, x1, y1 = demo.geom["areas"][1].bounds  # the town, in lon/lat
    assert 120.2 < x0 < x1 < 120.4 and 30.1 < y0 < y1 < 30.3
    for key, geoms in demo.geom.items():
        assert shapely.is_valid(geoms).all() and not shapely.is_empty(geoms).any()
        assert set(shapely.get_type_id(geoms)) == {3}, key  # Polygon
        assert all(shapely.is_ccw(g.exterior) for g in geoms)
        xy = shapely.get_coordinates(geoms)
        assert np.array_equal(xy, np.round(xy, 7))
    for g in np.r_[demo.geom["grids"], demo.geom["environment_grids"]]:
        gx0, gy0, gx1, gy1 = g.bounds
        assert x0 <= gx0 and y0 <= gy0 and gx1 <= x1 and gy1 <= y1


def test_admin_frame_and_village_partition(demo):
    assert 20e6 < demo.town.area < 40e6
    assert demo.county.contains(demo.town) and demo.county.area > 5 * demo.town.area
    assert 8 <= len(demo.vil_codes) <= 10
    assert all(re.fullmatch(r"339901100\d{3}", c) for c in demo.vil_codes)
    assert all(p["parent"] == "339901100" for p in demo.props["areas"] if p["level"] == "village")
    assert all(re.search("(村|社区)$", p["name"]) for p in demo.props["areas"] if p["level"] == "village")
    union = shapely.union_all(demo.villages)
    assert abs(union.area - demo.town.area) < 1e-4 * demo.town.area
    assert shapely.symmetric_difference(union, demo.town).area < 1e-4 * demo.town.area
    assert abs(shapely.area(demo.villages).sum() - union.area) < 1.0  # no overlaps
    assert shapely.coverage_is_valid(demo.villages)  # shared edges are shared vertex for vertex


def test_grid_count_codes_and_attributes(demo):
    assert 250 <= len(demo.gp) <= 400
    codes = [p["code"] for p in demo.gp if p["code"] is not None]
    assert 0.05 * len(demo.gp) <= len(demo.gp) - len(codes) <= 0.15 * len(demo.gp)
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"\d{15}", p["code"]) and p["code"].startswith(p["parent"])
               for p in demo.gp if p["code"])
    assert {p["parent"] for p in demo.gp} == set(demo.vil_codes)
    assert len({p["name"] for p in demo.gp}) == len(demo.gp)
    assert all(p["land_use"] in LAND_USES and p["notes"].startswith("内部备注") for p in demo.gp)
    assert all(2.5 * p["households"] - 1 <= p["population"] <= 3.5 * p["households"] + 1 for p in demo.gp)
    for v in demo.vil_codes:  # coded sequences are 001..k without holes
        seqs = sorted(int(p["code"][-3:]) for p in demo.gp if p["parent"] == v and p["code"])
        assert seqs == list(range(1, len(seqs) + 1))


def test_urban_grids_are_smaller(demo):
    area = shapely.area(demo.grids)
    urban = np.array([p["parent"] in {q["code"] for q in demo.props["areas"] if q["name"].endswith("社区")}
                      for p in demo.gp])
    assert urban.any() and (~urban).any()
    assert np.median(area[urban]) * 1.5 < np.median(area[~urban])


def test_codes_follow_reading_order(demo):
    for v in demo.vil_codes:
        idx = [i for i, p in enumerate(demo.gp) if p["parent"] == v]
        coded = sorted((demo.gp[i]["code"], i) for i in idx if demo.gp[i]["code"])
        y = shapely.get_coordinates(shapely.centroid(demo.grids[[i for _, i in coded]]))[:, 1]
        row = np.sqrt(shapely.area(demo.grids[idx]).mean()) * 1.05 + 10  # height of a row, with slack
        assert (np.diff(y) < row).all()  # rows north to south: never back north by more than a row
        assert y[0] > y.max() - row and y[-1] < y.min() + row  # starts in the top row, ends in the bottom one


def test_villages_covered_except_documented_gaps(demo):
    gaps = demo.of_kind("gap", "sliver_gap")
    assert [d["kind"] for d in gaps] == ["gap", "gap", "sliver_gap"]
    for v, village in zip(demo.vil_codes, demo.villages):
        hole = shapely.difference(village, shapely.union_all(demo.grids_of(v)))
        documented = sum(d["area_m2"] for d in gaps if d["village"] == v)
        assert abs(hole.area - documented) <= 0.01 * documented + 5, v
    for d in gaps:
        village = demo.villages[demo.vil_codes.index(d["village"])]
        hole = shapely.difference(village, shapely.union_all(demo.grids_of(d["village"])))
        a, b = (demo.grids[[p["code"] == c for p in demo.gp]][0] for c in d["codes"])
        part = max(shapely.get_parts(hole), key=lambda h: h.intersection(a.buffer(2)).area)
        assert part.distance(a) < 0.05 and part.distance(b) < 0.05  # a blind spot between the two
        if d["kind"] == "gap":
            assert 300 <= d["area_m2"] <= 5000
        else:
            assert shapely.maximum_inscribed_circle(part).length < 1.0  # < 2 m wide
            assert d["area_m2"] > 50


def test_overlaps_and_spill_over_documented(demo):
    a, b = shapely.STRtree(demo.grids).query(demo.grids, predicate="intersects")
    a, b = a[a < b], b[a < b]
    area = shapely.area(shapely.intersection(demo.grids[a], demo.grids[b]))
    found = {frozenset((demo.gp[i]["code"], demo.gp[j]["code"])): x for i, j, x in zip(a, b, area) if x > 1.0}
    documented = {frozenset(d["codes"]): d["area_m2"] for d in demo.of_kind("overlap", "spill_over")}
    assert len(documented) == 3 and found.keys() == documented.keys()
    assert area[area <= 1.0].sum() < 1.0  # no noise beyond the documented overlaps
    for pair, x in documented.items():
        assert abs(found[pair] - x) <= 0.01 * x + 5
    [spill] = demo.of_kind("spill_over")
    assert spill["village"] != spill["into_village"]
    for p, g in zip(demo.gp, demo.grids):
        outside = g.difference(demo.villages[demo.vil_codes.index(p["parent"])]).area
        if p["code"] == spill["codes"][0]:
            assert abs(outside - spill["area_m2"]) <= 0.01 * spill["area_m2"] + 5
            assert 100 < outside < 0.01 * (g.area - outside)
        else:
            assert outside < 1.0, p["code"]


def test_environment_net_is_one_grid_per_village(demo):
    env = demo.props["environment_grids"]
    assert [p["code"] for p in env] == [v + "901" for v in demo.vil_codes]
    assert all(p["layer"] == "environment" and p["level"] == "grid" for p in env)
    assert [p["parent"] for p in env] == demo.vil_codes
    assert shapely.equals(demo.geom["environment_grids"], demo.geom["areas"][2:]).all()


def test_people_and_assignments_refer_to_existing_things(demo):
    refs = [p["ref"] for p in demo.persons]
    assert len(set(refs)) == len(refs) and 1.3 <= len(refs) / len(demo.gp) <= 1.7
    assert all(re.fullmatch(r"1[3-9]\d{9}", p["phone"]) for p in demo.persons)
    assert all(p["photo_url"] == f"https://example.invalid/photos/{p['ref']}.jpg" for p in demo.persons)
    assert any(not p["phone_public"] for p in demo.persons) and any(p["phone_public"] for p in demo.persons)
    codes = {p["code"] for p in demo.gp if p["code"]} | set(demo.vil_codes)
    codes |= {p["code"] for p in demo.props["environment_grids"]}
    names = {p["name"] for p in demo.gp if not p["code"]}
    for a in demo.assignments:
        # Grids without a code are named; the loader resolves the name after the import.
        assert a.get("area") in codes or a.get("area_name") in names
        assert a["person"] in set(refs) and a["role"] in ROLES and a["duties"]
        assert a["end_date"] is None or a["start_date"] <= a["end_date"] < demo.as_of.isoformat()
    assert sum(a["end_date"] is not None for a in demo.assignments) >= 10  # appointment history
    roles = {r for a in demo.assignments for r in [a["role"]]}
    assert roles == ROLES
    leaders = {a["person"] for a in demo.assignments if a["role"] == "grid_leader" and a["end_date"] is None}
    assert len(leaders) == len(demo.vil_codes)  # one 网格长 per village, leading all its grids


def test_responsibility_and_size_defects(demo):
    def current(code, roles):
        return [a for a in demo.assignments if a.get("area") == code and a["role"] in roles and a["end_date"] is None]

    frontline = {"grid_leader", "grid_worker_fulltime", "grid_worker_parttime"}
    workers = {"grid_worker_fulltime", "grid_worker_parttime"}
    nobody = [d["codes"][0] for d in demo.of_kind("no_responsible")]
    [expired] = demo.of_kind("expired_assignment")
    assert len(nobody) == 2
    assert not [a for a in demo.assignments if a.get("area") in nobody]
    mine = [a for a in demo.assignments if a.get("area") == expired["codes"][0] and a["role"] in workers]
    assert len(mine) == 1 and mine[0]["person"] == expired["person"]
    last_month = demo.as_of.replace(day=1) - timedelta(days=1)
    assert mine[0]["end_date"][:7] == last_month.isoformat()[:7]
    for p in demo.gp:  # every other coded grid has a current leader and a current worker
        if p["code"] and p["code"] not in nobody:
            assert current(p["code"], {"grid_leader"}), p["code"]
            assert bool(current(p["code"], workers)) == (p["code"] != expired["codes"][0]), p["code"]
    assert all(current(p["code"], frontline) == [] for p in demo.gp if p["code"] in nobody)
    outliers = {d["codes"][0]: d["households"] for d in demo.of_kind("size_outlier")}
    assert sorted(outliers.values()) == [80, 1200]
    for p in demo.gp:
        assert p["households"] == outliers.get(p["code"], p["households"])
        assert p["code"] in outliers or 300 <= p["households"] <= 500


def test_deterministic(tmp_path, demo):
    a = generate(tmp_path / "a", seed=7)
    b = generate(tmp_path / "b", seed=7)
    assert all(a[k].read_bytes() == b[k].read_bytes() for k in a)
    assert a["grids"].read_bytes() != demo.paths["grids"].read_bytes()  # the seed matters
    default = generate(tmp_path / "c")
    assert all(default[k].read_bytes() == demo.paths[k].read_bytes() for k in default)
