"""The demo jurisdiction loads through the ordinary import path and answers lookups; its
town comes with a year of cases, patrols and a score sheet for the assessment pages."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import time
from zoneinfo import ZoneInfo

import shapely
from sqlalchemy import text

from geogrid.areas import importing, versions
from geogrid.assessment import indicators as ind
from geogrid.assessment import scoring
from geogrid.db import engine as db
from geogrid.io import demo
from geogrid.publication import tiles

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
    _check_register(engine, anon, settings, tmp_path)

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
            SELECT count(*) FROM incident i JOIN area g ON g.id = coalesce(i.grid_id, i.authority_id)
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
        unrouted = conn.execute(text("SELECT count(*) FROM incident WHERE grid_id IS NULL AND geom IS NOT NULL")
                                ).scalar_one()
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


# --------------------------------------------------------------------------- register and privacy

VILLAGE = "339901100004"


def _private_values(engine, tmp_path) -> dict[str, set[str]]:
    """Every private value of the demo that could leak, by kind: whole ID numbers (from the
    generated file: the database has only hashes), residents' and households' phones,
    residents' names that are not also a public person's or area's name, household refs,
    the addresses and descriptions of requests without a point, reporters' contacts, the
    phones persons keep private, visit findings, internal notes."""
    rows = list(csv.DictReader((tmp_path / "register" / "register.csv").open(encoding="utf-8")))
    with engine.connect() as conn:
        public_names = set(conn.execute(text("SELECT name FROM person UNION SELECT name FROM area")).scalars())
        out = {
            "id_number": {r["身份证号"] for r in rows},
            "resident_phone": {r["电话"] for r in rows if r["电话"]},
            "resident_name": {r["姓名"] for r in rows if len(r["姓名"]) == 3} - public_names,
            "household_ref": set(conn.execute(text("SELECT ref FROM household")).scalars()),
            "household_phone": set(conn.execute(text("SELECT phone FROM household WHERE phone IS NOT NULL")).scalars()),
            "request": set(conn.execute(text("SELECT description FROM incident WHERE geom IS NULL")).scalars())
            | set(conn.execute(text("SELECT address FROM incident WHERE address IS NOT NULL")).scalars()),
            "reporter": {v for r in conn.execute(text("SELECT reporter FROM incident WHERE reporter IS NOT NULL")
                                                   ).scalars() for v in r.values() if v},
            "private_phone": set(conn.execute(text("SELECT phone FROM person WHERE NOT phone_public AND phone IS NOT NULL")
                                              ).scalars()),
            "visit": set(conn.execute(text("SELECT DISTINCT findings FROM visit")).scalars()),
            "notes": set(conn.execute(text("SELECT notes FROM person WHERE notes IS NOT NULL UNION "
                                           "SELECT notes FROM area WHERE notes IS NOT NULL")).scalars()),
        }
    return {k: {v for v in values if v and len(v) >= 3} for k, values in out.items()}


def _fill(path: str, ids: dict) -> str:
    """A route template with its parameters filled from the demo's objects."""
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: str(ids.get(m[1], 1)), path)


def _leaks(body: str, private: dict[str, set[str]]) -> list[str]:
    return [f"{kind}: {value[:30]}" for kind, values in private.items() for value in values if value in body]


