"""Areas and grids through the API: creation, code generation, versions, history,
filters, pagination, GeoJSON conventions and the point lookup."""

from __future__ import annotations

import datetime as dt

import shapely
from conftest import collection, feature, square
from sqlalchemy import text


def grid_cells(x0: float, y0: float, n: int, size: float = 0.01) -> list[dict]:
    """n x n code-less grid features covering a square from (x0, y0), row by row from the south."""
    return [feature(square(x0 + i * size, y0 + j * size, size), name=f"网格{j}-{i}")
            for j in range(n) for i in range(n)]


def test_grids_get_codes_in_reading_order(client, town):
    # West village is 0.02° wide and 0.04° tall: 2 columns x 4 rows of 0.01° cells.
    cells = [feature(square(120.0 + i * 0.01, 30.0 + j * 0.01), name=f"c{j}{i}")
             for j in range(4) for i in range(2)]
    r = client.post("/api/grids", json=collection(*cells), params={"parent": "339901100001"})
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["imported"] == 8 and len(report["generated_codes"]) == 8
    by_code = {}
    for g in report["generated_codes"]:
        x0, y0, _, _ = shapely.geometry.shape(cells[g["index"]]["geometry"]).bounds
        by_code[g["code"]] = (x0, y0)
    codes = sorted(by_code)
    assert codes[0] == "339901100001001" and codes[-1] == "339901100001008"
    # North to south by row, west to east within a row.
    ordered = [by_code[c] for c in codes]
    assert ordered == sorted(ordered, key=lambda p: (-p[1], p[0]))

    # A later grid continues the sequence; numbers are never reused after retirement.
    client.delete(f"/api/grids/{codes[-1]}")
    r = client.post("/api/grids", json=feature(square(120.005, 30.005, 0.002), name="新网格"),
                    params={"parent": "339901100001", "layer": "safety"})
    assert r.status_code == 201, r.text
    assert r.json()["codes"] == ["339901100001009"]


def test_area_is_computed_on_the_spheroid(client, town):
    feature_ = client.get("/api/areas/339901100").json()
    # 0.04° x 0.04° at 30°N: about 4,446 m x 3,850 m.
    import pyproj

    geod = pyproj.Geod(ellps="WGS84")
    expected, _ = geod.geometry_area_perimeter(shapely.box(120.0, 30.0, 120.04, 30.04))
    assert abs(feature_["properties"]["area_m2"] - abs(expected)) / abs(expected) < 1e-4
    assert 16_000_000 < feature_["properties"]["area_m2"] < 18_000_000


def test_output_is_rfc7946(client, town):
    clockwise = {"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.0, 30.01], [120.01, 30.01],
                                                     [120.01, 30.0], [120.0, 30.0]]]}
    r = client.post("/api/grids", json=feature(clockwise, name="顺时针", parent="339901100001"))
    assert r.status_code == 201, r.text
    code = r.json()["codes"][0]
    out = client.get(f"/api/grids/{code}")
    assert out.headers["content-type"].startswith("application/geo+json")
    geom = shapely.geometry.shape(out.json()["geometry"])
    assert geom.geom_type == "MultiPolygon"
    assert all(shapely.is_ccw(p.exterior) for p in geom.geoms)


