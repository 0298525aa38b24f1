"""Incidents (事件) through the API, on the incident world of tests/conftest.py: routing to
the grid and the persons in post that day, coordinates as phones send them, bad input,
the case workflow with its time limits and escalation, moving, public intake and Open311,
bulk import. (The PointRouter against brute force is in tests/unit/test_routing.py, the
coordinate maths in tests/unit/test_coords.py, pollution sources and patrols in
tests/api/test_environment.py.)

The expected answers are computed independently of the code under test: grid codes by
brute force over the same shapely geometries (interior first, then the lowest code),
distances with pyproj's geodesic, deadlines with a WorkCalendar built from the settings.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from conftest import (
    AREAS,
    COUNTY,
    E1,
    E2,
    ENV_E,
    ENV_W,
    MVILLAGE,
    MX,
    MY,
    PASSWORD,
    TOWN,
    TZ,
    VE,
    VW,
    W1,
    W2,
    W3,
    W4,
    publish,
)
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import text

from geogrid.access import accounts
from geogrid.core.settings import Settings
from geogrid.db import engine as db
from geogrid.geo import coords
from geogrid.incidents.workcal import WorkCalendar

GEOD = Geod(ellps="WGS84")
GEOGRID = str(Path(sys.executable).with_name("geogrid"))
RANK = {"province": 1, "city": 2, "county": 3, "town": 4, "village": 5, "grid": 6, "microgrid": 7}

LAYER_CODES = {layer: sorted(c for c, a in AREAS.items() if a[2] == layer) for layer in ("comprehensive", "environment")}
CATEGORY_LAYER = {"sanitation": "comprehensive", "dispute": "comprehensive", "safety_hazard": "comprehensive",
                  "straw_burning": "environment", "noise": "environment"}
PUBLIC_KEYS = {"receipt", "category", "category_name", "state", "state_name", "reported_at", "closed_at", "grid",
               "authority"}
FULL_PATH = ["accepted", "filed", "dispatched", "in_progress", "handled", "verified", "closed"]


def _box(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def expected_grid(lon: float, lat: float, layer: str) -> str | None:
    """Brute force: the grids of ``layer`` covering the point; interior first, then the lowest code."""
    p = shapely.Point(lon, lat)
    cover = [c for c in LAYER_CODES[layer] if AREAS[c][4].covers(p)]
    inner = [c for c in cover if AREAS[c][4].contains(p)]
    return min(inner or cover) if cover else None


@pytest.fixture
def restore_categories(engine):
    """Category edits persist outside the per-test truncation: put them back."""
    with engine.connect() as conn:
        saved = [dict(r) for r in conn.execute(text("SELECT * FROM category")).mappings()]
    yield
    with engine.begin() as conn:
        for row in saved:
            conn.execute(text("UPDATE category SET time_limits = CAST(:tl AS jsonb), department = :d, public = :p, "
                              "auto_escalate = :a WHERE key = :k"),
                         {"tl": json.dumps(row["time_limits"]), "d": row["department"], "p": row["public"],
                          "a": row["auto_escalate"], "k": row["key"]})


def post(c, **fields):
    body = {"category": "sanitation", "description": "垃圾堆放在路边", **fields}
    return c.post("/api/incidents", json=body)


def created(c, **fields) -> dict:
    r = post(c, **fields)
    assert r.status_code == 201, r.text
    return r.json()


def stored(client) -> int:
    r = client.get("/api/incidents")
    assert r.status_code == 200, r.text
    return r.json()["numberMatched"]


def said(r) -> str:
    body = r.json()
    return body["detail"] + " | " + " | ".join(f"{p.get('field')}: {p['message']}" for p in body.get("problems", []))


def located(client, lon, lat, layer, at: str | None = None) -> str | None:
    """GET /api/locate's answer for a net: its primary grid of the finest level."""
    params = {"lon": lon, "lat": lat, **({"at": at} if at else {})}
    r = client.get("/api/locate", params=params)
    assert r.status_code == 200, r.text
    found = [x for x in r.json()["results"] if x["layer"] == layer and x["primary"]]
    return max(found, key=lambda x: RANK[x["level"]])["code"] if found else None


def move_to(client, case: dict, *path: str, **extra) -> dict:
    for to in path:
        body = {"to": to, **(extra if to == path[-1] else {})}
        r = client.post(f"/api/incidents/{case['id']}/transitions", json=body)
        assert r.status_code == 200, r.text
        case = r.json()
    return case


def when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def calendar(settings: Settings) -> WorkCalendar:
    return WorkCalendar(holidays=settings.holidays, workdays=settings.extra_workdays,
                        day_start=settings.work_day_start, day_end=settings.work_day_end,
                        tz=ZoneInfo(settings.timezone))


def department_user(engine, username: str, department: str) -> dict:
    with db.transaction(engine) as session:
        accounts.create_account(session, username, PASSWORD)
        accounts.grant(session, username, "department_handler", None, department)
        token = accounts.login(session, username, PASSWORD, dt.timedelta(hours=1))["access_token"]
    return {"Authorization": f"Bearer {token}"}


def set_due(engine, incident_id: int, interval: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE incident SET due_at = now() - interval '{interval}' WHERE id = :i"),
                     {"i": incident_id})


# --------------------------------------------------------------------------- 1. routing


def test_incident_goes_to_its_grid_and_the_persons_in_post_that_day(world):
    client = world
    persons = {}
    for name in ("王网格长", "李网格员", "赵前网格员", "钱邻格员"):
        r = client.post("/api/persons", json={"name": name, "phone": "13800000000"})
        assert r.status_code == 201, r.text
        persons[name] = r.json()["id"]
    r = client.post("/api/assignments", json=[
        {"person": persons["王网格长"], "area": W3, "role": "grid_leader", "start_date": "2020-01-01"},
        {"person": persons["李网格员"], "area": W3, "role": "grid_worker_fulltime", "start_date": "2025-06-01"},
        {"person": persons["赵前网格员"], "area": W3, "role": "grid_worker_parttime", "start_date": "2020-01-01",
         "end_date": "2025-05-31"},
        {"person": persons["钱邻格员"], "area": W4, "role": "grid_worker_fulltime", "start_date": "2020-01-01"},
    ])
    assert r.status_code == 201, r.text

    now = created(client, lon=120.004, lat=30.006)
    assert (now["route_kind"], now["grid"], now["authority"]) == ("grid", W3, W3)
    assert now["nearest_grid"] is None and now["state"] == "reported" and now["escalation_level"] == 0
    assert [(p["name"], p["role"]) for p in now["responsible"]] == [("王网格长", "grid_leader"),
                                                                    ("李网格员", "grid_worker_fulltime")]

    # Dated before the full-time worker started and while the part-timer was still in post.
    before = created(client, lon=120.004, lat=30.006, occurred_at="2025-03-01T10:00:00+08:00")
    assert before["grid"] == W3
    assert [(p["name"], p["role"]) for p in before["responsible"]] == [("王网格长", "grid_leader"),
                                                                       ("赵前网格员", "grid_worker_parttime")]
    assert when(before["occurred_at"]) == dt.datetime(2025, 3, 1, 10, tzinfo=TZ)
    naive = created(client, lon=120.004, lat=30.006, occurred_at="2025-03-01T10:00:00")  # service time zone
    assert when(naive["occurred_at"]) == dt.datetime(2025, 3, 1, 10, tzinfo=TZ)
    assert naive["responsible"] == before["responsible"]
    # 17:30 UTC on 31 May is 01:30 on 1 June in Shanghai: the day of the new worker, not of the old one.
    night = created(client, lon=120.004, lat=30.006, occurred_at="2025-05-31T17:30:00Z")
    assert [p["name"] for p in night["responsible"]] == ["王网格长", "李网格员"]

    # The first event records the route; an environment category goes on the environment net.
    history = client.get(f"/api/incidents/{now['id']}").json()["history"]
    assert history[0]["action"] == "report" and history[0]["to_state"] == "reported"
    assert history[0]["data"]["route"]["grid"] == W3
    env = created(client, category="straw_burning", lon=120.004, lat=30.006)
    assert env["grid"] == ENV_W and env["responsible"] == []
    assert env["department"] == "乡镇（街道）"


