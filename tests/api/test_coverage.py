"""The coverage check ("全覆盖、无盲区") through the API: the engine against PostGIS, the
demo's documented defects, exemption masks, responsibility and size checks, stored runs,
repairs and the CLI. (The pure engine is in tests/unit/test_coverage_engine.py.)"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from conftest import Partition, close, collection, feature, geod_area, inject, square
from sqlalchemy import text

from geogrid.coverage import checks, runs
from geogrid.geo.coverage import check_coverage

GEOGRID = str(Path(sys.executable).with_name("geogrid"))
VILLAGE_W, VILLAGE_E, TOWN = "339901100001", "339901100002", "339901100"


def jurisdiction_today() -> dt.date:
    """The service judges posts on the jurisdiction's date (Asia/Shanghai), not the host's."""
    from geogrid.core.settings import Settings
    from geogrid.core.timeutil import local_today

    return local_today(Settings())


# --------------------------------------------------------------------------- through the API, against PostGIS


def add_grids(client, parent: str, polys, codes=None, **props) -> list[str]:
    """Create grids under ``parent`` (codes given or generated); returns their codes."""
    feats = []
    for k, poly in enumerate(polys):
        extra = {key: (value[k] if isinstance(value, (list, tuple)) else value) for key, value in props.items()}
        if codes is not None:
            extra["code"] = codes[k]
        feats.append(feature(shapely.geometry.mapping(poly), name=f"网格{k + 1}", parent=parent, **extra))
    r = client.post("/api/grids", json=collection(*feats))
    assert r.status_code == 201, r.text
    return r.json()["codes"]


def grid_codes(village: str, n: int) -> list[str]:
    return [f"{village}{k:03d}" for k in range(1, n + 1)]


def coverage(client, area: str, **params) -> dict:
    r = client.get("/api/coverage", params={"area": area, **params})
    assert r.status_code == 200, r.text
    return r.json()


def features_of(result: dict, kind: str) -> list[dict]:
    return [f["properties"] | {"geometry": f["geometry"]} for f in result["problems"]["features"]
            if f["properties"]["kind"] == kind]


def versions(client, code: str) -> int:
    r = client.get(f"/api/grids/{code}/history")
    assert r.status_code == 200, r.text
    return len(r.json()["features"])


def west_village_partition(seed: int, rows: int = 4, cols: int = 2, jitter: float = 0.2) -> Partition:
    return Partition(np.random.default_rng(seed), (120.0, 30.0, 120.02, 30.04), rows, cols, jitter=jitter)


def test_engine_agrees_with_postgis(client, town, engine):
    part = west_village_partition(11, 4, 3)
    rng = np.random.default_rng(12)
    injected = inject(part, rng, 2, 2, 1, spill_depth=0.012)
    assert [len(injected[k]) for k in ("gap", "overlap", "spill_over")] == [2, 2, 1]
    codes = add_grids(client, VILLAGE_W, part.polygons(), grid_codes(VILLAGE_W, 12))
    result = coverage(client, VILLAGE_W)
    with engine.connect() as conn:
        kids = """SELECT a.code, b.geom FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
                  WHERE a.parent_id = (SELECT id FROM area WHERE code = :v) AND a.retired_at IS NULL
                    AND a.layer_key = 'comprehensive'"""
        parent = """SELECT b.geom FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
                    WHERE a.code = :v"""
        gaps = conn.execute(text(f"""
            SELECT ST_Area((ST_Dump(ST_Difference(({parent}), (SELECT ST_Union(geom) FROM ({kids}) k)))).geom::geography)
        """), {"v": VILLAGE_W}).scalars().all()
        overlaps = conn.execute(text(f"""
            WITH k AS ({kids})
            SELECT a.code, b.code, ST_Area(ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3)::geography)
            FROM k a JOIN k b ON a.code < b.code AND ST_Intersects(a.geom, b.geom)
        """), {"v": VILLAGE_W}).all()
        spills = conn.execute(text(f"""
            WITH k AS ({kids})
            SELECT k.code, ST_Area(ST_CollectionExtract(ST_Difference(k.geom, ({parent})), 3)::geography) FROM k
        """), {"v": VILLAGE_W}).all()
    gaps = sorted(a for a in gaps if a >= 1.0)
    overlaps = {(a, b): m2 for a, b, m2 in overlaps if m2 >= 1.0}
    spills = {c: m2 for c, m2 in spills if m2 >= 1.0}
    assert len(gaps) == 2 and len(overlaps) == 2 and len(spills) == 1

    found_gaps = sorted(p["area_m2"] for p in features_of(result, "gap"))
    assert len(found_gaps) == 2
    for mine, theirs in zip(found_gaps, gaps):
        assert close(mine, theirs, 1e-3), (found_gaps, gaps)
    summary = result["summary"]["parents"][0]
    assert close(summary["gap_area_m2"], sum(gaps), 1e-3)
    found_overlaps = {tuple(sorted(p["codes"])): p["area_m2"] for p in features_of(result, "overlap")}
    assert found_overlaps.keys() == overlaps.keys()
    for pair, m2 in overlaps.items():
        assert close(found_overlaps[pair], m2, 1e-3), (pair, found_overlaps[pair], m2)
    found_spills = {p["codes"][0]: p["area_m2"] for p in features_of(result, "spill_over")}
    assert found_spills.keys() == spills.keys()
    for code, m2 in spills.items():
        assert close(found_spills[code], m2, 1e-3), (code, found_spills[code], m2)
    # and both agree with the pieces as injected
    assert close(sum(gaps), sum(geod_area(p) for _, p in injected["gap"]), 1e-3)
    assert {tuple(sorted(codes[i] for i in cells)) for cells, _ in injected["overlap"]} == set(overlaps)
    # every problem carries a geometry: polygons for the pieces, a point for the rest
    for f in result["problems"]["features"]:
        kind = f["properties"]["kind"]
        if kind in ("gap", "overlap", "spill_over"):
            assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
            assert close(geod_area(shapely.geometry.shape(f["geometry"])), f["properties"]["area_m2"], 1e-3)


# --------------------------------------------------------------------------- the demo's deliberate defects


def test_demo_defects_are_all_found(client, engine, settings, tmp_path):
    from geogrid.io import demo, demo_data

    paths = demo_data.generate(tmp_path)
    # (its own state directory: the demo writes its accounts' passwords there)
    demo.load(engine, settings.model_copy(update={"state_dir": tmp_path / "state"}), tmp_path, cases=False)
    defects = json.loads(Path(paths["defects"]).read_text(encoding="utf-8"))["defects"]
    assert dt.date.fromisoformat(json.loads(Path(paths["defects"]).read_text())["as_of"]) <= dt.date.today()
    result = coverage(client, TOWN, subtree="true")
    summary = result["summary"]
    assert summary["subtree"] and summary["parents_checked"] >= 8
    problems = [f["properties"] for f in result["problems"]["features"]]

    def find(kind, code, *, parent=None):
        return [p for p in problems if p["kind"] == kind and code in p["codes"]
                and (parent is None or p["parent"] == parent)]

    for d in defects:
        kind, codes = d["kind"], d["codes"]
        if kind in ("gap", "sliver_gap"):
            hits = [p for p in find("gap", codes[0], parent=d["village"]) if codes[1] in p["codes"]]
            assert len(hits) == 1, d
            assert close(hits[0]["area_m2"], d["area_m2"], 0.01), (d, hits[0]["area_m2"])
            assert hits[0]["width_class"] == ("sliver" if kind == "sliver_gap" else "blind_spot"), (d, hits[0])
        elif kind == "overlap":
            hits = [p for p in problems if p["kind"] == "overlap" and sorted(p["codes"]) == sorted(codes)]
            assert len(hits) == 1, d
            assert close(hits[0]["area_m2"], d["area_m2"], 0.01), (d, hits[0]["area_m2"])
        elif kind == "spill_over":
            hits = [p for p in find("spill_over", codes[0], parent=d["village"]) if p["codes"] == [codes[0]]]
            assert len(hits) == 1, d
            assert close(hits[0]["area_m2"], d["area_m2"], 0.01), (d, hits[0]["area_m2"])
        elif kind == "size_outlier":
            hits = [p for p in find("size_outlier", codes[0]) if p["field"] == "households"]
            assert len(hits) == 1 and hits[0]["value"] == d["households"] and hits[0]["expected"] == [300, 500], d
        elif kind == "no_responsible":
            hits = find("no_responsible", codes[0])
            assert len(hits) == 1 and set(hits[0]["missing"]) == {"grid_leader", "grid_worker"}, (d, hits)
        elif kind == "expired_assignment":  # the only worker's post ended: the grid has no worker today
            hits = find("no_responsible", codes[0])
            assert len(hits) == 1 and hits[0]["missing"] == ["grid_worker"], (d, hits)
        else:
            raise AssertionError(f"unexpected defect kind {kind}")

    # nothing beyond the documented geometry defects (the demo is otherwise a clean partition)
    counts = summary["counts"]
    geometric = [d for d in defects if d["kind"] in ("gap", "sliver_gap", "overlap", "spill_over")]
    assert counts.get("gap", 0) == sum(d["kind"] in ("gap", "sliver_gap") for d in geometric)
    assert counts.get("overlap", 0) == sum(d["kind"] == "overlap" for d in geometric)
    assert counts.get("spill_over", 0) == 1
    assert counts.get("invalid", 0) == 0
    assert counts.get("no_responsible", 0) == sum(d["kind"] in ("no_responsible", "expired_assignment") for d in defects)
    # worst parent first
    pcts = [s["coverage_pct"] for s in summary["parents"]]
    assert pcts == sorted(pcts) and pcts[0] < 100


# --------------------------------------------------------------------------- exemptions


LAKE = shapely.box(120.012, 30.010, 120.016, 30.014)  # inside the east grid of the west village
NOTCH = shapely.box(120.004, 30.038, 120.006, 30.04)  # a real gap on the village's north edge


@pytest.fixture
def lake_village(client, town):
    """The west village split into two grids: the east one has a lake-shaped hole, the
    west one a notch on the village's edge that nobody covers."""
    west = shapely.box(120.0, 30.0, 120.01, 30.04).difference(NOTCH)
    east = shapely.box(120.01, 30.0, 120.02, 30.04).difference(LAKE)
    return add_grids(client, VILLAGE_W, [west, east], grid_codes(VILLAGE_W, 2))


