"""Accounts, roles, jurisdiction scopes, the audit log and concurrent edits."""

from __future__ import annotations

import json
import threading

import pytest
from conftest import PASSWORD, collection, feature, square
from fastapi.testclient import TestClient

# Writes any anonymous caller may make: logging in and out, and public intake (rate-limited).
OPEN_WRITES = {("post", "/api/token"), ("post", "/api/logout"), ("post", "/api/public/reports"),
               ("post", "/open311/v2/requests.{fmt}")}


def write_routes(app) -> list[tuple[str, str]]:
    """Every write operation the app publishes, read from its OpenAPI document, so that a
    new endpoint cannot escape these tests."""
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            if method in ("post", "put", "patch", "delete") and (method, path) not in OPEN_WRITES:
                out.append((method, path))
    return out


def concrete(path: str) -> str:
    return (path.replace("{code}", "339901100").replace("{person_id}", "1")
            .replace("{assignment_id}", "1").replace("{username}", "root-admin").replace("{key}", "sanitation")
            .replace("{incident_id}", "1").replace("{source_id}", "1").replace("{proposal_id}", "1")
            .replace("{exemption_id}", "1"))


def test_every_write_needs_a_token_and_the_right_role(app, anon, make_user):
    routes = write_routes(app)
    assert len(routes) >= 20
    roleless = make_user("nobody")
    inspector = make_user("insp", ("inspector", None))
    planner_only = 0
    for method, path in routes:
        r = anon.request(method, concrete(path))
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.headers.get("www-authenticate") == "Bearer"
        r = anon.request(method, concrete(path), headers=roleless)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        if path.startswith(("/api/areas", "/api/grids", "/api/persons", "/api/assignments", "/api/import",
                            "/api/coverage/repairs", "/api/exemptions", "/api/accounts", "/api/levels",
                            "/api/layers", "/api/roles")):
            planner_only += 1
            r = anon.request(method, concrete(path), headers=inspector)
            assert r.status_code == 403, (method, path, r.status_code, r.text)
    assert planner_only >= 20
    bogus = anon.post("/api/areas", headers={"Authorization": "Bearer not-a-token"})
    assert bogus.status_code == 401 and "invalid or expired token" in bogus.text


def test_public_reads_published_data_only(anon, client, town):
    assert anon.get("/api/areas").status_code == 200
    assert anon.get("/api/locate", params={"lon": 120.01, "lat": 30.01}).status_code == 200
    for path in ("/api/persons", "/api/assignments", "/api/audit", "/api/accounts"):
        assert anon.get(path).status_code == 401, path


@pytest.fixture
def two_towns(client):
    r = client.post("/api/areas", json=collection(
        feature(square(119.9, 29.9, 0.3), code="339901", name="演示县", level="county"),
        feature(square(120.0, 30.0, 0.04), code="339901100", name="甲镇", level="town", parent="339901"),
        feature(square(120.1, 30.0, 0.04), code="339901101", name="乙镇", level="town", parent="339901"),
        feature(square(120.0, 30.0, 0.02), code="339901100001", name="甲村", level="village", parent="339901100"),
        feature(square(120.1, 30.0, 0.02), code="339901101001", name="乙村", level="village", parent="339901101"),
    ))
    assert r.status_code == 201, r.text
    grids = {}
    for village in ("339901100001", "339901101001"):
        x = 120.0 if village.startswith("339901100") else 120.1
        r = client.post("/api/grids", json=feature(square(x, 30.0, 0.01), name="网格", parent=village))
        grids[village] = r.json()["codes"][0]
    return grids


def test_planner_scope_is_the_subtree_of_the_grant(anon, make_user, two_towns):
    a = make_user("planner-a", ("planner", "339901100"))
    own, other = two_towns["339901100001"], two_towns["339901101001"]

    # Inside town A: new grids, edits, appointments.
    r = anon.post("/api/grids", headers=a, json=feature(square(120.01, 30.0, 0.01), name="新", parent="339901100001"))
    assert r.status_code == 201, r.text
    assert anon.patch(f"/api/grids/{own}", headers=a, json={"properties": {"households": 400}}).status_code == 200
    person = anon.post("/api/persons", headers=a, json={"name": "张三"}).json()
    ok = anon.post("/api/assignments", headers=a, json={"person": person["id"], "area": own, "role": "grid_leader",
                                                        "start_date": "2026-01-01"})
    assert ok.status_code == 201, ok.text

    # Town B, whatever the endpoint: 403, and nothing changes.
    attempts = [
        anon.post("/api/grids", headers=a, json=feature(square(120.11, 30.0, 0.01), name="x", parent="339901101001")),
        anon.patch(f"/api/grids/{other}", headers=a, json={"properties": {"households": 1}}),
        anon.delete(f"/api/grids/{other}", headers=a),
        anon.post("/api/assignments", headers=a, json={"person": person["id"], "area": other, "role": "grid_leader",
                                                       "start_date": "2026-01-01"}),
        anon.post("/api/import", headers=a, params={"level": "grid", "layer": "comprehensive"}, files={"file": (
            "b.geojson", json.dumps(collection(feature(square(120.12, 30.0, 0.005), name="y", parent="339901101001"))),
            "application/geo+json")}),
        # The town itself belongs to the county's planners, not to the town's.
        anon.patch("/api/areas/339901100", headers=a, json={"properties": {"name": "改名"}}),
        # A batch with one feature out of scope is refused whole.
        anon.post("/api/grids", headers=a, json=collection(
            feature(square(120.015, 30.01, 0.005), name="ok", parent="339901100001"),
            feature(square(120.115, 30.01, 0.005), name="no", parent="339901101001"))),
    ]
    for r in attempts:
        assert r.status_code == 403, r.text
        assert "planner-a may not change" in r.json()["detail"]
    b_grids = anon.get("/api/grids", headers=a, params={"parent": "339901101001"}).json()
    assert b_grids["numberMatched"] == 1 and b_grids["features"][0]["properties"]["households"] is None
    assert anon.get("/api/areas/339901100", headers=a).json()["properties"]["name"] == "甲镇"
    assert anon.get("/api/grids", headers=a, params={"parent": "339901100001"}).json()["numberMatched"] == 2


