"""Pollution sources and patrols (the environment net) through the API, on the incident
world of tests/conftest.py."""

from __future__ import annotations

import datetime as dt

from conftest import ENV_E, ENV_W, TOWN, VE, W3
from sqlalchemy import text


def test_pollution_sources_and_patrols(world, anon, make_user):
    inspector = make_user("insp", ("inspector", TOWN))
    east_worker = make_user("gw-east", ("grid_worker", VE))
    r = anon.post("/api/sources", headers=inspector, json={
        "name": "青禾化工厂", "kind": "enterprise", "lon": 120.005, "lat": 30.03, "key_supervision": True,
        "pollutants": ["COD", "氨氮"], "risk_level": "high"})
    assert r.status_code == 201, r.text
    factory = r.json()
    assert factory["grid"] == ENV_W and factory["last_visit"] is None
    r = anon.post("/api/sources", headers=inspector, json={"name": "东村排污口", "kind": "outfall", "lon": 120.02,
                                                           "lat": 30.01, "key_supervision": True})
    assert r.status_code == 201 and r.json()["grid"] == ENV_W  # on the shared edge: the lower code
    outfall = r.json()
    r = anon.post("/api/sources", headers=inspector, json={"name": "小饭馆", "kind": "catering", "lon": 120.035,
                                                           "lat": 30.005})
    assert r.status_code == 201 and r.json()["grid"] == ENV_E
    assert anon.post("/api/sources", headers=east_worker, json={"name": "x", "kind": "other", "lon": 120.035,
                                                                "lat": 30.005}).status_code == 403

    behind = anon.get("/api/patrols/behind", headers=inspector).json()
    assert sorted(g["code"] for g in behind["grids"]) == [ENV_W, ENV_E]
    assert all(g["last_patrol"] is None and g["every_days"] == 7 for g in behind["grids"])
    assert sorted(s["id"] for s in behind["key_sources"]) == sorted([factory["id"], outfall["id"]])

    r = anon.post("/api/patrols", headers=inspector, json={"grid": ENV_W, "sources": [factory["id"]],
                                                           "lon": 120.005, "lat": 30.03, "notes": "例行巡查"})
    assert r.status_code == 201, r.text
    eleven_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=11)).isoformat()
    r = anon.post("/api/patrols", headers=inspector, json={"grid": ENV_E, "at": eleven_days_ago})
    assert r.status_code == 201, r.text

    behind = anon.get("/api/patrols/behind", headers=inspector).json()
    assert [g["code"] for g in behind["grids"]] == [ENV_E]  # patrolled, but longer ago than its weekly round
    assert behind["grids"][0]["days_overdue"] == 4
    assert [s["id"] for s in behind["key_sources"]] == [outfall["id"]]
    assert anon.get(f"/api/sources/{factory['id']}", headers=inspector).json()["last_visit"] is not None

    # Patrols are on environment grids, of known sources.
    assert anon.post("/api/patrols", headers=inspector, json={"grid": W3}).status_code == 422
    assert anon.post("/api/patrols", headers=inspector, json={"grid": ENV_W, "sources": [999999]}).status_code == 422
    assert anon.post("/api/patrols", headers=east_worker, json={"grid": ENV_W}).status_code == 403
    assert anon.get("/api/patrols/behind").status_code == 401
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert anon.post("/api/patrols", headers=inspector, json={"grid": ENV_E, "at": tomorrow}).status_code == 422
    assert anon.post("/api/sources", headers=inspector, json={"name": "x", "kind": "other", "lon": 30.005,
                                                              "lat": 120.035}).status_code == 422
    assert len(anon.get("/api/sources", headers=inspector).json()["items"]) == 3


def test_a_source_is_public_only_when_marked(world, anon, make_user, engine):
    """``public`` (重点排污单位名录 and the like) puts a source in the public view, with its
    public fields only; it defaults to false, and null is refused with the field named."""
    inspector = make_user("insp-pub", ("inspector", TOWN))
    made = [anon.post("/api/sources", headers=inspector, json={
        "name": name, "kind": "enterprise", "lon": 120.005, "lat": 30.03, "notes": f"内部备注{name}", **extra})
        for name, extra in (("公开化工厂", {"public": True}), ("未公开印染厂", {}))]
    assert [r.status_code for r in made] == [201, 201]
    assert [r.json()["public"] for r in made] == [True, False]
    with engine.connect() as conn:
        shown = conn.execute(text("SELECT * FROM public_source")).mappings().all()
    assert [r["name"] for r in shown] == ["公开化工厂"]
    assert "notes" not in shown[0] and "risk_level" not in shown[0]
    hidden = made[1].json()["id"]
    r = anon.patch(f"/api/sources/{hidden}", headers=inspector, json={"public": None})
    assert r.status_code == 422 and "public" in r.text
    assert anon.patch(f"/api/sources/{hidden}", headers=inspector, json={"public": True}).status_code == 200
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM public_source")).scalar_one() == 2
