"""Several API processes, on their own ports standing for hosts, behave as one service over
one PostgreSQL: the reference cache is dropped everywhere when a category changes, limits
are counted across processes, the periodic escalation runs once per case, and killing a
process under intake load loses or doubles nothing when clients retry with their
idempotency keys. Real uvicorn processes, real HTTP; nothing is mocked."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[2]
POINTS = [(120.004, 30.006), (120.014, 30.006), (120.004, 30.016), (120.014, 30.016)]  # in W1..W4


class Service:
    """``uvicorn --factory api.app:create_app`` on a free port against the test database."""

    def __init__(self, settings, tmp: Path, **env: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"service-{self.port}.log"
        environ = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url, "GEOGRID_STATE_DIR": str(tmp),
                   "GEOGRID_ESCALATION_INTERVAL_S": "0", "GEOGRID_FACTS_INTERVAL_S": "0", **env}
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("uvicorn")), "--factory", "api.app:create_app", "--host",
                 "127.0.0.1", "--port", str(self.port), "--no-access-log", "--log-level", "warning"],
                cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/healthz", timeout=2, trust_env=False).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"service on {self.port} did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def services(settings, tmp_path):
    started: list[Service] = []

    def start(**env: str) -> Service:
        started.append(Service(settings, tmp_path, **env))
        return started[-1]

    yield start
    for s in started:
        s.kill()


def _http(service: Service, headers: dict) -> httpx.Client:
    return httpx.Client(base_url=service.base, headers=headers, trust_env=False, timeout=20)


def test_a_category_changed_on_one_host_is_used_at_once_by_another(world, services, engine):
    client = world
    a, b = services(), services()
    admin = {"Authorization": client.headers["Authorization"]}
    saved = client.get("/api/categories").json()
    limits = next(c for c in saved if c["key"] == "sanitation")["time_limits"]
    body = {"category": "sanitation", "description": "路面积水", "lon": POINTS[0][0], "lat": POINTS[0][1]}
    try:
        with _http(a, admin) as ca, _http(b, admin) as cb:
            first = cb.post("/api/incidents", json=body)  # b has the categories in its cache now
            assert first.status_code == 201, first.text
            assert cb.post("/api/incidents", json=body).status_code == 201
            # Accepting within 2 days instead: changed through a, with no word to b.
            r = ca.patch("/api/categories/sanitation", json={"time_limits": {"accept": [2, "days"]}})
            assert r.status_code == 200, r.text
            due = []
            deadline = time.monotonic() + 5  # the notification arrives within milliseconds; allow a slow CI
            while time.monotonic() < deadline:
                case = cb.post("/api/incidents", json=body).json()
                due.append(dt.datetime.fromisoformat(case["due_at"]) - dt.datetime.fromisoformat(case["reported_at"]))
                if due[-1] > dt.timedelta(days=1):
                    break
                time.sleep(0.05)
            assert due[-1] > dt.timedelta(days=1), f"b still uses the old time limit after 5 s: {due}"
            before = dt.datetime.fromisoformat(first.json()["due_at"]) - dt.datetime.fromisoformat(
                first.json()["reported_at"])
            assert before < dt.timedelta(days=1)  # the old limit (hours) was in force for the first case
    finally:
        client.patch("/api/categories/sanitation", json={"time_limits": limits})


def test_the_public_report_limit_counts_across_hosts(world, services, settings):
    a, b = services(), services()
    body = {"category": "sanitation", "description": "路灯不亮", "lon": POINTS[1][0], "lat": POINTS[1][1]}
    answers = []
    with _http(a, {}) as ca, _http(b, {}) as cb:
        for i in range(settings.public_reports_per_minute + 1):
            answers.append((ca if i % 2 else cb).post("/api/public/reports", json=body).status_code)
    assert answers[:-1] == [201] * settings.public_reports_per_minute
    assert answers[-1] == 429  # each host alone saw at most 3


def test_the_periodic_escalation_runs_once_per_case_with_several_hosts(world, services, engine):
    client = world
    cases = [client.post("/api/incidents", json={"category": "sanitation", "description": f"超期 {i}",
                                                  "lon": x, "lat": y}).json() for i, (x, y) in enumerate(POINTS)]
    with engine.begin() as conn:  # overdue for an hour; one escalation restarts the limit
        conn.execute(text("UPDATE incident SET due_at = now() - interval '1 hour' WHERE receipt = ANY(:r)"),
                     {"r": [c["receipt"] for c in cases]})
    hosts = [services(GEOGRID_ESCALATION_INTERVAL_S="1") for _ in range(3)]
    assert all(h.proc.poll() is None for h in hosts)
    query = text("SELECT count(*) FROM incident_event e JOIN incident i ON i.id = e.incident_id "
                 "WHERE i.receipt = ANY(:r) AND e.action = 'escalate'")
    deadline = time.monotonic() + 20
    escalated = 0
    while time.monotonic() < deadline and escalated < len(cases):
        time.sleep(0.5)
        with engine.connect() as conn:
            escalated = conn.execute(query, {"r": [c["receipt"] for c in cases]}).scalar_one()
    time.sleep(2.5)  # every host has had its turn at least twice more
    with engine.connect() as conn:
        assert conn.execute(query, {"r": [c["receipt"] for c in cases]}).scalar_one() == len(cases)
        actors = conn.execute(text("SELECT DISTINCT e.actor FROM incident_event e JOIN incident i ON i.id = "
                                   "e.incident_id WHERE i.receipt = ANY(:r) AND e.action = 'escalate'"),
                              {"r": [c["receipt"] for c in cases]}).scalars().all()
    assert actors == ["system:escalation"]


def test_killing_a_host_under_intake_load_loses_and_doubles_nothing(world, services, engine):
    """Clients send to two hosts; one is killed (SIGKILL) mid-run. A client whose request
    failed (no answer, or 5xx) sends it again, with the same idempotency key, to the other
    host: 201 or 409 naming the receipt both mean stored. Every case is stored once."""
    client = world
    auth = {"Authorization": client.headers["Authorization"]}
    a, b = services(), services()
    prefix, per_client, clients = f"kill-{os.getpid()}", 40, 6
    acknowledged: dict[str, str] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def send(c: int) -> None:
        hosts = [a, b] if c % 2 else [b, a]
        with _http(hosts[0], auth) as first, _http(hosts[1], auth) as second:
            for i in range(per_client):
                key = f"{prefix}-{c}-{i}"
                x, y = POINTS[(c + i) % len(POINTS)]
                body = {"category": "sanitation", "description": f"负载 {key}", "lon": x, "lat": y,
                        "idempotency_key": key}
                for attempt, http in enumerate((first, second, second)):
                    try:
                        r = http.post("/api/incidents", json=body)
                    except httpx.TransportError:
                        continue
                    if r.status_code == 201:
                        receipt = r.json()["receipt"]
                    elif r.status_code == 409 and r.json().get("receipt"):
                        receipt = r.json()["receipt"]  # stored by the attempt whose answer was lost
                    else:
                        continue
                    with lock:
                        acknowledged[key] = receipt
                    break
                else:
                    failures.append(key)

    threads = [threading.Thread(target=send, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.8)
    a.kill()
    for t in threads:
        t.join(120)
    assert not failures, failures[:5]
    assert len(acknowledged) == clients * per_client
    with engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT idempotency_key, receipt FROM incident WHERE idempotency_key LIKE :p"),
                                   {"p": prefix + "-%"}).all())
        reports = conn.execute(text("SELECT count(*) FROM incident_event e JOIN incident i ON i.id = e.incident_id "
                                    "WHERE i.idempotency_key LIKE :p AND e.action = 'report'"),
                               {"p": prefix + "-%"}).scalar_one()
    assert stored == acknowledged  # each once, under the receipt its client was given
    assert reports == len(stored)


def test_the_reference_cache_needs_no_second_connection(world, settings):
    """A request holds one connection; filling the cache must not wait for another (with
    every connection of the pool held by requests, that wait would never end)."""
    from sqlalchemy import create_engine

    from geogrid.db import shared_cache
    from geogrid.db.engine import sessionmaker_for
    from geogrid.incidents import categories

    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0, pool_timeout=2)
    try:
        assert shared_cache.wait_listening(engine)
        with sessionmaker_for(engine)() as session:
            session.execute(text("SELECT 1"))  # the session holds the pool's only connection
            cached = categories.cached_categories(session)
            assert "sanitation" in cached
            assert categories.cached_categories(session) is cached  # served from the copy now
            assert categories.request_type_keys(session) == [t["key"] for t in categories.request_types(session)]
    finally:
        engine.dispose()