BOUNDARY_POINTS = [
    (120.01, 30.01),      # W3 | W4
    (120.01, 30.02),      # the vertex of the four west grids
    (120.005, 30.02),     # W1 | W3
    (120.02, 30.01),      # W4 | E1, across a village boundary
    (120.02, 30.02),      # W2, W4, E1
    (120.02, 30.035),     # W2 | E1
    (120.03, 30.035),     # E1 | E2
    (120.03, 30.03),      # corner of E1 and E2
    (120.025, 30.04),     # E1's outer edge: one grid only
    (120.0, 30.01),       # W3's outer edge
    (MX[3], MY[5]),       # a vertex of four micro grids
    (MX[7], 30.0155),     # between two micro grids
    (120.1105, MY[8]),    # between two micro grids, north | south
]


@pytest.mark.parametrize("category", ["sanitation", "straw_burning"])
def test_routing_agrees_with_locate_on_shared_boundaries(world, category):
    client = world
    layer = CATEGORY_LAYER[category]
    points = BOUNDARY_POINTS + [(120.004, 30.006), (120.015, 30.03), (120.025, 30.001), (MX[4] + 0.001, MY[2] + 0.002)]
    for lon, lat in points:
        want = expected_grid(lon, lat, layer)
        if want is None:  # the micro town has no environment grid
            continue
        case = created(client, category=category, lon=lon, lat=lat)
        assert case["route_kind"] == "grid", (lon, lat, case)
        assert case["grid"] == want, (lon, lat, case["grid"], want)
        assert located(client, lon, lat, layer) == want, (lon, lat)
        assert (case["lon"], case["lat"]) == (lon, lat)


# --------------------------------------------------------------------------- 2. blind spots


def test_blind_spot_goes_to_the_village_and_names_the_nearest_grid(world):
    client = world
    person = client.post("/api/persons", json={"name": "孙指导员"}).json()
    assert client.post("/api/assignments", json={"person": person["id"], "area": VE, "role": "instructor",
                                                  "start_date": "2020-01-01"}).status_code == 201
    lon, lat = 120.038, 30.005
    assert expected_grid(lon, lat, "comprehensive") is None
    case = created(client, lon=lon, lat=lat)
    assert case["route_kind"] == "blind_spot" and case["grid"] is None
    assert case["authority"] == VE  # 属地兜底: the finest administrative area holding the point
    assert [p["name"] for p in case["responsible"]] == ["孙指导员"]
    nearest = case["nearest_grid"]
    assert nearest["code"] == E1
    truth = GEOD.inv(lon, lat, 120.03, lat)[2]  # the nearest point of E1 is due west
    assert abs(nearest["distance_m"] - truth) <= 0.02 * truth, (nearest, truth)
    assert 700 < nearest["distance_m"] < 850
    listed = client.get("/api/incidents", params={"blind_spot": "true"}).json()
    assert [i["receipt"] for i in listed["items"]] == [case["receipt"]]
    # An environment category there is not a blind spot: the east village has its environment grid.
    assert created(client, category="noise", lon=lon, lat=lat)["grid"] == ENV_E


def test_blind_spot_nearest_grid_is_nearest_in_metres(world):
    lon, lat = 120.035, 30.0255  # 0.005° east of E1 (~482 m), 0.0045° south of E2 (~499 m)
    to_e1 = GEOD.inv(lon, lat, 120.03, lat)[2]
    to_e2 = GEOD.inv(lon, lat, lon, 30.03)[2]
    assert to_e1 < to_e2
    case = created(world, lon=lon, lat=lat)
    assert case["route_kind"] == "blind_spot"
    assert case["nearest_grid"]["code"] == E1, (case["nearest_grid"], to_e1, to_e2)
    assert abs(case["nearest_grid"]["distance_m"] - to_e1) <= 0.02 * to_e1


def test_outside_every_area_is_refused_and_nothing_stored(world):
    client = world
    r = post(client, lon=121.0, lat=31.0)
    assert r.status_code == 422 and "outside the jurisdiction" in said(r)
    r = post(client, lon=121.0, lat=31.0, category="straw_burning")
    assert r.status_code == 422
    # Boundaries not yet in force on the day it happened: nowhere either.
    r = post(client, lon=120.004, lat=30.006, occurred_at="2019-06-01T10:00:00+08:00")
    assert r.status_code == 422
    assert stored(client) == 0


# --------------------------------------------------------------------------- 3. coordinates


def test_gcj02_and_bd09_are_converted_before_routing(world):
    client = world
    lon, lat = (MX[3] + MX[4]) / 2, (MY[4] + MY[5]) / 2  # the centre of one 0.003° grid
    glon, glat = (float(v) for v in coords.wgs84_to_gcj02(lon, lat))
    blon, blat = (float(v) for v in coords.gcj02_to_bd09(glon, glat))
    home = expected_grid(lon, lat, "comprehensive")
    # Stored uncorrected, the Amap or Baidu coordinates would land in another grid.
    assert GEOD.inv(lon, lat, glon, glat)[2] > 300
    assert expected_grid(glon, glat, "comprehensive") not in (home, None)
    assert expected_grid(blon, blat, "comprehensive") not in (home, None)
    assert located(client, glon, glat, "comprehensive") != home

    for crs, x, y in (("wgs84", lon, lat), ("gcj02", glon, glat), ("bd09", blon, blat), ("amap", glon, glat),
                      ("baidu", blon, blat), ("cgcs2000", lon, lat), ("EPSG:4326", lon, lat)):
        case = created(client, lon=x, lat=y, crs=crs)
        assert abs(case["lon"] - lon) < 1e-6 and abs(case["lat"] - lat) < 1e-6, (crs, case["lon"], case["lat"])
        assert case["grid"] == home, crs
        assert case["original"] == {"lon": x, "lat": y, "crs": crs}

    before = stored(client)
    r = post(client, lon=glon, lat=glat, crs="utm50n")
    assert r.status_code == 422 and "unknown coordinate system" in said(r) and "crs" in said(r)
    assert stored(client) == before



# --------------------------------------------------------------------------- 4. bad input

FUTURE = (dt.datetime.now(TZ) + dt.timedelta(days=1)).isoformat()
BAD = [
    pytest.param({"lon": None}, ("lon",), id="missing-lon"),
    pytest.param({"lat": 95.0}, ("out of range",), id="lat-out-of-range"),
    pytest.param({"lon": 200.0}, ("out of range",), id="lon-out-of-range"),
    pytest.param({"lon": -120.004, "lat": 30.006}, ("outside the service extent",), id="western-hemisphere"),
    pytest.param({"category": "potholes"}, ("unknown category 'potholes'", "sanitation"), id="unknown-category"),
    pytest.param({"channel": "carrier_pigeon"}, ("channel",), id="unknown-channel"),
    pytest.param({"occurred_at": FUTURE}, ("in the future",), id="future"),
    pytest.param({"occurred_at": "yesterday"}, ("occurred_at",), id="not-a-date"),
    pytest.param({"description": "污" * 5001}, ("5001 characters", "at most 5000"), id="description-too-long"),
    pytest.param({"description": ""}, ("description is required",), id="description-empty"),
    pytest.param({"description": "   \n "}, ("description is required",), id="description-blank"),
    pytest.param({"media_urls": [f"https://img.example.com/{i}.jpg" for i in range(11)]}, ("media_urls",),
                 id="eleven-media"),
    pytest.param({"media_urls": ["ftp://img.example.com/1.jpg"]}, ("http(s)",), id="ftp-media"),
    pytest.param({"media_urls": ["javascript:alert(1)"]}, ("http(s)",), id="script-media"),
    pytest.param({"crs": "EPSG:3857"}, ("unknown coordinate system",), id="unknown-crs"),
    pytest.param({"reporter": {"phone": "<script>"}}, ("phone",), id="bad-reporter-phone"),
]