def test_exemption_masks_a_gap(client, lake_village):
    parent_m2 = geod_area(shapely.box(120.0, 30.0, 120.02, 30.04))
    before = coverage(client, VILLAGE_W)
    assert sorted(round(p["area_m2"]) for p in features_of(before, "gap")) == sorted(
        round(geod_area(g)) for g in (LAKE, NOTCH))
    r = client.post("/api/exemptions", json={"area": VILLAGE_W, "kind": "lake", "name": "镜湖",
                                             "geometry": shapely.geometry.mapping(LAKE)})
    assert r.status_code == 201, r.text
    listed = client.get("/api/exemptions", params={"area": VILLAGE_W}).json()["features"]
    assert [f["properties"]["kind"] for f in listed] == ["lake"]
    assert close(listed[0]["properties"]["area_m2"], geod_area(LAKE), 1e-3)

    after = coverage(client, VILLAGE_W)
    gaps = features_of(after, "gap")
    assert len(gaps) == 1 and close(gaps[0]["area_m2"], geod_area(NOTCH), 1e-3)
    exempt = features_of(after, "exempt")
    assert len(exempt) == 1 and close(exempt[0]["area_m2"], geod_area(LAKE), 1e-3)
    summary = after["summary"]["parents"][0]
    assert close(summary["exempt_area_m2"], geod_area(LAKE), 1e-3)
    land = parent_m2 - geod_area(LAKE)
    assert summary["coverage_pct"] == pytest.approx(100 * (land - geod_area(NOTCH)) / land, abs=1e-3)
    assert before["summary"]["coverage_pct"] < after["summary"]["coverage_pct"] < 100