def _login(anon, tmp_path, user: str) -> dict:
    passwords = json.loads((tmp_path / "state" / "demo-accounts.json").read_text())
    token = anon.post("/api/token", data={"username": user, "password": passwords[user]}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _drafts(engine, settings) -> set[str]:
    """A new grid in VILLAGE and a new name of one of its grids, not published: the public
    must see neither (the names are returned)."""
    new, renamed = "未公示草稿网格", "草稿改名网格"
    with db.transaction(engine) as session:
        first = session.execute(text("SELECT min(code) FROM area WHERE code LIKE :v AND layer_key = 'comprehensive' "
                                     "AND retired_at IS NULL"), {"v": VILLAGE + "%"}).scalar_one()
        versions.update_area(session, first, settings, changes={"name": renamed})
        hole = session.execute(text("""
            SELECT ST_AsBinary(ST_Buffer(ST_PointOnSurface(b.geom)::geography, 15)::geometry) FROM boundary b
            JOIN area a ON a.id = b.area_id AND upper_inf(b.valid) WHERE a.code = :c"""), {"c": first}).scalar_one()
        importing.import_areas(session, [{"name": new, "level": "microgrid", "layer": "comprehensive",
                                          "parent": first}], [shapely.from_wkb(bytes(hole))], settings)
    return {new, renamed}


def _check_register(engine, anon, settings, tmp_path):
    """The village's register agrees with the grids' typed numbers it replaces, its contact
    structure and visits are there, and no private value of it (or of the cases) reaches a
    public endpoint: every GET route of the app, called as the public, and the staff pages
    and exports of callers without resident_data."""
    with engine.connect() as conn:
        per_grid = conn.execute(text("""
            SELECT g.code, g.households, g.population, count(DISTINCT h.id) AS registered,
                   count(r.id) AS residents
            FROM area g JOIN area v ON v.id = g.parent_id
            LEFT JOIN household h ON h.grid_id = g.id LEFT JOIN resident r ON r.household_id = h.id
            WHERE v.code = :v AND g.layer_key = 'comprehensive' AND g.retired_at IS NULL GROUP BY g.id
        """), {"v": VILLAGE}).all()
        receipt, household_id, person_id = conn.execute(text(
            "SELECT i.receipt, i.household_id, i.owner_person_id FROM incident i "
            "WHERE i.household_id IS NOT NULL ORDER BY i.owner_person_id NULLS LAST LIMIT 1")).one()
        links, visits, tags = (conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                               for t in ("contact_link", "visit", "resident_tag"))
        kinds = set(conn.execute(text("SELECT DISTINCT handling FROM incident WHERE geom IS NULL")).scalars())
        # A street of the register: the public place search answers with its grids.
        street = conn.execute(text("SELECT street FROM household WHERE street IS NOT NULL LIMIT 1")).scalar_one()
    assert len(per_grid) == 11
    assert all(g.registered == g.households and g.residents == max(g.population, g.households) for g in per_grid)
    assert links > 0.9 * sum(g.registered for g in per_grid) and visits > links and tags > 0
    assert {"immediate", "promised", "joint", "standard"} <= kinds

    private = _private_values(engine, tmp_path)
    # Drafts a planner has not published: a new grid and a renamed one.
    private["unpublished"] = _drafts(engine, settings)
    assert all(private[k] for k in ("id_number", "resident_phone", "resident_name", "household_ref", "request")), \
        {k: len(v) for k, v in private.items()}
    with engine.connect() as conn:
        lon, lat = conn.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p "
                                     "FROM public_area WHERE code = :c) s"), {"c": VILLAGE + "001"}).one()
    x, y = tiles.tile_at(lon, lat, 14)
    ids = {"code": VILLAGE + "001", "receipt": receipt, "household_id": household_id, "incident_id": 1,
           "person_id": person_id or 1, "fmt": "json", "service_code": "dispute", "path": "leaflet.js",
           "area": VILLAGE, "collection_id": "comprehensive", "feature_id": VILLAGE + "001", "layer": "comprehensive",
           "z": 14, "x": x, "y": y, "tile_matrix_set_id": "WebMercatorQuad", "tile_matrix": 14, "tile_row": y,
           "tile_col": x, "publication_id": 1}
    from fastapi.routing import iter_route_contexts

    from api.app import create_app

    paths = sorted({c.path for c in iter_route_contexts(create_app(settings).routes) if "GET" in (c.methods or ())})
    assert "/api/households/{household_id}/residents" in paths and "/maps/public" in paths
    leaks, answered = {}, set()
    for path in paths:
        for params in ({}, {"area": VILLAGE, "limit": 1000}, {"limit": 10000}, {"lon": lon, "lat": lat},
                       {"q": street, "area": VILLAGE[:9], "grid": VILLAGE + "001"}):
            r = anon.get(_fill(path, ids), params=params)
            assert r.status_code < 500, (path, r.status_code)
            answered |= {path} if r.status_code == 200 else set()
            # Tiles are protobuf: their strings are UTF-8 bytes among others.
            body = r.content.decode("utf-8", "replace")
            if found := _leaks(body, private):
                leaks[path] = found[:3]
    assert leaks == {}
    # The walk reached the published data: items, tiles, boards, locate, the public map.
    assert {"/ogc/collections/{collection_id}/items", "/tiles/{layer}/{z}/{x}/{y}.mvt", "/api/locate",
            "/maps/public", "/api/public/places", "/open311/v2/requests.{fmt}"} - answered == set()
    # ... and the drafts are there for staff.
    staff = anon.get("/api/grids", params={"limit": 1000, "layer": "comprehensive"},
                     headers=_login(anon, tmp_path, "demo-planner")).text
    assert all(name in staff for name in private["unpublished"])

    # Staff without resident_data see cases and their places, never residents or ID numbers.
    sensitive = {k: private[k] for k in ("id_number", "resident_phone", "resident_name", "household_phone")}
    for user in ("demo-inspector", "demo-planner"):
        auth = _login(anon, tmp_path, user)
        for path, params in (("/api/incidents", {"limit": 1000}), ("/maps/inspector", {"area": VILLAGE}),
                             (f"/api/households/{household_id}", {}), ("/api/households", {"area": VILLAGE}),
                             ("/api/stats/export", {"area": VILLAGE, "period": f"{dt.date.today():%Y}",
                                                    "format": "csv"})):
            r = anon.get(path, params=params, headers=auth)
            assert r.status_code < 500, (path, r.status_code)
            assert _leaks(r.text, sensitive) == [], (user, path)
