"""Scope on every object (issue 9, class 3) and idempotency keys per channel and account
(class 5), through the API with two towns.

Each hole that was reproduced is tried again by a caller whose grants lie in town A
against town B's objects: it is refused, and nothing changed (row counts, the rows
themselves and the audit log compared before and after). An object out of scope and one
that does not exist get the same answer; lists hold only the caller's jurisdiction.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

COUNTY = "339901"
TOWN = {"A": "339901100", "B": "339901101"}
VILLAGE = {t: c + "001" for t, c in TOWN.items()}
GRID = {t: c + "001" for t, c in VILLAGE.items()}  # the comprehensive grid: the whole village
ENV = {t: c + "101" for t, c in VILLAGE.items()}   # the environment grid: the village's west half only
X = {"A": 120.0, "B": 120.1}
NOWHERE = (121.0, 31.0)  # inside the service extent, outside every area

# Every table a refused request could have touched; compared whole, row by row.
TABLES = ("area", "boundary", "person", "assignment", "pollution_source", "patrol", "incident", "incident_event",
          "coverage_run", "repair_proposal", "exemption", "audit")


def box(x0, y0, x1, y1) -> dict:
    return shapely.geometry.mapping(shapely.box(x0, y0, x1, y1))


def feature(geometry: dict, **properties) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def snapshot(engine) -> dict:
    """Every row of every table above, as text, and the last audit id."""
    with engine.connect() as conn:
        out = {t: conn.execute(text(f"SELECT coalesce(string_agg(x::text, '\n' ORDER BY x::text), '') "
                                    f"FROM {t} x")).scalar_one() for t in TABLES}
        out["counts"] = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
    return out


@pytest.fixture
def world(client, make_user, engine):
    """Towns A and B with a village, a comprehensive grid and an environment grid each; in
    each town a person with a post, a pollution source, a reported case, an exemption, a
    coverage run and a repair proposal, all made by an admin. Callers hold town A."""
    features = [feature(box(119.9, 29.9, 120.3, 30.2), code=COUNTY, name="演示县", level="county")]
    for t, x in X.items():
        features += [
            feature(box(x, 30.0, x + 0.04, 30.04), code=TOWN[t], name=f"{t}镇", level="town", parent=COUNTY),
            feature(box(x, 30.0, x + 0.04, 30.04), code=VILLAGE[t], name=f"{t}村", level="village", parent=TOWN[t]),
            feature(box(x, 30.0, x + 0.04, 30.04), code=GRID[t], name=f"{t}格", level="grid",
                    layer="comprehensive", parent=VILLAGE[t]),
            feature(box(x, 30.0, x + 0.02, 30.04), code=ENV[t], name=f"{t}环境网格", level="grid",
                    layer="environment", parent=VILLAGE[t]),
        ]
    r = client.post("/api/areas", json={"type": "FeatureCollection", "features": features})
    assert r.status_code == 201, r.text

    def ok(r, status=201):
        assert r.status_code == status, r.text
        return r.json()

    w = {"admin": client}
    for t, x in X.items():
        person = ok(client.post("/api/persons", json={"name": f"{t}镇网格员", "phone": f"1380000000{'AB'.index(t)}",
                                                      "notes": f"{t} private note"}))
        w[("person", t)] = person["id"]
        w[("assignment", t)] = ok(client.post("/api/assignments", json={
            "person": person["id"], "area": GRID[t], "role": "grid_leader", "start_date": "2020-01-01"}))[0]["id"]
        w[("source", t)] = ok(client.post("/api/sources", json={
            "name": f"{t}镇化工厂", "kind": "enterprise", "lon": x + 0.005, "lat": 30.02, "key_supervision": True}))["id"]
        w[("case", t)] = ok(client.post("/api/incidents", json={
            "category": "sanitation", "lon": x + 0.005, "lat": 30.01, "description": f"{t}镇事件"}))
        w[("exemption", t)] = ok(client.post("/api/exemptions", json={
            "area": VILLAGE[t], "kind": "lake", "geometry": box(x + 0.03, 30.03, x + 0.035, 30.035)}))["id"]
        w[("run", t)] = ok(client.get("/api/coverage", params={"area": VILLAGE[t]}), 200)["id"]
        w[("proposal", t)] = ok(client.post("/api/coverage/repairs", json={"area": VILLAGE[t]}))["id"]
    w["postless"] = ok(client.post("/api/persons", json={"name": "待任命", "notes": "new hire"}))["id"]
    w["planner"] = make_user("planner-a", ("planner", TOWN["A"]))
    w["inspector"] = make_user("inspector-a", ("inspector", TOWN["A"]))
    w["worker"] = make_user("worker-a", ("grid_worker", TOWN["A"]))
    return w


@pytest.fixture
def http(app):
    with TestClient(app) as c:
        yield c


def refused_alike(out_of_scope, missing, object_id: int, missing_id: int) -> None:
    """An object out of scope and one that does not exist: the same status and the same
    message but for the id, and nothing else in the body."""
    assert out_of_scope.status_code == missing.status_code == 403, (out_of_scope.text, missing.text)
    a, b = out_of_scope.json(), missing.json()
    assert set(a) == set(b) == {"detail"}, (a, b)
    assert a["detail"].replace(str(object_id), "N") == b["detail"].replace(str(missing_id), "N"), (a, b)
    assert "outside your scope or does not exist" in a["detail"]


# --------------------------------------------------------------------------- pollution sources and patrols


def test_pollution_sources_of_another_town_are_out_of_reach(world, http, engine):
    insp, own, other = world["inspector"], world[("source", "A")], world[("source", "B")]
    before = snapshot(engine)
    attempts = [
        http.delete(f"/api/sources/{other}", headers=insp),
        http.patch(f"/api/sources/{other}", headers=insp, json={"name": "改名"}),
        # Moving town A's source into town B: the new place is checked too.
        http.patch(f"/api/sources/{own}", headers=insp, json={"lon": X["B"] + 0.005, "lat": 30.02}),
        # Creating in town B, inside an environment grid and outside every one.
        http.post("/api/sources", headers=insp, json={"name": "x", "kind": "other", "lon": X["B"] + 0.005,
                                                      "lat": 30.02}),
        http.post("/api/sources", headers=insp, json={"name": "x", "kind": "other", "lon": X["B"] + 0.03,
                                                      "lat": 30.02}),
        http.get(f"/api/sources/{other}", headers=insp),
    ]
    for r in attempts:
        assert r.status_code == 403, r.text
    assert snapshot(engine) == before
    # Outside every area: refused for anyone.
    r = world["admin"].post("/api/sources", json={"name": "x", "kind": "other", "lon": NOWHERE[0], "lat": NOWHERE[1]})
    assert r.status_code == 422 and "outside the jurisdiction" in r.text
    assert snapshot(engine) == before

    # Unknown and out of scope answer alike, for every verb.
    for method, body in (("get", None), ("delete", None), ("patch", {"name": "x"})):
        refused_alike(http.request(method, f"/api/sources/{other}", headers=insp, json=body),
                      http.request(method, "/api/sources/999999", headers=insp, json=body), other, 999999)
    assert world["admin"].get("/api/sources/999999").status_code == 404

    # Lists hold town A only; the admin sees both.
    listed = http.get("/api/sources", headers=world["worker"]).json()
    assert [s["id"] for s in listed["items"]] == [own] and listed["numberMatched"] == 1
    assert "place_id" not in listed["items"][0]
    assert world["admin"].get("/api/sources").json()["numberMatched"] == 2
    behind = http.get("/api/patrols/behind", headers=world["worker"]).json()
    assert [g["code"] for g in behind["grids"]] == [ENV["A"]]
    assert [s["id"] for s in behind["key_sources"]] == [own]

    # In town A outside every environment grid: allowed, and in town A's lists afterwards.
    r = http.post("/api/sources", headers=insp, json={"name": "东头作坊", "kind": "other", "lon": X["A"] + 0.03,
                                                      "lat": 30.02})
    assert r.status_code == 201 and r.json()["grid"] is None, r.text
    assert http.get(f"/api/sources/{r.json()['id']}", headers=world["worker"]).status_code == 200
    assert http.get("/api/sources", headers=world["worker"]).json()["numberMatched"] == 2
    # Moving within town A works; a stale version is a 412 only for a source in reach.
    moved = http.patch(f"/api/sources/{own}", headers=insp, json={"lon": X["A"] + 0.006, "lat": 30.02})
    assert moved.status_code == 200 and moved.json()["grid"] == ENV["A"], moved.text
    stale = http.patch(f"/api/sources/{own}", headers={**insp, "If-Match": '"1"'}, json={"name": "y"})
    assert stale.status_code == 412
    stale_other = http.patch(f"/api/sources/{other}", headers={**insp, "If-Match": '"99"'}, json={"name": "y"})
    assert stale_other.status_code == 403 and "version" not in stale_other.text


def test_patrols_name_only_sources_in_reach_and_in_the_grid(world, http, engine):
    insp, own, other = world["inspector"], world[("source", "A")], world[("source", "B")]
    before = snapshot(engine)
    r = http.post("/api/patrols", headers=insp, json={"grid": ENV["A"], "sources": [own, other]})
    assert r.status_code == 422, r.text
    (problem,) = r.json()["problems"]
    assert problem["field"] == "sources" and str([other]) in problem["message"]
    missing = http.post("/api/patrols", headers=insp, json={"grid": ENV["A"], "sources": [own, 999999]})
    assert missing.status_code == 422
    # The same words for a source of another town and one that does not exist.
    assert problem["message"].replace(str(other), "N") == \
        missing.json()["problems"][0]["message"].replace("999999", "N")
    # Another town's grid: refused before anything about it is said.
    r = http.post("/api/patrols", headers=world["worker"], json={"grid": ENV["B"], "sources": [other]})
    assert r.status_code == 403, r.text
    assert snapshot(engine) == before

    # A source of the caller's town but outside the patrolled grid is refused too.
    corner = world["admin"].post("/api/sources", json={"name": "东头", "kind": "other", "lon": X["A"] + 0.03,
                                                       "lat": 30.02}).json()["id"]
    r = http.post("/api/patrols", headers=insp, json={"grid": ENV["A"], "sources": [corner]})
    assert r.status_code == 422 and ENV["A"] in r.text
    ok = http.post("/api/patrols", headers=world["worker"], json={"grid": ENV["A"], "sources": [own]})
    assert ok.status_code == 201, ok.text


# --------------------------------------------------------------------------- historical import


def csv_file(rows: list[dict]) -> tuple[str, bytes, str]:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["lon", "lat", "category", "description", "occurred_at", "channel",
                                             "state", "idempotency_key"])
    writer.writeheader()
    writer.writerows(rows)
    return ("history.csv", out.getvalue().encode(), "text/csv")


def history(town: str, n: int, **extra) -> list[dict]:
    """Closed cases of a moment ago (the boundaries of the world are in force since its set-up)."""
    return [{"lon": X[town] + 0.001 * (i + 1), "lat": 30.01, "category": "sanitation",
             "description": f"{town}镇历史事件{i}", "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
             "channel": "hotline_12345", "state": "closed", **extra} for i in range(n)]


def test_import_writes_no_case_into_another_town(world, http, engine):
    before = snapshot(engine)
    rows = history("A", 3) + history("B", 2)
    for caller in ("planner", "inspector"):
        r = http.post("/api/incidents/import", headers=world[caller], files={"file": csv_file(rows)})
        assert r.status_code == 403, r.text
        problems = r.json()["problems"]
        assert [p["index"] for p in problems] == [3, 4]
        assert all(TOWN["B"] in p["message"] and "outside your scope" in p["message"] for p in problems)
        assert "nothing was imported" in r.json()["detail"]
    assert snapshot(engine) == before
    r = http.post("/api/incidents/import", headers=world["planner"], files={"file": csv_file(history("A", 3))})
    assert r.status_code == 201 and r.json()["imported"] == 3, r.text
    assert world["admin"].post("/api/incidents/import", files={"file": csv_file(history("B", 2))}).status_code == 201


# --------------------------------------------------------------------------- the case workflow


def test_scope_is_checked_before_state_and_version(world, http, engine):
    insp, case = world["inspector"], world[("case", "B")]
    url = f"/api/incidents/{case['id']}"
    before = snapshot(engine)
    attempts = {
        "stale version": http.post(f"{url}/transitions", headers={**insp, "If-Match": '"99"'}, json={"to": "accepted"}),
        "illegal move": http.post(f"{url}/transitions", headers=insp, json={"to": "closed"}),
        "legal move": http.post(f"{url}/transitions", headers=insp, json={"to": "accepted"}),
        "escalate": http.post(f"{url}/escalate", headers={**insp, "If-Match": '"99"'}, json={}),
        "move": http.post(f"{url}/location", headers=insp, json={"lon": X["A"] + 0.005, "lat": 30.01}),
        "read": http.get(url, headers=insp),
    }
    for what, r in attempts.items():
        assert r.status_code == 403, (what, r.text)
        assert case["receipt"] not in r.text and "version" not in r.json() and "allowed" not in r.json(), what
    assert snapshot(engine) == before

    # Out of scope and nonexistent: one answer, whatever the request.
    for suffix, body, headers in (("/transitions", {"to": "closed"}, {}), ("/transitions", {"to": "accepted"},
                                                                           {"If-Match": '"99"'}),
                                  ("/escalate", {}, {}), ("/location", {"lon": X["A"] + 0.005, "lat": 30.01}, {}),
                                  ("", None, {})):
        method = "get" if suffix == "" else "post"
        refused_alike(http.request(method, url + suffix, headers={**insp, **headers}, json=body),
                      http.request(method, f"/api/incidents/999999{suffix}", headers={**insp, **headers}, json=body),
                      case["id"], 999999)
    assert world["admin"].get("/api/incidents/999999").status_code == 404

    # In reach the order is unchanged: 412 for a stale version, 409 for an illegal move.
    own = world[("case", "A")]
    assert http.post(f"/api/incidents/{own['id']}/transitions", headers={**insp, "If-Match": '"99"'},
                     json={"to": "accepted"}).status_code == 412
    r = http.post(f"/api/incidents/{own['id']}/transitions", headers=insp, json={"to": "closed"})
    assert r.status_code == 409 and r.json()["allowed"] == ["accepted", "void"]
    # Moving one's own case into another town: the new place is checked too.
    r = http.post(f"/api/incidents/{own['id']}/location", headers=insp, json={"lon": X["B"] + 0.005, "lat": 30.01})
    assert r.status_code == 403 and "outside their scope" in r.text
    assert world["admin"].get(f"/api/incidents/{own['id']}").json()["grid"] == GRID["A"]


def test_staff_take_in_cases_only_where_they_act(world, http, engine):
    """Staff intake writes a case into its grid's queue: only where the caller may act on
    it. The public reports anywhere, through its own channel."""
    body = {"category": "sanitation", "lon": X["B"] + 0.005, "lat": 30.01, "description": "路过乙镇看到",
            "reporter": {"name": "某人"}}
    before = snapshot(engine)
    for caller in ("worker", "inspector", "planner"):
        r = http.post("/api/incidents", headers=world[caller], json=body)
        assert r.status_code == 403 and TOWN["B"] in r.text, r.text
    assert snapshot(engine) == before
    r = http.post("/api/incidents", headers=world["worker"], json={**body, "lon": X["A"] + 0.005})
    assert r.status_code == 201 and r.json()["grid"] == GRID["A"], r.text
    assert http.post("/api/public/reports", json=body).status_code == 201


# --------------------------------------------------------------------------- persons and assignments


def test_persons_and_assignments_are_scoped_like_edits(world, http, engine):
    worker, planner = world["worker"], world["planner"]
    a, b = world[("person", "A")], world[("person", "B")]

    listed = http.get("/api/persons", headers=worker).json()
    assert [p["id"] for p in listed["items"]] == [a] and listed["numberMatched"] == 1
    # A grid worker does not edit persons: no notes, no unpublished phone.
    assert listed["items"][0]["notes"] is None and listed["items"][0]["phone"] is None
    assert http.get("/api/persons", headers=worker, params={"q": "13800000001"}).json()["numberMatched"] == 0
    assert http.get("/api/persons", headers=worker, params={"q": "13800000000"}).json()["numberMatched"] == 0
    seen = http.get(f"/api/persons/{a}", headers=worker).json()
    assert seen["name"] == "A镇网格员" and seen["notes"] is None and seen["phone"] is None

    # A planner sees and edits their town's persons and those without a post yet.
    planned = {p["id"]: p for p in http.get("/api/persons", headers=planner).json()["items"]}
    assert set(planned) == {a, world["postless"]}
    assert planned[a]["notes"] == "A private note" and planned[a]["phone"] == "13800000000"

    before = snapshot(engine)
    for method, body, headers in (("get", None, {}), ("patch", {"name": "x"}, {}),
                                  ("patch", {"name": "x"}, {"If-Match": '"99"'}), ("delete", None, {})):
        refused_alike(http.request(method, f"/api/persons/{b}", headers={**planner, **headers}, json=body),
                      http.request(method, "/api/persons/999999", headers={**planner, **headers}, json=body),
                      b, 999999)
    assert http.get(f"/api/persons/{b}", headers=worker).status_code == 403

    assignment = world[("assignment", "B")]
    assert [x["id"] for x in http.get("/api/assignments", headers=worker).json()] == [world[("assignment", "A")]]
    for method, body in (("get", None), ("patch", {"duties": "x"}), ("delete", None)):
        refused_alike(http.request(method, f"/api/assignments/{assignment}", headers=planner, json=body),
                      http.request(method, "/api/assignments/999999", headers=planner, json=body),
                      assignment, 999999)
    # Appointing town B's person (a linked object) in town A: refused like an unknown person.
    r = http.post("/api/assignments", headers=planner, json={"person": b, "area": GRID["A"], "role": "grid_worker_parttime",
                                                             "start_date": "2026-01-01"})
    assert r.status_code == 422 and "unknown person" in r.text
    assert snapshot(engine) == before
    assert world["admin"].get("/api/persons/999999").status_code == 404
    assert world["admin"].get("/api/assignments/999999").status_code == 404

    # The planner appoints the new hire in town A: a grid worker of the town sees them then.
    r = http.post("/api/assignments", headers=planner, json={"person": world["postless"], "area": GRID["A"],
                                                             "role": "grid_worker_parttime", "start_date": "2026-01-01"})
    assert r.status_code == 201, r.text
    assert http.get("/api/persons", headers=worker).json()["numberMatched"] == 2


# --------------------------------------------------------------------------- coverage runs, repairs, exemptions


def test_coverage_runs_repairs_and_exemptions_are_scoped(world, http, engine):
    insp, planner = world["inspector"], world["planner"]
    run, proposal, exemption = world[("run", "B")], world[("proposal", "B")], world[("exemption", "B")]
    before = snapshot(engine)
    assert http.get("/api/coverage", headers=insp, params={"area": VILLAGE["B"]}).status_code == 403
    assert http.get("/api/exemptions", headers=insp, params={"area": VILLAGE["B"]}).json()["features"] == []
    refused_alike(http.get(f"/api/coverage/runs/{run}", headers=insp),
                  http.get("/api/coverage/runs/999999", headers=insp), run, 999999)
    own_run = world[("run", "A")]
    refused_alike(http.get(f"/api/coverage/runs/{run}/compare", headers=insp, params={"earlier": own_run}),
                  http.get("/api/coverage/runs/999999/compare", headers=insp, params={"earlier": own_run}),
                  run, 999999)
    refused_alike(http.get(f"/api/coverage/repairs/{proposal}", headers=insp),
                  http.get("/api/coverage/repairs/999999", headers=insp), proposal, 999999)
    refused_alike(http.post(f"/api/coverage/repairs/{proposal}/apply", headers=planner, params={"confirm": "true"}),
                  http.post("/api/coverage/repairs/999999/apply", headers=planner, params={"confirm": "true"}),
                  proposal, 999999)
    refused_alike(http.delete(f"/api/exemptions/{exemption}", headers=planner),
                  http.delete("/api/exemptions/999999", headers=planner), exemption, 999999)
    assert snapshot(engine) == before

    runs = http.get("/api/coverage/runs", headers=insp).json()
    assert [r["area_code"] for r in runs] == [VILLAGE["A"]]
    assert http.get("/api/coverage/runs", headers=insp, params={"area": VILLAGE["B"]}).json() == []
    assert http.get(f"/api/coverage/runs/{world[('run', 'A')]}", headers=insp).status_code == 200
    own = http.get("/api/exemptions", headers=insp, params={"area": VILLAGE["A"]}).json()["features"]
    assert [f["id"] for f in own] == [world[("exemption", "A")]]
    assert world["admin"].get("/api/coverage/runs/999999").status_code == 404


# --------------------------------------------------------------------------- idempotency keys


def test_idempotency_keys_belong_to_their_channel_and_account(world, http, make_user, engine):
    hotline = make_user("hotline-system", ("inspector", COUNTY))
    other = make_user("other-system", ("inspector", COUNTY))
    body = {"category": "sanitation", "lon": X["A"] + 0.005, "lat": 30.01, "description": "热线来电",
            "idempotency_key": "12345-0001"}

    # An anonymous reporter takes the key first ...
    first_public = http.post("/api/public/reports", json={k: v for k, v in body.items()})
    assert first_public.status_code == 201, first_public.text
    # ... and the hotline's system still gets it in its own namespace.
    first = http.post("/api/incidents", headers=hotline, json={**body, "channel": "hotline_12345"})
    assert first.status_code == 201, first.text
    receipt = first.json()["receipt"]
    # The same scope: 409 naming the first receipt.
    again = http.post("/api/incidents", headers=hotline, json={**body, "channel": "hotline_12345"})
    assert again.status_code == 409 and again.json()["receipt"] == receipt
    # Another account, or another channel of the same account: a key of its own.
    assert http.post("/api/incidents", headers=other, json={**body, "channel": "hotline_12345"}).status_code == 201
    assert http.post("/api/incidents", headers=hotline, json={**body, "channel": "wechat"}).status_code == 201
    # A second anonymous report with the key: 409 without any receipt.
    dup = http.post("/api/public/reports", json=body)
    assert dup.status_code == 409 and set(dup.json()) == {"detail"}
    assert not re.search(r"GG\d{8}-", dup.text)

    with engine.connect() as conn:
        scopes = sorted(conn.execute(text("SELECT idempotency_scope FROM incident WHERE idempotency_key = :k"),
                                     {"k": "12345-0001"}).scalars())
    assert scopes == ["hotline_12345:hotline-system", "hotline_12345:other-system", "public_web:anonymous",
                      "wechat:hotline-system"]

    # Bulk imports use the importer's namespace: the hotline's keys do not block the planner's.
    rows = history("A", 1, idempotency_key="12345-0001")
    r = http.post("/api/incidents/import", headers=world["planner"], files={"file": csv_file(rows)})
    assert r.status_code == 201, r.text
    r = http.post("/api/incidents/import", headers=world["planner"], files={"file": csv_file(rows)})
    assert r.status_code == 422 and "imported before" in r.text
    r = http.post("/api/incidents/import", headers=hotline, files={"file": csv_file(rows)})
    assert r.status_code == 422 and "imported before" in r.text  # its own hotline_12345 key, from above