def test_exemption_larger_than_the_void_does_not_hide_other_gaps(client, lake_village):
    # The lake as a planner digitises it: with a 50 m margin over the shore, which the
    # grid around it covers. The notch elsewhere is still a blind spot.
    rough = LAKE.buffer(0.0005, join_style="mitre")
    r = client.post("/api/exemptions", json={"area": VILLAGE_W, "kind": "lake",
                                             "geometry": shapely.geometry.mapping(rough)})
    assert r.status_code == 201, r.text
    after = coverage(client, VILLAGE_W)
    assert len(features_of(after, "gap")) == 1  # the notch
    assert close(features_of(after, "exempt")[0]["area_m2"], geod_area(LAKE), 1e-3)  # only the uncovered void
    land = geod_area(shapely.box(120.0, 30.0, 120.02, 30.04)) - geod_area(rough)
    assert after["summary"]["coverage_pct"] < 100
    assert after["summary"]["coverage_pct"] == pytest.approx(100 * (land - geod_area(NOTCH)) / land, abs=1e-3)


def test_exemptions_respect_the_planners_scope(client, anon, make_user, lake_village):
    r = client.post("/api/areas", json=feature(square(120.1, 30.0, 0.04), code="339901101", name="乙镇",
                                               level="town", parent="339901"))
    assert r.status_code == 201, r.text
    other = make_user("planner-b", ("planner", "339901101"))
    own = make_user("planner-a", ("planner", TOWN))
    body = {"area": VILLAGE_W, "kind": "lake", "geometry": shapely.geometry.mapping(LAKE)}
    denied = anon.post("/api/exemptions", headers=other, json=body)
    assert denied.status_code == 403, denied.text
    assert client.get("/api/exemptions", params={"area": VILLAGE_W}).json()["features"] == []
    assert anon.post("/api/exemptions", json=body).status_code == 401
    ok = anon.post("/api/exemptions", headers=own, json=body)
    assert ok.status_code == 201, ok.text
    # deleting follows the same scope
    assert anon.delete(f"/api/exemptions/{ok.json()['id']}", headers=other).status_code == 403
    assert len(client.get("/api/exemptions", params={"area": VILLAGE_W}).json()["features"]) == 1
    assert anon.delete(f"/api/exemptions/{ok.json()['id']}", headers=own).status_code == 204
    assert client.get("/api/exemptions", params={"area": VILLAGE_W}).json()["features"] == []


# --------------------------------------------------------------------------- responsibility and size


def strips(n: int, bbox=(120.0, 30.0, 120.02, 30.04)) -> list[shapely.Polygon]:
    """The village cut into n equal north-south strips."""
    x0, y0, x1, y1 = bbox
    xs = np.linspace(x0, x1, n + 1)
    return [shapely.box(xs[k], y0, xs[k + 1], y1) for k in range(n)]


def appoint(client, person: int, area: str, role: str, start: dt.date, end: dt.date | None = None) -> None:
    r = client.post("/api/assignments", json={"person": person, "area": area, "role": role,
                                              "start_date": start.isoformat(),
                                              "end_date": end.isoformat() if end else None})
    assert r.status_code == 201, r.text


