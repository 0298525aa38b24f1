"""The authorisation matrix (issue 9): every route of the app × every kind of caller ×
an object in the caller's scope and one out of it → the expected status; after every
refused request nothing changed (row counts and contents of every table, the audit log's
last id); after every accepted write the audit trail has a new row.

The routes come from the app's own route table, so a new route without a row here fails
the suite, and a row for a route that is gone fails too.

The world: county 339901 with towns A (339901100) and B (339901101), one village each, two
comprehensive grids per village with a gap between them (so a repair proposal changes
something), one environment grid per village, a person with a post, incidents (one
reported, one dispatched; town A's are of the sanitation department's category, town B's
of another department's), a pollution source, a patrol, an exemption, two stored coverage
runs and a repair proposal per town, and a score sheet per town (its grids, monthly; last
month computed), and a household of the register per town (in its west grid) with one
resident tagged 低保 (issue 12). The grid worker also holds ``resident_data`` on town A
(it reads residents there); the planner holds no resident_data, so the resident rows name
the grid worker alone. The callers hold their grants on town A; the
department handler holds the sanitation department and no area. The world is built once
for the module; a request that uses an object up gets a fresh one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
import shapely
from conftest import PASSWORD, SEEDED
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import text

from geogrid.access import accounts
from geogrid.db import engine as db

COUNTY = "339901"
TOWN = {"A": "339901100", "B": "339901101"}
VILLAGE = {t: c + "001" for t, c in TOWN.items()}
GRID1 = {t: c + "001" for t, c in VILLAGE.items()}   # west grid of the village
GRID2 = {t: c + "002" for t, c in VILLAGE.items()}   # east grid, a 48 m gap away
ENV = {t: c + "101" for t, c in VILLAGE.items()}     # the environment grid: the whole village
X = {"A": 120.0, "B": 120.1}
CATEGORY = {"A": "sanitation", "B": "dispute"}       # departments 环卫所 and 综治中心
HANDLER_DEPARTMENT = "环卫所"
NOWHERE = (121.0, 31.0)  # inside the service extent, outside every area

# Callers and the access role each holds (on town A; the handler on a department).
CALLERS = ("anonymous", "no_role", "grid_worker", "inspector", "planner", "handler", "admin")
ROLE = {"no_role": None, "grid_worker": "grid_worker", "inspector": "inspector", "planner": "planner",
        "handler": "department_handler", "admin": "admin"}
AREA_CALLERS = ("grid_worker", "inspector", "planner")

PUBLIC = "public"           # anyone, no token needed
ANY_ACCOUNT = "account"     # any valid token, whatever its roles
STAFF = frozenset({"grid_worker", "inspector", "planner", "department_handler"})
PLANNER = frozenset({"planner"})
ADMIN = frozenset()         # admins only
CENTRE = frozenset({"inspector", "planner"})
PATROLLERS = frozenset({"grid_worker", "inspector"})
READERS = frozenset({"grid_worker", "inspector", "planner"})  # results of score sheets

DOCS = {"/docs": "text/html", "/redoc": "text/html", "/openapi.json": "application/json",
        "/docs/oauth2-redirect": "text/html"}
# Tables that count attempts (login throttle, rate limits): they change by design on refusals.
BOOKKEEPING = {"login_failure", "rate_counter", "alembic_version", "spatial_ref_sys"}
# Tables whose rows a refused request may not add but whose contents say nothing of the
# domain (a token's last use, say): compared by count only.
COUNT_ONLY = {"api_token"}


def box(x0: float, y0: float, x1: float, y1: float) -> dict:
    return shapely.geometry.mapping(shapely.box(x0, y0, x1, y1))


def feature(geometry: dict, **properties) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def collection(*features: dict) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


# --------------------------------------------------------------------------- the route table


def app_routes(app) -> list[tuple[str, str]]:
    """(METHOD, path template) of every route the app answers, read from its route table
    (included routers flattened; routes hidden from the schema included)."""
    try:
        from fastapi.routing import iter_route_contexts

        contexts = [(c.path, c.methods) for c in iter_route_contexts(app.routes)]
    except ImportError:  # FastAPI before lazy router inclusion: app.routes is already flat
        contexts = [(r.path, getattr(r, "methods", None)) for r in app.routes]
    out = []
    for path, methods in contexts:
        if path in DOCS:  # tested on their own: open to everyone
            continue
        for method in sorted((methods or {"ANY"}) - {"HEAD"}):
            out.append((method, path))
    return out


# --------------------------------------------------------------------------- requests and rows


@dataclasses.dataclass
class Req:
    method: str
    path: str
    params: dict | None = None
    json: object = None
    data: dict | None = None
    files: dict | None = None
    headers: dict | None = None  # replaces the caller's headers (a fresh token for logout)


@dataclasses.dataclass
class Row:
    """One route: who may call it, how to build the request for each scope, what success is.

    ``roles``: PUBLIC, ANY_ACCOUNT, or the access roles besides admin that may call it.
    ``scopes``: names of the objects tried; "in" is town A's (the callers' own), "any" an
    unscoped request, every other scope is outside town A. ``handler_in``: the scopes the
    department handler reaches (its department's cases); it holds no area.
    ``invalid``: scopes refused as bad input for every caller who may call the route (the
    same answer whether the object exists or not, so it reveals nothing).
    ``kind``: "read" of a private object, "list" (200, only rows in scope), "write",
    "session" (log in/out: no audit row). ``trail``: where an accepted write is recorded.
    """

    roles: object
    build: Callable
    ok: int | dict = 200
    scopes: tuple = ("any",)
    kind: str = "read"
    handler_in: frozenset = frozenset()
    trail: str | None = None
    found: Callable | None = None      # lists: the keys of the rows in a response
    markers: Callable | None = None    # lists: (keys of town A's objects, keys of town B's)
    browser_redirect: bool = False     # maps: a browser without a login goes to /maps/login
    invalid: frozenset = frozenset()   # scopes whose request is bad input whoever sends it

    def success(self, scope: str) -> int:
        return self.ok[scope] if isinstance(self.ok, dict) else self.ok

    def reaches(self, caller: str, scope: str) -> bool:
        if scope == "any":
            return True
        if caller == "handler":
            return scope in self.handler_in
        return scope == "in"

    def expected(self, caller: str, scope: str) -> int:
        if self.roles == PUBLIC:
            return self.success(scope)
        if caller == "anonymous":
            return 401
        if caller == "admin" or self.roles == ANY_ACCOUNT:
            return self.success(scope)
        if ROLE[caller] not in self.roles:
            return 403
        if scope in self.invalid:
            return self.success(scope)
        if self.kind == "list" or self.reaches(caller, scope):
            return self.success(scope)
        return 403


# --------------------------------------------------------------------------- the world


class World:
    """The fixture world and builders of fresh objects for requests that use one up."""

    def __init__(self, app, engine):
        self.app = app
        self.engine = engine
        self.seq = itertools.count(1)
        self.usernames = {"no_role": "nobody", "grid_worker": "worker-a", "inspector": "inspector-a",
                          "planner": "planner-a", "handler": "handler-sanitation", "admin": "root-admin"}
        self.admin = TestClient(app)
        self.admin.headers.update(self.user("admin", "admin"))
        self.http = TestClient(app)  # the callers' requests: no default headers, no cookies kept
        self.ids: dict = {}
        self._areas()
        self.headers = {
            "anonymous": {},
            "no_role": self.user("no_role", None),
            "grid_worker": self.user("grid_worker", "grid_worker", TOWN["A"]),
            "inspector": self.user("inspector", "inspector", TOWN["A"]),
            "planner": self.user("planner", "planner", TOWN["A"]),
            "handler": self.user("handler", "department_handler", department=HANDLER_DEPARTMENT),
            "admin": dict(self.admin.headers),
        }
        self.spare = self.account()
        for t in "AB":
            self.ids[("person", t)] = self.person()
            self.ids[("assignment", t)] = self.assignment(t, self.ids[("person", t)], GRID1[t])
            self.ids[("reported", t)] = self.incident(t)
            self.ids[("dispatched", t)] = self.incident(t, "dispatched")
            self.ids[("source", t)] = self.source(t)
            self.ids[("patrol", t)] = self.call("post", "/api/patrols", 201, json={
                "grid": ENV[t], "at": (dt.datetime.now(dt.UTC) - dt.timedelta(days=11)).isoformat()})["id"]
            self.ids[("exemption", t)] = self.exemption(t)
            self.ids[("run1", t)] = self.call("get", "/api/coverage", 200, params={"area": VILLAGE[t]})["id"]
            self.ids[("run2", t)] = self.call("get", "/api/coverage", 200, params={"area": VILLAGE[t]})["id"]
            self.ids[("proposal", t)] = self.proposal(t)
            self.ids[("scheme", t)] = self.scheme(t)
        self.overdue()
        self.contacts()
        self.register()
        # The public endpoints show what was published: every layer, once.
        for layer in ("admin", "comprehensive", "environment"):
            self.ids[("publication", layer)] = self.call("post", "/api/publications", 201,
                                                         json={"area": COUNTY, "layer": layer})["id"]

    # -- helpers

    def call(self, method: str, path: str, status: int, **kw):
        r = self.admin.request(method, path, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else r

    def n(self) -> int:
        return next(self.seq)

    def _areas(self) -> None:
        features = [feature(box(119.9, 29.9, 120.3, 30.2), code=COUNTY, name="演示县", level="county")]
        for t, x in X.items():
            features += [
                feature(box(x, 30.0, x + 0.04, 30.04), code=TOWN[t], name=f"{t}镇", level="town", parent=COUNTY),
                feature(box(x, 30.0, x + 0.04, 30.04), code=VILLAGE[t], name=f"{t}村", level="village",
                        parent=TOWN[t]),
                feature(box(x, 30.0, x + 0.02, 30.04), code=GRID1[t], name=f"{t}西格", level="grid",
                        layer="comprehensive", parent=VILLAGE[t]),
                feature(box(x + 0.0205, 30.0, x + 0.04, 30.04), code=GRID2[t], name=f"{t}东格", level="grid",
                        layer="comprehensive", parent=VILLAGE[t]),
                feature(box(x, 30.0, x + 0.04, 30.04), code=ENV[t], name=f"{t}环境网格", level="grid",
                        layer="environment", parent=VILLAGE[t]),
            ]
        self.call("post", "/api/areas", 201, json=collection(*features))

    def user(self, caller: str, role: str | None, area: str | None = None, department: str | None = None) -> dict:
        """The caller's account with its one grant; its Authorization header."""
        name = self.usernames[caller]
        with db.transaction(self.engine) as session:
            accounts.create_account(session, name, PASSWORD)
            if role:
                accounts.grant(session, name, role, area, department)
            token = accounts.login(session, name, PASSWORD, dt.timedelta(hours=2))["access_token"]
        return {"Authorization": f"Bearer {token}"}

    def account(self, grant: tuple[str, str] | None = None) -> str:
        name = f"spare{self.n()}"
        with db.transaction(self.engine) as session:
            accounts.create_account(session, name, PASSWORD)
            if grant:
                accounts.grant(session, name, *grant)
        return name

    def token_of(self, caller: str) -> dict:
        """A new token for the caller's account (logging out uses one up)."""
        if caller == "anonymous":
            return {}
        with db.transaction(self.engine) as session:
            token = accounts.login(session, self.usernames[caller], PASSWORD, dt.timedelta(hours=1))["access_token"]
        return {"Authorization": f"Bearer {token}"}

    def person(self, town: str | None = None) -> int:
        """A person; with ``town``, holding a post on that town's west grid."""
        n = self.n()
        person = self.call("post", "/api/persons", 201, json={
            "name": f"人员{n}", "phone": f"1380000{n:04d}", "notes": f"private note {n}"})["id"]
        if town:
            self.assignment(town, person, GRID1[town])
        return person

    def assignment(self, town: str, person: int, area: str, role: str = "grid_leader") -> int:
        return self.call("post", "/api/assignments", 201, json={
            "person": person, "area": area, "role": role, "start_date": "2020-01-01"})[0]["id"]

    def incident(self, town: str, state: str = "reported") -> dict:
        case = self.call("post", "/api/incidents", 201, json={
            "category": CATEGORY[town], "lon": X[town] + 0.005, "lat": 30.01, "description": f"事件{self.n()}"})
        path = {"dispatched": ["accepted", "filed", "dispatched"],
                "closed": ["accepted", "filed", "dispatched", "in_progress", "handled", "verified", "closed"]}.get(state, [])
        for to in path:
            case = self.call("post", f"/api/incidents/{case['id']}/transitions", 200, json={"to": to})
        return {"id": case["id"], "receipt": case["receipt"]}

    def overdue(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE incident SET due_at = now() - interval '1 day' "
                              "WHERE state NOT IN ('closed', 'void', 'parked')"))

    def source(self, town: str) -> int:
        return self.call("post", "/api/sources", 201, json={
            "name": f"{town}镇化工厂{self.n()}", "kind": "enterprise", "lon": X[town] + 0.01, "lat": 30.02,
            "key_supervision": True, "notes": "private"})["id"]

    def exemption(self, town: str) -> int:
        x = X[town]
        return self.call("post", "/api/exemptions", 201, json={
            "area": VILLAGE[town], "kind": "lake", "name": f"湖{self.n()}",
            "geometry": box(x + 0.03, 30.03, x + 0.035, 30.035)})["id"]

    def proposal(self, town: str) -> int:
        return self.call("post", "/api/coverage/repairs", 201, json={"area": VILLAGE[town], "gap_width_m": 100})["id"]

    def scheme(self, town: str, state: str | None = None) -> int:
        """A score sheet of the town's grids: this month computed, or last month (before
        the world's grids were drawn: no targets) taken to ``state``."""
        scheme = self.call("post", "/api/assessment/schemes", 201, json={
            "area": TOWN[town], "name": f"网格考核{self.n()}", "total": 100, "target_kind": "grid",
            "period_kind": "month", "items": SCHEME_ITEMS})["id"]
        if state is None:
            self.call("post", f"/api/assessment/schemes/{scheme}/periods/{THIS_MONTH}/compute", 200)
        else:
            for step in ("compute", "review", "freeze")[:STATES.index(state) + 1]:
                self.call("post", f"/api/assessment/schemes/{scheme}/periods/{PAST}/{step}", 200)
        return scheme

    def grid(self, town: str) -> str:
        x = X[town]
        return self.call("post", "/api/grids", 201, json=feature(
            box(x + 0.001, 30.001, x + 0.002, 30.002), name=f"新格{self.n()}", parent=VILLAGE[town]))["codes"][0]

    def village(self, town: str) -> str:
        x = X[town]
        return self.call("post", "/api/areas", 201, json=feature(
            box(x + 0.001, 30.001, x + 0.003, 30.003), name=f"新村{self.n()}", level="village",
            parent=TOWN[town]))["codes"][0]

    def layer(self) -> str:
        key = f"net{self.n()}"
        self.call("post", "/api/layers", 201, json={"key": key, "name_zh": "新网", "name_en": "New net"})
        return key

    # -- the household register (issue 12)

    def register(self) -> None:
        """resident_data for the grid worker on town A, and a household with a tagged resident per town."""
        with db.transaction(self.engine) as session:
            accounts.grant(session, self.usernames["grid_worker"], "resident_data", TOWN["A"])
        for t in "AB":
            ref = self.household_ref(t)
            self.call("post", "/api/households/import", 201, files=register_upload(t, ref))
            hid = self.call("get", "/api/households", 200, params={"q": ref})["items"][0]["id"]
            self.ids[("household", t)] = hid
            resident = self.call("get", f"/api/households/{hid}/residents", 200)[0]
            self.ids[("resident", t)] = resident["id"]
            self.ids[("resident_tag", t)] = resident["tags"][0]["id"]

    def household_ref(self, town: str) -> str:
        return f"HH-{town}-{self.n()}"

    # -- contact links and visits (issue 12)

    def contacts(self) -> None:
        """Per town a household of its west grid linked (central) to the town's person, and a visit to it."""
        for t in "AB":
            self.ids[("contact_household", t)] = self.contact_household(t)
            self.ids[("link", t)] = self.contact_link(t, self.ids[("contact_household", t)])
            self.ids[("visit", t)] = self.call("post", "/api/visits", 201, json={
                "visited_on": str(TODAY - dt.timedelta(days=40)), "person_id": self.ids[("person", t)],
                "household_ids": [self.ids[("contact_household", t)]], "findings": "走访"})["id"]

    def contact_household(self, town: str) -> int:
        """A household of ``town``'s west grid, inserted as the register would leave it."""
        with self.engine.begin() as conn:
            return conn.execute(text("""
                INSERT INTO household (ref, geom, located_by, head_name, kind, grid_id)
                VALUES (:ref, ST_SetSRID(ST_MakePoint(:x, 30.015), 4326), 'own', '张三', 'registered',
                        (SELECT id FROM area WHERE code = :grid)) RETURNING id
            """), {"ref": f"CH-{town}-{self.n()}", "x": X[town] + 0.006, "grid": GRID1[town]}).scalar_one()

    def contact_link(self, town: str, household: int) -> int:
        return self.call("post", "/api/contacts", 201, json={
            "person_id": self.ids[("person", town)], "household_id": household, "kind": "central",
            "start_date": "2024-01-01"})["id"]

    # -- the state of the database, to show that a refusal changed nothing

    def state(self) -> dict:
        with self.engine.connect() as conn:
            tables = conn.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' ORDER BY 1")).scalars().all()
            tables = [t for t in tables if t not in BOOKKEEPING]
            parts = []
            for t in tables:
                digest = "''" if t in COUNT_ONLY else \
                    "md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), ''))"
                parts.append(f"SELECT '{t}' AS tbl, count(*) AS n, {digest} AS digest FROM {t} x")
            rows = conn.execute(text(" UNION ALL ".join(parts))).all()
            out = {r.tbl: (r.n, r.digest) for r in rows}
            out["audit.max_id"] = conn.execute(text("SELECT coalesce(max(id), 0) FROM audit")).scalar_one()
            out["incident_event.max_id"] = conn.execute(
                text("SELECT coalesce(max(id), 0) FROM incident_event")).scalar_one()
        return out


