"""The household register over HTTP (issue 12): upload with a per-row report, reads scoped
by role and area, residents only with resident_data (every read audited, ID numbers
masked), the public never; redrawing a grid through the editing API re-derives the grids
of its households; the coverage size check counts from the register."""

from __future__ import annotations

import csv
import io

import shapely
from conftest import COUNTY, E1, VE, VW, W1, W2
from sqlalchemy import text

HEADER = ["户编号", "户主", "村社区", "经度", "纬度", "户类型", "出租", "姓名", "与户主关系", "性别", "出生日期",
          "身份证号", "电话", "特殊人群"]
ID_W = "339901195001011234"
ID_W2 = "33990119800202567X"
ID_E = "339901196003034321"


def register_csv(rows) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADER)
    w.writerows(rows)
    return out.getvalue().encode()


ROWS = [
    ["W-1", "张三", "西村", 120.005, 30.03, "户籍", "否", "张三", "户主", "男", "1950-01-01", ID_W, "13800000001", "低保"],
    ["W-1", "张三", "西村", 120.005, 30.03, "户籍", "否", "李四", "配偶", "女", "1952-02-02", ID_W2, "", ""],
    ["E-1", "王五", "东村", 120.025, 30.01, "流动", "是", "王五", "户主", "男", "1960-03-03", ID_E, "13800000002",
     "独居老人"],
]


def upload(client, rows=ROWS, name="register.csv", **params):
    return client.post("/api/households/import", params=params,
                       files={"file": (name, register_csv(rows), "text/csv")})


def household_id(engine, ref) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT id FROM household WHERE ref = :r"), {"r": ref}).scalar_one()


def test_upload_and_reads_by_role(world, anon, make_user, engine):
    r = upload(world)
    assert r.status_code == 201, r.text
    assert r.json()["households"] == 2 and r.json()["residents"] == 3 and r.json()["grids_assigned"] == 2
    w, e = household_id(engine, "W-1"), household_id(engine, "E-1")
    worker_rd = make_user("worker-rd", ("grid_worker", VW), ("resident_data", VW))
    worker = make_user("worker-plain", ("grid_worker", VW))
    planner = make_user("planner-town", ("planner", COUNTY))

    # The household: grid workers and planners in scope; phone only with resident_data.
    one = world.get(f"/api/households/{w}", headers=worker_rd).json()
    assert (one["grid"]["code"], one["members"], one["head_name"], one["kind"]) == (W1, 2, "张三", "registered")
    assert world.get(f"/api/households/{w}", headers=worker).json()["phone"] is None
    assert world.get(f"/api/households/{e}", headers=worker).status_code == 403
    assert world.get("/api/households/999999", headers=worker).status_code == 403  # unknown: same answer
    assert world.get("/api/households/999999").status_code == 404  # admin sees everywhere
    listed = world.get("/api/households", headers=worker).json()
    assert [h["ref"] for h in listed["items"]] == ["W-1"]
    assert {h["ref"] for h in world.get("/api/households", headers=planner).json()["items"]} == {"W-1", "E-1"}
    assert [h["ref"] for h in world.get("/api/households", params={"area": VE}, headers=planner).json()["items"]] == ["E-1"]
    assert [h["ref"] for h in world.get("/api/households", params={"q": "张"}).json()["items"]] == ["W-1"]

    # Residents: resident_data in scope only; the public never.
    with engine.connect() as conn:
        audit_before = conn.execute(text("SELECT count(*) FROM audit WHERE action = 'read' AND resource = 'resident'")).scalar_one()
    r = world.get(f"/api/households/{w}/residents", headers=worker_rd)
    assert r.status_code == 200
    people = r.json()
    assert [p["name"] for p in people] == ["张三", "李四"]
    assert [p["id_number"] for p in people] == ["**************1234", "**************567X"]
    assert people[0]["tags"][0]["group_key"] == "dibao"
    assert ID_W not in r.text and ID_W2 not in r.text
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT key FROM audit WHERE action = 'read' AND resource = 'resident' "
                                 "AND actor = 'worker-rd' ORDER BY id")).scalars().all()
        audit_after = conn.execute(text("SELECT count(*) FROM audit WHERE action = 'read' AND resource = 'resident'")).scalar_one()
    assert keys == [str(p["id"]) for p in people] and audit_after == audit_before + 2
    assert world.get(f"/api/households/{e}/residents", headers=worker_rd).status_code == 403
    assert world.get(f"/api/households/{w}/residents", headers=worker).status_code == 403
    assert world.get(f"/api/households/{w}/residents", headers=planner).status_code == 403
    assert anon.get(f"/api/households/{w}/residents").status_code == 401
    assert anon.get("/api/households").status_code == 401
    assert anon.get("/api/residents").status_code == 401
    tagged = world.get("/api/residents", params={"tag": "living_alone"}, headers=worker_rd).json()
    assert tagged["items"] == []  # 王五 lives in the east village, out of scope
    everyone = world.get("/api/residents", params={"tag": "living_alone"}).json()
    assert [p["name"] for p in everyone["items"]] == ["王五"]
    assert world.get("/api/residents", params={"tag": "nope"}).status_code == 422

    # Tags: resident_data and a job grant on the place.
    rid = people[1]["id"]
    r = world.post(f"/api/residents/{rid}/tags", headers=worker_rd, json={"group_key": "disabled", "start_date": "2025-01-01"})
    assert r.status_code == 201, r.text
    r = world.patch(f"/api/resident-tags/{r.json()['id']}", headers=worker_rd, json={"end_date": "2025-06-30"})
    assert r.status_code == 200 and r.json()["end_date"] == "2025-06-30"
    assert world.post(f"/api/residents/{rid}/tags", headers=worker,
                      json={"group_key": "disabled", "start_date": "2025-01-01"}).status_code == 403

    # The counts and the special groups.
    sizes = {g["code"]: g for g in world.get("/api/register/counts", params={"area": VW}, headers=worker).json()}
    assert (sizes[W1]["households"], sizes[W1]["population"], sizes[W1]["source"]) == (1, 2, "register")
    assert world.get("/api/register/counts", params={"area": VE}, headers=worker).status_code == 403
    groups = {g["key"] for g in world.get("/api/special-groups", headers=worker).json()}
    assert {"dibao", "wubao", "petitioner"} <= groups
    assert world.post("/api/special-groups", headers=worker, json={"key": "veteran", "name_zh": "退役军人",
                                                                    "name_en": "Veteran"}).status_code == 403
    assert world.post("/api/special-groups", json={"key": "veteran", "name_zh": "退役军人", "name_en": "Veteran",
                                                    "visit_every_days": 90}).status_code == 201


