"""Requests without a map point through the API: intake by household and area code, the
staff detail with household, address, type, handling, promise, co-departments and owner;
none of these in public outputs (public receipts, Open311, public map); counties' own
categories and request types (POST /api/categories, /api/request-types).

On the incident world of tests/conftest.py; the household at (120.004, 30.006) lies in
grid W3 of the west village VW (worked out by hand from the grid boxes).
"""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import PASSWORD, VE, VW, W3
from fastapi.testclient import TestClient
from sqlalchemy import text

from geogrid.access import accounts
from geogrid.core.settings import Settings
from geogrid.db import engine as db

HOUSE_POINT = (120.0043217, 30.0065431)
NEW_CATEGORY = {"key": "zz_stray_dogs", "name_zh": "流浪犬", "name_en": "Stray dogs", "group_key": "governance",
                "layer_key": "comprehensive", "department": "农业农村局", "public": False,
                "time_limits": {"accept": [2, "working_hours"], "dispatch": [1, "working_days"],
                                "handle": [5, "working_days"], "verify": [1, "working_days"]},
                "auto_escalate": False, "attributes": []}


@pytest.fixture
def household(world, engine) -> int:
    with db.transaction(engine) as session:
        return session.execute(text("""
            INSERT INTO household (ref, geom, located_by, head_name, kind, grid_id, street, number, phone)
            VALUES ('H-API-1', ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'own', '户主乙', 'registered',
                    (SELECT id FROM area WHERE code = :grid), 'SECRET-STREET', '8号', '13999990000')
            RETURNING id
        """), {"x": HOUSE_POINT[0], "y": HOUSE_POINT[1], "grid": W3}).scalar_one()


@pytest.fixture
def own_categories(engine):
    """Categories and request types persist outside the per-test truncation: remove ours."""
    yield
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE incident_event, incident RESTART IDENTITY CASCADE"))
        conn.execute(text("DELETE FROM category WHERE key LIKE 'zz_%'"))
        conn.execute(text("DELETE FROM request_type WHERE key LIKE 'zz_%'"))


def said(r) -> str:
    body = r.json()
    return body["detail"] + " | " + " | ".join(f"{p.get('field')}: {p['message']}" for p in body.get("problems", []))


def test_household_and_area_requests_through_the_api(world, household, anon):
    client = world
    r = client.post("/api/incidents", json={"category": "sanitation", "description": "信箱来信：楼道堆物 PRIVATE-DESC",
                                            "household_id": household, "channel": "mailbox",
                                            "request_type": "complaint", "address": "SECRET-ADDRESS 8号"})
    assert r.status_code == 201, r.text
    case = r.json()
    assert (case["route_kind"], case["grid"], case["lon"], case["lat"]) == ("grid", W3, None, None)
    assert case["household"] == {"id": household, "ref": "H-API-1", "address": "SECRET-STREET 8号"}
    detail = client.get(f"/api/incidents/{case['id']}").json()
    assert (detail["request_type"], detail["request_type_zh"], detail["handling"]) == ("complaint", "投诉", "standard")
    assert detail["address"] == "SECRET-ADDRESS 8号" and detail["household"]["ref"] == "H-API-1"
    listed = client.get("/api/incidents").json()["items"]
    assert listed[0]["household"]["ref"] == "H-API-1" and listed[0]["lon"] is None

    r = client.post("/api/incidents", json={"category": "dispute", "description": "走访中群众咨询", "area": VW,
                                            "channel": "visit", "request_type": "consultation"})
    assert r.status_code == 201, r.text
    assert (r.json()["route_kind"], r.json()["grid"], r.json()["authority"]) == ("area", None, VW)

    # Bad places: 422 naming the field, nothing stored.
    for body, words in (({}, "household_id or an area code"), ({"area": VW, "lon": 120.004, "lat": 30.006}, "one place"),
                        ({"household_id": 424242}, "household 424242 does not exist"), ({"area": "12ab"}, "area")):
        r = client.post("/api/incidents", json={"category": "sanitation", "description": "x", **body})
        assert r.status_code == 422 and words in said(r), (body, r.text)
    assert client.get("/api/incidents").json()["numberMatched"] == 2

    # The public: an area code is a place, a household id is not accepted at all.
    assert anon.post("/api/incidents", json={"category": "sanitation", "description": "x",
                                             "household_id": household}).status_code == 401
    r = anon.post("/api/public/reports", json={"category": "sanitation", "description": "x", "lon": 120.004,
                                               "lat": 30.006, "household_id": household})
    assert r.status_code == 422