def test_boundary_edit_keeps_history_and_answers_by_date(client, town, engine):
    cells = grid_cells(120.0, 30.0, 2)
    r = client.post("/api/grids", json=collection(*cells), params={"parent": "339901100001"})
    codes = sorted(r.json()["codes"])
    west, east = codes[2], codes[3]  # southern row: west then east
    before = client.get("/api/locate", params={"lon": 120.015, "lat": 30.005}).json()
    assert [x["code"] for x in before["results"] if x["level"] == "grid"] == [east]
    # Backdate version 1 so that "yesterday" has a boundary to answer with.
    with engine.begin() as conn:
        conn.execute(text("UPDATE boundary SET valid = tstzrange(now() - interval '3 days', NULL)"))

    # Move the west grid's eastern edge to take half of the east grid; shrink the east one.
    etag = client.get(f"/api/grids/{west}").headers["etag"]
    r = client.patch(f"/api/grids/{west}", headers={"If-Match": etag},
                     json={"geometry": square(120.0, 30.0, 0.01) | {"coordinates": [[[120.0, 30.0], [120.018, 30.0],
                           [120.018, 30.01], [120.0, 30.01], [120.0, 30.0]]]}, "note": "调整边界"})
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["boundary_version"] == 2
    assert r.headers["etag"] != etag
    r = client.patch(f"/api/grids/{east}", json={"geometry": {"type": "Polygon", "coordinates": [[
        [120.018, 30.0], [120.02, 30.0], [120.02, 30.01], [120.018, 30.01], [120.018, 30.0]]]}})
    assert r.status_code == 200, r.text

    now = client.get("/api/locate", params={"lon": 120.015, "lat": 30.005}).json()
    assert [x["code"] for x in now["results"] if x["level"] == "grid"] == [west]
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    then = client.get("/api/locate", params={"lon": 120.015, "lat": 30.005, "at": yesterday}).json()
    assert [x["code"] for x in then["results"] if x["level"] == "grid"] == [east]

    history = client.get(f"/api/grids/{west}/history").json()["features"]
    assert [f["properties"]["boundary_version"] for f in history] == [2, 1]
    assert history[0]["properties"]["note"] == "调整边界"
    assert history[1]["properties"]["valid_to"] == history[0]["properties"]["valid_from"]
    old = client.get(f"/api/grids/{west}", params={"at": yesterday}).json()
    assert old["properties"]["boundary_version"] == 1


def test_shared_boundary_answer_is_deterministic(client, town):
    r = client.post("/api/grids", json=collection(*grid_cells(120.0, 30.0, 2)), params={"parent": "339901100001"})
    assert r.status_code == 201
    # The centre vertex is shared by all four grids.
    for _ in range(3):
        found = client.get("/api/locate", params={"lon": 120.01, "lat": 30.01}).json()["results"]
        grids = [x for x in found if x["level"] == "grid"]
        assert len(grids) == 4 and all(x["on_boundary"] for x in grids)
        primary = [x["code"] for x in grids if x["primary"]]
        assert primary == [min(x["code"] for x in grids)]
    # An interior point: one grid, primary, not on the boundary.
    inner = client.get("/api/locate", params={"lon": 120.005, "lat": 30.015}).json()["results"]
    grid = [x for x in inner if x["level"] == "grid"]
    assert len(grid) == 1 and grid[0]["primary"] and not grid[0]["on_boundary"]
    # Every level of the admin frame is found, top down.
    assert [x["level"] for x in inner if x["layer"] == "admin"] == ["county", "town", "village"]


def test_locate_outside_everything_is_empty(client, town):
    r = client.get("/api/locate", params={"lon": 121.5, "lat": 31.5})
    assert r.status_code == 200 and r.json()["results"] == []


def test_filters_and_pagination(client, town):
    client.post("/api/grids", json=collection(*grid_cells(120.0, 30.0, 2)), params={"parent": "339901100001"})
    client.post("/api/grids", json=collection(*grid_cells(120.02, 30.0, 2)), params={"parent": "339901100002"})
    all_grids = client.get("/api/grids").json()
    assert all_grids["numberMatched"] == 8
    assert all(f["properties"]["layer"] == "comprehensive" for f in all_grids["features"])
    assert client.get("/api/areas").json()["numberMatched"] == 12
    assert client.get("/api/grids", params={"parent": "339901100002"}).json()["numberMatched"] == 4
    assert client.get("/api/areas", params={"level": "village"}).json()["numberMatched"] == 2
    assert client.get("/api/grids", params={"code_prefix": "339901100002"}).json()["numberMatched"] == 4
    east_half = client.get("/api/grids", params={"bbox": "120.025,30.001,120.05,30.05"}).json()
    assert {f["properties"]["parent"] for f in east_half["features"]} == {"339901100002"}
    page1 = client.get("/api/grids", params={"limit": 3}).json()
    assert page1["numberReturned"] == 3
    nxt = next(l["href"] for l in page1["links"] if l["rel"] == "next")
    page2 = client.get(nxt).json()
    page3 = client.get(next(l["href"] for l in page2["links"] if l["rel"] == "next")).json()
    seen = [f["id"] for p in (page1, page2, page3) for f in p["features"]]
    assert len(seen) == len(set(seen)) == 8
    assert not any(l["rel"] == "next" for l in page3["links"])