def test_bad_upload_lists_every_row_and_stores_nothing(world, make_user, engine):
    bad = [ROWS[0], [*ROWS[1][:11], ID_W, "", ""], ["X-1", "", "西村", 121.5, 31.5, "外来", "否", "某", "户主", "男",
                                                   "1990-01-01", "", "", ""]]
    r = upload(world, bad)
    assert r.status_code == 422, r.text
    body = r.json()
    assert {(p["index"], p["field"]) for p in body["problems"]} == {(3, "id_number"), (4, "head"), (4, "kind"),
                                                                    (4, "location")}
    assert ID_W not in r.text
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM household")).scalar_one() == 0
    # Out of the uploader's scope: 403 naming the area, nothing stored.
    worker = make_user("worker-w", ("grid_worker", VW))
    r = world.post("/api/households/import", headers=worker, files={"file": ("r.csv", register_csv(ROWS), "text/csv")})
    assert r.status_code == 403 and VE in r.json()["detail"]
    # Declared format against the content.
    r = upload(world, name="register.xlsx")
    assert r.status_code == 422 and "not an Excel workbook" in r.json()["detail"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM household")).scalar_one() == 0


def test_redrawing_through_the_editing_api_rederives(world, engine):
    assert upload(world).status_code == 201
    w = household_id(engine, "W-1")
    # W2 grows west over W1's east part; W1 shrinks: the household (120.005) moves to W2.
    r = world.patch(f"/api/grids/{W1}", json={"geometry": shapely.geometry.mapping(shapely.box(120.0, 30.02, 120.004, 30.04))})
    assert r.status_code == 200, r.text
    r = world.patch(f"/api/grids/{W2}", json={"geometry": shapely.geometry.mapping(shapely.box(120.004, 30.02, 120.02, 30.04))})
    assert r.status_code == 200, r.text
    history = world.get(f"/api/households/{w}/history").json()
    assert [(h["grid"]["code"] if h["grid"] else None, h["reason"]) for h in history] == [
        (W2, "redraw"), (None, "redraw"), (W1, "register")]
    assert world.get(f"/api/households/{w}").json()["grid"]["code"] == W2
    # A move through the API: reason moved.
    r = world.post(f"/api/households/{w}/move", json={"lon": 120.025, "lat": 30.02})
    assert r.status_code == 200 and r.json()["grid"]["code"] == E1
    assert world.get(f"/api/households/{w}/history").json()[0]["reason"] == "moved"


def test_coverage_size_check_counts_from_the_register(world):
    assert upload(world, ROWS[:2]).status_code == 201  # village W only
    r = world.patch(f"/api/grids/{E1}", json={"properties": {"households": 100}})
    assert r.status_code == 200, r.text
    r = world.get("/api/coverage", params={"area": VW})
    assert r.status_code == 200, r.text
    sizes = {(p["properties"]["codes"][0], p["properties"]["field"]): p["properties"]
             for p in r.json()["problems"]["features"] if p["properties"]["kind"] == "size_outlier"}
    # W1 has 1 household and 2 residents in the register: both below the norm, counted from it;
    # W2 has none (the register covers the village, so 0 it is).
    assert (sizes[(W1, "households")]["value"], sizes[(W1, "households")]["source"]) == (1, "register")
    assert sizes[(W1, "population")]["value"] == 2
    assert sizes[(W2, "households")]["value"] == 0
    # The east village has no register: its typed numbers stand.
    r = world.get("/api/coverage", params={"area": VE}).json()
    outliers = [p["properties"] for p in r["problems"]["features"] if p["properties"]["kind"] == "size_outlier"]
    assert [(p["codes"][0], p["value"], p["source"]) for p in outliers] == [(E1, 100, "typed")]
