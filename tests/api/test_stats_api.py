"""The indicators through the API: the same figures as the domain function, periods by
name or by dates, bad requests answered with what is wrong, and README's definitions table
written from the one list of definitions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from conftest import COUNTY, TOWN, W1

from geogrid.assessment import indicators as ind
from geogrid.db import engine as db
from geogrid.incidents import intake, workflow

TZ = ZoneInfo("Asia/Shanghai")
README = Path(__file__).resolve().parents[2] / "README.md"


def _cases(engine, settings):
    with db.transaction(engine) as session:
        for day, closed in ((3, True), (4, False), (20, True)):
            when = dt.datetime(2026, 11, day, 10, tzinfo=TZ)
            case = intake.intake(session, {"category": "dispute", "description": "邻里纠纷", "lon": 120.005,
                                           "lat": 30.03, "channel": "walk_in", "occurred_at": when}, settings, at=when)
            if closed:
                for i, to in enumerate(["accepted", "filed", "dispatched", "in_progress", "handled", "verified",
                                        "closed"]):
                    workflow.transition(session, case["id"], to, settings, at=when + dt.timedelta(minutes=10 * (i + 1)),
                                        satisfaction=10 if to == "closed" else None)


def test_indicators_match_the_domain_function(world, engine, settings):
    client = world
    _cases(engine, settings)
    r = client.get("/api/stats/indicators", params={"area": COUNTY, "period": "2026-11", "by": "grid,week"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period_from"] == "2026-11-01" and body["period_to"] == "2026-12-01"
    with db.transaction(engine) as session:
        direct = ind.indicators(session, settings, area=COUNTY, start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1),
                                by=["grid", "week"], now=dt.datetime.fromisoformat(body["now"]))
    assert body["rows"] == direct["rows"] and body["total"] == direct["total"]
    assert body["total"]["received"] == 3 and body["total"]["closed"] == 2 and body["total"]["closure_rate"] == 0.6667
    weeks = sorted((r["week"], r["received"]) for r in body["rows"] if r["grid"] == W1 and r["received"])
    assert weeks == [("2026-11-02", 2), ("2026-11-16", 1)]  # Mondays of ISO weeks
    assert [d["key"] for d in body["indicators"]] == [i.key for i in ind.INDICATORS]
    same = client.get("/api/stats/indicators", params={"area": COUNTY, "from": "2026-11-01", "to": "2026-12-01",
                                                        "by": "grid,week"}).json()
    assert same["rows"] == body["rows"]


def test_bad_requests_say_what_is_wrong(world):
    client = world
    cases = [
        ({"area": COUNTY}, "period is missing"),
        ({"area": COUNTY, "period": "2026-13"}, "is not a month"),
        ({"area": COUNTY, "period": "2026-11", "from": "2026-11-01"}, "either period or from/to"),
        ({"area": COUNTY, "period": "2026-11", "by": "grid,colour"}, "unknown grouping 'colour'"),
        ({"area": COUNTY, "from": "2026-11-05", "to": "2026-11-01"}, "the period is empty"),
    ]
    for params, message in cases:
        r = client.get("/api/stats/indicators", params=params)
        assert r.status_code == 422, (params, r.text)
        assert message in r.text, (params, r.text)
    assert client.get("/api/stats/indicators", params={"area": "339999", "period": "2026-11"}).status_code == 404


def test_scope_is_the_area_asked_for(world, make_user):
    town_planner = make_user("town-planner", ("planner", TOWN))
    client = world
    r = client.get("/api/stats/indicators", params={"area": TOWN, "period": "2026-11"}, headers=town_planner)
    assert r.status_code == 200
    r = client.get("/api/stats/indicators", params={"area": COUNTY, "period": "2026-11"}, headers=town_planner)
    assert r.status_code == 403 and "outside your scope" in r.text


def test_definitions_in_both_languages_and_in_readme(anon):
    zh = anon.get("/api/stats/definitions").json()
    en = anon.get("/api/stats/definitions", params={"lang": "en"}).json()
    assert zh[5] == {"key": "on_time_rate", "name": "按期结案率", "unit": "rate",
                     "definition": "按期结案数 ÷ 应结案数（上报数 − 作废数）"}
    assert en[5]["name"] == "On-time closure rate"
    assert ind.markdown_table() in README.read_text(encoding="utf-8")


def test_call_back_after_closing_counts_and_steps_are_shown(world, engine, settings):
    client = world
    _cases(engine, settings)
    listed = client.get("/api/incidents", params={"state": "closed"}).json()["items"]
    open_case = client.get("/api/incidents", params={"state": "reported"}).json()["items"][0]
    r = client.post(f"/api/incidents/{open_case['id']}/callback", json={"satisfaction": 3})
    assert r.status_code == 409 and "after closing" in r.text
    first = listed[0]
    r = client.post(f"/api/incidents/{first['id']}/callback", json={"satisfaction": 2, "note": "回访：仍有噪声"})
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["satisfaction"] == 2
    assert detail["history"][-1]["action"] == "callback" and detail["history"][-1]["data"] == {"satisfaction": 2,
                                                                                              "before": 10}
    assert [s["step"] for s in detail["steps"]] == ["accept", "dispatch", "handle", "verify"]
    assert all(s["outcome"] == "done" and s["late"] is False and s["due_at"] for s in detail["steps"])
    total = client.get("/api/stats/indicators", params={"area": COUNTY, "period": "2026-11"}).json()["total"]
    assert (total["satisfaction_mean"], total["satisfaction_rate"], total["callbacks"]) == (6.0, 0.5, 2)