# --------------------------------------------------------------------------- the rows

def _in_out(scope: str) -> str:
    return "A" if scope == "in" else "B"


def area_rows(prefix: str, grids: bool) -> dict:
    kind = "grid" if grids else "area"

    def target(w, scope):
        return (GRID1 if grids else VILLAGE)[_in_out(scope)] if scope != "root" else TOWN["A"]

    def create(w, caller, scope):
        if scope == "root":  # a new town: the county's business, not town A's planner's
            return Req("POST", prefix, json=feature(box(120.2, 30.1, 120.22, 30.12), name="新镇", level="town",
                                                   layer="admin", parent=COUNTY))
        t = _in_out(scope)
        x = X[t]
        props = {"name": f"新{kind}{w.n()}", "parent": VILLAGE[t]} if grids else \
            {"name": f"新村{w.n()}", "level": "village", "parent": TOWN[t]}
        return Req("POST", prefix, json=feature(box(x + 0.001, 30.001, x + 0.003, 30.003), **props))

    def retire(w, caller, scope):
        t = _in_out(scope)
        return Req("DELETE", f"{prefix}/{w.grid(t) if grids else w.village(t)}")

    scopes_edit = ("in", "out") if grids else ("in", "out", "root")
    return {
        ("GET", prefix): Row(PUBLIC, lambda w, c, s: Req("GET", prefix)),
        ("POST", prefix): Row(PLANNER, create, ok=201, scopes=scopes_edit, kind="write", trail="audit"),
        ("GET", prefix + "/{code}"): Row(PUBLIC, lambda w, c, s: Req("GET", f"{prefix}/{target(w, 'in')}")),
        ("PATCH", prefix + "/{code}"): Row(PLANNER, lambda w, c, s: Req(
            "PATCH", f"{prefix}/{target(w, s)}", json={"properties": {"households": 100 + w.n()}}),
            scopes=scopes_edit, kind="write", trail="audit"),
        ("DELETE", prefix + "/{code}"): Row(PLANNER, retire, ok=204, scopes=("in", "out"), kind="write",
                                            trail="audit"),
        ("GET", prefix + "/{code}/history"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", f"{prefix}/{target(w, 'in')}/history")),
    }


def small_grids(w, town: str, count: int) -> list[str]:
    """``count`` fresh grids side by side in the west grid of ``town``'s village, each at a
    place of its own (so that no other fresh grid shares its vertices), for the editing rows."""
    k = w.n()
    x, y, size = X[town] + 0.0005 + (k % 40) * 0.0004, 30.01 + (k // 40) * 0.0004, 0.0001
    return w.call("post", "/api/grids", 201, json=collection(*[
        feature(box(x + i * size, y, x + (i + 1) * size, y + size), name=f"编辑格{k}-{i}", parent=VILLAGE[town])
        for i in range(count)]))["codes"]


def editing_rows() -> dict:
    """The planner's editing operations (issue 10) on fresh grids: in town A or B."""

    def vertices(w, caller, scope):
        [code] = small_grids(w, _in_out(scope), 1)
        x, y = _sw(w, code)
        return Req("POST", "/api/grids/vertices", json={"moves": [{"from": [x, y], "to": [x + 0.00002, y]}]})

    def split(w, caller, scope):
        [code] = small_grids(w, _in_out(scope), 1)
        x, y = _sw(w, code)
        line = {"type": "LineString", "coordinates": [[x + 0.00005, y - 0.001], [x + 0.00005, y + 0.001]]}
        return Req("POST", f"/api/grids/{code}/split", json={"line": line, "versions": {code: 1}})

    def merge(w, caller, scope):
        codes = small_grids(w, _in_out(scope), 2)
        return Req("POST", "/api/grids/merge", json={"codes": codes, "versions": {c: 1 for c in codes}})

    return {
        ("POST", "/api/grids/vertices"): Row(PLANNER, vertices, scopes=("in", "out"), kind="write", trail="audit"),
        ("POST", "/api/grids/{code}/split"): Row(PLANNER, split, ok=201, scopes=("in", "out"), kind="write",
                                                 trail="audit"),
        ("POST", "/api/grids/merge"): Row(PLANNER, merge, ok=201, scopes=("in", "out"), kind="write", trail="audit"),
    }


def _sw(w, code: str) -> tuple[float, float]:
    """The south-west corner of a grid's bounding box."""
    x0, y0, _, _ = shapely.geometry.shape(w.admin.get(f"/api/grids/{code}").json()["geometry"]).bounds
    return round(x0, 7), round(y0, 7)


def items(key: str = "id", member: str | None = "items"):
    def found(r) -> set:
        body = r.json()
        rows = body[member] if member else body
        return {str(x[key]) for x in rows}
    return found


def pair(kind: str):
    def markers(w):
        return {str(w.ids[(kind, "A")])}, {str(w.ids[(kind, "B")])}
    return markers


def incident_markers(w):
    return ({w.ids[("reported", "A")]["receipt"], w.ids[("dispatched", "A")]["receipt"]},
            {w.ids[("reported", "B")]["receipt"], w.ids[("dispatched", "B")]["receipt"]})


def patrol_found(r) -> set:
    body = r.json()
    return {g["code"] for g in body["grids"]} | {f"source:{s['id']}" for s in body["key_sources"]}


def patrol_markers(w):
    return ({ENV["A"], f"source:{w.ids[('source', 'A')]}"}, {ENV["B"], f"source:{w.ids[('source', 'B')]}"})


def exemption_found(r) -> set:
    return {str(f["id"]) for f in r.json()["features"]}


def receipts_in_page(r) -> set:
    return set(re.findall(r"GG\d{8}-[0-9A-F]{10}", r.text))


def transition(w, caller, scope):
    """Each caller makes a move its role may make: handlers start handling a dispatched
    case, the centre accepts a reported one."""
    t = _in_out(scope)
    if caller in ("grid_worker", "handler"):
        case, to = w.incident(t, "dispatched"), "in_progress"
    else:
        case, to = w.incident(t), "accepted"
    headers = None
    if scope == "illegal_out":
        to = "closed"  # not a move a reported case may make: the refusal must not say so
    if scope == "stale_out":
        headers = {**w.headers[caller], "If-Match": '"99"'}
    return Req("POST", f"/api/incidents/{case['id']}/transitions", json={"to": to, "note": "matrix"},
               headers=headers)


def move(w, caller, scope):
    case = w.incident("A" if scope in ("in", "into_out") else "B")
    lon = X["B" if scope in ("out", "into_out") else "A"] + 0.006
    return Req("POST", f"/api/incidents/{case['id']}/location", json={"lon": lon, "lat": 30.011, "note": "matrix"})


def incident_csv(town: str) -> dict:
    # Happened a moment ago: the world's boundaries are in force since it was built.
    occurred = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    body = ("category,lon,lat,description,occurred_at,state\n"
            f"{CATEGORY[town]},{X[town] + 0.004},30.012,历史事件,{occurred},closed\n")
    return {"file": ("history.csv", body.encode(), "text/csv")}


def area_upload(town: str, n: int) -> dict:
    x = X[town]
    body = json.dumps(collection(feature(box(x + 0.001, 30.001, x + 0.002, 30.002), name=f"导入格{n}",
                                         parent=VILLAGE[town])), ensure_ascii=False)
    return {"file": ("grids.geojson", body.encode(), "application/geo+json")}


def source_create(w, caller, scope):
    lon, lat = NOWHERE if scope == "nowhere" else (X[_in_out(scope)] + 0.012, 30.022)
    return Req("POST", "/api/sources", json={"name": f"新污染源{w.n()}", "kind": "outfall", "lon": lon, "lat": lat})


def source_edit(w, caller, scope):
    source = w.source("A" if scope in ("in", "move_out") else "B")
    body = {"lon": X["B"] + 0.013, "lat": 30.023} if scope == "move_out" else {"risk_level": "high"}
    return Req("PATCH", f"/api/sources/{source}", json=body)


def patrol(w, caller, scope):
    # A fresh source, so that the world's key sources stay behind their visits. Naming a
    # source of another grid is bad input for everyone, whether it exists or not.
    t = "A" if scope == "linked_out" else _in_out(scope)
    visited = w.ids[("source", "B")] if scope == "linked_out" else w.source(t)
    # Dated before the world's own patrols, so that the grids stay behind their weekly round.
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(days=12)).isoformat()
    return Req("POST", "/api/patrols", json={"grid": ENV[t], "at": at, "sources": [visited], "notes": "matrix"})


def person_delete(w, caller, scope):
    # In scope: a person who never held a post (anyone's to delete). Out: one who held a
    # post in town B: the admin learns it cannot go (409), town A's planner learns nothing.
    return Req("DELETE", f"/api/persons/{w.person('B' if scope == 'out' else None)}")


def assignment_create(w, caller, scope):
    return Req("POST", "/api/assignments", json={"person": w.person(), "area": GRID2[_in_out(scope)],
                                                 "role": "grid_worker_fulltime", "start_date": "2024-01-01"})


def assignment_delete(w, caller, scope):
    t = _in_out(scope)
    return Req("DELETE", f"/api/assignments/{w.assignment(t, w.person(), GRID2[t], 'grid_worker_parttime')}")


def logout(w, caller, scope):
    return Req("POST", "/api/logout", headers=w.token_of(caller))


def map_logout(w, caller, scope):
    token = w.token_of(caller).get("Authorization", "").removeprefix("Bearer ")
    return Req("POST", "/maps/logout", headers={"Cookie": f"geogrid_token={token}"} if token else {})


def tiled(w, path: str = "") -> str:
    """A tile URL (or the collection's tiles ``path``) of the comprehensive layer over GRID1
    of town A, the layer published once (tiles show published layers only)."""
    from geogrid.publication import generations, tiles

    if ("published", "comprehensive") not in w.ids:
        with db.transaction(w.engine) as session:
            w.ids[("published", "comprehensive")] = generations.publish(session, COUNTY, layer="comprehensive")
    x, y = tiles.tile_at(X["A"] + 0.01, 30.02, 14)
    return path.format(layer="comprehensive", z=14, x=x, y=y)


def asset_path() -> str:
    from geogrid.core.settings import Settings
    from maps import assets

    root = assets.ensure_assets(Settings())
    css = sorted(p for p in root.rglob("leaflet.css") if p.is_file())[0]
    return css.relative_to(root).as_posix()


TODAY = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the service's time zone
THIS_MONTH = TODAY.strftime("%Y-%m")  # the world's grids exist in it
PAST = (TODAY.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")  # over: it may be frozen
STATES = ("computed", "reviewed", "frozen")
SCHEME_ITEMS = [{"code": "late", "name": "逾期结案", "points": 10, "kind": "deduction",
                 "rule": {"indicator": "closed_late", "per": 1, "points": 2}},
                {"code": "spot", "name": "督查", "points": 10, "kind": "deduction", "rule": "manual"}]


def register_upload(town: str, ref: str) -> dict:
    """A register file of one household with one resident (tagged 低保) in ``town``'s west grid."""
    body = ("户编号,户主,经度,纬度,户类型,出租,姓名,与户主关系,性别,特殊人群\n"
            f"{ref},户主{ref},{X[town] + 0.005},30.02,户籍,否,户主{ref},户主,男,低保\n")
    return {"file": ("register.csv", body.encode(), "text/csv")}


def register_rows() -> dict:
    """The household register (issue 12). Residents and tags need resident_data, which only the
    grid worker holds (on town A): their rows name the grid worker alone."""
    register = frozenset({"grid_worker", "planner"})
    resident_data = frozenset({"grid_worker"})

    def hid(w, s):
        return w.ids[("household", _in_out(s))]

    def markers(kind):
        def m(w):
            return {str(w.ids[(kind, "A")])}, {str(w.ids[(kind, "B")])}
        return m

    def move(w, caller, scope):
        return Req("POST", f"/api/households/{hid(w, scope)}/move",
                   json={"lon": X[_in_out(scope)] + 0.005 + (w.n() % 50) * 0.0001, "lat": 30.021})

    def tag_edit(w, caller, scope):
        return Req("PATCH", f"/api/resident-tags/{w.ids[('resident_tag', _in_out(scope))]}",
                   json={"note": f"复核{w.n()}"})

    return {
        ("POST", "/api/households/import"): Row(register, lambda w, c, s: Req(
            "POST", "/api/households/import", files=register_upload(_in_out(s), w.household_ref(_in_out(s)))),
            ok=201, scopes=("in", "out"), kind="write", trail="audit"),
        ("GET", "/api/households"): Row(register, lambda w, c, s: Req("GET", "/api/households"), kind="list",
                                        found=items(), markers=markers("household")),
        ("GET", "/api/households/{household_id}"): Row(register, lambda w, c, s: Req(
            "GET", f"/api/households/{hid(w, s)}"), scopes=("in", "out")),
        ("GET", "/api/households/{household_id}/history"): Row(register, lambda w, c, s: Req(
            "GET", f"/api/households/{hid(w, s)}/history"), scopes=("in", "out")),
        ("POST", "/api/households/{household_id}/move"): Row(register, move, scopes=("in", "out"), kind="write",
                                                             trail="audit"),
        ("GET", "/api/households/{household_id}/residents"): Row(resident_data, lambda w, c, s: Req(
            "GET", f"/api/households/{hid(w, s)}/residents"), scopes=("in", "out")),
        ("GET", "/api/residents"): Row(resident_data, lambda w, c, s: Req("GET", "/api/residents"), kind="list",
                                       found=items(), markers=markers("resident")),
        ("POST", "/api/residents/{resident_id}/tags"): Row(resident_data, lambda w, c, s: Req(
            "POST", f"/api/residents/{w.ids[('resident', _in_out(s))]}/tags",
            json={"group_key": "disabled", "start_date": "2025-01-01"}), ok=201, scopes=("in", "out"), kind="write",
            trail="audit"),
        ("PATCH", "/api/resident-tags/{tag_id}"): Row(resident_data, tag_edit, scopes=("in", "out"), kind="write",
                                                      trail="audit"),
        ("GET", "/api/special-groups"): Row(STAFF, lambda w, c, s: Req("GET", "/api/special-groups")),
        ("POST", "/api/special-groups"): Row(ADMIN, lambda w, c, s: Req("POST", "/api/special-groups", json={
            "key": f"group{w.n()}", "name_zh": "新群体", "name_en": "New group"}), ok=201, kind="write", trail="audit"),
        ("GET", "/api/register/counts"): Row(register, lambda w, c, s: Req(
            "GET", "/api/register/counts", params={"area": VILLAGE[_in_out(s)]}), scopes=("in", "out")),
    }


def scheme_rows() -> dict:
    """Score sheets (issue 11): town A's sheet is "in", town B's "out"; moving a period on
    uses a fresh sheet with last month in the state the move starts from."""
    base = "/api/assessment/schemes"
    period = base + "/{scheme_id}/periods/{period}"

    def of(w, scope, suffix="", state=None) -> str:
        t = _in_out(scope)
        if state is None:  # the world's sheet, this month: its grids are targets
            return f"{base}/{w.ids[('scheme', t)]}/periods/{THIS_MONTH}{suffix}"
        return f"{base}/{w.scheme(t, state)}/periods/{PAST}{suffix}"

    def manual(w, caller, scope):
        return Req("POST", of(w, scope, "/manual"), json={
            "target": GRID1[_in_out(scope)], "item": "spot", "points": 1 + w.n() % 5, "reason": "督查发现",
            "evidence": "https://evidence.example/1.jpg"})

    return {
        ("GET", base): Row(READERS, lambda w, c, s: Req("GET", base, params={} if s == "in" else {"area": TOWN["B"]}),
                           scopes=("in", "out"), kind="list", found=items(member=None), markers=pair("scheme")),
        ("POST", base): Row(PLANNER, lambda w, c, s: Req("POST", base, json={
            "area": TOWN[_in_out(s)], "name": f"新方案{w.n()}", "total": 1000, "target_kind": "village",
            "period_kind": "quarter", "items": SCHEME_ITEMS}), ok=201, scopes=("in", "out"), kind="write",
            trail="audit"),
        ("GET", base + "/{scheme_id}"): Row(READERS, lambda w, c, s: Req(
            "GET", f"{base}/{w.ids[('scheme', _in_out(s))]}"), scopes=("in", "out")),
        ("PATCH", base + "/{scheme_id}"): Row(PLANNER, lambda w, c, s: Req(
            "PATCH", f"{base}/{w.ids[('scheme', _in_out(s))]}", json={"name": f"改名{w.n()}"}),
            scopes=("in", "out"), kind="write", trail="audit"),
        ("GET", base + "/{scheme_id}/periods"): Row(READERS, lambda w, c, s: Req(
            "GET", f"{base}/{w.ids[('scheme', _in_out(s))]}/periods"), scopes=("in", "out")),
        ("GET", period): Row(READERS, lambda w, c, s: Req("GET", of(w, s)), scopes=("in", "out")),
        ("GET", period + "/ranking"): Row(READERS, lambda w, c, s: Req("GET", of(w, s, "/ranking")),
                                          scopes=("in", "out")),
        ("POST", period + "/compute"): Row(PLANNER, lambda w, c, s: Req("POST", of(w, s, "/compute")),
                                           scopes=("in", "out"), kind="write", trail="audit"),
        ("POST", period + "/review"): Row(PLANNER, lambda w, c, s: Req("POST", of(w, s, "/review", "computed")),
                                          scopes=("in", "out"), kind="write", trail="audit"),
        ("POST", period + "/freeze"): Row(PLANNER, lambda w, c, s: Req("POST", of(w, s, "/freeze", "reviewed")),
                                          scopes=("in", "out"), kind="write", trail="audit"),
        ("POST", period + "/publish"): Row(ADMIN, lambda w, c, s: Req("POST", of(w, "in", "/publish", "frozen")),
                                           kind="write", trail="audit"),
        ("POST", period + "/manual"): Row(CENTRE, manual, scopes=("in", "out"), kind="write", trail="audit"),
        ("GET", "/api/public/rankings"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", "/api/public/rankings", params={"area": COUNTY})),
    }


def contact_rows() -> dict:
    """Contact links, visits, the day list (issue 12): planners and grid workers write, inspectors
    read too; a household's place is its grid. Fresh households and links where one is used up."""
    writers = frozenset({"planner", "grid_worker"})

    def hh(w, scope):
        return w.ids[("contact_household", _in_out(scope))]

    def link_create(w, caller, scope):
        t = _in_out(scope)
        return Req("POST", "/api/contacts", json={"person_id": w.ids[("person", t)],
                                                  "household_id": w.contact_household(t), "kind": "ordinary",
                                                  "start_date": "2025-01-01"})

    def link_end(w, caller, scope):
        t = _in_out(scope)
        link = w.contact_link(t, w.contact_household(t))
        return Req("PATCH", f"/api/contacts/{link}", json={"end_date": str(TODAY)})

    def visit(w, caller, scope):
        t = _in_out(scope)
        return Req("POST", "/api/visits", json={"visited_on": str(TODAY), "person_id": w.ids[("person", t)],
                                                "household_ids": [hh(w, scope)], "findings": "矩阵走访",
                                                "photo_urls": ["https://img.example/v.jpg"]})

    return {
        ("GET", "/api/contacts"): Row(READERS, lambda w, c, s: Req(
            "GET", "/api/contacts", params={} if s == "in" else {"area": TOWN["B"]}),
            scopes=("in", "out"), kind="list", found=items(), markers=pair("link")),
        ("POST", "/api/contacts"): Row(writers, link_create, ok=201, scopes=("in", "out"), kind="write",
                                       trail="audit"),
        ("PATCH", "/api/contacts/{link_id}"): Row(writers, link_end, scopes=("in", "out"), kind="write",
                                                  trail="audit"),
        ("GET", "/api/contacts/check"): Row(READERS, lambda w, c, s: Req(
            "GET", "/api/contacts/check", params={"area": VILLAGE[_in_out(s)]}), scopes=("in", "out")),
        ("GET", "/api/contacts/cards.pdf"): Row(READERS, lambda w, c, s: Req(
            "GET", "/api/contacts/cards.pdf", params={"area": GRID1[_in_out(s)]}), scopes=("in", "out")),
        ("POST", "/api/visits"): Row(writers, visit, ok=201, scopes=("in", "out"), kind="write", trail="audit"),
        ("GET", "/api/visits"): Row(READERS, lambda w, c, s: Req(
            "GET", "/api/visits", params={} if s == "in" else {"area": TOWN["B"]}),
            scopes=("in", "out"), kind="list", found=items(), markers=pair("visit")),
        # The world's visits are 40 days old: its central households are behind.
        ("GET", "/api/visits/behind"): Row(READERS, lambda w, c, s: Req(
            "GET", "/api/visits/behind", params={"area": VILLAGE[_in_out(s)]}), scopes=("in", "out")),
        ("GET", "/api/visits/{visit_id}"): Row(READERS, lambda w, c, s: Req(
            "GET", f"/api/visits/{w.ids[('visit', _in_out(s))]}"), scopes=("in", "out")),
        # Anyone's own day list: what is due to the cadre the account belongs to, and the patrols due
        # in the caller's scope.
        ("GET", "/api/me/today"): Row(STAFF, lambda w, c, s: Req("GET", "/api/me/today")),
    }


def spec() -> dict:
    rows: dict = {}
    rows.update(contact_rows())
    rows.update(area_rows("/api/areas", grids=False))
    rows.update(area_rows("/api/grids", grids=True))
    rows.update(editing_rows())
    rows.update(scheme_rows())
    rows.update(register_rows())
    A, B = "A", "B"
    rows.update({
        ("GET", "/healthz"): Row(PUBLIC, lambda w, c, s: Req("GET", "/healthz")),
        # ---- access
        ("POST", "/api/token"): Row(PUBLIC, lambda w, c, s: Req(
            "POST", "/api/token", data={"username": w.spare, "password": PASSWORD}), kind="session"),
        ("POST", "/api/logout"): Row(PUBLIC, logout, ok=204, kind="session"),  # without a token: nothing to revoke
        # "Who am I" answers the public too (authenticated: false): nothing private to reveal.
        ("GET", "/api/me"): Row(PUBLIC, lambda w, c, s: Req("GET", "/api/me")),
        ("GET", "/api/accounts"): Row(ADMIN, lambda w, c, s: Req("GET", "/api/accounts")),
        ("POST", "/api/accounts"): Row(ADMIN, lambda w, c, s: Req(
            "POST", "/api/accounts", json={"username": f"new{w.n()}", "password": "long enough pw"}),
            ok=201, kind="write", trail="audit"),
        ("PUT", "/api/accounts/{username}/password"): Row(ADMIN, lambda w, c, s: Req(
            "PUT", f"/api/accounts/{w.account()}/password", json={"password": "another long pw"}),
            ok=204, kind="write", trail="audit"),
        ("POST", "/api/accounts/{username}/grants"): Row(ADMIN, lambda w, c, s: Req(
            "POST", f"/api/accounts/{w.account()}/grants", json={"role": "planner", "area": TOWN[A]}),
            ok=201, kind="write", trail="audit"),
        ("DELETE", "/api/accounts/{username}/grants"): Row(ADMIN, lambda w, c, s: Req(
            "DELETE", f"/api/accounts/{w.account(('planner', TOWN[A]))}/grants", params={"role": "planner"}),
            ok=204, kind="write", trail="audit"),
        ("GET", "/api/audit"): Row(ADMIN, lambda w, c, s: Req("GET", "/api/audit")),
        # ---- coverage, repairs, exemptions
        ("GET", "/api/coverage"): Row(STAFF, lambda w, c, s: Req(
            "GET", "/api/coverage", params={"area": VILLAGE[_in_out(s)]}), scopes=("in", "out")),
        ("GET", "/api/coverage/current"): Row(STAFF, lambda w, c, s: Req(
            "GET", "/api/coverage/current", params={"area": VILLAGE[_in_out(s)]}), scopes=("in", "out")),
        ("GET", "/api/coverage/runs"): Row(STAFF, lambda w, c, s: Req(
            "GET", "/api/coverage/runs", params={} if s == "in" else {"area": VILLAGE[B]}),
            scopes=("in", "out"), kind="list", found=items(member=None), markers=pair("run1")),
        ("GET", "/api/coverage/runs/{run_id}"): Row(STAFF, lambda w, c, s: Req(
            "GET", f"/api/coverage/runs/{w.ids[('run1', _in_out(s))]}"), scopes=("in", "out")),
        ("GET", "/api/coverage/runs/{run_id}/compare"): Row(STAFF, lambda w, c, s: Req(
            "GET", f"/api/coverage/runs/{w.ids[('run2', _in_out(s))]}/compare",
            params={"earlier": w.ids[("run1", _in_out(s))]}), scopes=("in", "out")),
        ("POST", "/api/coverage/repairs"): Row(PLANNER, lambda w, c, s: Req(
            "POST", "/api/coverage/repairs", json={"area": VILLAGE[_in_out(s)], "gap_width_m": 100}),
            ok=201, scopes=("in", "out"), kind="write", trail="audit"),
        ("GET", "/api/coverage/repairs/{proposal_id}"): Row(STAFF, lambda w, c, s: Req(
            "GET", f"/api/coverage/repairs/{w.ids[('proposal', _in_out(s))]}"), scopes=("in", "out")),
        ("POST", "/api/coverage/repairs/{proposal_id}/apply"): Row(PLANNER, lambda w, c, s: Req(
            "POST", f"/api/coverage/repairs/{w.proposal(_in_out(s))}/apply", params={"confirm": "true"}),
            scopes=("in", "out"), kind="write", trail="audit"),
        # Military land is among them: staff see those of their own areas only.
        ("GET", "/api/exemptions"): Row(STAFF, lambda w, c, s: Req(
            "GET", "/api/exemptions", params={"area": VILLAGE[_in_out(s)]}),
            scopes=("in", "out"), kind="list", found=exemption_found, markers=pair("exemption")),
        ("POST", "/api/exemptions"): Row(PLANNER, lambda w, c, s: Req("POST", "/api/exemptions", json={
            "area": VILLAGE[_in_out(s)], "kind": "military", "name": "营区",
            "geometry": box(X[_in_out(s)] + 0.025, 30.025, X[_in_out(s)] + 0.028, 30.028)}),
            ok=201, scopes=("in", "out"), kind="write", trail="audit"),
        ("DELETE", "/api/exemptions/{exemption_id}"): Row(PLANNER, lambda w, c, s: Req(
            "DELETE", f"/api/exemptions/{w.exemption(_in_out(s))}"),
            ok=204, scopes=("in", "out"), kind="write", trail="audit"),
        # ---- incidents
        ("GET", "/api/categories"): Row(PUBLIC, lambda w, c, s: Req("GET", "/api/categories")),
        ("PATCH", "/api/categories/{key}"): Row(ADMIN, lambda w, c, s: Req(
            "PATCH", "/api/categories/sanitation", json={"time_limits": {"verify": [1, "working_days"]}}),
            kind="write", trail="audit"),
        ("POST", "/api/incidents"): Row(STAFF, lambda w, c, s: Req("POST", "/api/incidents", json={
            "category": CATEGORY[_in_out(s)], "lon": X[_in_out(s)] + 0.007, "lat": 30.013,
            "description": "巡查发现", "channel": "patrol"}),
            ok=201, scopes=("in", "out"), kind="write", handler_in=frozenset({"in"}), trail="events"),
        ("GET", "/api/incidents"): Row(STAFF, lambda w, c, s: Req(
            "GET", "/api/incidents", params={} if s == "in" else {"area": TOWN[B]}),
            scopes=("in", "out"), kind="list", handler_in=frozenset({"in"}), found=items("receipt"),
            markers=incident_markers),
        ("GET", "/api/incidents/overdue"): Row(STAFF, lambda w, c, s: (w.overdue(), Req("GET", "/api/incidents/overdue"))[1],
                                               kind="list", handler_in=frozenset({"in"}), found=items("receipt"),
                                               markers=incident_markers),
        ("POST", "/api/incidents/escalate-overdue"): Row(ADMIN, lambda w, c, s: (w.overdue(), Req(
            "POST", "/api/incidents/escalate-overdue"))[1], kind="write", trail="events"),
        ("GET", "/api/incidents/{incident_id}"): Row(STAFF, lambda w, c, s: Req(
            "GET", f"/api/incidents/{w.ids[('reported', _in_out(s))]['id']}"),
            scopes=("in", "out"), handler_in=frozenset({"in"})),
        ("POST", "/api/incidents/{incident_id}/transitions"): Row(
            STAFF, transition, ok={"in": 200, "out": 200, "illegal_out": 409, "stale_out": 412},
            scopes=("in", "out", "illegal_out", "stale_out"), kind="write", handler_in=frozenset({"in"}),
            trail="events"),
        ("POST", "/api/incidents/{incident_id}/callback"): Row(CENTRE, lambda w, c, s: Req(
            "POST", f"/api/incidents/{w.incident(_in_out(s), 'closed')['id']}/callback",
            json={"satisfaction": 8, "note": "回访"}), scopes=("in", "out"), kind="write", trail="events"),
        ("POST", "/api/incidents/{incident_id}/escalate"): Row(STAFF, lambda w, c, s: Req(
            "POST", f"/api/incidents/{w.incident(_in_out(s))['id']}/escalate", json={"note": "matrix"}),
            scopes=("in", "out"), kind="write", handler_in=frozenset({"in"}), trail="events"),
        ("POST", "/api/incidents/{incident_id}/location"): Row(
            STAFF, move, scopes=("in", "out", "into_out"), kind="write",
            handler_in=frozenset({"in", "into_out"}), trail="events"),  # the handler's reach is its department
        ("POST", "/api/incidents/import"): Row(CENTRE, lambda w, c, s: Req(
            "POST", "/api/incidents/import", files=incident_csv(_in_out(s))),
            ok=201, scopes=("in", "out"), kind="write", trail="events"),
        # ---- requests without a point (issue 12): counties' categories and types, 包案, comments
        ("POST", "/api/categories"): Row(ADMIN, lambda w, c, s: Req("POST", "/api/categories", json={
            "key": f"mx_cat_{w.n()}", "name_zh": "县自定义", "name_en": "County's own", "group_key": "governance",
            "layer_key": "comprehensive", "department": HANDLER_DEPARTMENT,
            "time_limits": {"accept": [1, "working_hours"], "dispatch": [1, "working_hours"],
                            "handle": [2, "working_days"], "verify": [1, "working_days"]}}),
            ok=201, kind="write", trail="audit"),
        ("GET", "/api/request-types"): Row(PUBLIC, lambda w, c, s: Req("GET", "/api/request-types")),
        ("POST", "/api/request-types"): Row(ADMIN, lambda w, c, s: Req("POST", "/api/request-types", json={
            "key": f"mx_type_{w.n()}", "name_zh": "求助", "name_en": "Help"}), ok=201, kind="write", trail="audit"),
        ("POST", "/api/incidents/{incident_id}/owner"): Row(CENTRE, lambda w, c, s: Req(
            "POST", f"/api/incidents/{w.incident(_in_out(s))['id']}/owner",
            json={"person_id": w.ids[("person", "A")], "note": "包案"}),
            scopes=("in", "out"), kind="write", trail="events"),
        ("POST", "/api/incidents/{incident_id}/notes"): Row(STAFF, lambda w, c, s: Req(
            "POST", f"/api/incidents/{w.incident(_in_out(s))['id']}/notes", json={"note": "matrix"}),
            scopes=("in", "out"), kind="write", handler_in=frozenset({"in"}), trail="events"),
        # ---- assessment indicators: staff with an area role on the area asked for
        ("GET", "/api/stats/definitions"): Row(PUBLIC, lambda w, c, s: Req("GET", "/api/stats/definitions")),
        ("GET", "/api/stats/indicators"): Row(frozenset({"grid_worker", "inspector", "planner"}), lambda w, c, s: Req(
            "GET", "/api/stats/indicators", params={"area": TOWN[_in_out(s)], "period": "2026-11", "by": "grid"}),
            scopes=("in", "out")),
        # Downloads of the same figures (XLSX/CSV), and the monthly report (PDF/XLSX) of this
        # month, whose score sheet the world computed: the same readers, the same scope rule.
        ("GET", "/api/stats/export"): Row(frozenset({"grid_worker", "inspector", "planner"}), lambda w, c, s: Req(
            "GET", "/api/stats/export", params={"area": TOWN[_in_out(s)], "period": "2026-11", "by": "grid",
                                                "format": "csv"}), scopes=("in", "out")),
        ("GET", "/api/reports/monthly"): Row(frozenset({"grid_worker", "inspector", "planner"}), lambda w, c, s: Req(
            "GET", "/api/reports/monthly", params={"area": TOWN[_in_out(s)], "month": THIS_MONTH, "format": "xlsx"}),
            scopes=("in", "out")),
        # ---- pollution sources and patrols
        ("GET", "/api/sources"): Row(STAFF, lambda w, c, s: Req(
            "GET", "/api/sources", params={} if s == "in" else {"area": TOWN[B]}),
            scopes=("in", "out"), kind="list", found=items(), markers=pair("source")),
        ("POST", "/api/sources"): Row(CENTRE, source_create, ok={"in": 201, "out": 201, "nowhere": 422},
                                      scopes=("in", "out", "nowhere"), invalid=frozenset({"nowhere"}),
                                      kind="write", trail="audit"),
        ("GET", "/api/sources/{source_id}"): Row(STAFF, lambda w, c, s: Req(
            "GET", f"/api/sources/{w.ids[('source', _in_out(s))]}"), scopes=("in", "out")),
        ("PATCH", "/api/sources/{source_id}"): Row(CENTRE, source_edit, scopes=("in", "out", "move_out"),
                                                   kind="write", trail="audit"),
        ("DELETE", "/api/sources/{source_id}"): Row(CENTRE, lambda w, c, s: Req(
            "DELETE", f"/api/sources/{w.source(_in_out(s))}"), ok=204, scopes=("in", "out"), kind="write",
            trail="audit"),
        ("POST", "/api/patrols"): Row(PATROLLERS, patrol, ok={"in": 201, "out": 201, "linked_out": 422},
                                      scopes=("in", "out", "linked_out"), invalid=frozenset({"linked_out"}),
                                      kind="write", trail="audit"),
        ("GET", "/api/patrols/behind"): Row(STAFF, lambda w, c, s: Req(
            "GET", "/api/patrols/behind", params={} if s == "in" else {"area": TOWN[B]}),
            scopes=("in", "out"), kind="list", found=patrol_found, markers=patrol_markers),
        # ---- public intake and Open311
        ("POST", "/api/public/reports"): Row(PUBLIC, lambda w, c, s: Req("POST", "/api/public/reports", json={
            "category": "sanitation", "lon": X[A] + 0.008, "lat": 30.014, "description": "路边垃圾"}),
            ok=201, kind="write", trail="events"),
        ("GET", "/api/public/reports/{receipt}"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", f"/api/public/reports/{w.ids[('reported', A)]['receipt']}")),
        ("GET", "/api/public/places"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", "/api/public/places", params={"q": VILLAGE[A], "area": TOWN[A]})),
        ("GET", "/open311/discovery.{fmt}"): Row(PUBLIC, lambda w, c, s: Req("GET", "/open311/discovery.xml")),
        ("GET", "/open311/v2/services.{fmt}"): Row(PUBLIC, lambda w, c, s: Req("GET", "/open311/v2/services.json")),
        ("GET", "/open311/v2/services/{service_code}.{fmt}"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", "/open311/v2/services/sanitation.xml")),
        ("POST", "/open311/v2/requests.{fmt}"): Row(PUBLIC, lambda w, c, s: Req(
            "POST", "/open311/v2/requests.json", data={"service_code": "sanitation", "lat": "30.015",
                                                       "long": str(X[A] + 0.009), "description": "路灯坏了"}),
            ok=201, kind="write", trail="events"),
        ("GET", "/open311/v2/requests.{fmt}"): Row(PUBLIC, lambda w, c, s: Req("GET", "/open311/v2/requests.xml")),
        ("GET", "/open311/v2/requests/{receipt}.{fmt}"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", f"/open311/v2/requests/{w.ids[('reported', A)]['receipt']}.json")),
        # ---- publications (公示发布): planners publish in their scope; anyone reads the list
        ("POST", "/api/publications"): Row(PLANNER, lambda w, c, s: Req(
            "POST", "/api/publications", json={"area": VILLAGE[_in_out(s)], "layer": "comprehensive"}),
            ok=201, scopes=("in", "out"), kind="write", trail="audit"),
        ("GET", "/api/publications"): Row(PUBLIC, lambda w, c, s: Req("GET", "/api/publications")),
        ("GET", "/api/publications/pending"): Row(PLANNER, lambda w, c, s: Req(
            "GET", "/api/publications/pending", params={"area": VILLAGE[_in_out(s)], "layer": "comprehensive"}),
            scopes=("in", "out")),
        ("GET", "/api/publications/{publication_id}"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", f"/api/publications/{w.ids[('publication', 'admin')]}")),
        # ---- OGC API - Features: the published data only, open to anyone (the world's town A
        # sanitation case is of a public category, so the cases collection has a feature)
        ("GET", "/ogc"): Row(PUBLIC, lambda w, c, s: Req("GET", "/ogc")),
        ("GET", "/ogc/conformance"): Row(PUBLIC, lambda w, c, s: Req("GET", "/ogc/conformance")),
        ("GET", "/ogc/collections"): Row(PUBLIC, lambda w, c, s: Req("GET", "/ogc/collections")),
        ("GET", "/ogc/collections/{collection_id}"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", "/ogc/collections/cases")),
        ("GET", "/ogc/collections/{collection_id}/queryables"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", "/ogc/collections/cases/queryables")),
        ("GET", "/ogc/collections/{collection_id}/items"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", "/ogc/collections/cases/items", params={"limit": 100})),
        ("GET", "/ogc/collections/{collection_id}/items/{feature_id}"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", f"/ogc/collections/cases/items/{w.ids[('reported', A)]['receipt']}")),
        # ---- vector tiles of the published layers (XYZ, TileJSON, OGC API - Tiles): anyone
        ("GET", "/tiles/{layer}.json"): Row(PUBLIC, lambda w, c, s: Req("GET", tiled(w, "/tiles/{layer}.json"))),
        ("GET", "/tiles/{layer}/{z}/{x}/{y}.mvt"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", tiled(w, "/tiles/{layer}/{z}/{x}/{y}.mvt"))),
        ("GET", "/ogc/collections/{collection_id}/tiles"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", tiled(w, "/ogc/collections/{layer}/tiles"))),
        ("GET", "/ogc/collections/{collection_id}/tiles/{tile_matrix_set_id}"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", tiled(w, "/ogc/collections/{layer}/tiles/WebMercatorQuad"))),
        ("GET", "/ogc/collections/{collection_id}/tiles/{tile_matrix_set_id}/{tile_matrix}/{tile_row}/{tile_col}"):
            Row(PUBLIC, lambda w, c, s: Req("GET", tiled(w, "/ogc/collections/{layer}/tiles/WebMercatorQuad/{z}/{y}/{x}"))),
        # ---- maps
        ("GET", "/maps/planner"): Row(CENTRE, lambda w, c, s: Req(
            "GET", "/maps/planner", params={"area": TOWN[_in_out(s)]}), scopes=("in", "out"),
            browser_redirect=True),
        # A view over the incident and source lists: the caller's rows only, whatever the area.
        ("GET", "/maps/inspector"): Row(STAFF, lambda w, c, s: Req(
            "GET", "/maps/inspector", params={"area": TOWN[_in_out(s)]}), scopes=("in", "out"),
            kind="list", handler_in=frozenset({"in"}), found=receipts_in_page, markers=incident_markers,
            browser_redirect=True),
        # The assessment dashboard: whoever may read the area's indicators.
        ("GET", "/maps/dashboard"): Row(frozenset(AREA_CALLERS), lambda w, c, s: Req(
            "GET", "/maps/dashboard", params={"area": TOWN[_in_out(s)]}), scopes=("in", "out"),
            browser_redirect=True),
        ("GET", "/maps/public"): Row(PUBLIC, lambda w, c, s: Req("GET", "/maps/public", params={"area": TOWN[A]})),
        # The printable board shows what the public map shows: anyone, any grid.
        ("GET", "/maps/public/board.pdf"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", "/maps/public/board.pdf", params={"grid": GRID1[B]})),
        ("GET", "/maps/assets/{path:path}"): Row(PUBLIC, lambda w, c, s: Req("GET", f"/maps/assets/{asset_path()}")),
        ("GET", "/maps/login"): Row(PUBLIC, lambda w, c, s: Req("GET", "/maps/login")),
        ("POST", "/maps/login"): Row(PUBLIC, lambda w, c, s: Req("POST", "/maps/login", data={
            "username": w.spare, "password": PASSWORD, "next": "/maps/planner"}), ok=303, kind="session"),
        ("POST", "/maps/logout"): Row(PUBLIC, map_logout, ok=303, kind="session"),
        # ---- lookup, files
        ("GET", "/api/locate"): Row(PUBLIC, lambda w, c, s: Req(
            "GET", "/api/locate", params={"lon": X[A] + 0.005, "lat": 30.01})),
        ("POST", "/api/import"): Row(PLANNER, lambda w, c, s: Req(
            "POST", "/api/import", params={"level": "grid", "layer": "comprehensive"},
            files=area_upload(_in_out(s), w.n())), ok=201, scopes=("in", "out"), kind="write", trail="audit"),
        ("GET", "/api/export"): Row(PUBLIC, lambda w, c, s: Req("GET", "/api/export", params={"format": "geojson"})),
        # ---- persons and assignments
        ("GET", "/api/persons"): Row(STAFF, lambda w, c, s: Req(
            "GET", "/api/persons", params={} if s == "in" else {"area": GRID1[B]}),
            scopes=("in", "out"), kind="list", found=items(), markers=pair("person")),
        ("POST", "/api/persons"): Row(PLANNER, lambda w, c, s: Req(
            "POST", "/api/persons", json={"name": f"新人{w.n()}", "phone": "13900000000"}),
            ok=201, kind="write", trail="audit"),
        ("GET", "/api/persons/{person_id}"): Row(STAFF, lambda w, c, s: Req(
            "GET", f"/api/persons/{w.ids[('person', _in_out(s))]}"), scopes=("in", "out")),
        ("PATCH", "/api/persons/{person_id}"): Row(PLANNER, lambda w, c, s: Req(
            "PATCH", f"/api/persons/{w.ids[('person', _in_out(s))]}", json={"notes": f"changed {w.n()}"}),
            scopes=("in", "out"), kind="write", trail="audit"),
        ("DELETE", "/api/persons/{person_id}"): Row(PLANNER, person_delete, ok={"in": 204, "out": 409},
                                                    scopes=("in", "out"), kind="write", trail="audit"),
        ("GET", "/api/assignments"): Row(STAFF, lambda w, c, s: Req(
            "GET", "/api/assignments", params={} if s == "in" else {"area": GRID1[B]}),
            scopes=("in", "out"), kind="list", found=items(member=None), markers=pair("assignment")),
        ("POST", "/api/assignments"): Row(PLANNER, assignment_create, ok=201, scopes=("in", "out"), kind="write",
                                          trail="audit"),
        ("GET", "/api/assignments/{assignment_id}"): Row(STAFF, lambda w, c, s: Req(
            "GET", f"/api/assignments/{w.ids[('assignment', _in_out(s))]}"), scopes=("in", "out")),
        ("PATCH", "/api/assignments/{assignment_id}"): Row(PLANNER, lambda w, c, s: Req(
            "PATCH", f"/api/assignments/{w.ids[('assignment', _in_out(s))]}", json={"duties": f"巡查{w.n()}"}),
            scopes=("in", "out"), kind="write", trail="audit"),
        ("DELETE", "/api/assignments/{assignment_id}"): Row(PLANNER, assignment_delete, ok=204,
                                                            scopes=("in", "out"), kind="write", trail="audit"),
        # ---- reference lists: global, so an admin's (a town's planner would change every town's)
        ("GET", "/api/levels"): Row(PUBLIC, lambda w, c, s: Req("GET", "/api/levels")),
        ("POST", "/api/levels"): Row(ADMIN, lambda w, c, s: Req("POST", "/api/levels", json={
            "key": f"lv{w.n()}", "rank": 8, "code_length": 21, "name_zh": "楼栋", "name_en": "Building"}),
            ok=201, kind="write", trail="audit"),
        ("GET", "/api/layers"): Row(PUBLIC, lambda w, c, s: Req("GET", "/api/layers")),
        ("POST", "/api/layers"): Row(ADMIN, lambda w, c, s: Req("POST", "/api/layers", json={
            "key": f"net{w.n()}", "name_zh": "新网", "name_en": "New net"}), ok=201, kind="write", trail="audit"),
        ("PATCH", "/api/layers/{key}"): Row(ADMIN, lambda w, c, s: Req(
            "PATCH", f"/api/layers/{w.layer()}", json={"description": "改"}), kind="write", trail="audit"),
        ("DELETE", "/api/layers/{key}"): Row(ADMIN, lambda w, c, s: Req("DELETE", f"/api/layers/{w.layer()}"),
                                             ok=204, kind="write", trail="audit"),
        ("GET", "/api/roles"): Row(PUBLIC, lambda w, c, s: Req("GET", "/api/roles")),
        ("POST", "/api/roles"): Row(ADMIN, lambda w, c, s: Req("POST", "/api/roles", json={
            "key": f"role{w.n()}", "name_zh": "楼长助理", "name_en": "Assistant"}), ok=201, kind="write",
            trail="audit"),
    })
    return rows


SPEC = spec()


def _route_ids() -> list[tuple[str, str]]:
    from api.app import create_app
    from geogrid.core.settings import Settings

    present = app_routes(create_app(Settings()))
    return sorted(set(present) | set(SPEC), key=lambda k: (k[1], k[0]))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def matrix_app(settings):
    """The app with the request-rate limits out of the way (they have their own tests) and
    without the escalation loop, so that each status here is the authorisation's."""
    from api.app import create_app

    return create_app(settings.model_copy(update={
        "public_reports_per_minute": 10_000, "login_per_minute": 10_000, "escalation_interval_s": 0}))


def empty(engine) -> None:
    """Every table emptied but the reference lists, which go back to the seeded keys (what
    the per-test ``clean`` fixture does, for a world that lives as long as this module)."""
    with engine.begin() as conn:
        tables = conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE' AND table_name <> ALL(:keep)"),
            {"keep": [*SEEDED, "category", "request_type", "special_group", "contact_kind", "alembic_version", "spatial_ref_sys"]}).scalars().all()
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        # The categories and request types the matrix's own rows added (reference lists kept above).
        conn.execute(text(r"DELETE FROM category WHERE key LIKE 'mx\_%'"))
        conn.execute(text(r"DELETE FROM request_type WHERE key LIKE 'mx\_%'"))
        for table, keys in SEEDED.items():
            conn.execute(text(f"DELETE FROM {table} WHERE key <> ALL(:keys)"), {"keys": keys.split()})


@pytest.fixture(scope="module")
def world(matrix_app, engine):
    """One world for the whole matrix: building it per route would take most of the time.
    Every request that uses an object up (deletes, moves, transitions) gets a fresh one."""
    empty(engine)
    w = World(matrix_app, engine)
    yield w
    w.admin.close()
    w.http.close()
    empty(engine)


# --------------------------------------------------------------------------- response bodies


def route_of(app, method: str, path: str) -> APIRoute:
    """The route (METHOD, path template) of the app."""
    for c in iter_route_contexts(app.routes):
        if isinstance(c.original_route, APIRoute) and c.path == path and method in (c.methods or ()):
            return c.original_route
    raise LookupError(f"{method} {path}")


def body_fits_model(app, key, r, where: str) -> list[str]:
    """A 2xx JSON answer validates against its route's response model (as tipg checks its
    bodies); what was wrong, else nothing."""
    if not 200 <= r.status_code < 300 or "json" not in r.headers.get("content-type", ""):
        return []
    route = route_of(app, *key)
    model = route.response_model
    if model is None:
        if route.response_class is FileResponse:  # a download (GeoJSON export): a file, not an answer
            return []
        return [f"{where} | answered JSON, but the route declares no response_model"]
    try:
        TypeAdapter(model).validate_python(r.json())
    except ValidationError as exc:
        return [f"{where} | body does not fit {getattr(model, '__name__', model)}: {str(exc)[:400]}"]
    return []


# --------------------------------------------------------------------------- the tests


def check_cell(w: World, key, row: Row, caller: str, scope: str) -> list[str]:
    """Run one cell; return what was wrong with it (empty: all good)."""
    req = row.build(w, caller, scope)
    headers = req.headers if req.headers is not None else w.headers[caller]
    want = row.expected(caller, scope)
    before = w.state()
    r = w.http.request(req.method, req.path, params=req.params, json=req.json, data=req.data, files=req.files,
                       headers=headers, follow_redirects=False)
    w.http.cookies.clear()  # a map login's cookie must not log the next caller in
    after = w.state()
    where = f"{key[0]} {key[1]} | {caller:<11} | {scope:<11}"
    wrong = []
    if r.status_code != want:
        wrong.append(f"{where} | expected {want}, got {r.status_code}: {r.text[:160]}")
    if r.status_code >= 500:
        return wrong
    wrong += body_fits_model(w.app, key, r, where)
    if 400 <= r.status_code < 500:
        changed = sorted(k for k in before if before[k] != after.get(k))
        if changed:
            wrong.append(f"{where} | refused with {r.status_code} but changed {', '.join(changed)}")
    elif row.kind == "write" and row.trail and r.status_code == want:
        column = "audit.max_id" if row.trail == "audit" else "incident_event.max_id"
        if after[column] <= before[column]:
            wrong.append(f"{where} | accepted write left no row in {column.split('.')[0]}")
    if row.kind == "list" and r.status_code == 200 and r.status_code == want:
        found = row.found(r)
        a, b = row.markers(w)
        if caller == "admin":
            target = a if scope in ("in", "any") else b
            if not target <= found:
                wrong.append(f"{where} | admin's list lacks {sorted(target - found)}")
        else:
            holds_a = caller in AREA_CALLERS or (caller == "handler" and "in" in row.handler_in)
            if holds_a and scope in ("in", "any") and not a <= found:
                wrong.append(f"{where} | list lacks rows in scope {sorted(a - found)}")
            if b & found:
                wrong.append(f"{where} | list shows rows out of scope {sorted(b & found)}")
    if row.browser_redirect and caller == "anonymous":
        browser = w.http.request(req.method, req.path, params=req.params, headers={"Accept": "text/html"},
                                 follow_redirects=False)
        location = browser.headers.get("location", "")
        if browser.status_code != 303 or not location.startswith("/maps/login"):
            wrong.append(f"{where} (browser) | expected 303 to /maps/login, got {browser.status_code} {location}")
    return wrong


@pytest.mark.parametrize("key", _route_ids(), ids=lambda k: f"{k[0]} {k[1]}")
def test_route_authorisation(key, matrix_app, world):
    present = set(app_routes(matrix_app))
    if key not in SPEC:
        pytest.fail(f"new route without a row in the authorisation matrix: {key[0]} {key[1]}")
    if key not in present:
        pytest.fail(f"a row in the authorisation matrix for a route that no longer exists: {key[0]} {key[1]}")
    row = SPEC[key]
    wrong = []
    for scope in row.scopes:
        for caller in CALLERS:
            wrong += check_cell(world, key, row, caller, scope)
    assert not wrong, "\n" + "\n".join(wrong)


def test_docs_are_open(app):
    anon = TestClient(app)
    for path, media in DOCS.items():
        r = anon.get(path)
        assert r.status_code == 200, (path, r.status_code)
        assert r.headers["content-type"].startswith(media), (path, r.headers["content-type"])
    assert "/api/token" in json.dumps(anon.get("/openapi.json").json()["paths"])


def test_the_matrix_covers_every_route_and_only_those(app):
    present = set(app_routes(app))
    assert len(present) >= 80
    assert not present - set(SPEC), [f"new route without a row in the authorisation matrix: {m} {p}"
                                     for m, p in sorted(present - set(SPEC))]
    assert not set(SPEC) - present, [f"a row for a route that no longer exists: {m} {p}"
                                     for m, p in sorted(set(SPEC) - present)]
