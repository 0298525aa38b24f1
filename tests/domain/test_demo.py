"""The demo jurisdiction loads through the ordinary import path and answers lookups; its
town comes with a year of cases, patrols and a score sheet for the assessment pages."""

from __future__ import annotations

import datetime as dt
import json
import time
from zoneinfo import ZoneInfo

import shapely
from sqlalchemy import text

from geogrid.assessment import indicators as ind
from geogrid.assessment import scoring
from geogrid.db import engine as db
from geogrid.io import demo

TOWN = "339901100"
# What a load writes, counted per table (reset must give the same figures again).
COUNTS = {
    "incidents": "SELECT count(*) FROM incident",
    "events": "SELECT count(*) FROM incident_event",
    "steps": "SELECT count(*) FROM incident_step",
    "late_steps": "SELECT count(*) FROM incident_step WHERE late",
    "facts": "SELECT count(*) FROM case_fact",
    "month_received": "SELECT coalesce(sum(received), 0) FROM case_month",
    "month_closed": "SELECT coalesce(sum(closed), 0) FROM case_month",
    "patrols": "SELECT count(*) FROM patrol",
    "schemes": "SELECT count(*) FROM assessment_scheme",
    "periods": "SELECT count(*) FROM assessment_period",
    "scores": "SELECT count(*) FROM assessment_score",
    "manual": "SELECT count(*) FROM assessment_manual",
}


def _counts(engine) -> dict:
    with engine.connect() as conn:
        return {k: conn.execute(text(q)).scalar_one() for k, q in COUNTS.items()}


def _last_month(now: dt.datetime, tz: ZoneInfo) -> tuple[dt.date, dt.date]:
    first = now.astimezone(tz).date().replace(day=1)
    return (first - dt.timedelta(days=1)).replace(day=1), first


def test_demo_loads_once_and_answers(client, anon, engine, settings, tmp_path):
    # Its own state directory: the demo keeps account passwords there.
    settings = settings.model_copy(update={"state_dir": tmp_path / "state"})
    tz = ZoneInfo(settings.timezone)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    started = time.perf_counter()
    first = demo.load(engine, settings, tmp_path, reset=False, now=now)
    print(f"first demo load: {time.perf_counter() - started:.1f} s")
    assert "loaded from" in first and "comprehensive" in first
    assert f"/maps/login?next=/maps/dashboard?area={TOWN}" in first
    second = demo.load(engine, settings, tmp_path, reset=False, now=now)
    assert "already loaded" in second
    grids = client.get("/api/grids", params={"layer": "comprehensive", "limit": 1000}).json()
    assert 250 <= grids["numberMatched"] <= 400
    assert all(len(f["properties"]["code"]) == 15 for f in grids["features"])

    # Ask for a point inside a grid that has a leader and a worker today.
    persons = json.loads((tmp_path / "persons.json").read_text(encoding="utf-8"))
    private_phones = {p["phone"] for p in persons if not p["phone_public"]}
    feature = next(f for f in grids["features"] if f["properties"]["households"])
    point = shapely.geometry.shape(feature["geometry"]).representative_point()
    found = client.get("/api/locate", params={"lon": point.x, "lat": point.y}).json()["results"]
    levels = [(x["layer"], x["level"]) for x in found if x["primary"]]
    assert ("admin", "county") in levels and ("admin", "village") in levels and ("comprehensive", "grid") in levels
    shown = [p for x in found for p in x["persons"]]
    assert all(p.get("phone") not in private_phones for p in shown)

    _check_assessment_data(engine, settings, anon, now, tz, first)

    loaded = _counts(engine)
    again = demo.load(engine, settings, tmp_path, reset=True, now=now)
    assert "loaded from" in again
    assert client.get("/api/grids", params={"layer": "comprehensive"}).json()["numberMatched"] == grids["numberMatched"]
    assert _counts(engine) == loaded
    # A second reset in a row: every row the demo added (monthly sums, score sheets) goes first.
    demo.load(engine, settings, tmp_path, reset=True, now=now)
    assert _counts(engine) == loaded


