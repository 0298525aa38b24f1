"""Planner editing through the API (issue 10): reshape with shared vertices, vertex moves,
split and merge, with their impact, dry runs, versions and scope. PostGIS measures what
the answers claim."""

from __future__ import annotations

import shapely
from conftest import VE, VW, W1, W2, W3, W4
from sqlalchemy import text

E1 = VE + "001"


def boundary_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM boundary")).scalar_one()


def current(engine, code: str) -> shapely.Geometry:
    with engine.connect() as conn:
        wkb = conn.execute(text("SELECT ST_AsBinary(b.geom) FROM boundary b JOIN area a ON a.id = b.area_id "
                                "WHERE a.code = :c AND upper_inf(b.valid)"), {"c": code}).scalar_one()
    return shapely.from_wkb(bytes(wkb))


def geojson(geom) -> dict:
    return shapely.geometry.mapping(geom)


def coverage(client, area: str) -> dict:
    r = client.get("/api/coverage", params={"area": area})
    assert r.status_code == 200, r.text
    return r.json()["summary"]["counts"]


def test_dry_run_reports_the_gap_of_a_shrunk_grid_as_postgis_measures_it_and_writes_nothing(world, engine):
    shrunk = shapely.box(120.0, 30.02, 120.01, 30.039)  # W1 loses its northern strip of 0.001°
    rows = boundary_rows(engine)
    r = world.patch(f"/api/grids/{W1}", params={"dry_run": "true"}, json={"geometry": geojson(shrunk)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dry_run"] is True and "ETag" not in r.headers
    assert boundary_rows(engine) == rows
    assert world.get(f"/api/grids/{W1}").json()["properties"]["version"] == 1
    impact = body["impact"]
    [gap] = impact["created"]
    with engine.connect() as conn:
        expected = conn.execute(text(
            "SELECT ST_Area(ST_Difference(b.geom, ST_SetSRID(ST_GeomFromWKB(:new), 4326))::geography) "
            "FROM boundary b JOIN area a ON a.id = b.area_id WHERE a.code = :c AND upper_inf(b.valid)"),
            {"new": shapely.to_wkb(shrunk), "c": W1}).scalar_one()
    assert abs(gap["area_m2"] - expected) <= 0.01 * expected
    assert gap["kind"] == "gap" and W1 in gap["codes"]
    assert impact["needs_confirmation"] is True
    assert any("空白" in reason and W1 in reason for reason in impact["reasons"])
    [grid] = impact["grids"]
    assert grid["code"] == W1 and grid["version"] == 1 and grid["status"] == "changed"
    assert grid["area_after_m2"] < grid["area_before_m2"]

    en = world.patch(f"/api/grids/{W1}", params={"dry_run": "true", "lang": "en"}, json={"geometry": geojson(shrunk)})
    assert any(reason.startswith("creates a gap of") for reason in en.json()["impact"]["reasons"])
    assert boundary_rows(engine) == rows


def test_reshape_a_stored_multipolygon_keeping_its_hole(world, engine):
    shell = shapely.Polygon([(120.0, 30.02), (120.01, 30.02), (120.01, 30.04), (120.0, 30.04)],
                            [[(120.003, 30.025), (120.006, 30.025), (120.006, 30.028), (120.003, 30.028)]])
    new = shapely.MultiPolygon([shell])
    r = world.patch(f"/api/grids/{W1}", json={"geometry": geojson(new), "note": "留出水塘"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"2"' and r.json()["dry_run"] is False
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT b.version, ST_NumInteriorRings(ST_GeometryN(b.geom, 1)) AS holes, b.area_m2, "
            "ST_Area(ST_SetSRID(ST_GeomFromWKB(:new), 4326)::geography) AS sent "
            "FROM boundary b JOIN area a ON a.id = b.area_id WHERE a.code = :c AND upper_inf(b.valid)"),
            {"new": shapely.to_wkb(new), "c": W1}).one()
    assert row.version == 2 and row.holes == 1
    assert abs(row.area_m2 - row.sent) < 0.01
    assert r.json()["properties"]["area_m2"] == round(row.area_m2, 1)
    # The hole is land no grid claims: the impact said so.
    assert [p["kind"] for p in r.json()["impact"]["created"]] == ["gap"]


def test_shared_vertex_move_keeps_neighbours_edge_matched(world, engine):
    before = coverage(world, VW)
    total = shapely.union_all([current(engine, c) for c in (W1, W2, W3, W4)]).area
    # The corner W1, W2, W3 and W4 share, dragged south-east; the client sends W1's new shape.
    frm, to = (120.01, 30.02), (120.0105, 30.0195)
    w1 = shapely.Polygon([(120.0, 30.02), to, (120.01, 30.04), (120.0, 30.04)])
    move = {"geometry": geojson(w1), "moves": [{"from": list(frm), "to": list(to)}]}
    r = world.patch(f"/api/grids/{W1}", json=move)
    assert r.status_code == 428, r.text
    listed = {g["code"]: g["version"] for g in r.json()["grids"]}
    assert listed == {W1: 1, W2: 1, W3: 1, W4: 1}

    dry = world.patch(f"/api/grids/{W1}", params={"dry_run": "true"}, json=move).json()
    versions = {g["code"]: g["version"] for g in dry["impact"]["grids"]}
    assert set(versions) == {W1, W2, W3, W4}
    r = world.patch(f"/api/grids/{W1}", json={**move, "versions": versions})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["changed"]) == [W2, W3, W4]
    assert r.json()["impact"]["created"] == [] and r.json()["impact"]["needs_confirmation"] is False
    grids = [current(engine, c) for c in (W1, W2, W3, W4)]
    assert shapely.coverage_is_valid(grids)
    assert all(to in shapely.get_coordinates(g).tolist() or list(to) in shapely.get_coordinates(g).tolist()
               for g in grids)
    assert abs(shapely.union_all(grids).area - total) < 1e-12
    assert coverage(world, VW) == before
    assert world.get(f"/api/grids/{W2}/history").json()["features"][0]["properties"]["boundary_version"] == 2


def test_vertex_on_an_edge_is_inserted_in_both_grids(world, engine):
    # (120.005, 30.02) is the middle of the edge W1 and W3 share: no vertex there yet.
    move = {"layer": "comprehensive", "moves": [{"from": [120.005, 30.02], "to": [120.005, 30.021]}]}
    assert world.post("/api/grids/vertices", json=move).status_code == 428
    r = world.post("/api/grids/vertices", json={**move, "versions": {W1: 1, W3: 1}})
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == [W1, W3] and r.json()["dry_run"] is False
    w1, w3 = current(engine, W1), current(engine, W3)
    assert [120.005, 30.021] in shapely.get_coordinates(w1).tolist()
    assert [120.005, 30.021] in shapely.get_coordinates(w3).tolist()
    assert shapely.coverage_is_valid([w1, w3])
    shared = shapely.line_merge(shapely.intersection(w1, w3))
    assert shapely.equals(shared, shapely.LineString([(120.0, 30.02), (120.005, 30.021), (120.01, 30.02)]))

    nowhere = world.post("/api/grids/vertices", json={"moves": [{"from": [120.3, 30.3], "to": [120.3, 30.31]}]})
    assert nowhere.status_code == 422 and nowhere.json()["problems"][0]["field"] == "moves[0].from"


def test_split_then_merge_back(world, engine):
    person = world.post("/api/persons", json={"name": "王芳"}).json()
    r = world.post("/api/assignments", json=[{"person": person["id"], "area": W1, "role": "grid_leader",
                                              "start_date": "2024-01-01"}])
    assert r.status_code == 201, r.text
    assert world.patch(f"/api/grids/{W1}", json={"properties": {"households": 101, "population": 303}}).status_code == 200
    line = {"type": "LineString", "coordinates": [[120.005, 30.01], [120.005, 30.05]]}

    assert world.post(f"/api/grids/{W1}/split", json={"line": line}).status_code == 428
    dry = world.post(f"/api/grids/{W1}/split", params={"dry_run": "true"}, json={"line": line, "assign_to": 1})
    assert dry.status_code == 200, dry.text
    assert world.get(f"/api/grids/{W1}").json()["properties"]["retired_at"] is None
    # The line crosses the edge W1 shares with its southern neighbour: the neighbour gets
    # the new vertex too, so the dry run lists it with its version and the save sends it.
    touched = {g["code"]: g for g in dry.json()["impact"]["grids"]}
    neighbours = [c for c, g in touched.items() if g["status"] == "changed"]
    assert len(neighbours) == 1 and touched[neighbours[0]]["area_change_pct"] == 0
    partial = world.post(f"/api/grids/{W1}/split", json={"line": line, "assign_to": 1}, headers={"If-Match": '"2"'})
    assert partial.status_code == 428 and neighbours[0] in partial.json()["detail"]
    r = world.post(f"/api/grids/{W1}/split", json={"line": line, "assign_to": 1, "versions": {
        c: g["version"] for c, g in touched.items() if c != W1}}, headers={"If-Match": '"2"'})
    assert r.status_code == 201, r.text
    body = r.json()
    parent = world.get(f"/api/grids/{W1}").json()["properties"]["parent"]
    check = world.get("/api/coverage", params={"area": parent}).json()
    assert check["summary"]["parents"][0]["edge_matched"] is True, check["summary"]
    west, east = (f["properties"] for f in body["created"])
    assert (west["code"], east["code"]) == (VW + "005", VW + "006")  # after the highest sequence ever used
    assert (west["name"], east["name"]) == ("西村一格（1）", "西村一格（2）")
    assert west["households"] + east["households"] == 101 and west["population"] + east["population"] == 303
    assert body["retired"] == [W1]
    statuses = {g["code"]: g["status"] for g in body["impact"]["grids"]}
    assert statuses == {W1: "retired", west["code"]: "new", east["code"]: "new", neighbours[0]: "changed"}
    old = world.get(f"/api/grids/{W1}").json()["properties"]
    assert old["retired_at"] is not None
    assert len(world.get(f"/api/grids/{W1}/history").json()["features"]) == 1
    posts = world.get("/api/assignments", params={"person": person["id"]}).json()
    by_area = {a["area"]: a for a in posts}
    assert by_area[east["code"]]["end_date"] is None and by_area[W1]["end_date"] is not None
    assert west["code"] not in by_area
    with engine.connect() as conn:
        union_m2 = conn.execute(text(
            "SELECT ST_Area(ST_Union(b.geom)::geography) FROM boundary b JOIN area a ON a.id = b.area_id "
            "WHERE a.code = ANY(:c) AND upper_inf(b.valid)"), {"c": [west["code"], east["code"]]}).scalar_one()
    assert abs(union_m2 - old["area_m2"]) < 1.0

    versions = {west["code"]: west["version"], east["code"]: east["version"]}
    merged = world.post("/api/grids/merge", json={"codes": [west["code"], east["code"]], "name": "西村一格",
                                                  "versions": versions})
    assert merged.status_code == 201, merged.text
    [new] = merged.json()["created"]
    assert new["id"] == VW + "007" and new["properties"]["households"] == 101
    assert abs(new["properties"]["area_m2"] - old["area_m2"]) < 1.0
    assert shapely.equals(current(engine, new["id"]), shapely.box(120.0, 30.02, 120.01, 30.04))
    posts = world.get("/api/assignments", params={"person": person["id"]}).json()
    assert [a["area"] for a in posts if a["end_date"] is None] == [new["id"]]


def test_refusals_name_what_and_where(world, engine):
    rows = boundary_rows(engine)
    stale = world.patch(f"/api/grids/{W1}", json={"properties": {"name": "新名"}}, headers={"If-Match": '"7"'})
    assert stale.status_code == 412 and W1 in stale.json()["detail"] and stale.json()["current_version"] == 1

    inside = {"type": "LineString", "coordinates": [[120.002, 30.03], [120.008, 30.03]]}
    r = world.post(f"/api/grids/{W1}/split", json={"line": inside}, headers={"If-Match": '"1"'})
    assert r.status_code == 422 and W1 in r.json()["detail"] and r.json()["problems"][0]["field"] == "line"
    r = world.post(f"/api/grids/{W1}/split", params={"lang": "en"}, json={"line": inside}, headers={"If-Match": '"1"'})
    assert r.json()["detail"] == f"the line must cross grid {W1} from edge to edge"

    r = world.post("/api/grids/merge", json={"codes": [W1, W4], "versions": {W1: 1, W4: 1}})  # corner only
    assert r.status_code == 422 and W4 in r.json()["detail"]
    assert boundary_rows(engine) == rows


def test_neighbour_out_of_scope_is_refused_and_nothing_written(world, engine, make_user, app):
    from fastapi.testclient import TestClient

    headers = make_user("village-planner", ("planner", VW))
    rows = boundary_rows(engine)
    # W2's east edge is E1's west edge (E1 is in the east village, outside this planner's scope).
    frm, to = (120.02, 30.03), (120.021, 30.03)
    w2 = shapely.Polygon([(120.01, 30.02), (120.02, 30.02), to, (120.02, 30.04), (120.01, 30.04)])
    with TestClient(app) as c:
        r = c.patch(f"/api/grids/{W2}", headers=headers, params={"dry_run": "true"},
                    json={"geometry": geojson(w2), "moves": [{"from": list(frm), "to": list(to)}]})
    assert r.status_code == 403 and E1 in r.json()["detail"]
    assert boundary_rows(engine) == rows


def test_open_incidents_are_listed_and_keep_their_grid(world, engine):
    r = world.post("/api/incidents", json={"category": "sanitation", "description": "垃圾堆放在路边",
                                            "lon": 120.0095, "lat": 30.03})
    assert r.status_code == 201, r.text
    incident = r.json()
    # The shared edge W1 | W2 moves west past the incident: it would now lie in W2.
    moves = [{"from": [120.01, 30.04], "to": [120.009, 30.04]}, {"from": [120.01, 30.02], "to": [120.009, 30.02]}]
    w1 = shapely.box(120.0, 30.02, 120.009, 30.04)
    body = {"geometry": geojson(w1), "moves": moves, "versions": {W2: 1, W3: 1, W4: 1}}
    r = world.patch(f"/api/grids/{W1}", json=body, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    [listed] = r.json()["impact"]["incidents"]
    assert listed["grid"] == W1 and listed["grid_after"] == W2 and listed["number"] == incident["receipt"]
    assert any("原派遣路线" in n for n in r.json()["impact"]["notes"])
    with engine.connect() as conn:
        grid = conn.execute(text("SELECT g.code FROM incident i JOIN area g ON g.id = i.grid_id WHERE i.receipt = :r"),
                            {"r": incident["receipt"]}).scalar_one()
    assert grid == W1
