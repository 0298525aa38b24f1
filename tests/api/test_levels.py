"""Levels beyond the seeded seven: a 工作区 inserted between town and village, and a national
root above the provinces, with codes and checks following (issue 17, item 3)."""

from __future__ import annotations

import shapely
from conftest import collection, feature, square

TOWN, WEST = "339901100", "339901100001"


def levels(client) -> dict[str, dict]:
    return {lv["key"]: lv for lv in client.get("/api/levels").json()}


def test_a_work_zone_between_town_and_village(client, town):
    before = levels(client)
    r = client.post("/api/levels", json={"key": "workzone", "below": "town", "code_length": 11, "name_zh": "工作区",
                                         "name_en": "Work zone", "prefixes_children": False})
    assert r.status_code == 201, r.text
    after = levels(client)
    assert after["workzone"]["rank"] == before["town"]["rank"] + 1
    order = sorted(after, key=lambda k: after[k]["rank"])
    assert order[order.index("town") + 1] == "workzone" and order[order.index("workzone") + 1] == "village"
    assert [after[k]["rank"] for k in order] == list(range(1, len(order) + 1))

    # The work zone's code continues the town's; villages under it keep national 12-digit
    # codes, which continue the town's, not the work zone's.
    r = client.post("/api/areas", json=collection(
        feature(square(120.0, 30.0, 0.02), code="33990110001", name="第一工作区", level="workzone", parent=TOWN),
        feature(square(120.0, 30.0, 0.01), code="339901100207", name="新村", level="village", parent="33990110001"),
        feature(square(120.01, 30.0, 0.01), name="后村", level="village", parent="33990110001"),
    ))
    assert r.status_code == 201, r.text
    assert r.json()["codes"][2] == "339901100208"  # generated under the town's sequence
    wrong = client.post("/api/areas", json=collection(
        feature(square(120.0, 30.01, 0.01), code="339902100209", name="错村", level="village", parent="33990110001")))
    assert wrong.status_code == 422 and "does not start with its parent code 339901100" in wrong.text
    assert client.get("/api/areas/339901100207").json()["properties"]["parent"] == "33990110001"
    # Still ordered: a village cannot hold a work zone.
    upside = client.post("/api/areas", json=collection(
        feature(square(120.0, 30.03, 0.005), code="33990110009", name="倒置", level="workzone", parent=WEST)))
    assert upside.status_code == 422 and "is not above level workzone" in upside.text


def test_a_national_root_above_the_provinces_covers_the_country(client, make_user):
    assert client.post("/api/levels", json={"key": "nation", "above": "province", "code_length": 6, "name_zh": "国家",
                                            "name_en": "Nation", "prefixes_children": False}).status_code == 201
    assert levels(client)["nation"]["rank"] == 1 and levels(client)["province"]["rank"] == 2
    zj, js = shapely.box(118.0, 27.0, 123.0, 31.0), shapely.box(116.0, 31.0, 122.0, 35.0)
    r = client.post("/api/areas", json=collection(
        feature(shapely.geometry.mapping(zj), code="330000", name="浙江省", level="province"),
        feature(shapely.geometry.mapping(js), code="320000", name="江苏省", level="province"),
        feature(shapely.geometry.mapping(shapely.box(116.0, 27.0, 123.0, 35.0)), code="100000", name="中华人民共和国",
                level="nation"),
    ))
    assert r.status_code == 201, r.text
    # Provinces loaded before the root are attached to it; their codes do not continue its.
    for code in ("330000", "320000"):
        moved = client.patch(f"/api/areas/{code}", json={"properties": {"parent": "100000"}})
        assert moved.status_code == 200, moved.text
        assert moved.json()["properties"]["parent"] == "100000"
    check = client.get("/api/coverage", params={"area": "100000", "layer": "admin"}).json()["summary"]
    assert check["grids"] == 2 and check["counts"].get("gap", 0) == 2  # west of Zhejiang, east of Jiangsu
    assert client.get("/api/areas/330000/history").status_code == 200

    # The new place is checked as the old one is: a province planner cannot move its province.
    planner = make_user("zj-planner", ("planner", "330000"))
    refused = client.patch("/api/areas/330000", json={"properties": {"parent": "320000"}}, headers=planner)
    assert refused.status_code == 403
    bad = client.patch("/api/areas/330000", json={"properties": {"parent": "320000"}})  # same level
    assert bad.status_code == 422 and "is not above level province" in bad.text
    cycle = client.patch("/api/areas/100000", json={"properties": {"parent": "330000"}})
    assert cycle.status_code == 422 and "lies inside 100000" in cycle.text
    assert client.get("/api/areas/330000").json()["properties"]["parent"] == "100000"


def test_a_village_moves_only_within_the_planners_scope(client, town, make_user):
    r = client.post("/api/areas", json=collection(
        feature(square(120.1, 30.0, 0.04), code="339901101", name="白沙镇", level="town", parent="339901")))
    assert r.status_code == 201, r.text
    planner = make_user("town-planner", ("planner", TOWN))
    refused = client.patch(f"/api/areas/{WEST}", json={"properties": {"parent": "339901101"}}, headers=planner)
    assert refused.status_code == 403
    assert client.get(f"/api/areas/{WEST}").json()["properties"]["parent"] == TOWN
    # Moved by the county's planner: the code must still fit (it continues 339901100).
    county = make_user("county-planner", ("planner", "339901"))
    misfit = client.patch(f"/api/areas/{WEST}", json={"properties": {"parent": "339901101"}}, headers=county)
    assert misfit.status_code == 422 and "does not start with its parent code 339901101" in misfit.text
    assert client.post("/api/levels", json={"key": "x", "above": "nowhere", "code_length": 3, "name_zh": "某",
                                            "name_en": "X"}).status_code == 422
    both = client.post("/api/levels", json={"key": "y", "rank": 50, "below": "grid", "code_length": 3,
                                            "name_zh": "某", "name_en": "Y"})
    assert both.status_code == 422 and "exactly one" in both.text