def test_responsibility_gaps_and_size_outliers(client, town, engine):
    today = jurisdiction_today()
    households = [None, 350, 400, 299, 501, 300, 500, 420, 380]
    g = add_grids(client, VILLAGE_W, strips(9), grid_codes(VILLAGE_W, 9), households=households)
    far = add_grids(client, VILLAGE_E, [shapely.box(120.02, 30.0, 120.04, 30.04)], grid_codes(VILLAGE_E, 1))[0]
    person = {name: client.post("/api/persons", json={"name": name}).json()["id"]
              for name in ("老支书", "村书记", "张网格长", "李专职", "王兼职", "赵网格员", "钱网格员")}
    long_ago, later = today - dt.timedelta(days=400), today + dt.timedelta(days=400)
    # g[0]: its leader's term ended yesterday, nobody else -> no leader, no worker
    appoint(client, person["老支书"], g[0], "grid_leader", long_ago, today - dt.timedelta(days=1))
    # g[1]: a leader but no worker
    appoint(client, person["村书记"], g[1], "grid_leader", long_ago)
    # g[2]: both posts end in 10 days -> expiring
    appoint(client, person["张网格长"], g[2], "grid_leader", long_ago, today + dt.timedelta(days=10))
    appoint(client, person["王兼职"], g[2], "grid_worker_parttime", long_ago, today + dt.timedelta(days=10))
    # g[8]: both posts end in 31 days: outside the 30-day horizon
    appoint(client, person["张网格长"], g[8], "grid_leader", long_ago, today + dt.timedelta(days=31))
    appoint(client, person["钱网格员"], g[8], "grid_worker_parttime", long_ago, today + dt.timedelta(days=31))
    # g[3..7] and the east village's grid: one full-time worker in 6 grids (more than 5)
    for code in [*g[3:8], far]:
        appoint(client, person["村书记"], code, "grid_leader", long_ago)  # leaders are not counted
        appoint(client, person["李专职"], code, "grid_worker_fulltime", long_ago, later)
    # a worker whose posts are all over is not overloaded, whatever his history
    for code in [*g[3:8], far]:
        appoint(client, person["赵网格员"], code, "grid_worker_parttime", long_ago, today - dt.timedelta(days=2))

    result = coverage(client, VILLAGE_W)
    props = [f["properties"] for f in result["problems"]["features"]]
    nobody = {p["codes"][0]: p["missing"] for p in props if p["kind"] == "no_responsible"}
    assert nobody == {g[0]: ["grid_leader", "grid_worker"], g[1]: ["grid_worker"]}
    expiring = [p for p in props if p["kind"] == "expiring"]
    assert [(p["codes"], p["ends"]) for p in expiring] == [([g[2]], (today + dt.timedelta(days=10)).isoformat())]
    overloaded = [p for p in props if p["kind"] == "overloaded_person"]
    assert len(overloaded) == 1
    assert overloaded[0]["person"] == "李专职" and overloaded[0]["grids"] == 6
    assert overloaded[0]["codes"] == sorted([*g[3:8], far])
    sizes = {(p["codes"][0], p["field"]): p["value"] for p in props if p["kind"] == "size_outlier"}
    assert sizes == {(g[3], "households"): 299, (g[4], "households"): 501}
    assert not [p for p in props if p["kind"] == "area_outlier"]  # nine equal strips
    assert not [p for p in props if p["kind"] in ("gap", "overlap", "spill_over", "invalid")]
    assert result["summary"]["coverage_pct"] == 100.0
    counts = result["summary"]["counts"]
    assert counts == {"no_responsible": 2, "expiring": 1, "overloaded_person": 1, "size_outlier": 2}

    # a county with other norms: six grids a person, five days' notice, 200-600 households
    from geogrid.core.settings import Settings
    from geogrid.db import engine as db

    options = checks.options_from(Settings(max_grids_per_person=6, expiring_within_days=5,
                                                  households_range=(200, 600)))
    with db.transaction(engine) as session:
        other = runs.run(session, VILLAGE_W, "comprehensive", options, subtree=False, store=False,
                                  today=jurisdiction_today())
    assert {f["properties"]["kind"] for f in other["problems"]["features"]} == {"no_responsible"}
    assert "id" not in other


def test_area_outliers_by_robust_z(client, town):
    # eight strips, one of them folded into a grid 12 times as large as the others
    polys = strips(20)
    big = shapely.union_all(polys[8:20])
    g = add_grids(client, VILLAGE_W, [*polys[:8], big], grid_codes(VILLAGE_W, 9))
    result = coverage(client, VILLAGE_W)
    outliers = [f["properties"] for f in result["problems"]["features"] if f["properties"]["kind"] == "area_outlier"]
    assert [p["codes"] for p in outliers] == [[g[8]]]
    assert outliers[0]["z"] > 3.5
    assert close(outliers[0]["area_m2"], geod_area(big), 1e-3)
    assert close(outliers[0]["median_m2"], geod_area(polys[0]), 1e-3)


def test_a_regular_layout_has_no_area_outlier_for_a_slightly_larger_grid(client, town):
    # Six equal blocks along a parallel and one 20 % wider: a planned layout, not an outlier.
    xs = [120.0 + 0.0025 * k for k in range(7)] + [120.015 + 0.0025 * 1.2]  # the rest of the village: a gap
    polys = [shapely.box(xs[k], 30.0, xs[k + 1], 30.04) for k in range(7)]
    add_grids(client, VILLAGE_W, polys, grid_codes(VILLAGE_W, 7))
    result = coverage(client, VILLAGE_W)
    outliers = [f["properties"] for f in result["problems"]["features"] if f["properties"]["kind"] == "area_outlier"]
    assert outliers == []


