"""Test fixtures: a real PostgreSQL + PostGIS (the project's own local cluster, or
GEOGRID_DATABASE_URL), a throw-away ``geogrid_test`` database migrated with Alembic, and
the FastAPI app on top of it. Nothing is mocked."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from geogrid.access import accounts
from geogrid.core.settings import Settings
from geogrid.db import cluster
from geogrid.db import engine as db

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
# One database per test process, so that concurrent runs (CI, a developer, an editor's
# test runner) never share one.
TEST_DB_PREFIX = "geogrid_test_"
SEEDED = {"level": "province city county town village grid microgrid",
          "layer": "admin comprehensive environment safety fire enterprise",
          "role": "grid_leader grid_worker_fulltime grid_worker_parttime instructor building_head "
                  "env_informant env_supervisor police"}


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    base = Settings()
    cluster.up(base)
    name, url = cluster.process_database(base, TEST_DB_PREFIX)
    db.migrate(url)
    # More failed logins per account than test_access's rate-limit test makes (8), so that
    # it meets the per-address limit it is about; tests/security/test_login.py sets its own.
    yield Settings(database_url=url, state_dir=base.state_dir, login_failures_per_account=10)
    db.get_engine(Settings(database_url=url)).dispose()
    cluster.drop_database(base, name)


@pytest.fixture(scope="session")
def engine(settings):
    return db.get_engine(settings)


@pytest.fixture
def clean(engine):
    """An empty jurisdiction with the seeded reference lists, before each test that asks."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE login_failure, rate_counter, incident_event, incident, patrol, pollution_source, coverage_run, repair_proposal, "
                          "exemption, audit, api_token, role_grant, account, assignment, person, boundary, area "
                          "RESTART IDENTITY CASCADE"))
        for table, keys in SEEDED.items():
            conn.execute(text(f"DELETE FROM {table} WHERE key <> ALL(:keys)"), {"keys": keys.split()})
    return engine


PASSWORD = "correct horse battery"


@pytest.fixture
def make_user(clean):
    """make_user(name, (role, area_code), ...) -> Authorization headers of a fresh account."""

    def make(username: str, *grants: tuple[str, str | None]) -> dict:
        with db.transaction(clean) as session:
            accounts.create_account(session, username, PASSWORD)
            for role, area in grants:
                accounts.grant(session, username, role, area)
            token = accounts.login(session, username, PASSWORD, dt.timedelta(hours=1))["access_token"]
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def app(settings):
    from api.app import create_app

    return create_app(settings)


@pytest.fixture
def client(app, clean, make_user):
    """A client logged in as a global admin."""
    with TestClient(app) as c:
        c.headers.update(make_user("root-admin", ("admin", None)))
        yield c


@pytest.fixture
def anon(app, clean):
    """A client without a token: the public."""
    with TestClient(app) as c:
        yield c


# --------------------------------------------------------------------------- small builders


def square(x: float, y: float, size: float = 0.01) -> dict:
    """A GeoJSON square with its south-west corner at (x, y), lon/lat degrees."""
    return shapely.geometry.mapping(shapely.box(x, y, x + size, y + size))


def feature(geometry: dict, **properties) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def collection(*features: dict) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


@pytest.fixture
def town(client):
    """A county (339901) with one town (339901100, a 0.04° square at 120.0, 30.0) and two
    villages splitting it west/east (339901100001, 339901100002)."""
    r = client.post("/api/areas", json=collection(
        feature(square(119.9, 29.9, 0.3), code="339901", name="演示县", level="county"),
        feature(square(120.0, 30.0, 0.04), code="339901100", name="青禾镇", level="town", parent="339901"),
        feature(shapely.geometry.mapping(shapely.box(120.0, 30.0, 120.02, 30.04)),
                code="339901100001", name="西村", level="village", parent="339901100"),
        feature(shapely.geometry.mapping(shapely.box(120.02, 30.0, 120.04, 30.04)),
                code="339901100002", name="东村", level="village", parent="339901100"),
    ))
    assert r.status_code == 201, r.text
    return r.json()


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_in_thread(app, cleanup) -> str:
    """Serve ``app`` with uvicorn on a free loopback port until ``cleanup`` (an ExitStack)
    closes; returns its base URL. For tests that need a real HTTP server (browsers)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def stop():
        server.should_exit = True
        thread.join(timeout=20)

    cleanup.callback(stop)
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    return f"http://127.0.0.1:{port}"
