"""Score sheets through the API, on the incident world of tests/conftest.py: who may
define, compute, assess, freeze and publish; bad rules answered with the items named; the
public red/black list with its public fields only."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from conftest import COUNTY, E1, MTOWN, TOWN, VW, W1, W2, micro_code

PERIOD = "2026-09"  # over: it may be frozen
ITEMS = [
    {"code": "late", "name": "逾期结案", "points": 10, "kind": "deduction",
     "rule": {"indicator": "closed_late", "per": 1, "points": 2}},
    {"code": "spot", "name": "督查发现问题", "points": 10, "kind": "deduction", "rule": "manual"},
]


def scheme_body(area: str, name: str = "网格月考核", items=ITEMS) -> dict:
    return {"area": area, "name": name, "total": 100, "target_kind": "grid", "period_kind": "month", "items": items}


def base(scheme_id: int, period: str = PERIOD) -> str:
    return f"/api/assessment/schemes/{scheme_id}/periods/{period}"


def test_planners_define_schemes_in_their_scope_and_bad_rules_are_named(world, anon, make_user):
    planner = make_user("planner-a", ("planner", TOWN))
    r = anon.post("/api/assessment/schemes", headers=planner, json=scheme_body(TOWN))
    assert r.status_code == 201, r.text
    mine = r.json()
    assert (mine["area"], mine["version"], mine["items"][0]["rule"]) == (TOWN, 1, ITEMS[0]["rule"])
    r = anon.post("/api/assessment/schemes", headers=planner, json=scheme_body(MTOWN))
    assert r.status_code == 403 and MTOWN in r.json()["detail"]
    assert anon.post("/api/assessment/schemes", headers=planner, json=scheme_body(TOWN)).status_code == 409

    bad = [ITEMS[0],
           {"code": "x", "name": "未知", "points": 5, "kind": "deduction",
            "rule": {"indicator": "closed_lately", "per": 1, "points": 1}},
           {"code": "y", "name": "负分", "points": 5, "kind": "deduction",
            "rule": {"indicator": "received", "per": 0, "points": -2}}]
    r = anon.post("/api/assessment/schemes", headers=planner, json=scheme_body(TOWN, "另一个", bad))
    assert r.status_code == 422
    problems = {(p["field"], p.get("code")) for p in r.json()["problems"]}
    assert problems == {("items[1].rule.indicator", "x"), ("items[2].rule.per", "y"), ("items[2].rule.points", "y")}
    r = anon.post("/api/assessment/schemes", headers=planner, json=scheme_body(TOWN, "缺类型", [
        {k: v for k, v in ITEMS[0].items() if k != "kind"}]))
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "body.items.0.kind"
    r = anon.post("/api/assessment/schemes", headers=planner, json={**scheme_body(TOWN, "多余"), "colour": "red"})
    assert r.status_code == 422

    theirs = world.post("/api/assessment/schemes", json=scheme_body(MTOWN)).json()
    for method, path, body in (("post", base(theirs["id"]) + "/compute", None),
                               ("get", f"/api/assessment/schemes/{theirs['id']}", None),
                               ("patch", f"/api/assessment/schemes/{theirs['id']}", {"name": "改名"}),
                               ("get", "/api/assessment/schemes/999999", None)):
        r = anon.request(method, path, headers=planner, json=body)
        assert r.status_code == 403, (method, path, r.text)
    assert [s["id"] for s in anon.get("/api/assessment/schemes", headers=planner).json()] == [mine["id"]]

    # Versions: a stale edit is refused; the kinds stay once a period exists.
    r = anon.patch(f"/api/assessment/schemes/{mine['id']}", headers={**planner, "If-Match": '"7"'},
                   json={"name": "新名"})
    assert r.status_code == 412
    r = anon.patch(f"/api/assessment/schemes/{mine['id']}", headers={**planner, "If-Match": '"1"'},
                   json={"target_kind": "village"})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert anon.post(base(mine["id"]) + "/compute", headers=planner).status_code == 200
    r = anon.patch(f"/api/assessment/schemes/{mine['id']}", headers=planner, json={"target_kind": "grid"})
    assert r.status_code == 409
    assert anon.post(base(mine["id"], "2026-Q3") + "/compute", headers=planner).status_code == 422


def test_assess_freeze_and_publish(world, anon, make_user):
    inspector = make_user("insp-a", ("inspector", TOWN))
    worker = make_user("gw-a", ("grid_worker", TOWN))
    planner = make_user("planner-a", ("planner", TOWN))
    scheme = world.post("/api/assessment/schemes", json=scheme_body(COUNTY, "县网格考核")).json()
    r = world.post("/api/grids", json={"type": "Feature", "properties": {"name": "新划网格", "parent": VW},
                                       "geometry": {"type": "Polygon", "coordinates": [[
                                           [120.001, 30.001], [120.002, 30.001], [120.002, 30.002],
                                           [120.001, 30.002], [120.001, 30.001]]]}})
    assert r.status_code == 201, r.text
    r = world.post(base(scheme["id"]) + "/compute")
    assert r.status_code == 200 and r.json()["state"] == "computed"
    assert r.json()["targets"] == 108  # the town's 8 grids of two nets, the other town's 100; not the new one
    this_month = dt.datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    assert world.post(base(scheme["id"], this_month) + "/compute").json()["targets"] == 109

    # Assessors: inspectors and planners with scope on the target's grid.
    entry = {"target": W1, "item": "spot", "points": 5, "reason": "台账不全（私密）", "evidence": "https://evidence/1"}
    r = anon.post(base(scheme["id"]) + "/manual", headers=inspector, json=entry)
    assert r.status_code == 200, r.text
    assert r.json()["score"] == 95 and r.json()["rank"] == 108
    assert anon.post(base(scheme["id"]) + "/manual", headers=inspector,
                     json={**entry, "target": micro_code(0, 0)}).status_code == 403
    assert anon.post(base(scheme["id"]) + "/manual", headers=worker, json=entry).status_code == 403
    assert anon.post(base(scheme["id"]) + "/manual", headers=planner,
                     json={**entry, "target": E1, "points": 12}).status_code == 422
    r = anon.post(base(scheme["id"]) + "/manual", headers=planner, json={**entry, "target": W2, "points": 8})
    assert r.status_code == 200 and r.json()["score"] == 92
    audit = world.get("/api/audit", params={"resource": "assessment_period"}).json()["items"]
    manual = [a for a in audit if a["action"] == "manual"]
    assert [(a["actor"], a["key"]) for a in manual] == [("planner-a", f"{scheme['id']}/{PERIOD}/{W2}/spot"),
                                                        ("insp-a", f"{scheme['id']}/{PERIOD}/{W1}/spot")]

    # Staff of the town read their town's rows of the county's sheet, with their county ranks.
    rows = anon.get(base(scheme["id"]), headers=worker).json()["rows"]
    assert len(rows) == 8 and {r["target"] for r in rows} >= {W1, W2}
    ranking = anon.get(base(scheme["id"]) + "/ranking", headers=worker).json()
    assert [(r["target"], r["rank"]) for r in ranking["rows"][-2:]] == [(W1, 107), (W2, 108)]
    # 92, 95, then 106 grids tied at 100 share the third-last place: all of them are in the last three.
    assert {r["target"] for r in ranking["bottom"]} == {r["target"] for r in rows}
    assert {r["target"] for r in ranking["red"]} == {r["target"] for r in rows} - {W1, W2}
    assert anon.get(f"/api/assessment/schemes/{scheme['id']}", headers=worker).status_code == 403
    full = world.get(base(scheme["id"]) + "/ranking", params={"black": 2}).json()
    assert len(full["rows"]) == 108 and len(full["red"]) == 106 and [r["target"] for r in full["black"]] == [W1, W2]
    assert anon.get(base(scheme["id"])).status_code == 401

    # Only the county's planner (or an admin) moves the county's period on.
    assert anon.post(base(scheme["id"]) + "/review", headers=planner).status_code == 403
    assert world.post(base(scheme["id"]) + "/freeze").status_code == 409  # not reviewed
    assert world.post(base(scheme["id"]) + "/review").json()["state"] == "reviewed"
    assert world.post(base(scheme["id"]) + "/publish").status_code == 409  # not frozen
    assert world.post(base(scheme["id"]) + "/freeze").json()["state"] == "frozen"
    assert world.post(base(scheme["id"]) + "/compute").status_code == 409
    assert anon.post(base(scheme["id"]) + "/manual", headers=inspector, json=entry).status_code == 409
    assert anon.post(base(scheme["id"]) + "/publish", headers=planner).status_code == 403
    assert anon.get("/api/public/rankings", params={"area": COUNTY}).json()["lists"] == []
    r = world.post(base(scheme["id"]) + "/publish", json={"red": 2, "black": 2})
    assert r.status_code == 200 and r.json()["published"] and (r.json()["red_n"], r.json()["black_n"]) == (2, 2)

    board = anon.get("/api/public/rankings", params={"area": COUNTY})
    assert board.status_code == 200
    [one] = board.json()["lists"]
    assert (one["scheme"], one["period"], one["target_kind"]) == ("县网格考核", PERIOD, "grid")
    assert [(r["name"], r["score"], r["rank"]) for r in one["black"]] == [("西村一格", 95, 107), ("西村二格", 92, 108)]
    assert len(one["red"]) == 106 and all(set(r) == {"rank", "name", "score"} for r in one["red"] + one["black"])
    for private in ("台账不全", "evidence", "deductions", "reason", W1, "insp-a"):
        assert private not in board.text
    assert anon.get("/api/public/rankings", params={"area": TOWN}).json()["lists"] == []  # the county's sheet
    assert anon.get("/api/public/rankings", params={"area": COUNTY, "period": "2026-08"}).json()["lists"] == []
    assert anon.get("/api/public/rankings", params={"area": "999999"}).status_code == 404