@pytest.fixture
def host_on_another_day():
    """Set this process's clock to a time zone whose date differs from Shanghai's right now
    (as a server on UTC is between 16:00 and 24:00 UTC); yields (host date, Shanghai date)."""
    import time
    from zoneinfo import ZoneInfo

    local = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    tz = next(z for z in ("Etc/GMT+12", "Etc/GMT-14") if dt.datetime.now(ZoneInfo(z)).date() != local)
    saved = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        assert dt.date.today() != local
        yield dt.date.today(), local
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_responsibility_is_judged_on_the_jurisdictions_date(client, town, host_on_another_day):
    host, local = host_on_another_day
    code = add_grids(client, VILLAGE_W, [shapely.box(120.0, 30.0, 120.02, 30.04)], grid_codes(VILLAGE_W, 1))[0]
    leader = client.post("/api/persons", json={"name": "书记"}).json()["id"]
    worker = client.post("/api/persons", json={"name": "网格员"}).json()["id"]
    appoint(client, leader, code, "grid_leader", local - dt.timedelta(days=400))
    if host < local:  # the worker's post ended yesterday in Shanghai: it is still "today" on the host
        appoint(client, worker, code, "grid_worker_fulltime", local - dt.timedelta(days=400), host)
    else:  # the worker starts tomorrow in Shanghai: already "today" on the host
        appoint(client, worker, code, "grid_worker_fulltime", host)
    props = [f["properties"] for f in coverage(client, VILLAGE_W)["problems"]["features"]]
    assert [(p["codes"], p["missing"]) for p in props if p["kind"] == "no_responsible"] == [([code], ["grid_worker"])]


# --------------------------------------------------------------------------- stored runs


def test_runs_are_stored_and_compared(client, anon, town):
    west = shapely.box(120.0, 30.0, 120.0095, 30.04)  # 0.0005 degrees short of its neighbour
    east = shapely.box(120.01, 30.0, 120.02, 30.04)
    g = add_grids(client, VILLAGE_W, [west, east], grid_codes(VILLAGE_W, 2))
    assert anon.get("/api/coverage", params={"area": VILLAGE_W}).status_code == 401
    assert anon.get("/api/coverage/runs").status_code == 401

    # the county's own sliver width, per request: this 48 m gap is a sliver for a 100 m rule
    assert features_of(coverage(client, VILLAGE_W, sliver_width_m=100), "gap")[0]["width_class"] == "sliver"
    assert client.get("/api/coverage", params={"area": VILLAGE_W, "sliver_width_m": -1}).status_code == 422

    first = coverage(client, VILLAGE_W)
    gap = features_of(first, "gap")
    assert len(gap) == 1 and gap[0]["codes"] == g and gap[0]["width_class"] == "blind_spot"
    assert close(gap[0]["area_m2"], geod_area(shapely.box(120.0095, 30.0, 120.01, 30.04)), 1e-3)
    assert gap[0]["width_m"] == pytest.approx(0.0005 * 111_320 * np.cos(np.radians(30.02)), rel=0.01)
    # the fix: a grid for the strip nobody had
    add_grids(client, VILLAGE_W, [shapely.box(120.0095, 30.0, 120.01, 30.04)], grid_codes(VILLAGE_W, 3)[2:])
    second = coverage(client, VILLAGE_W)
    assert features_of(second, "gap") == []
    assert second["summary"]["coverage_pct"] == 100.0 > first["summary"]["coverage_pct"]

    # (runs outlive the per-test truncation of areas: only those from here on count)
    runs = [x for x in client.get("/api/coverage/runs", params={"area": VILLAGE_W}).json() if x["id"] >= first["id"]]
    assert [x["id"] for x in runs] == [second["id"], first["id"]]  # newest first
    assert runs[0]["actor"] == runs[1]["actor"] == "root-admin"
    assert runs[1]["counts"]["gap"] == 1 and "gap" not in runs[0]["counts"]
    stored = client.get(f"/api/coverage/runs/{first['id']}").json()
    assert stored["problems"] == first["problems"]
    assert stored["summary"]["coverage_pct"] == first["summary"]["coverage_pct"]
    assert all(x["area_code"] == VILLAGE_W for x in runs)

    diff = client.get(f"/api/coverage/runs/{second['id']}/compare", params={"earlier": first["id"]}).json()
    assert diff["resolved"] == [{"kind": "gap", "codes": g}]
    assert diff["appeared"] == [{"kind": "no_responsible", "codes": grid_codes(VILLAGE_W, 3)[2:]}]
    assert diff["counts"]["gap"] == {"old": 1, "new": 0}
    assert diff["counts"]["no_responsible"] == {"old": 2, "new": 3}  # still nobody appointed
    assert diff["coverage_pct"]["new"] == 100.0

    # the other way round the gap appears; runs of another area cannot be compared
    back = client.get(f"/api/coverage/runs/{first['id']}/compare", params={"earlier": second["id"]}).json()
    assert back["appeared"] == [{"kind": "gap", "codes": g}]
    other = coverage(client, TOWN, layer="admin")
    assert client.get(f"/api/coverage/runs/{other['id']}/compare", params={"earlier": first["id"]}).status_code == 422
    assert client.get("/api/coverage/runs/999999").status_code == 404
    assert client.get("/api/coverage", params={"area": "339901999"}).status_code == 404
    assert client.get("/api/coverage", params={"area": VILLAGE_W, "layer": "nope"}).status_code == 422