def test_scoped_staff_and_households(world, household, anon, make_user):
    west = make_user("gw-west", ("grid_worker", VW))
    east = make_user("gw-east", ("grid_worker", VE))
    body = {"category": "sanitation", "description": "走访发现", "household_id": household, "channel": "visit"}
    r = anon.post("/api/incidents", json=body, headers=east)
    assert r.status_code == 422 and "outside your scope or does not exist" in said(r)
    r = anon.post("/api/incidents", json={**body, "household_id": 424242}, headers=east)
    assert r.status_code == 422 and "outside your scope or does not exist" in said(r)
    r = anon.post("/api/incidents", json=body, headers=west)
    assert r.status_code == 201, r.text
    assert anon.get(f"/api/incidents/{r.json()['id']}", headers=east).status_code == 403


def test_handling_kinds_and_owner_through_the_api(world, household, anon, make_user, engine):
    client = world
    r = client.post("/api/incidents", json={"category": "dispute", "description": "咨询低保政策", "area": VW,
                                            "channel": "walk_in", "request_type": "consultation",
                                            "handling": "immediate", "resolution": "当场解答"})
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "closed"
    detail = client.get(f"/api/incidents/{r.json()['id']}").json()
    assert [h["to_state"] for h in detail["history"]] == ["reported", "accepted", "filed", "dispatched",
                                                          "in_progress", "handled", "verified", "closed"]
    assert [s["step"] for s in detail["steps"]] == ["accept", "dispatch", "handle", "verify"]
    assert all(s["outcome"] == "done" for s in detail["steps"])

    promised = (dt.datetime.now(dt.UTC) + dt.timedelta(days=20)).replace(microsecond=0)
    r = client.post("/api/incidents", json={"category": "sanitation", "description": "承诺办理", "area": W3,
                                            "handling": "promised", "promised_at": promised.isoformat()})
    assert r.status_code == 201, r.text
    case = r.json()
    for to in ("accepted", "filed", "dispatched"):
        case = client.post(f"/api/incidents/{case['id']}/transitions", json={"to": to}).json()
    assert dt.datetime.fromisoformat(case["due_at"]) == promised
    assert dt.datetime.fromisoformat(case["steps"][-1]["due_at"]) == promised and case["steps"][-1]["step"] == "handle"

    with db.transaction(engine) as session:
        accounts.create_account(session, "dept-housing", PASSWORD)
        accounts.grant(session, "dept-housing", "department_handler", None, "住建局")
        housing = {"Authorization": "Bearer " + accounts.login(session, "dept-housing", PASSWORD,
                                                               dt.timedelta(hours=1))["access_token"]}
        accounts.create_account(session, "dept-police", PASSWORD)
        accounts.grant(session, "dept-police", "department_handler", None, "公安分局")
        police = {"Authorization": "Bearer " + accounts.login(session, "dept-police", PASSWORD,
                                                              dt.timedelta(hours=1))["access_token"]}
    joint = client.post("/api/incidents", json={"category": "sanitation", "description": "联办", "area": W3,
                                                "handling": "joint", "co_departments": ["住建局"]}).json()
    assert anon.get(f"/api/incidents/{joint['id']}", headers=housing).json()["co_departments"] == ["住建局"]
    assert anon.get(f"/api/incidents/{joint['id']}", headers=police).status_code == 403
    r = anon.post(f"/api/incidents/{joint['id']}/notes", json={"note": "住建局意见"}, headers=housing)
    assert r.status_code == 200 and r.json()["history"][-1]["note"] == "住建局意见"
    assert anon.post(f"/api/incidents/{joint['id']}/notes", json={"note": "x"}, headers=police).status_code == 403
    assert anon.post(f"/api/incidents/{joint['id']}/transitions", json={"to": "accepted"},
                     headers=housing).status_code == 403

    leader = client.post("/api/persons", json={"name": "包案领导", "phone": "13800000009"}).json()["id"]
    r = client.post(f"/api/incidents/{joint['id']}/owner", json={"person_id": leader, "note": "领导包案"})
    assert r.status_code == 200, r.text
    assert (r.json()["owner_person_id"], r.json()["owner_name"]) == (leader, "包案领导")
    assert client.get("/api/incidents").json()["items"][0]["owner_name"] == "包案领导"
    r = client.post(f"/api/incidents/{joint['id']}/owner", json={"person_id": 999999})
    assert r.status_code == 422
    assert anon.post(f"/api/incidents/{joint['id']}/owner", json={"person_id": leader},
                     headers=housing).status_code == 403


@pytest.fixture
def open311(world, settings):
    from api.app import create_app

    app = create_app(Settings(database_url=settings.database_url, public_reports_per_minute=100))
    with TestClient(app) as c:
        yield c


