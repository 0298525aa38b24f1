"""Pollution sources and patrols (the environment net) through the API, on the incident
world of tests/conftest.py."""

from __future__ import annotations

import datetime as dt

from conftest import ENV_E, ENV_W, TOWN, VE, W3


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