# --------------------------------------------------------------------------- repairs

METRE_LON = 1 / (111_320 * np.cos(np.radians(30.02)))
BUMP = shapely.box(120.007, 30.01, 120.0073, 30.02)  # A's claim on B: an overlap about 29 m x 1.1 km
THIN = shapely.box(120.014, 30.025, 120.014 + 2 * METRE_LON, 30.035)  # a 2 m wide gap between B and C


@pytest.fixture
def messy_village(client, town):
    """Three strips A | B | C of the west village: A bulges into B, C leaves a 2 m gap."""
    a = shapely.union(shapely.box(120.0, 30.0, 120.007, 30.04), BUMP)
    b = shapely.box(120.007, 30.0, 120.014, 30.04)
    c = shapely.box(120.014, 30.0, 120.02, 30.04).difference(THIN)
    return add_grids(client, VILLAGE_W, [a, b, c], grid_codes(VILLAGE_W, 3))


def propose(client, **body) -> dict:
    r = client.post("/api/coverage/repairs", json={"area": VILLAGE_W, **body})
    assert r.status_code == 201, r.text
    return r.json()


def test_repair_proposal_changes_nothing_until_applied(client, anon, make_user, messy_village):
    a, b, c = messy_village
    before = coverage(client, VILLAGE_W)
    assert len(features_of(before, "overlap")) == 1 and len(features_of(before, "gap")) == 1

    proposal = propose(client)
    assert proposal["grids"] == 3 and proposal["params"]["merge_strategy"] == "longest_border"
    by_code = {f["id"]: f["properties"] for f in proposal["proposal"]["features"]}
    assert by_code[a]["changed"] and by_code[a]["lost_to"][0]["code"] == b
    assert close(by_code[a]["lost_to"][0]["area_m2"], geod_area(BUMP), 0.01)
    assert close(by_code[a]["lost_m2"], geod_area(BUMP), 0.01)
    assert by_code[c]["changed"] and close(by_code[c]["gained_m2"], geod_area(THIN), 0.01)
    assert by_code[c]["lost_to"] == [] and by_code[b]["lost_to"] == []
    assert proposal["changed"] == sum(p["changed"] for p in by_code.values())
    assert all(p["version"] == 1 for p in by_code.values())
    new = [shapely.geometry.shape(f["geometry"]) for f in proposal["proposal"]["features"]]
    assert shapely.coverage_is_valid(new)
    assert close(geod_area(shapely.union_all(new)), geod_area(shapely.box(120.0, 30.0, 120.02, 30.04)), 1e-4)
    assert check_coverage(shapely.box(120.0, 30.0, 120.02, 30.04), new, [a, b, c]).problems == []

    # nothing changed yet
    assert [versions(client, x) for x in (a, b, c)] == [1, 1, 1]
    assert len(features_of(coverage(client, VILLAGE_W), "overlap")) == 1
    assert client.get(f"/api/coverage/repairs/{proposal['id']}").json()["applied_at"] is None

    # without confirm: 422; a planner of another town: 403; anonymous: 401; none writes anything
    r = client.post(f"/api/coverage/repairs/{proposal['id']}/apply")
    assert r.status_code == 422 and "confirm=true" in r.json()["detail"]
    client.post("/api/areas", json=feature(square(120.1, 30.0, 0.04), code="339901101", name="乙镇",
                                           level="town", parent="339901"))
    other = make_user("planner-b", ("planner", "339901101"))
    r = anon.post(f"/api/coverage/repairs/{proposal['id']}/apply", headers=other, params={"confirm": "true"})
    assert r.status_code == 403, r.text
    assert anon.post(f"/api/coverage/repairs/{proposal['id']}/apply", params={"confirm": "true"}).status_code == 401
    inspector = make_user("insp", ("inspector", TOWN))
    assert anon.post("/api/coverage/repairs", headers=inspector, json={"area": VILLAGE_W}).status_code == 403
    assert [versions(client, x) for x in (a, b, c)] == [1, 1, 1]
    assert client.get(f"/api/coverage/repairs/{proposal['id']}").json()["applied_at"] is None
    assert len(features_of(coverage(client, VILLAGE_W), "overlap")) == 1