def test_attributes_edit_and_labels(client, town):
    r = client.post("/api/grids", json=feature(square(120.0, 30.0), name="一号网格", parent="339901100001",
                                             households=420, population=1300, land_use="residential",
                                             notes="内部备注"))
    code = r.json()["codes"][0]
    props = client.get(f"/api/grids/{code}").json()["properties"]
    assert (props["households"], props["population"], props["level_name"], props["layer_name"]) == (
        420, 1300, "网格", "综治网格")
    assert "notes" not in props  # internal notes never leave through the public reads
    assert client.get(f"/api/grids/{code}", params={"lang": "en"}).json()["properties"]["level_name"] == "Grid"
    r = client.patch(f"/api/grids/{code}", json={"properties": {"households": 450}})
    assert r.status_code == 200 and r.json()["properties"]["households"] == 450
    assert r.json()["properties"]["boundary_version"] == 1  # attributes only: no new boundary
    assert r.json()["properties"]["version"] == 2


def test_retire_keeps_code_and_history(client, town):
    code = client.post("/api/grids", json=feature(square(120.0, 30.0), name="g", parent="339901100001")).json()["codes"][0]
    assert client.delete("/api/areas/339901100001").status_code == 409  # still has an active grid
    assert client.delete(f"/api/grids/{code}").status_code == 204
    assert client.get(f"/api/grids/{code}").json()["properties"]["retired_at"] is not None
    assert client.get("/api/grids").json()["numberMatched"] == 0
    assert client.get("/api/grids", params={"include_retired": True}).json()["numberMatched"] == 1
    r = client.post("/api/grids", json=feature(square(120.0, 30.0), name="g2", code=code, parent="339901100001"))
    assert r.status_code == 422 and "never reused" in r.text


def test_grid_parent_in_another_net_is_refused(client, town):
    env = client.post("/api/grids", json=feature(square(120.0, 30.0, 0.02), name="环境网格", layer="environment",
                                                 parent="339901100001"))
    assert env.status_code == 201
    r = client.post("/api/grids", json=feature(square(120.0, 30.0, 0.005), name="x", level="microgrid",
                                               parent=env.json()["codes"][0]))
    assert r.status_code == 422 and "belongs to layer environment" in r.text


def test_levels_layers_roles_are_configurable(client):
    assert [lv["key"] for lv in client.get("/api/levels").json()][:3] == ["province", "city", "county"]
    r = client.post("/api/layers", json={"key": "flood", "name_zh": "防汛网格", "name_en": "Flood control"})
    assert r.status_code == 201
    assert "flood" in {x["key"] for x in client.get("/api/layers").json()}
    assert client.post("/api/layers", json={"key": "flood", "name_zh": "x", "name_en": "x"}).status_code == 409
    renamed = client.patch("/api/layers/flood", json={"name_zh": "防汛防台网格"})
    assert renamed.status_code == 200 and renamed.json()["name_zh"] == "防汛防台网格"
    assert client.delete("/api/layers/admin").status_code == 409
    assert client.delete("/api/layers/flood").status_code == 204
    assert "flood" not in {x["key"] for x in client.get("/api/layers").json()}
    r = client.post("/api/roles", json={"key": "safety_officer", "name_zh": "安全员", "name_en": "Safety officer"})
    assert r.status_code == 201
    assert client.post("/api/levels", json={"key": "building", "rank": 8, "code_length": 21,
                                            "name_zh": "楼栋", "name_en": "Building"}).status_code == 201