def test_audit_records_who_what_before_after(client, anon, make_user, two_towns):
    a = make_user("planner-a", ("planner", "339901100"))
    code = two_towns["339901100001"]
    anon.patch(f"/api/grids/{code}", headers=a, json={"properties": {"households": 321}})
    log = client.get("/api/audit", params={"resource": "area", "key": code}).json()
    update = log["items"][0]
    assert (update["actor"], update["action"]) == ("planner-a", "update")
    assert update["before"]["households"] is None and update["after"]["households"] == 321
    assert update["before"]["version"] + 1 == update["after"]["version"]
    created = log["items"][-1]
    assert created["action"] == "create" and created["actor"] == "root-admin"
    assert anon.get("/api/audit", headers=a).status_code == 403


def test_concurrent_editors_one_winner_per_version(app, client, town):
    code = client.post("/api/grids", json=feature(square(120.0, 30.0), name="抢", parent="339901100001")).json()["codes"][0]
    headers = dict(client.headers)
    editors, rounds = 8, 3
    for round_ in range(rounds):
        version = client.get(f"/api/grids/{code}").headers["etag"]
        results: list[int] = []
        barrier = threading.Barrier(editors)

        def edit(i: int) -> None:
            with TestClient(app) as c:
                barrier.wait()
                r = c.patch(f"/api/grids/{code}", headers={**headers, "If-Match": version},
                            json={"properties": {"households": 100 * round_ + i}})
                results.append(r.status_code)

        threads = [threading.Thread(target=edit, args=(i,)) for i in range(editors)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [200] + [412] * (editors - 1), results
    final = client.get(f"/api/grids/{code}").json()["properties"]
    assert final["version"] == 1 + rounds
    updates = client.get("/api/audit", params={"resource": "area", "key": code}).json()["items"]
    assert [u["action"] for u in updates].count("update") == rounds  # nothing lost, nothing doubled
    assert final["households"] == updates[0]["after"]["households"]


def test_login_logout_and_rate_limit(anon, make_user, client):
    make_user("worker", ("grid_worker", None))
    bad = anon.post("/api/token", data={"username": "worker", "password": "wrong password"})
    assert bad.status_code == 401
    good = anon.post("/api/token", data={"username": "worker", "password": PASSWORD})
    assert good.status_code == 200 and good.json()["token_type"] == "bearer"
    headers = {"Authorization": f"Bearer {good.json()['access_token']}"}
    me = anon.get("/api/me", headers=headers).json()
    assert me["username"] == "worker" and me["grants"] == [{"role": "grid_worker", "area": None, "department": None}]
    assert anon.post("/api/logout", headers=headers).status_code == 204
    assert anon.get("/api/me", headers=headers).status_code == 401
    codes = [anon.post("/api/token", data={"username": "worker", "password": "nope nope nope"}).status_code
             for _ in range(12)]
    assert 429 in codes and codes.index(429) >= 7
    limited = anon.post("/api/token", data={"username": "worker", "password": PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


def test_accounts_and_grants_through_the_api(client, anon, town):
    r = client.post("/api/accounts", json={"username": "li.planner", "password": "long enough pw"})
    assert r.status_code == 201
    assert client.post("/api/accounts", json={"username": "li.planner", "password": "long enough pw"}).status_code == 409
    assert client.post("/api/accounts/li.planner/grants", json={"role": "planner", "area": "339901100"}).status_code == 201
    assert client.post("/api/accounts/li.planner/grants", json={"role": "admin", "area": "339901100"}).status_code == 422
    assert client.post("/api/accounts/li.planner/grants", json={"role": "boss"}).status_code == 422
    listed = {a["username"]: a for a in client.get("/api/accounts").json()}
    assert listed["li.planner"]["grants"] == [{"role": "planner", "area": "339901100", "department": None}]
    token = anon.post("/api/token", data={"username": "li.planner", "password": "long enough pw"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert anon.post("/api/persons", headers=headers, json={"name": "甲"}).status_code == 201
    assert client.delete("/api/accounts/li.planner/grants", params={"role": "planner"}).status_code == 204
    assert anon.post("/api/persons", headers=headers, json={"name": "乙"}).status_code == 403
    assert client.put("/api/accounts/li.planner/password", json={"password": "another long pw"}).status_code == 204
    assert anon.get("/api/me", headers=headers).status_code == 401  # tokens revoked with the old password