def test_repair_applied_on_confirmation_all_at_once(client, anon, make_user, messy_village):
    a, b, c = messy_village
    stale = propose(client)  # made now, applied after an edit
    r = client.patch(f"/api/grids/{a}", json={"properties": {"households": 350}})
    assert r.status_code == 200, r.text
    r = client.post(f"/api/coverage/repairs/{stale['id']}/apply", params={"confirm": "true"})
    assert r.status_code == 409 and a in r.json()["detail"], r.text
    assert [versions(client, x) for x in (a, b, c)] == [1, 1, 1]

    proposal, rival = propose(client), propose(client)  # two proposals on the current versions
    own = make_user("planner-a", ("planner", TOWN))
    r = anon.post(f"/api/coverage/repairs/{proposal['id']}/apply", headers=own, params={"confirm": "true"})
    assert r.status_code == 200, r.text
    flags = {f["id"]: f["properties"]["changed"] for f in proposal["proposal"]["features"]}
    changed = [code for code in (a, b, c) if flags[code]]
    assert sorted(r.json()["applied"]) == sorted(changed) and a in changed and c in changed
    for code in (a, b, c):
        history = client.get(f"/api/grids/{code}/history").json()["features"]
        assert len(history) == (2 if code in changed else 1)
        if code in changed:
            assert history[0]["properties"]["note"] == f"coverage repair proposal {proposal['id']}"
            assert history[1]["properties"]["valid_to"] is not None
    after = coverage(client, VILLAGE_W)
    assert features_of(after, "overlap") == [] and features_of(after, "gap") == []
    assert after["summary"]["coverage_pct"] == 100.0
    stored = client.get(f"/api/coverage/repairs/{proposal['id']}").json()
    assert stored["applied_at"] is not None and stored["applied_by"] == "planner-a"

    # applying again, or the rival proposal made on the old versions: 409, nothing written
    assert client.post(f"/api/coverage/repairs/{proposal['id']}/apply", params={"confirm": "true"}).status_code == 409
    r = client.post(f"/api/coverage/repairs/{rival['id']}/apply", params={"confirm": "true"})
    assert r.status_code == 409, r.text
    assert [versions(client, x) for x in (a, b, c)] == [2 if x in changed else 1 for x in (a, b, c)]
    assert client.post("/api/coverage/repairs/999999/apply", params={"confirm": "true"}).status_code == 404


def test_editing_a_grid_works(client, town):
    code = add_grids(client, VILLAGE_W, strips(1), grid_codes(VILLAGE_W, 1))[0]
    r = client.patch(f"/api/grids/{code}", json={"properties": {"households": 350}})
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["households"] == 350


def test_repair_of_a_clean_layer_changes_nothing(client, town):
    g = add_grids(client, VILLAGE_W, strips(3), grid_codes(VILLAGE_W, 3))
    proposal = propose(client)
    assert proposal["changed"] == 0
    assert all(not f["properties"]["changed"] and f["properties"]["lost_to"] == []
               for f in proposal["proposal"]["features"])
    r = client.post(f"/api/coverage/repairs/{proposal['id']}/apply", params={"confirm": "true"})
    assert r.status_code == 200 and r.json()["applied"] == []
    assert [versions(client, x) for x in g] == [1, 1, 1]
    assert client.post("/api/coverage/repairs", json={"area": VILLAGE_E}).status_code == 422  # no grids there


# --------------------------------------------------------------------------- command line


