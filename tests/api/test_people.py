"""Persons, roles and assignments: history, public fields and the lookup's answer."""

from __future__ import annotations

from conftest import feature, square


def _grid(client) -> str:
    r = client.post("/api/grids", json=feature(square(120.0, 30.0), name="一号网格", parent="339901100001"))
    assert r.status_code == 201, r.text
    return r.json()["codes"][0]


def test_lookup_shows_who_was_responsible_on_the_day(client, town):
    code = _grid(client)
    old = client.post("/api/persons", json={"name": "王芳", "phone": "13800000001", "phone_public": True}).json()
    new = client.post("/api/persons", json={"name": "李强", "phone": "13800000002", "phone_public": False,
                                            "notes": "内部：家庭住址"}).json()
    r = client.post("/api/assignments", json=[
        {"person": old["id"], "area": code, "role": "grid_worker_fulltime",
         "start_date": "2024-01-01", "end_date": "2025-06-30"},
        {"person": new["id"], "area": code, "role": "grid_worker_fulltime", "start_date": "2025-07-01"},
    ])
    assert r.status_code == 201, r.text

    def workers(day: str | None):
        params = {"lon": 120.005, "lat": 30.005} | ({"at": day} if day else {})
        found = client.get("/api/locate", params=params).json()["results"]
        return [p for x in found if x["code"] == code for p in x["persons"]]

    # Boundaries carry their own validity: look at 2025 dates only after backdating them.
    from sqlalchemy import text

    with client.app.state.engine.begin() as conn:
        conn.execute(text("UPDATE boundary SET valid = tstzrange('2020-01-01', NULL)"))
    assert workers("2025-03-01") == [{"role": "grid_worker_fulltime", "role_name": "专职网格员", "duties": None,
                                      "since": "2024-01-01", "name": "王芳", "phone": "13800000001"}]
    today = workers(None)
    assert [p["name"] for p in today] == ["李强"]
    assert "phone" not in today[0] and "notes" not in today[0]  # phone not flagged public


def test_one_person_many_posts_and_overlap_refused(client, town):
    code = _grid(client)
    person = client.post("/api/persons", json={"ref": "p1", "name": "赵书记"}).json()
    r = client.post("/api/assignments", json=[
        {"person": "p1", "area": code, "role": "grid_leader", "start_date": "2025-01-01"},
        {"person": "p1", "area": "339901100001", "role": "instructor", "start_date": "2025-01-01"},
    ])
    assert r.status_code == 201 and len(r.json()) == 2
    again = client.post("/api/assignments", json={"person": person["id"], "area": code, "role": "grid_leader",
                                                  "start_date": "2025-05-01"})
    assert again.status_code == 409 and "overlapping" in again.text
    assert len(client.get("/api/assignments", params={"person": person["id"]}).json()) == 2


def test_ending_a_post_keeps_history(client, town):
    code = _grid(client)
    client.post("/api/persons", json={"ref": "w", "name": "孙伟"})
    created = client.post("/api/assignments", json={"person": "w", "area": code, "role": "grid_worker_parttime",
                                                    "start_date": "2025-01-01"}).json()[0]
    r = client.patch(f"/api/assignments/{created['id']}", json={"end_date": "2025-12-31"},
                     headers={"If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["end_date"] == "2025-12-31"
    stale = client.patch(f"/api/assignments/{created['id']}", json={"end_date": "2026-01-31"},
                         headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert client.get("/api/assignments", params={"area": code, "active_on": "2026-03-01"}).json() == []
    assert len(client.get("/api/assignments", params={"area": code, "active_on": "2025-03-01"}).json()) == 1
    bad = client.patch(f"/api/assignments/{created['id']}", json={"end_date": "2024-01-01"})
    assert bad.status_code == 422 and "before start_date" in bad.text
    # A person with a history cannot be deleted (it would erase who was responsible).
    pid = created["person_id"]
    assert client.delete(f"/api/persons/{pid}").status_code == 409


def test_assignment_input_errors(client, town):
    code = _grid(client)
    r = client.post("/api/assignments", json=[
        {"person": "nobody", "area": code, "role": "grid_leader", "start_date": "2025-01-01"},
        {"person": "nobody", "area": "999", "role": "boss", "start_date": "2025-01-01"},
    ])
    assert r.status_code == 422
    messages = [p["message"] for p in r.json()["problems"]]
    assert any("unknown person" in m for m in messages)
    assert any("unknown role 'boss'" in m for m in messages)
    assert any("unknown or retired area '999'" in m for m in messages)
    assert client.get("/api/assignments").json() == []


def test_person_edit_and_search(client):
    p = client.post("/api/persons", json={"name": "周敏", "phone": "13900000000"}).json()
    assert p["name_public"] is True and p["phone_public"] is False and p["version"] == 1
    r = client.patch(f"/api/persons/{p['id']}", json={"phone_public": True, "version": 1})
    assert r.status_code == 200 and r.json()["phone_public"] is True and r.json()["version"] == 2
    assert client.patch(f"/api/persons/{p['id']}", json={"name": "x", "version": 1}).status_code == 412
    assert client.get("/api/persons", params={"q": "周"}).json()["numberMatched"] == 1
    assert client.get("/api/persons/99999").status_code == 404
    assert client.post("/api/persons", json={"name": "x", "phone": "not a phone"}).status_code == 422
    assert client.delete(f"/api/persons/{p['id']}").status_code == 204
