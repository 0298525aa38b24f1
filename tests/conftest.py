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
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import text

from geogrid.access import accounts
from geogrid.areas import importing
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
                  "env_informant env_supervisor police",
          "special_group": "dibao wubao tekun empty_nest living_alone left_behind_child disabled "
                           "community_correction petitioner",
          "contact_kind": "central radiating hardship ordinary",
          "request_type": "consultation suggestion complaint"}


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    base = Settings()
    cluster.up(base)
    name, url = cluster.process_database(base, TEST_DB_PREFIX)
    db.migrate(url)
    # More failed logins per account than security/test_access.py's rate-limit test makes (8), so that
    # it meets the per-address limit it is about; tests/security/test_login.py sets its own.
    # No background jobs in the apps tests start: an escalation or facts catch-up running in a
    # module's server thread deadlocked with the next test's TRUNCATE (clean). Tests that are
    # about them run them themselves or set their own interval.
    yield Settings(database_url=url, state_dir=base.state_dir, login_failures_per_account=10,
                   escalation_interval_s=0, facts_interval_s=0)
    db.get_engine(Settings(database_url=url)).dispose()
    cluster.drop_database(base, name)


@pytest.fixture(scope="session")
def engine(settings):
    return db.get_engine(settings)


@pytest.fixture
def other_day(engine, settings) -> Settings:
    """The settings of a jurisdiction that is on another day than the database session
    right now (of UTC+14 and UTC-12 one always is): code that takes "today" from
    PostgreSQL's ``current_date`` instead of the jurisdiction's day is caught at any hour,
    not only between 16:00 and 24:00 UTC."""
    with engine.connect() as conn:
        server = conn.execute(text("SELECT current_date")).scalar_one()
    tz = next(z for z in ("Etc/GMT-14", "Etc/GMT+12") if dt.datetime.now(ZoneInfo(z)).date() != server)
    return settings.model_copy(update={"timezone": tz})


