"""Reads from a hot standby (issue 14): lag-tolerant reads (locate, public lists, OGC,
tiles, places, Open311) come from the standby; a client's own writes are read back from
the primary until the standby has replayed them (the ``geogrid_lsn`` cookie, or
``Geogrid-Min-LSN`` for bearer clients); a token made on the primary a moment ago is
honoured on the standby; a standby that stops or falls behind takes no reads, and reads
go back to it once it is healthy. A real primary and standby (``replicated``), the demo
town loaded on the primary; replay is paused on the standby where a test needs it behind.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter

import httpx
import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import make_url, text

from api.app import create_app
from geogrid.access import accounts
from geogrid.db import cluster
from geogrid.db import engine as db
from geogrid.io import demo
from geogrid.publication import tiles

from .conftest import until

TOWN = demo.TOWN
USER, PASSWORD = "read-routing-planner", "read routing password 1"
LSN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def standby_sql(settings, sql: str):
    """One statement on the standby (as the cluster's superuser), its first value."""
    with psycopg.connect(_libpq(settings.replica_urls[0]), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


def primary_lsn(settings) -> str:
    with db.get_engine(settings).connect() as conn:
        return conn.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar_one()


def wait_replayed(settings, lsn: str | None = None, timeout: float = 30.0) -> None:
    """Until the standby has replayed the primary's WAL up to ``lsn`` (default: now)."""
    lsn = lsn or primary_lsn(settings)
    deadline = time.monotonic() + timeout
    while not standby_sql(settings, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"):
        assert time.monotonic() < deadline, f"the standby did not replay {lsn} within {timeout} s"
        time.sleep(0.05)


def commit(settings) -> None:
    """A transaction with a commit record on the primary (an xid, nothing stored)."""
    with db.get_engine(settings).begin() as conn:
        conn.execute(text("SELECT pg_current_xact_id()"))


@contextlib.contextmanager
def replay_paused(settings):
    """The standby receives WAL but applies none of it (a standby behind, on demand)."""
    commit(settings)  # the standby's lag clock starts now
    wait_replayed(settings)
    standby_sql(settings, "SELECT pg_wal_replay_pause()")
    try:
        deadline = time.monotonic() + 10
        while standby_sql(settings, "SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, "replay did not pause"
            time.sleep(0.05)
        yield
    finally:
        standby_sql(settings, "SELECT pg_wal_replay_resume()")


def serve(app, cleanup: contextlib.ExitStack) -> str:
    """``app`` on uvicorn on a free loopback port until ``cleanup`` closes; its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def stop():
        server.should_exit = True
        thread.join(timeout=20)

    cleanup.callback(stop)
    until(lambda: server.started, 20, "uvicorn started")
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}"




@pytest.fixture(scope="module")
def world(replicated, tmp_path_factory):
    """The demo town on the primary (published), an extra planner, all replayed; settings
    for an app without background jobs and with a generous lag allowance."""
    settings = replicated.model_copy(update={"escalation_interval_s": 0, "facts_interval_s": 0,
                                             "replica_max_lag_s": 600.0, "public_reports_per_minute": 10_000})
    engine = db.get_engine(settings)
    demo.load(engine, settings, tmp_path_factory.mktemp("demo"), cases=False)
    with db.transaction(engine) as session:
        if not session.execute(text("SELECT 1 FROM account WHERE username = :u"), {"u": USER}).first():
            accounts.create_account(session, USER, PASSWORD)
            accounts.grant(session, USER, "planner", TOWN)
    with engine.connect() as conn:
        lon, lat = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(b.geom) AS p FROM boundary b "
            "JOIN area a ON a.id = b.area_id WHERE a.code = :c AND upper_inf(b.valid)) s"), {"c": TOWN}).one()
    wait_replayed(settings)
    return settings, (lon, lat)


@pytest.fixture
def app(world):
    return create_app(world[0])


@pytest.fixture
def point(world):
    return world[1]


def locate(client, point, **kw) -> httpx.Response:
    return client.get("/api/locate", params={"lon": point[0], "lat": point[1]}, **kw)


def login(client) -> dict:
    r = client.post("/api/token", data={"username": USER, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def report(client, point, **kw) -> httpx.Response:
    r = client.post("/api/public/reports", json={"category": "sanitation", "lon": point[0], "lat": point[1],
                                                 "description": "read-routing test"}, **kw)
    assert r.status_code == 201, r.text
    return r


def test_public_reads_come_from_the_standby(app, point):
    with TestClient(app) as anon:
        r = locate(anon, point)
        assert r.status_code == 200 and r.headers["Geogrid-Read-From"] == "standby"
        assert any(x["code"] == TOWN for x in r.json()["results"])
        for path, params in [("/api/grids", {"limit": 3}), (f"/api/areas/{TOWN}", {}),
                             (f"/api/areas/{TOWN}/history", {}), ("/ogc/collections", {}),
                             ("/ogc/collections/comprehensive/items", {"limit": 2}),
                             ("/api/public/places", {"q": "村", "area": TOWN}),
                             ("/open311/v2/services.json", {}), ("/tiles/comprehensive.json", {})]:
            r = anon.get(path, params=params)
            assert r.status_code == 200, (path, r.text)
            assert r.headers["Geogrid-Read-From"] == "standby", path
        assert anon.get("/api/grids", params={"limit": 3}).json()["features"]
        # Not a lag-tolerant read: no header, and the primary as always.
        assert "Geogrid-Read-From" not in anon.get("/api/categories").headers
        # Staff reading the areas they edit read the primary; locate stays on the standby.
        staff = login(anon)
        anon.cookies.clear()
        assert anon.get("/api/grids", params={"limit": 3}, headers=staff).headers["Geogrid-Read-From"] == "primary"
        r = locate(anon, point, headers=staff)
        assert r.status_code == 200 and r.headers["Geogrid-Read-From"] == "standby"


def test_a_tile_cut_on_the_standby_is_cached_on_the_primary(world, app, point):
    settings, _ = world
    z = 16  # deeper than any publication seeds
    x, y = tiles.tile_at(point[0], point[1], z)
    with db.get_engine(settings).begin() as conn:
        conn.execute(text("DELETE FROM tile_cache WHERE layer_key = 'comprehensive' AND z = :z AND x = :x AND y = :y"),
                     {"z": z, "x": x, "y": y})
    wait_replayed(settings)
    with TestClient(app) as anon:
        r = anon.get(f"/tiles/comprehensive/{z}/{x}/{y}.mvt")
        assert r.status_code == 200 and r.content
        assert (r.headers["Geogrid-Read-From"], r.headers["X-Tile-Cache"]) == ("standby", "miss")
        with db.get_engine(settings).connect() as conn:
            etag = conn.execute(text("SELECT etag FROM tile_cache WHERE layer_key = 'comprehensive' AND z = :z "
                                     "AND x = :x AND y = :y"), {"z": z, "x": x, "y": y}).scalar_one()
        assert f'"{etag}"' == r.headers["ETag"]
        wait_replayed(settings)
        again = anon.get(f"/tiles/comprehensive/{z}/{x}/{y}.mvt")
        assert (again.headers["Geogrid-Read-From"], again.headers["X-Tile-Cache"]) == ("standby", "hit")
        assert again.content == r.content


def test_a_writer_reads_its_own_write_from_the_primary(world, app, point):
    settings, _ = world
    with TestClient(app) as writer, TestClient(app) as other, replay_paused(settings):
        r = report(writer, point)
        lsn = r.headers["Geogrid-LSN"]
        assert LSN.fullmatch(lsn)
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"geogrid_lsn={lsn};")
        assert {"HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=5"} <= {p.strip() for p in cookie.split(";")}
        receipt = r.json()["receipt"]
        mine = writer.get(f"/api/public/reports/{receipt}")
        assert mine.status_code == 200 and mine.headers["Geogrid-Read-From"] == "primary"
        assert mine.json()["receipt"] == receipt
        # Anyone else reads the standby, which has not replayed the report yet.
        theirs = other.get(f"/api/public/reports/{receipt}")
        assert theirs.status_code == 404 and theirs.headers["Geogrid-Read-From"] == "standby"
    wait_replayed(settings, lsn)
    with TestClient(app) as writer:  # the same position, once replayed: the standby will do
        writer.cookies.set("geogrid_lsn", lsn)
        back = writer.get(f"/api/public/reports/{receipt}")
        assert back.status_code == 200 and back.headers["Geogrid-Read-From"] == "standby"


def test_min_lsn_and_fresh_tokens_for_bearer_clients(world, app, point):
    settings, _ = world
    with TestClient(app) as c, replay_paused(settings):
        staff = login(c)  # its token is on the primary only
        c.cookies.clear()  # a script keeps no cookies
        r = locate(c, point, headers=staff)
        assert r.status_code == 200 and r.headers["Geogrid-Read-From"] == "standby"
        assert locate(c, point, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        written = report(c, point, headers=staff)
        c.cookies.clear()
        lsn, receipt = written.headers["Geogrid-LSN"], written.json()["receipt"]
        read = c.get(f"/api/public/reports/{receipt}", headers={**staff, "Geogrid-Min-LSN": lsn})
        assert read.status_code == 200 and read.headers["Geogrid-Read-From"] == "primary"
        blind = c.get(f"/api/public/reports/{receipt}", headers=staff)
        assert blind.status_code == 404 and blind.headers["Geogrid-Read-From"] == "standby"
    wait_replayed(settings, lsn)
    with TestClient(app) as c:
        read = c.get(f"/api/public/reports/{receipt}", headers={"Geogrid-Min-LSN": lsn})
        assert read.status_code == 200 and read.headers["Geogrid-Read-From"] == "standby"


def test_without_standbys_everything_reads_the_primary_and_writes_carry_no_lsn(world, point):
    settings, _ = world
    app = create_app(settings.model_copy(update={"replica_urls": []}))
    assert not app.state.reads
    with TestClient(app) as c:
        r = locate(c, point, headers={"Geogrid-Min-LSN": "0/1"})
        assert r.status_code == 200 and r.headers["Geogrid-Read-From"] == "primary"
        written = report(c, point)
        assert "Geogrid-LSN" not in written.headers and "geogrid_lsn" not in c.cookies


@pytest.mark.parametrize("value", ["garbage", "1/2/3", "ZZ/1", "123456789/0", "0/" + "F" * 500, "-1/5", "\u00e9/1"])
def test_a_malformed_lsn_reads_the_primary(app, point, value):
    with TestClient(app) as c:
        r = locate(c, point, headers={"Geogrid-Min-LSN": value.encode()})
        assert r.status_code == 200 and r.headers["Geogrid-Read-From"] == "primary"
        r = locate(c, point, headers={"Cookie": b"geogrid_lsn=" + value.encode()})
        assert r.status_code == 200 and r.headers["Geogrid-Read-From"] == "primary"


def test_a_standby_behind_takes_no_reads(world, point):
    settings, _ = world
    app = create_app(settings.model_copy(update={"replica_max_lag_s": 0.5}))
    with TestClient(app) as c:
        assert locate(c, point).headers["Geogrid-Read-From"] == "standby"
        with replay_paused(settings):
            commit(settings)  # WAL the standby receives and does not apply
            until(lambda: locate(c, point).headers["Geogrid-Read-From"] == "primary", 15, "reads left the lagging standby")
            assert [s["lag_s"] > 0.5 for s in app.state.reads.status()] == [True]
        until(lambda: locate(c, point).headers["Geogrid-Read-From"] == "standby", 15, "reads came back to the standby")


def _stop_standby(settings) -> None:
    assert cluster.down(settings, only="standby1")


def _start_standby(settings) -> None:
    cluster.start(settings, only="standby1")


def test_reads_survive_a_standby_stopping(world, point):
    """A standby stopped under read load (4 clients, a real server): every read answers 200,
    from the primary while the standby is down, and from the standby again once it is back."""
    settings, _ = world
    seen: Counter = Counter()
    failures: list = []
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        app = create_app(settings)
        base = serve(app, stack)

        def reader():
            with httpx.Client(base_url=base, timeout=30) as client:
                while not stop.is_set():
                    r = locate(client, point)
                    seen[(r.status_code, r.headers.get("Geogrid-Read-From"))] += 1
                    if r.status_code != 200:
                        failures.append((r.status_code, r.text[:200]))

        threads = [threading.Thread(target=reader, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            until(lambda: seen[(200, "standby")] >= 20, 30, "reads from the standby")
            _stop_standby(settings)
            during = seen[(200, "primary")]
            until(lambda: seen[(200, "primary")] >= during + 20, 30, "reads from the primary with the standby down")
            _start_standby(settings)
            back = seen[(200, "standby")]
            until(lambda: seen[(200, "standby")] >= back + 20, 30, "reads back on the standby")
            # Restarted, the standby streams from the start of a segment (behind what it has
            # replayed): with the primary idle since before the stop, it is caught up, not
            # as far behind as the last commit is old.
            assert app.state.reads.status()[0]["lag_s"] < 1.0
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
            with contextlib.suppress(Exception):
                _start_standby(settings)
    assert not failures, failures[:5]