def cli(*args, settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url}
    result = subprocess.run([GEOGRID, *args], capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def test_cli_coverage(client, town, settings, tmp_path):
    west = shapely.box(120.0, 30.0, 120.0095, 30.04)
    east = shapely.box(120.0098, 30.0, 120.02, 30.04)  # a gap and an overlap (0.0003 degrees each)
    east = shapely.union(east, shapely.box(120.0095, 30.02, 120.0098, 30.03)).union(
        shapely.box(120.009, 30.0, 120.0098, 30.005))
    g = add_grids(client, VILLAGE_W, [west, east], grid_codes(VILLAGE_W, 2))
    out = tmp_path / "problems.geojson"
    result = cli("coverage", VILLAGE_W, "--out", str(out), settings=settings)
    assert result.returncode == 3, result.stdout + result.stderr
    assert VILLAGE_W in result.stdout and "gap" in result.stdout and "overlap" in result.stdout
    doc = json.loads(out.read_text(encoding="utf-8"))
    kinds = sorted(f["properties"]["kind"] for f in doc["features"])
    assert kinds.count("gap") == 2 and kinds.count("overlap") == 1 and kinds.count("no_responsible") == 2
    for f in doc["features"]:
        if f["properties"]["kind"] in ("gap", "overlap"):
            assert close(geod_area(shapely.geometry.shape(f["geometry"])), f["properties"]["area_m2"], 1e-3)
        assert set(f["properties"]["codes"]) <= set(g)
    overlap = next(f for f in doc["features"] if f["properties"]["kind"] == "overlap")
    assert close(overlap["properties"]["area_m2"], geod_area(shapely.box(120.009, 30.0, 120.0095, 30.005)), 1e-3)
    # the run is stored like any other
    runs = client.get("/api/coverage/runs", params={"area": VILLAGE_W}).json()
    assert runs[0]["actor"].startswith("cli:") and runs[0]["counts"]["gap"] == 2

    as_json = cli("coverage", VILLAGE_W, "--json", settings=settings)
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["summary"]["counts"]["overlap"] == 1

    # the villages partition the town exactly: nothing to report
    clean = cli("coverage", TOWN, "--layer", "admin", settings=settings)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "coverage 100.0%" in clean.stdout
    # a clean village: one staffed grid of 400 households covers it
    east = add_grids(client, VILLAGE_E, [shapely.box(120.02, 30.0, 120.04, 30.04)], grid_codes(VILLAGE_E, 1),
                     households=400)[0]
    start = jurisdiction_today() - dt.timedelta(days=100)
    appoint(client, client.post("/api/persons", json={"name": "书记"}).json()["id"], east, "grid_leader", start)
    appoint(client, client.post("/api/persons", json={"name": "网格员"}).json()["id"], east, "grid_worker_fulltime", start)
    staffed = cli("coverage", VILLAGE_E, "--out", str(tmp_path / "none.geojson"), settings=settings)
    assert staffed.returncode == 0, staffed.stdout + staffed.stderr
    assert json.loads((tmp_path / "none.geojson").read_text())["features"] == []

    unknown = cli("coverage", "339901999", settings=settings)
    assert unknown.returncode == 1 and unknown.stderr.startswith("error:") and "339901999" in unknown.stderr
    bad_layer = cli("coverage", VILLAGE_W, "--layer", "nope", settings=settings)
    assert bad_layer.returncode == 1 and bad_layer.stderr.startswith("error:")


# --------------------------------------------------------------------------- more defects found on the way


def test_the_only_worker_leaving_soon_is_announced(client, town):
    today = jurisdiction_today()
    code = add_grids(client, VILLAGE_W, [shapely.box(120.0, 30.0, 120.02, 30.04)], grid_codes(VILLAGE_W, 1))[0]
    leader = client.post("/api/persons", json={"name": "书记"}).json()["id"]
    worker = client.post("/api/persons", json={"name": "网格员"}).json()["id"]
    appoint(client, leader, code, "grid_leader", today - dt.timedelta(days=400))
    appoint(client, worker, code, "grid_worker_fulltime", today - dt.timedelta(days=400), today + dt.timedelta(days=10))
    props = [f["properties"] for f in coverage(client, VILLAGE_W)["problems"]["features"]]
    assert not [p for p in props if p["kind"] == "no_responsible"]
    expiring = [p for p in props if p["kind"] == "expiring"]
    assert [(p["codes"], p["ends"]) for p in expiring] == [([code], (today + dt.timedelta(days=10)).isoformat())]


def test_an_overloaded_person_is_reported_once_per_run(client, town):
    today = jurisdiction_today()
    west = add_grids(client, VILLAGE_W, strips(3), grid_codes(VILLAGE_W, 3))
    east = add_grids(client, VILLAGE_E, strips(3, (120.02, 30.0, 120.04, 30.04)), grid_codes(VILLAGE_E, 3))
    worker = client.post("/api/persons", json={"name": "网格员"}).json()["id"]
    for code in west + east:
        appoint(client, worker, code, "grid_worker_parttime", today - dt.timedelta(days=10))
    result = coverage(client, TOWN, subtree="true")
    assert result["summary"]["parents_checked"] == 2
    overloaded = features_of(result, "overloaded_person")
    assert len(overloaded) == 1 and overloaded[0]["grids"] == 6
    assert result["summary"]["counts"]["overloaded_person"] == 1


def test_a_repair_proposal_can_be_applied_when_a_grid_is_swallowed(client, town):
    kids = [shapely.box(120.0, 30.0, 120.01, 30.04), shapely.box(120.01, 30.0, 120.02, 30.04),
            shapely.box(120.002, 30.01, 120.004, 30.012)]  # the third drawn again inside the first
    add_grids(client, VILLAGE_W, kids, grid_codes(VILLAGE_W, 3))
    assert len(features_of(coverage(client, VILLAGE_W), "overlap")) == 1
    r = client.post("/api/coverage/repairs", json={"area": VILLAGE_W})
    if r.status_code == 422:  # refusing up front, naming the grid, would do too
        assert grid_codes(VILLAGE_W, 3)[2] in r.json()["detail"]
        return
    assert r.status_code == 201, r.text
    swallowed = [f for f in r.json()["proposal"]["features"] if f["properties"]["retire"]]
    assert [f["id"] for f in swallowed] == [grid_codes(VILLAGE_W, 3)[2]] and swallowed[0]["geometry"] is None
    for f in r.json()["proposal"]["features"]:
        assert f["geometry"] is None or f["geometry"]["coordinates"] != [[[]]]
    applied = client.post(f"/api/coverage/repairs/{r.json()['id']}/apply", params={"confirm": "true"})
    assert applied.status_code == 200, applied.text
    assert features_of(coverage(client, VILLAGE_W), "overlap") == []


def test_a_village_without_any_grid_is_a_blind_spot_in_a_subtree_run(client, town):
    add_grids(client, VILLAGE_W, strips(2), grid_codes(VILLAGE_W, 2))
    alone = coverage(client, VILLAGE_E)  # checked on its own, the empty village is one big gap
    assert alone["summary"]["coverage_pct"] == 0.0 and len(features_of(alone, "gap")) == 1
    result = coverage(client, TOWN, subtree="true")
    assert VILLAGE_E in [s["parent"] for s in result["summary"]["parents"]]
    assert result["summary"]["coverage_pct"] == pytest.approx(50.0, abs=0.1)