def test_public_outputs_carry_only_public_fields(world, household, open311, anon, engine):
    client = world
    leader = client.post("/api/persons", json={"name": "OWNER-NAME", "phone": "13800000009"}).json()["id"]
    point = client.post("/api/incidents", json={"category": "sanitation", "description": "x", "lon": 120.014,
                                                "lat": 30.006}).json()
    pointless = client.post("/api/incidents", json={
        "category": "sanitation", "description": "PRIVATE-DESC", "household_id": household,
        "address": "SECRET-ADDRESS", "request_type": "complaint", "owner_person_id": leader,
        "handling": "joint", "co_departments": ["SECRET-DEPT"]}).json()
    assert pointless["owner_name"] == "OWNER-NAME"

    listed = open311.get("/open311/v2/requests.json")
    by_id = {x["service_request_id"]: x for x in listed.json()}
    assert set(by_id) == {point["receipt"], pointless["receipt"]}
    assert (by_id[point["receipt"]]["lat"], by_id[point["receipt"]]["long"]) == (30.006, 120.014)
    assert "lat" not in by_id[pointless["receipt"]] and "long" not in by_id[pointless["receipt"]]
    one = open311.get(f"/open311/v2/requests/{pointless['receipt']}.xml")
    assert one.status_code == 200 and "<lat>" not in one.text
    receipt = anon.get(f"/api/public/reports/{pointless['receipt']}")
    for text_ in (listed.text, one.text, receipt.text):
        for secret in ("H-API-1", "SECRET-STREET", "SECRET-ADDRESS", "OWNER-NAME", "SECRET-DEPT", "PRIVATE-DESC",
                       "complaint", "13999990000", "120.004321", "30.006543"):
            assert secret not in text_, secret

    r = open311.post("/open311/v2/requests.json", data={"service_code": "sanitation", "address_string": "和平路8号",
                                                        "description": "x"})
    assert r.status_code == 400 and "/api/incidents" in r.json()[0]["description"]


def test_counties_add_categories_and_request_types(world, anon, make_user, own_categories):
    client = world
    planner = make_user("planner-town", ("planner", VW))
    assert anon.post("/api/categories", json=NEW_CATEGORY).status_code == 401
    assert anon.post("/api/categories", json=NEW_CATEGORY, headers=planner).status_code == 403
    r = client.post("/api/categories", json=NEW_CATEGORY)
    assert r.status_code == 201, r.text
    assert r.json()["time_limits"]["handle"] == [5, "working_days"] and r.json()["layer_key"] == "comprehensive"
    assert "zz_stray_dogs" in {c["key"] for c in client.get("/api/categories").json()}
    assert client.post("/api/categories", json=NEW_CATEGORY).status_code == 409
    # Its cases route and run like any other.
    case = client.post("/api/incidents", json={"category": "zz_stray_dogs", "description": "流浪犬伤人",
                                               "lon": 120.004, "lat": 30.006})
    assert case.status_code == 201 and case.json()["grid"] == W3

    bad = [({"time_limits": {**NEW_CATEGORY["time_limits"], "handle": [-1, "days"]}}, "negative"),
           ({"time_limits": {"accept": [1, "hours"]}}, "time limit of step dispatch is missing"),
           ({"layer_key": "nowhere"}, "unknown layer 'nowhere'"),
           ({"attributes": [{"code": "kind", "datatype": "singlevaluelist", "description": "种类"}]}, "needs values")]
    for change, words in bad:
        r = client.post("/api/categories", json={**NEW_CATEGORY, "key": "zz_bad", **change})
        assert r.status_code == 422 and words in said(r), (change, r.text)
    assert client.post("/api/categories", json={**NEW_CATEGORY, "key": "zz_bad", "time_limits": {
        **NEW_CATEGORY["time_limits"], "handle": [1, "fortnights"]}}).status_code == 422
    assert "zz_bad" not in {c["key"] for c in client.get("/api/categories").json()}

    types = anon.get("/api/request-types")
    assert types.status_code == 200
    assert [t["key"] for t in types.json()][:3] == ["consultation", "suggestion", "complaint"]
    body = {"key": "zz_praise", "name_zh": "表扬", "name_en": "Praise", "rank": 40}
    assert anon.post("/api/request-types", json=body).status_code == 401
    assert anon.post("/api/request-types", json=body, headers=planner).status_code == 403
    r = client.post("/api/request-types", json=body)
    assert r.status_code == 201 and r.json() == body
    assert client.post("/api/request-types", json=body).status_code == 409
    assert client.post("/api/request-types", json={**body, "key": "Bad Key"}).status_code == 422
    assert [t["key"] for t in anon.get("/api/request-types").json()][3] == "zz_praise"
    r = client.post("/api/incidents", json={"category": "sanitation", "description": "表扬网格员", "area": W3,
                                            "request_type": "zz_praise"})
    assert r.status_code == 201 and r.json()["request_type_zh"] == "表扬"
    audit = client.get("/api/audit").json()["items"]
    assert {("create", "category", "zz_stray_dogs"), ("create", "request_type", "zz_praise")} <= {
        (a["action"], a["resource"], a["key"]) for a in audit}