@pytest.fixture
def clean(engine):
    """An empty jurisdiction with the seeded reference lists, before each test that asks."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE login_failure, rate_counter, tile_cache, published_layer, incident_event, incident, patrol, pollution_source, coverage_run, repair_proposal, "
                          "exemption, audit, api_token, role_grant, account, assignment, person, boundary, area, building "
                          "RESTART IDENTITY CASCADE"))
        for table, keys in SEEDED.items():
            conn.execute(text(f"DELETE FROM {table} WHERE key <> ALL(:keys)"), {"keys": keys.split()})
        # Levels inserted above or between others moved the seeded ones down: number them
        # 1, 2, ... again, in their order (through negative ranks: rank is unique).
        conn.execute(text("UPDATE category SET attributes = '[]'::jsonb WHERE attributes <> '[]'::jsonb"))
        conn.execute(text("UPDATE level SET rank = -rank, prefixes_children = true"))
        conn.execute(text("UPDATE level l SET rank = o.n FROM (SELECT key, row_number() OVER (ORDER BY rank DESC) AS n "
                          "FROM level) o WHERE l.key = o.key"))
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


# --------------------------------------------------------------------------- the incident world
# Two towns of grids on two nets, for the incident and environment tests
# (api/test_incidents.py, api/test_environment.py).

TZ = ZoneInfo("Asia/Shanghai")
SINCE = dt.datetime(2020, 1, 1, tzinfo=TZ)  # the world's boundaries are in force since then

COUNTY, TOWN, VW, VE = "339901", "339901100", "339901100001", "339901100002"
W1, W2, W3, W4 = (VW + s for s in ("001", "002", "003", "004"))  # NW, NE, SW, SE quarters of the west village
E1 = VE + "001"  # the west half of the east village
E2 = VE + "002"  # the east village's north-east corner; the rest of the east village is a blind spot
ENV_W, ENV_E = "339901100101", "339901100102"  # the environment net: one grid per village
MTOWN, MVILLAGE = "339901101", "339901101001"  # a town of 0.003° micro grids, 10 x 10
STEP = 0.003
MX = [round(120.1 + i * STEP, 6) for i in range(11)]
MY = [round(30.0 + i * STEP, 6) for i in range(11)]


def _box(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def micro_code(row_from_north: int, col: int) -> str:
    return f"{MVILLAGE}{row_from_north * 10 + col + 1:03d}"


# code -> (name, level, layer, parent, geometry)
AREAS = {
    COUNTY: ("演示县", "county", "admin", None, _box(119.9, 29.9, 120.2, 30.2)),
    TOWN: ("青禾镇", "town", "admin", COUNTY, _box(120.0, 30.0, 120.04, 30.04)),
    VW: ("西村", "village", "admin", TOWN, _box(120.0, 30.0, 120.02, 30.04)),
    VE: ("东村", "village", "admin", TOWN, _box(120.02, 30.0, 120.04, 30.04)),
    W1: ("西村一格", "grid", "comprehensive", VW, _box(120.0, 30.02, 120.01, 30.04)),
    W2: ("西村二格", "grid", "comprehensive", VW, _box(120.01, 30.02, 120.02, 30.04)),
    W3: ("西村三格", "grid", "comprehensive", VW, _box(120.0, 30.0, 120.01, 30.02)),
    W4: ("西村四格", "grid", "comprehensive", VW, _box(120.01, 30.0, 120.02, 30.02)),
    E1: ("东村一格", "grid", "comprehensive", VE, _box(120.02, 30.0, 120.03, 30.04)),
    E2: ("东村二格", "grid", "comprehensive", VE, _box(120.03, 30.03, 120.04, 30.04)),
    ENV_W: ("西村环境网格", "village", "environment", TOWN, _box(120.0, 30.0, 120.02, 30.04)),
    ENV_E: ("东村环境网格", "village", "environment", TOWN, _box(120.02, 30.0, 120.04, 30.04)),
    MTOWN: ("微格镇", "town", "admin", COUNTY, _box(MX[0], MY[0], MX[10], MY[10])),
    MVILLAGE: ("微格村", "village", "admin", MTOWN, _box(MX[0], MY[0], MX[10], MY[10])),
    **{micro_code(r, c): (f"微格{r}-{c}", "grid", "comprehensive", MVILLAGE,
                           _box(MX[c], MY[9 - r], MX[c + 1], MY[10 - r]))
       for r in range(10) for c in range(10)},
}


@pytest.fixture
def world(client, engine, settings):
    """The county, two towns, villages, comprehensive and environment grids, in force
    since 2020 (imported the way an initial load is), so incidents may be dated back.
    (Modules with a world of their own, such as maps/test_maps.py, define their own
    ``world`` fixture, which wins there.)"""
    codes = list(AREAS)
    records = [{"code": c, "name": AREAS[c][0], "level": AREAS[c][1], "layer": AREAS[c][2], "parent": AREAS[c][3]}
               for c in codes]
    with db.transaction(engine) as session:
        importing.import_areas(session, records, [AREAS[c][4] for c in codes], settings, valid_from=SINCE)
    return client


def publish(engine, root: str = "339901", layers=None) -> None:
    """Publish ``layers`` (default: every layer with areas) under ``root`` as a planner
    would: the public endpoints show what is published."""
    from geogrid.publication import generations

    with db.transaction(engine) as session:
        if layers is None:
            layers = session.execute(text("SELECT DISTINCT layer_key FROM area WHERE code LIKE :p ORDER BY 1"),
                                     {"p": root + "%"}).scalars().all()
        for layer in layers:
            generations.publish(session, root, layer=layer)


# --------------------------------------------------------------------------- partitions with injected defects
# For the coverage tests (unit/test_coverage_engine.py, api/test_coverage.py).

GEOD = Geod(ellps="WGS84")


def geod_area(geom: shapely.Geometry) -> float:
    """Area on the WGS84 ellipsoid in m², independent of the engine's projection."""
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))[0])


def close(actual: float, expected: float, rel: float) -> bool:
    return abs(actual - expected) <= rel * abs(expected)