def _check_assessment_data(engine, settings, anon, now, tz, output):
    start, end = _last_month(now, tz)
    with engine.connect() as conn:
        # Counted straight from the cases, not through the indicators.
        reported = conn.execute(text("""
            SELECT count(*) FROM incident i JOIN area g ON g.id = i.grid_id
            WHERE g.code LIKE :town AND i.reported_at >= :lo AND i.reported_at < :hi
        """), {"town": TOWN + "%", "lo": dt.datetime.combine(start, dt.time(), tz),
               "hi": dt.datetime.combine(end, dt.time(), tz)}).scalar_one()
        latest = conn.execute(text("SELECT greatest((SELECT max(at) FROM incident_event), (SELECT max(at) FROM patrol))")
                              ).scalar_one()
        channels = dict(conn.execute(text("SELECT channel, count(*) FROM incident GROUP BY channel")).all())
        states = dict(conn.execute(text("SELECT state, count(*) FROM incident GROUP BY state")).all())
        layers = set(conn.execute(text("SELECT DISTINCT c.layer_key FROM incident i "
                                       "JOIN category c ON c.key = i.category_key")).scalars())
        workday = conn.execute(text("""
            SELECT avg(CASE WHEN extract(isodow FROM reported_at AT TIME ZONE :tz) < 6
                             AND (reported_at AT TIME ZONE :tz)::time BETWEEN '07:30' AND '21:00' THEN 1.0 ELSE 0 END)
            FROM incident
        """), {"tz": settings.timezone}).scalar_one()
        unrouted = conn.execute(text("SELECT count(*) FROM incident WHERE grid_id IS NULL")).scalar_one()
        escalated = conn.execute(text("SELECT count(*) FROM incident WHERE escalation_level > 0")).scalar_one()
        rated = conn.execute(text("SELECT count(*) FROM incident WHERE state = 'closed' AND satisfaction IS NOT NULL")
                             ).scalar_one()
        callbacks = conn.execute(text("SELECT count(*) FROM incident_event WHERE action = 'callback'")).scalar_one()
    assert latest <= now  # nothing happens after the demo loads
    assert {"patrol", "hotline_12345", "wechat"} <= set(channels) and channels["patrol"] >= 0.2 * sum(channels.values())
    assert layers == {"comprehensive", "environment"}
    assert states["closed"] > 0.7 * sum(states.values())
    assert {"void", "parked"} <= set(states) and set(states) - {"closed", "void", "parked"}  # some still open
    assert escalated > 0 and callbacks > 0 and rated > 0.6 * states["closed"]
    assert workday > 0.8  # mostly working days, in the day
    assert unrouted == 0  # every point lies in a grid of the demo

    with db.transaction(engine) as session:
        month = ind.indicators(session, settings, area=TOWN, start=start, end=end, now=now)["total"]
        by_village = ind.indicators(session, settings, area=TOWN, start=end - dt.timedelta(days=365), end=end,
                                    by=["village"], now=now)["rows"]
        schemes = scoring.list_schemes(session, area=TOWN)
        periods = scoring.list_periods(session, schemes[0]["id"])
        public = scoring.published_lists(session, TOWN)
    assert month["received"] == reported > 0
    assert 0 < month["on_time_rate"] < 1
    assert month["overdue_ever"] > 0
    assert month["patrols_done"] > 0
    # The villages differ: rankings by 按期结案率 are not all ties, and some fall behind on patrols.
    assert len({r["on_time_rate"] for r in by_village if r["village"]}) >= 3
    assert sum(r["patrols_missed"] for r in by_village) > 0

    assert [s["target_kind"] for s in schemes] == ["village"]
    by_name = {p["name"]: p for p in periods}
    last = f"{start:%Y-%m}"
    assert by_name[last]["state"] == "frozen" and by_name[last]["published"]
    assert by_name[f"{now.astimezone(tz):%Y-%m}"]["state"] == "computed"
    assert [x["period"] for x in public["lists"]] == [last]
    assert public["lists"][0]["red"] and public["lists"][0]["black"]
    board = anon.get("/api/public/rankings", params={"area": TOWN})
    assert board.status_code == 200 and board.json()["lists"][0]["period"] == last
    assert f"{last} published" in output