@pytest.mark.parametrize("change, words", BAD)
def test_bad_input_is_refused_with_a_clear_message_and_nothing_stored(world, change, words):
    client = world
    body = {"category": "sanitation", "lon": 120.004, "lat": 30.006, "description": "垃圾", **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = client.post("/api/incidents", json=body)
    assert r.status_code == 422, r.text
    message = said(r)
    for word in words:
        assert word in message, message
    assert stored(client) == 0


def test_swapped_lat_lon_in_china_says_so(world):
    client = world
    r = post(client, lon=30.006, lat=120.004)
    assert r.status_code == 422
    assert "swapped" in said(r), said(r)
    assert stored(client) == 0


def test_swapped_lat_lon_hint_where_the_range_allows_it(world):
    # Kashgar (75.99°E, 39.47°N) swapped still passes the -90..90 range: the hint shows.
    r = post(world, lon=39.47, lat=75.99)
    assert r.status_code == 422 and "swapped" in said(r)
    assert stored(world) == 0


def test_limits_are_inclusive(world):
    client = world
    case = created(client, lon=120.004, lat=30.006, description="长" * 5000,
                   media_urls=[f"https://img.example.com/{i}.jpg" for i in range(10)])
    assert len(case["description"]) == 5000 and len(case["media_urls"]) == 10
    soon = (dt.datetime.now(TZ) + dt.timedelta(minutes=2)).isoformat()  # a phone clock a little fast
    assert post(client, lon=120.004, lat=30.006, occurred_at=soon).status_code == 201
    assert stored(client) == 2


def test_duplicate_idempotency_key_is_409_with_the_first_receipt(world):
    client = world
    first = created(client, lon=120.004, lat=30.006, idempotency_key="phone-42-1")
    again = post(client, lon=120.014, lat=30.006, idempotency_key="phone-42-1", description="又报一次")
    assert again.status_code == 409, again.text
    assert again.json()["receipt"] == first["receipt"] and first["receipt"] in again.json()["detail"]
    assert stored(client) == 1
    assert created(client, lon=120.004, lat=30.006, idempotency_key="phone-42-2")["receipt"] != first["receipt"]


def test_intake_takes_no_thread(world, monkeypatch):
    """The intake runs on the event loop (a greenlet on psycopg's async connection): no
    hand-over to the thread pool, where a busy process queues; a sync route still hands over."""
    import anyio.to_thread

    handed_over = []
    real = anyio.to_thread.run_sync

    async def counting(func, *args, **kwargs):
        handed_over.append(getattr(func, "__qualname__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    case = created(world, lon=120.004, lat=30.006, idempotency_key="loop-1")
    again = post(world, lon=120.004, lat=30.006, idempotency_key="loop-1")  # its refusals too
    assert again.status_code == 409 and again.json()["receipt"] == case["receipt"]
    assert handed_over == []
    assert stored(world) == 1 and handed_over  # a sync route (the list) does hand over


def test_intake_connections_plan_generically(settings):
    """The intake's connections plan its statement generically from their first use (a
    SET when each connection opens, committed: the pool's reset must not undo it)."""
    import asyncio

    async def modes():
        found = []
        for _ in range(2):  # the second after the pool's reset of the first
            async with db.get_async_engine(settings).connect() as conn:
                found.append((await conn.execute(text("SHOW plan_cache_mode"))).scalar())
        return found

    assert asyncio.run(modes()) == ["force_generic_plan", "force_generic_plan"]
    with db.get_engine(settings).connect() as conn:  # the other routes keep PostgreSQL's default
        assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "auto"
    with db.transaction(db.get_engine(settings)) as session:  # a sync intake (public): for its transaction only
        db.use_generic_plans(session)
        assert session.execute(text("SHOW plan_cache_mode")).scalar() == "force_generic_plan"
    with db.get_engine(settings).connect() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "auto"


# --------------------------------------------------------------------------- 5. workflow


def test_full_case_path_records_actor_time_note(world):
    client = world
    case = created(client, lon=120.004, lat=30.006)
    version = case["version"]
    for i, to in enumerate(FULL_PATH):
        body = {"to": to, "note": f"第{i}步 {to}"}
        if to == "closed":
            body["satisfaction"] = 9
        r = client.post(f"/api/incidents/{case['id']}/transitions", json=body, headers={"If-Match": f'"{version}"'})
        assert r.status_code == 200, (to, r.text)
        assert r.json()["state"] == to and r.json()["version"] == version + 1
        version = r.json()["version"]
    r = client.get(f"/api/incidents/{case['id']}")
    final = r.json()
    assert r.headers["etag"] == f'"{version}"'
    assert final["state"] == "closed" and final["satisfaction"] == 9 and final["allowed"] == []
    assert final["closed_at"] is not None and final["due_at"] is None and final["overdue"] is False
    history = final["history"]
    assert [(h["from_state"], h["to_state"]) for h in history] == list(zip([None, "reported", *FULL_PATH[:-1]],
                                                                           ["reported", *FULL_PATH]))
    assert all(h["actor"] == "root-admin" for h in history)
    assert [h["note"] for h in history[1:]] == [f"第{i}步 {to}" for i, to in enumerate(FULL_PATH)]
    times = [when(h["at"]) for h in history]
    assert times == sorted(times) and times[0] >= when(case["reported_at"]) - dt.timedelta(seconds=1)
    assert history[-1]["data"] == {"satisfaction": 9}


def test_illegal_moves_side_exits_satisfaction_and_stale_versions(world):
    client = world
    case = created(client, lon=120.004, lat=30.006)
    url = f"/api/incidents/{case['id']}/transitions"
    r = client.post(url, json={"to": "closed"})
    assert r.status_code == 409 and r.json()["allowed"] == ["accepted", "void"] and r.json()["state"] == "reported"
    r = client.post(url, json={"to": "accepted", "satisfaction": 5})
    assert r.status_code == 422 and "satisfaction" in said(r)
    r = client.post(url, json={"to": "nowhere"})
    assert r.status_code == 422
    assert client.get(f"/api/incidents/{case['id']}").json()["state"] == "reported"

    # Stale If-Match: 412, nothing changes.
    accepted = move_to(client, case, "accepted")
    r = client.post(url, json={"to": "filed"}, headers={"If-Match": f'"{case["version"]}"'})
    assert r.status_code == 412 and r.json()["current_version"] == accepted["version"]
    assert client.get(f"/api/incidents/{case['id']}").json()["state"] == "accepted"

    # Parked (挂账): off the overdue clock, back to handling later.
    parked = move_to(client, accepted, "filed", "dispatched", "parked")
    assert parked["state"] == "parked" and parked["due_at"] is None and parked["allowed"] == ["in_progress", "void"]
    back = move_to(client, parked, "in_progress")
    assert back["due_at"] is not None and when(back["due_at"]) > dt.datetime.now(dt.UTC)
    r = client.post(url, json={"to": "closed", "satisfaction": 8})
    assert r.status_code == 409 and r.json()["allowed"] == ["handled", "parked"]

    # Void (作废) is final.
    other = created(client, lon=120.014, lat=30.006)
    void = move_to(client, other, "void")
    assert void["state"] == "void" and void["closed_at"] is not None and void["allowed"] == []
    r = client.post(f"/api/incidents/{other['id']}/transitions", json={"to": "accepted"})
    assert r.status_code == 409 and r.json()["allowed"] == []
    r = client.post(f"/api/incidents/{other['id']}/location", json={"lon": 120.004, "lat": 30.006})
    assert r.status_code == 409
    # Satisfaction is 0-10.
    done = move_to(client, back, "handled", "verified")
    r = client.post(url, json={"to": "closed", "satisfaction": 11})
    assert r.status_code == 422
    assert move_to(client, done, "closed", satisfaction=0)["satisfaction"] == 0
    assert client.get("/api/incidents/999999").status_code == 404


def test_roles_grid_workers_and_department_handlers(world, anon, make_user, engine):
    client = world
    west = make_user("gw-west", ("grid_worker", VW))
    east = make_user("gw-east", ("grid_worker", VE))
    inspector = make_user("insp-town", ("inspector", TOWN))
    sanitation = department_user(engine, "dept-sanitation", "环卫所")
    police = department_user(engine, "dept-police", "公安分局")

    case = created(client, lon=120.004, lat=30.006)  # W3, sanitation (环卫所)
    url = f"/api/incidents/{case['id']}/transitions"
    r = anon.post(url, json={"to": "accepted"}, headers=west)
    assert r.status_code == 403, r.text
    assert anon.post(url, json={"to": "accepted"}).status_code == 401
    r = anon.post(url, json={"to": "accepted"}, headers=inspector)
    assert r.status_code == 200, r.text
    move_to(client, r.json(), "filed", "dispatched")

    r = anon.post(url, json={"to": "in_progress"}, headers=east)
    assert r.status_code == 403, r.text
    assert anon.get(f"/api/incidents/{case['id']}", headers=east).status_code == 403
    assert anon.get("/api/incidents", headers=east).json()["numberMatched"] == 0
    assert anon.get("/api/incidents", headers=west).json()["numberMatched"] == 1

    r = anon.post(url, json={"to": "in_progress", "note": "到场"}, headers=west)
    assert r.status_code == 200, r.text
    r = anon.post(url, json={"to": "handled", "note": "已清理"}, headers=west)
    assert r.status_code == 200, r.text
    assert anon.post(url, json={"to": "verified"}, headers=west).status_code == 403
    history = client.get(f"/api/incidents/{case['id']}").json()["history"]
    assert [(h["actor"], h["to_state"]) for h in history[-2:]] == [("gw-west", "in_progress"), ("gw-west", "handled")]
    assert history[1]["actor"] == "insp-town"

    # The category's department handles it wherever it is; another department may not.
    other = move_to(client, created(client, lon=120.035, lat=30.035), "accepted", "filed", "dispatched")
    other_url = f"/api/incidents/{other['id']}/transitions"
    assert anon.post(other_url, json={"to": "in_progress"}, headers=police).status_code == 403
    assert anon.post(other_url, json={"to": "in_progress"}, headers=west).status_code == 403
    r = anon.post(other_url, json={"to": "in_progress"}, headers=sanitation)
    assert r.status_code == 200, r.text
    assert anon.post(other_url, json={"to": "handled"}, headers=sanitation).status_code == 200
    assert anon.post(other_url, json={"to": "verified"}, headers=sanitation).status_code == 403
    assert anon.get("/api/incidents", headers=sanitation).json()["numberMatched"] == 2
    assert anon.get("/api/incidents", headers=police).json()["numberMatched"] == 0


def two_town_cases(client):
    own = created(client, lon=120.004, lat=30.006, reporter={"name": "本镇居民", "phone": "13700000001"})
    other = created(client, lon=MX[3] + 0.001, lat=MY[3] + 0.001,
                    reporter={"name": "外镇居民", "phone": "13700000002"})  # the micro town
    assert other["authority"].startswith(MVILLAGE)
    return own, other


def test_centre_staff_act_only_in_their_jurisdiction(world, anon, make_user):
    inspector = make_user("insp-town", ("inspector", TOWN))
    own, other = two_town_cases(world)
    assert anon.get(f"/api/incidents/{own['id']}", headers=inspector).status_code == 200
    assert anon.get(f"/api/incidents/{other['id']}", headers=inspector).status_code == 403
    assert anon.post(f"/api/incidents/{other['id']}/transitions", headers=inspector,
                     json={"to": "accepted"}).status_code == 403
    assert anon.post(f"/api/incidents/{own['id']}/transitions", headers=inspector,
                     json={"to": "accepted"}).status_code == 200


def test_centre_staff_list_only_cases_in_their_jurisdiction(world, anon, make_user):
    inspector = make_user("insp-town", ("inspector", TOWN))
    own, other = two_town_cases(world)
    listed = anon.get("/api/incidents", headers=inspector)
    assert listed.status_code == 200
    assert "外镇居民" not in listed.text
    assert [i["receipt"] for i in listed.json()["items"]] == [own["receipt"]]


# --------------------------------------------------------------------------- 6. time limits and escalation


def test_due_at_follows_the_category_time_limit(world, settings, restore_categories, make_user, anon):
    client = world
    cal = calendar(settings)
    limits = {c["key"]: c["time_limits"] for c in client.get("/api/categories").json()}
    assert len(limits) == 12 and limits["sanitation"]["accept"] == [1, "working_hours"]
    for category in ("sanitation", "illegal_discharge", "new_pollution_source"):
        case = created(client, category=category, lon=120.004, lat=30.006)
        assert when(case["due_at"]) == cal.add(when(case["reported_at"]), *limits[category]["accept"]), category

    r = client.patch("/api/categories/sanitation", json={"time_limits": {"accept": [3, "working_days"]}})
    assert r.status_code == 200, r.text
    assert r.json()["time_limits"]["accept"] == [3, "working_days"]
    assert r.json()["time_limits"]["handle"] == limits["sanitation"]["handle"]  # the other steps stay
    case = created(client, lon=120.004, lat=30.006)
    assert when(case["due_at"]) == cal.add(when(case["reported_at"]), 3, "working_days")
    assert when(case["due_at"]).astimezone(TZ).time() == settings.work_day_end

    client.patch("/api/categories/sanitation", json={"time_limits": {"accept": [2, "hours"], "dispatch": [5, "days"]}})
    case = created(client, lon=120.004, lat=30.006)
    assert when(case["due_at"]) - when(case["reported_at"]) == dt.timedelta(hours=2)
    before = dt.datetime.now(dt.UTC)
    accepted = move_to(client, case, "accepted")
    after = dt.datetime.now(dt.UTC)
    assert before + dt.timedelta(days=5) <= when(accepted["due_at"]) <= after + dt.timedelta(days=5)

    assert client.patch("/api/categories/sanitation", json={"time_limits": {"accept": [-1, "hours"]}}).status_code == 422
    assert client.patch("/api/categories/sanitation", json={"time_limits": {"accept": [1, "fortnights"]}}).status_code == 422
    assert client.patch("/api/categories/no_such", json={"public": True}).status_code == 404
    inspector = make_user("insp", ("inspector", None))
    assert anon.patch("/api/categories/sanitation", headers=inspector, json={"public": False}).status_code == 403


def test_overdue_cases_escalate_one_level_per_missed_limit(world, engine, settings):
    client = world
    case = created(client, lon=120.004, lat=30.006)  # W3 < west village < town < county
    fresh = created(client, lon=120.014, lat=30.006)
    assert case["overdue"] is False
    set_due(engine, case["id"], "1 hour")
    overdue = client.get("/api/incidents/overdue").json()
    assert [i["receipt"] for i in overdue["items"]] == [case["receipt"]]
    assert client.get(f"/api/incidents/{case['id']}").json()["overdue"] is True
    assert client.get("/api/incidents", params={"overdue": "false"}).json()["numberMatched"] == 1

    climbed = []
    for level, authority in ((1, VW), (2, TOWN), (3, COUNTY)):
        r = client.post("/api/incidents/escalate-overdue")
        assert r.status_code == 200 and r.json()["escalated"] == [case["receipt"]], r.text
        got = client.get(f"/api/incidents/{case['id']}").json()
        assert (got["authority"], got["escalation_level"], got["grid"]) == (authority, level, W3)
        assert got["overdue"] is False and when(got["due_at"]) > dt.datetime.now(dt.UTC)
        event = got["history"][-1]
        assert event["action"] == "escalate" and event["data"]["to"] == authority and event["data"]["automatic"]
        climbed.append(event["data"]["from"])
        # Not again until the new time limit passes.
        assert client.post("/api/incidents/escalate-overdue").json()["escalated"] == []
        assert client.get(f"/api/incidents/{case['id']}").json()["escalation_level"] == level
        set_due(engine, case["id"], "1 minute")
    assert climbed == [W3, VW, TOWN]

    # At the top it stays put, and stays on the overdue list.
    assert client.post("/api/incidents/escalate-overdue").json()["escalated"] == []
    got = client.get(f"/api/incidents/{case['id']}").json()
    assert (got["authority"], got["escalation_level"], got["overdue"]) == (COUNTY, 3, True)
    assert [i["receipt"] for i in client.get("/api/incidents/overdue").json()["items"]] == [case["receipt"]]
    assert client.post(f"/api/incidents/{case['id']}/escalate", json={}).status_code == 409
    assert client.get(f"/api/incidents/{fresh['id']}").json()["escalation_level"] == 0

    # The command line does the same.
    set_due(engine, fresh["id"], "5 minutes")
    env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url}
    out = subprocess.run([GEOGRID, "incidents", "escalate-overdue"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"escalated 1 cases: {fresh['receipt']}" in out.stdout
    assert client.get(f"/api/incidents/{fresh['id']}").json()["authority"] == VW


def test_manual_escalation_and_categories_without_auto_escalation(world, engine, restore_categories):
    client = world
    blind = created(client, lon=120.038, lat=30.005)  # east village blind spot
    r = client.post(f"/api/incidents/{blind['id']}/escalate", json={"note": "村呼镇应"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert (r.json()["authority"], r.json()["escalation_level"]) == (TOWN, 1)
    assert r.json()["history"][-1]["note"] == "村呼镇应" and r.json()["history"][-1]["data"]["automatic"] is False
    assert client.post(f"/api/incidents/{blind['id']}/escalate", json={}, headers={"If-Match": '"1"'}).status_code == 412

    assert client.patch("/api/categories/dispute", json={"auto_escalate": False}).status_code == 200
    dispute = created(client, category="dispute", lon=120.004, lat=30.006)
    set_due(engine, dispute["id"], "1 hour")
    assert client.post("/api/incidents/escalate-overdue").json()["escalated"] == []
    assert client.get(f"/api/incidents/{dispute['id']}").json()["overdue"] is True


def test_the_service_escalates_overdue_cases_by_itself(world, engine, settings):
    from api.app import create_app

    case = created(world, lon=120.004, lat=30.006)
    set_due(engine, case["id"], "1 hour")
    app = create_app(Settings(database_url=settings.database_url, escalation_interval_s=1))
    with TestClient(app):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = world.get(f"/api/incidents/{case['id']}").json()
            if got["escalation_level"]:
                break
            time.sleep(0.2)
    assert (got["authority"], got["escalation_level"]) == (VW, 1)
    assert got["history"][-1]["actor"] == "system:escalation" and got["history"][-1]["action"] == "escalate"


# --------------------------------------------------------------------------- 7. moving


def test_moving_reroutes_and_keeps_the_old_route(world):
    client = world
    case = created(client, lon=120.004, lat=30.006)
    assert case["grid"] == W3
    r = client.post(f"/api/incidents/{case['id']}/location", json={"lon": 120.014, "lat": 30.006, "note": "点错了"})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["grid"], moved["authority"], moved["lon"], moved["lat"]) == (W4, W4, 120.014, 30.006)
    event = moved["history"][-1]
    assert event["action"] == "move" and event["note"] == "点错了"
    assert event["data"]["from"]["grid"] == W3 and event["data"]["to"]["grid"] == W4
    assert moved["history"][0]["data"]["route"]["grid"] == W3  # the first route stays on record

    # Moved with Amap coordinates: converted; outside everything: refused, unchanged.
    glon, glat = (float(v) for v in coords.wgs84_to_gcj02(120.014, 30.036))
    r = client.post(f"/api/incidents/{case['id']}/location", json={"lon": glon, "lat": glat, "crs": "gcj02"})
    assert r.status_code == 200 and r.json()["grid"] == W2
    assert abs(r.json()["lon"] - 120.014) < 1e-6 and abs(r.json()["lat"] - 30.036) < 1e-6
    r = client.post(f"/api/incidents/{case['id']}/location", json={"lon": 121.0, "lat": 31.0})
    assert r.status_code == 422
    r = client.post(f"/api/incidents/{case['id']}/location", json={"lon": 120.014, "lat": 30.006},
                    headers={"If-Match": '"1"'})
    assert r.status_code == 412
    assert client.get(f"/api/incidents/{case['id']}").json()["grid"] == W2

    # Into the blind spot: the village answers, the nearest grid is named.
    r = client.post(f"/api/incidents/{case['id']}/location", json={"lon": 120.038, "lat": 30.005})
    assert r.status_code == 200, r.text
    blind = r.json()
    assert (blind["route_kind"], blind["grid"], blind["authority"]) == ("blind_spot", None, VE)
    assert blind["nearest_grid"]["code"] == E1 and blind["history"][-1]["data"]["from"]["grid"] == W2
    assert [h["action"] for h in blind["history"]] == ["report", "move", "move", "move"]


def redraw_in_the_database(engine, code: str, geom) -> None:
    """A new boundary version as the edit path writes one (the old one's validity ends now)."""
    with engine.begin() as conn:
        area_id = conn.execute(text("SELECT id FROM area WHERE code = :c"), {"c": code}).scalar_one()
        conn.execute(text("UPDATE boundary SET valid = tstzrange(lower(valid), now()) "
                          "WHERE area_id = :a AND upper_inf(valid)"), {"a": area_id})
        conn.execute(text("INSERT INTO boundary (area_id, version, geom, note, valid) VALUES (:a, 2, "
                          "ST_Multi(ST_SetSRID(ST_GeomFromText(:wkt), 4326)), 'redrawn', tstzrange(now(), NULL))"),
                     {"a": area_id, "wkt": geom.wkt})


def test_redrawing_grids_does_not_move_stored_incidents(world, engine):
    client = world
    case = created(client, lon=120.014, lat=30.036)
    assert case["grid"] == W2
    redraw_in_the_database(engine, W2, _box(120.015, 30.02, 120.02, 30.04))
    got = client.get(f"/api/incidents/{case['id']}").json()
    assert (got["grid"], got["authority"], got["route_kind"]) == (W2, W2, "grid")
    assert located(client, 120.014, 30.036, "comprehensive") is None
    again = created(client, lon=120.014, lat=30.036)
    assert again["route_kind"] == "blind_spot" and again["authority"] == VW
    assert again["nearest_grid"]["code"] == W2  # the new boundary, ~96 m east
    assert abs(again["nearest_grid"]["distance_m"] - GEOD.inv(120.014, 30.036, 120.015, 30.036)[2]) < 2


def test_redrawing_grids_through_the_api_does_not_move_stored_incidents(world):
    client = world
    case = created(client, lon=120.014, lat=30.036)
    r = client.patch(f"/api/grids/{W2}", json={"geometry": shapely.geometry.mapping(_box(120.015, 30.02, 120.02, 30.04)),
                                               "note": "重新划分"})
    assert r.status_code == 200, r.text
    got = client.get(f"/api/incidents/{case['id']}").json()
    assert (got["grid"], got["authority"], got["route_kind"]) == (W2, W2, "grid")
    assert created(client, lon=120.014, lat=30.036)["route_kind"] == "blind_spot"


# --------------------------------------------------------------------------- 8. public intake


def test_public_report_shows_receipt_and_status_only(anon, world, engine):
    client = world
    publish(engine)  # the public sees the grid and authority as published
    r = anon.post("/api/public/reports", json={
        "category": "sanitation", "lon": 120.004, "lat": 30.006, "description": "楼下垃圾三天没人收 SECRET-TEXT",
        "reporter": {"name": "张三", "phone": "13912345678", "email": "zhang@example.com"}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == PUBLIC_KEYS
    assert (body["state"], body["category"], body["grid"], body["authority"]) == ("reported", "sanitation", W3, W3)
    for secret in ("SECRET-TEXT", "张三", "13912345678", "zhang@example.com"):
        assert secret not in r.text
    receipt = body["receipt"]
    status = anon.get(f"/api/public/reports/{receipt}")
    assert status.status_code == 200 and set(status.json()) == PUBLIC_KEYS and status.json()["state"] == "reported"

    internal = client.get("/api/incidents").json()["items"][0]
    assert internal["receipt"] == receipt and internal["channel"] == "public_web"
    assert internal["reporter"] == {"name": "张三", "phone": "13912345678", "email": "zhang@example.com"}
    move_to(client, internal, "accepted")
    status = anon.get(f"/api/public/reports/{receipt}").json()
    assert status["state"] == "accepted" and set(status) == PUBLIC_KEYS
    for secret in ("SECRET-TEXT", "张三", "13912345678"):
        assert secret not in json.dumps(status, ensure_ascii=False)

    assert anon.get("/api/public/reports/GG20990101-DEADBEEF00").status_code == 404
    assert anon.get("/api/incidents").status_code == 401
    assert anon.get(f"/api/incidents/{internal['id']}").status_code == 401
    assert anon.get("/api/incidents/overdue").status_code == 401
    assert anon.post("/api/incidents", json={"category": "sanitation", "lon": 120.004, "lat": 30.006,
                                             "description": "x"}).status_code == 401
    # The public cannot choose the channel, and bad reports store nothing.
    r = anon.post("/api/public/reports", json={"category": "sanitation", "lon": 120.004, "lat": 30.006,
                                               "description": "x", "channel": "department"})
    assert r.status_code == 422
    r = anon.post("/api/public/reports", json={"category": "sanitation", "lon": 121.0, "lat": 31.0, "description": "x"})
    assert r.status_code == 422 and "outside" in said(r)
    assert stored(client) == 1


def test_public_reports_are_rate_limited(world, settings):
    from api.app import create_app

    app = create_app(Settings(database_url=settings.database_url, public_reports_per_minute=3))
    with TestClient(app) as c:
        codes = [c.post("/api/public/reports", json={"category": "sanitation", "lon": 120.004, "lat": 30.006,
                                                     "description": f"第{i}次"}).status_code for i in range(5)]
        assert codes == [201, 201, 201, 429, 429]
        r = c.post("/api/public/reports", json={"category": "sanitation", "lon": 120.004, "lat": 30.006,
                                                "description": "again"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "at most 3" in r.json()["detail"]
        assert c.get("/api/public/reports/GG20990101-DEADBEEF00").status_code == 404  # reading is not limited
    assert stored(world) == 3


# --------------------------------------------------------------------------- 9. Open311 GeoReport v2


@pytest.fixture
def open311(world, settings):
    from api.app import create_app

    app = create_app(Settings(database_url=settings.database_url, public_reports_per_minute=100))
    with TestClient(app) as c:
        yield c


def open311_error(r, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 1 and set(body[0]) == {"code", "description"}, body
    assert body[0]["code"] == status and body[0]["description"]
    return body[0]


def test_open311_services_and_requests(world, open311):
    client = world
    categories = client.get("/api/categories").json()
    services = open311.get("/open311/v2/services.json").json()
    assert sorted(s["service_code"] for s in services) == sorted(c["key"] for c in categories)
    assert all(s["service_name"] and s["type"] == "realtime" and s["metadata"] is False for s in services)
    assert {s["service_code"]: s["service_name"] for s in open311.get("/open311/v2/services.json?lang=en").json()}[
        "sanitation"] == "Sanitation"

    form = {"service_code": "sanitation", "lat": "30.006", "long": "120.004", "description": "PRIVATE-DESC 垃圾桶满了",
            "email": "reporter@example.com", "first_name": "Lei", "last_name": "Wang", "phone": "13911112222",
            "media_url": "https://img.example.com/bin.jpg"}
    r = open311.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert isinstance(answer, list) and len(answer) == 1
    rid = answer[0]["service_request_id"]
    internal = {i["receipt"]: i for i in client.get("/api/incidents").json()["items"]}[rid]
    assert (internal["channel"], internal["grid"], internal["category"]) == ("open311", W3, "sanitation")
    assert internal["reporter"] == {"name": "Lei Wang", "email": "reporter@example.com", "phone": "13911112222"}
    assert internal["media_urls"] == ["https://img.example.com/bin.jpg"]

    private = open311.post("/open311/v2/requests.json", data={**form, "service_code": "dispute"})
    assert private.status_code == 201
    private_id = private.json()[0]["service_request_id"]
    closed = created(client, category="safety_hazard", lon=120.014, lat=30.006)
    move_to(client, closed, *FULL_PATH, satisfaction=10)
    voided = move_to(client, created(client, category="noise", lon=120.014, lat=30.006), "void")

    listed = open311.get("/open311/v2/requests.json")
    assert listed.status_code == 200
    by_id = {x["service_request_id"]: x for x in listed.json()}
    assert set(by_id) == {rid, closed["receipt"], voided["receipt"]}  # the dispute is not a public category
    assert (by_id[rid]["status"], by_id[closed["receipt"]]["status"], by_id[voided["receipt"]]["status"]) == \
        ("open", "closed", "closed")
    assert by_id[rid]["service_code"] == "sanitation" and (by_id[rid]["lat"], by_id[rid]["long"]) == (30.006, 120.004)
    for secret in ("PRIVATE-DESC", "reporter@example.com", "13911112222", "Lei", "Wang", "垃圾"):
        assert secret not in listed.text
    for x in listed.json():
        assert not {"description", "email", "phone", "first_name", "last_name", "reporter"} & set(x)
    only_open = open311.get("/open311/v2/requests.json", params={"status": "open"}).json()
    assert [x["service_request_id"] for x in only_open] == [rid]
    assert [x["service_request_id"] for x in open311.get("/open311/v2/requests.json",
                                                         params={"service_code": "safety_hazard"}).json()] == [
        closed["receipt"]]

    one = open311.get(f"/open311/v2/requests/{rid}.json")
    assert one.status_code == 200 and [x["service_request_id"] for x in one.json()] == [rid]
    assert one.json()[0]["status"] == "open" and "PRIVATE-DESC" not in one.text and "reporter@" not in one.text
    assert open311.get(f"/open311/v2/requests/{private_id}.json").json()[0]["status"] == "open"

    before = stored(client)
    open311_error(open311.get("/open311/v2/requests/GG20990101-DEADBEEF00.json"), 404)
    err = open311_error(open311.post("/open311/v2/requests.json", data={**form, "service_code": "potholes"}), 422)
    assert "potholes" in err["description"]
    open311_error(open311.post("/open311/v2/requests.json", data={k: v for k, v in form.items() if k != "lat"}), 400)
    open311_error(open311.post("/open311/v2/requests.json", data={**form, "lat": "31.0", "long": "121.0"}), 422)
    assert stored(client) == before


def test_open311_form_errors_are_open311_shaped(world, open311):
    form = {"service_code": "sanitation", "lat": "30.006", "long": "120.004", "description": "x"}
    open311_error(open311.post("/open311/v2/requests.json", data={k: v for k, v in form.items()
                                                                  if k != "service_code"}), 400)
    open311_error(open311.post("/open311/v2/requests.json", data={**form, "lat": "north"}), 400)


def xml_list(r, root: str, item: str) -> list[dict]:
    """A GeoReport v2 XML list answer as dicts of its members' texts."""
    assert r.status_code in (200, 201) and r.headers["content-type"].startswith("text/xml"), r.text
    doc = ET.fromstring(r.content)
    assert doc.tag == root and all(child.tag == item for child in doc), r.text
    return [{field.tag: field.text for field in child} for child in doc]


def test_open311_specification_examples_in_xml_and_json(world, open311):
    """The requests of the GeoReport v2 specification's examples, in both formats: the
    same answers, XML shaped as the specification shows it."""
    client = world
    services = xml_list(open311.get("/open311/v2/services.xml"), "services", "service")
    assert services == [{k: str(v).lower() if isinstance(v, bool) else v for k, v in s.items()}
                        for s in open311.get("/open311/v2/services.json").json()]
    definition = open311.get("/open311/v2/services/sanitation.xml")
    assert ET.fromstring(definition.content).findtext("service_code") == "sanitation"
    assert open311.get("/open311/v2/services/sanitation.json").json() == {"service_code": "sanitation", "attributes": []}
    missing = open311.get("/open311/v2/services/potholes.xml")
    assert missing.status_code == 404 and ET.fromstring(missing.content).findtext("error/code") == "404"

    # The specification's POST example (its fields, our place), without a description: optional.
    form = {"api_key": "xyz", "service_code": "sanitation", "lat": "30.006", "long": "120.004",
            "address_string": "1234 5th street", "email": "smit222@sfgov.edu", "device_id": "tt222111",
            "account_id": "123456", "first_name": "john", "last_name": "smith", "phone": "111111111",
            "media_url": "http://www.example.com/photo.jpg"}
    before = stored(client)
    posted = open311.post("/open311/v2/requests.xml", data=form)
    assert posted.status_code == 201, posted.text
    [receipt] = xml_list(posted, "service_requests", "request")
    assert set(receipt) == {"service_request_id", "service_notice", "account_id"} and receipt["account_id"] is None
    rid = receipt["service_request_id"]
    assert stored(client) == before + 1
    internal = {i["receipt"]: i for i in client.get("/api/incidents").json()["items"]}[rid]
    assert internal["channel"] == "open311" and internal["grid"] == W3 and internal["description"] == ""

    one_xml = xml_list(open311.get(f"/open311/v2/requests/{rid}.xml"), "service_requests", "request")
    one_json = open311.get(f"/open311/v2/requests/{rid}.json").json()
    assert [r["service_request_id"] for r in one_xml] == [rid] and one_xml[0]["status"] == "open"
    assert float(one_xml[0]["lat"]) == one_json[0]["lat"] and one_xml[0]["service_code"] == "sanitation"
    window = {"start_date": "2010-05-24T00:00:00Z", "end_date": "2099-06-24T00:00:00Z", "status": "open"}
    assert rid in {r["service_request_id"] for r in xml_list(open311.get("/open311/v2/requests.xml", params=window),
                                                            "service_requests", "request")}
    for secret in ("smit222", "111111111", "john"):
        assert secret not in open311.get("/open311/v2/requests.xml").text

    # Errors: the specification's <errors> list in XML, the list in JSON.
    bad = open311.post("/open311/v2/requests.xml", data={k: v for k, v in form.items() if k not in ("lat", "long")})
    assert bad.status_code == 400
    assert "address_string alone" in ET.fromstring(bad.content).findtext("error/description")
    assert ET.fromstring(open311.post("/open311/v2/requests.xml", data={**form, "lat": "north"}).content).tag == "errors"
    assert open311.get("/open311/v2/requests/GG20990101-DEADBEEF00.xml").status_code == 404
    assert stored(client) == before + 1

    discovery = ET.fromstring(open311.get("/open311/discovery.xml").content)
    assert discovery.tag == "discovery"
    endpoint = discovery.find("endpoints/endpoint")
    assert endpoint.findtext("specification") == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint.findtext("url").endswith("/open311/v2")
    assert [f.text for f in endpoint.findall("formats/format")] == ["application/json", "text/xml"]
    assert open311.get("/open311/discovery.json").json()["endpoints"][0]["formats"] == ["application/json", "text/xml"]
    assert open311.get("/open311/discovery.yaml").status_code in (400, 404, 422)


def test_category_questions_are_open311_service_definitions(world, open311):
    """An admin gives a category questions; Open311 clients read them as the service's
    definition and answer them as attribute[code] fields; answers are checked and kept."""
    client = world
    questions = [
        {"code": "bin_type", "datatype": "singlevaluelist", "required": True, "description": "垃圾桶类型",
         "values": [{"key": "kitchen", "name": "厨余"}, {"key": "other", "name": "其他"}]},
        {"code": "bags", "datatype": "number", "description": "袋数"},
        {"code": "seen", "datatype": "multivaluelist", "description": "看到了什么",
         "values": [{"key": "smell"}, {"key": "rats"}, {"key": "overflow"}]},
    ]
    r = client.patch("/api/categories/sanitation", json={"attributes": questions})
    assert r.status_code == 200, r.text
    assert [a["order"] for a in r.json()["attributes"]] == [1, 2, 3]
    bad = client.patch("/api/categories/sanitation", json={"attributes": [{"code": "x", "datatype": "singlevaluelist",
                                                                           "description": "无选项"}]})
    assert bad.status_code == 422 and "needs values" in bad.text

    services = {s["service_code"]: s for s in open311.get("/open311/v2/services.json").json()}
    assert services["sanitation"]["metadata"] is True and services["noise"]["metadata"] is False
    definition = open311.get("/open311/v2/services/sanitation.json").json()
    assert [(a["code"], a["required"], a["variable"]) for a in definition["attributes"]] == [
        ("bin_type", True, True), ("bags", False, True), ("seen", False, True)]
    xml = ET.fromstring(open311.get("/open311/v2/services/sanitation.xml").content)
    assert [v.findtext("key") for v in xml.findall("attributes/attribute/values/value")][:2] == ["kitchen", "other"]

    form = {"service_code": "sanitation", "lat": "30.006", "long": "120.004"}
    before = stored(client)
    missing = open311.post("/open311/v2/requests.json", data=form)
    assert missing.status_code == 422 and "bin_type" in missing.json()[0]["description"]
    wrong = open311.post("/open311/v2/requests.json", data={**form, "attribute[bin_type]": "glass"})
    assert wrong.status_code == 422 and "glass" in wrong.json()[0]["description"]
    unasked = open311.post("/open311/v2/requests.json", data={**form, "attribute[bin_type]": "other",
                                                              "attribute[colour]": "red"})
    assert unasked.status_code == 422 and "colour" in unasked.json()[0]["description"]
    assert stored(client) == before
    ok = open311.post("/open311/v2/requests.json", data={**form, "attribute[bin_type]": "kitchen",
                                                         "attribute[bags]": "3", "attribute[seen][]": ["smell", "rats"]})
    assert ok.status_code == 201, ok.text
    rid = ok.json()[0]["service_request_id"]
    internal = {i["receipt"]: i for i in client.get("/api/incidents").json()["items"]}[rid]
    assert client.get(f"/api/incidents/{internal['id']}").json()["attributes"] == {
        "bin_type": "kitchen", "bags": 3.0, "seen": ["smell", "rats"]}
    assert "kitchen" not in open311.get(f"/open311/v2/requests/{rid}.json").text  # answers are not published

    # The staff API takes the same answers, checked the same way.
    r = client.post("/api/incidents", json={"category": "sanitation", "lon": 120.004, "lat": 30.006,
                                            "description": "桶满", "attributes": {"bin_type": "other", "bags": "x"}})
    assert r.status_code == 422 and "bags must be a number" in r.text


def test_open311_jurisdiction_id(world, settings):
    from api.app import create_app

    app = create_app(Settings(database_url=settings.database_url, open311_jurisdiction_id="demo.geogrid.example"))
    with TestClient(app) as c:
        assert c.get("/open311/v2/services.json", params={"jurisdiction_id": "demo.geogrid.example"}).status_code == 200
        assert c.get("/open311/v2/services.json").status_code == 200  # optional where one jurisdiction is served
        other = c.get("/open311/v2/services.xml", params={"jurisdiction_id": "sfgov.org"})
        assert other.status_code == 404 and "sfgov.org" in ET.fromstring(other.content).findtext("error/description")
        before = stored(world)
        refused = c.post("/open311/v2/requests.json", data={"service_code": "sanitation", "lat": "30.006",
                                                            "long": "120.004", "jurisdiction_id": "sfgov.org"})
        assert refused.status_code == 404 and stored(world) == before


# --------------------------------------------------------------------------- 10. bulk import


def history_rows(n: int, seed: int) -> list[dict]:
    """Random incidents over the two towns, a tenth of them exactly on shared edges and
    vertices, some in the blind spot."""
    rng = np.random.default_rng(seed)
    categories = ["sanitation", "dispute", "straw_burning", "safety_hazard", "noise"]
    rows = []
    for i in range(n):
        kind = i % 10
        if kind == 0:  # on a shared edge or vertex
            lon, lat = [(120.01, round(float(rng.uniform(30.0, 30.04)), 4)), (120.02, round(float(rng.uniform(30.0, 30.04)), 4)),
                        (round(float(rng.uniform(120.0, 120.02)), 4), 30.02), (120.01, 30.02), (120.03, 30.035),
                        (MX[int(rng.integers(1, 10))], MY[int(rng.integers(1, 10))])][i // 10 % 6]
        elif kind in (1, 2):  # the micro town
            lon, lat = float(rng.uniform(MX[0], MX[10])), float(rng.uniform(MY[0], MY[10]))
        else:
            lon, lat = float(rng.uniform(120.0, 120.04)), float(rng.uniform(30.0, 30.04))
        category = categories[int(rng.integers(len(categories)))]
        if lon > 120.05 and CATEGORY_LAYER[category] == "environment":
            category = "sanitation"  # the micro town has no environment net: keep it routable to a grid
        day = dt.datetime(2024, 1, 1, 8, tzinfo=TZ) + dt.timedelta(hours=int(rng.integers(0, 24 * 300)))
        rows.append({"lon": round(lon, 7), "lat": round(lat, 7), "category": category, "description": f"历史事件 {i}",
                     "occurred_at": day.isoformat(),
                     "channel": ["hotline_12345", "patrol", "wechat", "walk_in"][i % 4]})
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["lon", "lat", "category", "description", "occurred_at", "channel"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def check_imported(client, rows: list[dict], *, locate_every: int = 0) -> None:
    items = client.get("/api/incidents", params={"limit": 1000}).json()["items"]
    by_description = {i["description"]: i for i in items}
    for k, row in enumerate(rows):
        got = by_description[row["description"]]
        layer = CATEGORY_LAYER[row["category"]]
        want = expected_grid(row["lon"], row["lat"], layer)
        assert got["grid"] == want, (row, got["grid"], want)
        assert got["route_kind"] == ("grid" if want else "blind_spot"), row
        if want is None:
            assert got["authority"] == VE and got["nearest_grid"]["code"] in (E1, E2), (row, got)
        assert (got["lon"], got["lat"]) == (row["lon"], row["lat"])
        assert got["channel"] == row["channel"] and when(got["occurred_at"]) == when(row["occurred_at"])
        if locate_every and (k % locate_every == 0 or row["lon"] in (120.01, 120.02) or row["lat"] == 30.02):
            assert located(client, row["lon"], row["lat"], layer, at=row["occurred_at"]) == want, row


def test_bulk_import_csv_routes_like_single_intake(world, tmp_path):
    client = world
    rows = history_rows(300, seed=7)
    r = client.post("/api/incidents/import",
                    files={"file": ("history.csv", write_csv(tmp_path / "h.csv", rows).read_bytes(), "text/csv")})
    assert r.status_code == 201, r.text
    blind = sum(expected_grid(x["lon"], x["lat"], CATEGORY_LAYER[x["category"]]) is None for x in rows)
    assert blind > 0
    assert r.json() == {"imported": 300, "by_route": {"grid": 300 - blind, "blind_spot": blind}}
    assert stored(client) == 300
    check_imported(client, rows, locate_every=10)
    # Single intake of the same points, dated the same, goes to the same grids.
    items = {i["description"]: i for i in client.get("/api/incidents", params={"limit": 1000}).json()["items"]}
    for row in rows[:40:3]:
        single = created(client, **{k: row[k] for k in ("lon", "lat", "category", "occurred_at", "channel")})
        assert single["grid"] == items[row["description"]]["grid"], row
        assert single["authority"] == items[row["description"]]["authority"], row


def test_bulk_import_refuses_bad_rows_naming_them(world, tmp_path):
    client = world
    rows = history_rows(60, seed=8)
    rows[17]["category"] = "potholes"
    rows[42].update(lon=121.0, lat=31.0)
    r = client.post("/api/incidents/import",
                    files={"file": ("bad.csv", write_csv(tmp_path / "bad.csv", rows).read_bytes(), "text/csv")})
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    assert any(p["index"] == 17 and p["field"] == "category" and "potholes" in p["message"] for p in problems), problems
    assert "nothing was imported" in r.json()["detail"]
    assert stored(client) == 0
    rows[17]["category"] = "sanitation"
    r = client.post("/api/incidents/import",
                    files={"file": ("bad.csv", write_csv(tmp_path / "bad2.csv", rows).read_bytes(), "text/csv")})
    assert r.status_code == 422, r.text
    assert [p["index"] for p in r.json()["problems"]] == [42] and "outside" in said(r)
    assert stored(client) == 0


def test_bulk_import_geojson_points(world, tmp_path):
    client = world
    rows = history_rows(40, seed=9)
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x["lon"], x["lat"]]},
         "properties": {k: x[k] for k in ("category", "description", "occurred_at", "channel")}} for x in rows]}
    r = client.post("/api/incidents/import", files={"file": ("history.geojson", json.dumps(doc, ensure_ascii=False),
                                                             "application/geo+json")})
    assert r.status_code == 201, r.text
    assert r.json()["imported"] == 40
    check_imported(client, rows)


def test_bulk_import_converts_amap_and_baidu_coordinates(world, tmp_path):
    client = world
    rows = history_rows(60, seed=11)
    sent = []
    for i, row in enumerate(rows):
        crs = ("gcj02", "bd09", "wgs84")[i % 3]
        x, y = row["lon"], row["lat"]
        if crs != "wgs84":
            x, y = (float(v) for v in coords.wgs84_to_gcj02(x, y))
        if crs == "bd09":
            x, y = (float(v) for v in coords.gcj02_to_bd09(x, y))
        sent.append({**row, "lon": x, "lat": y, "crs": crs})
    path = tmp_path / "amap.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["lon", "lat", "crs", "category", "description", "occurred_at", "channel"])
        writer.writeheader()
        writer.writerows(sent)
    r = client.post("/api/incidents/import", files={"file": ("amap.csv", path.read_bytes(), "text/csv")})
    assert r.status_code == 201, r.text
    items = {i["description"]: i for i in client.get("/api/incidents", params={"limit": 1000}).json()["items"]}
    moved_grid = 0
    for row, out in zip(rows, sent):
        got = items[row["description"]]
        tolerance = 3e-6 if out["crs"] == "bd09" else 1e-6  # BD-09: see test_bd09_is_converted_within_1e_6_degrees
        assert abs(got["lon"] - row["lon"]) < tolerance and abs(got["lat"] - row["lat"]) < tolerance, (out, got)
        layer = CATEGORY_LAYER[row["category"]]
        assert got["grid"] == expected_grid(got["lon"], got["lat"], layer), row
        assert got["original"] == {"lon": out["lon"], "lat": out["lat"], "crs": out["crs"]}
        moved_grid += expected_grid(out["lon"], out["lat"], layer) != got["grid"]
    assert moved_grid > 10  # uncorrected, many would have landed elsewhere


def test_bulk_import_uses_the_boundaries_in_force_when_each_incident_happened(world, tmp_path):
    client = world
    r = client.patch(f"/api/grids/{W2}", json={"geometry": shapely.geometry.mapping(_box(120.015, 30.02, 120.02, 30.04)),
                                               "note": "重新划分"})
    assert r.status_code == 200, r.text
    after = dt.datetime.now(TZ).isoformat()
    rows = []
    for i, (lon, lat) in enumerate([(120.014, 30.036), (120.012, 30.025), (120.017, 30.03), (120.015, 30.03)] * 3):
        occurred = ("2021-05-01T09:00:00+08:00", "2024-12-31T23:59:00+08:00", after)[i // 4]
        rows.append({"lon": lon, "lat": lat, "category": "sanitation", "description": f"跨期 {i}",
                     "occurred_at": occurred, "channel": "hotline_12345"})
    r = client.post("/api/incidents/import",
                    files={"file": ("span.csv", write_csv(tmp_path / "span.csv", rows).read_bytes(), "text/csv")})
    assert r.status_code == 201, r.text
    items = {i["description"]: i for i in client.get("/api/incidents", params={"limit": 100}).json()["items"]}
    old = [W2, W2, W2, W2]
    new = [None, None, W2, W2]  # W2 now starts at 120.015: the west strip of the old W2 is a blind spot
    for i, row in enumerate(rows):
        want = (old if i < 8 else new)[i % 4]
        got = items[row["description"]]
        assert got["grid"] == want, (row, got["grid"], want)
        assert located(client, row["lon"], row["lat"], "comprehensive", at=row["occurred_at"]) == want, row
        if want is None:  # west of the new W2, east of W1: whichever edge is nearer
            to_w1, to_w2 = (GEOD.inv(row["lon"], row["lat"], x, row["lat"])[2] for x in (120.01, 120.015))
            assert got["authority"] == VW and got["nearest_grid"]["code"] == (W1 if to_w1 < to_w2 else W2), row
            assert abs(got["nearest_grid"]["distance_m"] - min(to_w1, to_w2)) < 2


def test_bulk_import_from_the_command_line(world, tmp_path, settings):
    client = world
    env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url}
    rows = history_rows(120, seed=10)
    bad = [dict(x) for x in rows[:10]]
    bad[3]["category"] = "potholes"
    out = subprocess.run([GEOGRID, "incidents", "import", str(write_csv(tmp_path / "bad.csv", bad))],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1 and out.stderr.startswith("error:") and "row 3" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert stored(client) == 0
    out = subprocess.run([GEOGRID, "incidents", "import", str(write_csv(tmp_path / "ok.csv", rows))],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "imported 120 incidents" in out.stdout
    assert stored(client) == 120
    check_imported(client, rows, locate_every=15)