class Partition:
    """A lon/lat rectangle cut into rows x cols quadrilaterals whose interior vertices are
    jittered and shared between neighbours (an exact, edge-matched partition). Defects are
    injected by editing the rings; every injected piece is kept to be measured on its own."""

    def __init__(self, rng: np.random.Generator, bbox: tuple[float, float, float, float], rows: int, cols: int,
                 jitter: float = 0.2):
        x0, y0, x1, y1 = bbox
        self.parent = shapely.box(*bbox)
        self.rows, self.cols = rows, cols
        xs, ys = np.linspace(x0, x1, cols + 1), np.linspace(y0, y1, rows + 1)
        self.dx, self.dy = (x1 - x0) / cols, (y1 - y0) / rows
        v = np.empty((rows + 1, cols + 1, 2))
        for r in range(rows + 1):
            for c in range(cols + 1):
                jx = 0.0 if c in (0, cols) else rng.uniform(-jitter, jitter) * self.dx
                jy = 0.0 if r in (0, rows) else rng.uniform(-jitter, jitter) * self.dy
                v[r, c] = (xs[c] + jx, ys[r] + jy)  # boundary vertices slide along the parent's edge only
        self.v = v
        # CCW rings of vertex tuples; cell index = r * cols + c
        self.rings = [[tuple(v[r, c]), tuple(v[r, c + 1]), tuple(v[r + 1, c + 1]), tuple(v[r + 1, c])]
                      for r in range(rows) for c in range(cols)]

    def cell(self, r: int, c: int) -> int:
        return r * self.cols + c

    def interior_edges(self) -> list[tuple[int, int, tuple, tuple]]:
        """(i, j, a, b): cells i and j share the edge a-b."""
        out = []
        for r in range(self.rows):
            for c in range(self.cols):
                if c + 1 < self.cols:
                    out.append((self.cell(r, c), self.cell(r, c + 1),
                                tuple(self.v[r, c + 1]), tuple(self.v[r + 1, c + 1])))
                if r + 1 < self.rows:
                    out.append((self.cell(r, c), self.cell(r + 1, c),
                                tuple(self.v[r + 1, c]), tuple(self.v[r + 1, c + 1])))
        return out

    def boundary_edges(self) -> list[tuple[int, tuple, tuple]]:
        out = []
        for c in range(self.cols):
            out.append((self.cell(0, c), tuple(self.v[0, c]), tuple(self.v[0, c + 1])))
            out.append((self.cell(self.rows - 1, c), tuple(self.v[self.rows, c]), tuple(self.v[self.rows, c + 1])))
        for r in range(self.rows):
            out.append((self.cell(r, 0), tuple(self.v[r, 0]), tuple(self.v[r + 1, 0])))
            out.append((self.cell(r, self.cols - 1), tuple(self.v[r, self.cols]), tuple(self.v[r + 1, self.cols])))
        return out

    def bend(self, i: int, a: tuple, b: tuple, *, inward: bool, half: float, depth: float,
             j: int | None = None) -> shapely.Polygon:
        """Push the middle of cell i's edge a-b into the cell (``inward``: a notch, land
        that no grid claims any more) or out of it (a bump over neighbour ``j`` or out of
        the parent). ``half``: half the notch's length as a share of the edge; ``depth`` in
        degrees. The two new points on the edge are added to ``j`` too, so that the cells
        stay noded (as a digitiser snapping to vertices leaves them). Returns the
        quadrilateral that changed hands."""
        ring = self.rings[i]
        k = self._edge(ring, a, b)
        p, q = np.array(ring[k]), np.array(ring[(k + 1) % len(ring)])
        d = q - p
        left = np.array([-d[1], d[0]]) / np.hypot(*d)  # the interior side of a CCW ring
        offset = (left if inward else -left) * depth
        p1, q1 = tuple(p + (0.5 - half) * d), tuple(p + (0.5 + half) * d)
        p2, q2 = tuple(np.array(p1) + offset), tuple(np.array(q1) + offset)
        ring[k + 1:k + 1] = [p1, p2, q2, q1]
        if j is not None:
            other = self.rings[j]
            m = self._edge(other, a, b)
            other[m + 1:m + 1] = [q1, p1] if other[m] == tuple(q) else [p1, q1]
            assert self.polygon(j).is_valid
        piece = shapely.Polygon([p1, p2, q2, q1])
        assert piece.is_valid and self.polygon(i).is_valid
        return shapely.orient_polygons(piece)

    @staticmethod
    def _edge(ring: list, a: tuple, b: tuple) -> int:
        n = len(ring)
        return next(k for k in range(n) if {ring[k], ring[(k + 1) % n]} == {a, b})

    def polygon(self, i: int) -> shapely.Polygon:
        return shapely.Polygon(self.rings[i])

    def polygons(self) -> list[shapely.Polygon]:
        return [self.polygon(i) for i in range(len(self.rings))]


def inject(part: Partition, rng: np.random.Generator, gaps: int, overlaps: int, spills: int = 0, *,
           depth: float = 0.12, spill_depth: float = 0.04) -> dict:
    """Inject defects on distinct cells (each cell takes part in one defect at most, so the
    pieces stay apart). Returns {"gap": [(codes, piece)], "overlap": [...], "spill_over": [...]}."""
    used: set[int] = set()
    edges = part.interior_edges()
    order = rng.permutation(len(edges))
    unit = min(part.dx, part.dy)
    out: dict[str, list] = {"gap": [], "overlap": [], "spill_over": []}
    wanted = ["gap"] * gaps + ["overlap"] * overlaps
    for k in order:
        if not wanted:
            break
        i, j, a, b = edges[k]
        if i in used or j in used:
            continue
        kind = wanted.pop(0)
        if rng.random() < 0.5:
            i, j = j, i
        piece = part.bend(i, a, b, inward=kind == "gap", half=rng.uniform(0.1, 0.2),
                          depth=rng.uniform(0.04, depth) * unit, j=j)
        used |= {i, j}
        out[kind].append(({i, j}, piece))
    for k in rng.permutation(len(part.boundary_edges())):
        if len(out["spill_over"]) == spills:
            break
        i, a, b = part.boundary_edges()[k]
        if i in used:
            continue
        piece = part.bend(i, a, b, inward=False, half=0.1, depth=rng.uniform(0.01, spill_depth) * unit)
        used.add(i)
        out["spill_over"].append(({i}, piece))
    return out
