"""The service through failures of the database, under load, with real processes: a
standby stopped while the public reads (reads move to the primary, no 5xx), and the
primary stopped while intakes come in, a standby promoted (`geogrid db promote`): the
service reconnects by itself, and with synchronous commit every intake it acknowledged
is on the new primary, once. Each test has a cluster of its own; every wait is bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import AREAS, PASSWORD, SINCE
from sqlalchemy import create_engine, text

from geogrid.access import accounts
from geogrid.areas import importing
from geogrid.db import cluster
from geogrid.db import engine as db

from .conftest import make_cluster, remove_cluster, wait_replayed
from .test_hosts import POINTS, Service

CLI = [str(Path(sys.executable).with_name("geogrid"))]


def _prepare(settings, tmp: Path):
    """Schema, the incident world's areas (published) and an admin account on the primary;
    the service's settings (multi-host primary URL, the standby's URL)."""
    url = cluster.database_url(settings)
    db.migrate(url)
    engine = create_engine(url)
    service = settings.model_copy(update={"database_url": url, "replica_urls": cluster.replica_urls(settings),
                                          "state_dir": tmp})
    try:
        codes = list(AREAS)
        records = [{"code": c, "name": AREAS[c][0], "level": AREAS[c][1], "layer": AREAS[c][2],
                    "parent": AREAS[c][3]} for c in codes]
        with db.transaction(engine) as session:
            importing.import_areas(session, records, [AREAS[c][4] for c in codes], service, valid_from=SINCE)
            from geogrid.publication import generations

            for layer in ("admin", "comprehensive"):
                generations.publish(session, "339901", layer=layer, note="failover test")
            accounts.create_account(session, "failover-admin", PASSWORD)
            accounts.grant(session, "failover-admin", "admin", None)
    finally:
        engine.dispose()
    wait_replayed(settings)
    return service


def _token(base: str) -> dict:
    r = httpx.post(base + "/api/token", data={"username": "failover-admin", "password": PASSWORD}, trust_env=False)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def replicated_service(tmp_path, request):
    synchronous = getattr(request, "param", None)
    settings = make_cluster(replicas=1, synchronous=synchronous)
    started: list[Service] = []
    try:
        service = _prepare(settings, tmp_path)
        started.append(Service(service, tmp_path, GEOGRID_REPLICA_URLS=f'["{service.replica_urls[0]}"]'))
        yield settings, started[0]
    finally:
        for s in started:
            s.kill()
        remove_cluster(settings)


def test_reads_move_to_the_primary_when_the_standby_stops_and_back(replicated_service):
    settings, api = replicated_service
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=api.base, trust_env=False, timeout=20) as c:
            i = 0
            while not stop.is_set():
                x, y = POINTS[i % len(POINTS)]
                try:
                    r = c.get("/api/locate", params={"lon": x, "lat": y})
                    seen.append((r.status_code, r.headers.get("geogrid-read-from")))
                except httpx.TransportError:
                    seen.append((0, None))
                i += 1

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        time.sleep(1.5)
        before = len(seen)
        assert cluster.down(settings, only="standby1")
        time.sleep(3)
        during = len(seen)
        cluster.start(settings, "standby1")
        wait_replayed(settings)
        time.sleep(3)
    finally:
        stop.set()
        for t in readers:
            t.join(30)
    statuses = {code for code, _ in seen}
    assert statuses == {200}, sorted(statuses)  # no 5xx, no dropped connection, at any time
    assert {src for _, src in seen[:before]} == {"standby"}
    assert "primary" in {src for _, src in seen[before:during]}
    assert seen[-1][1] == "standby", seen[-20:]  # back on the standby once it caught up
    assert len(seen) - during > 20


@pytest.mark.parametrize("replicated_service", [True], indirect=True)
def test_promotion_under_intake_load_loses_nothing_acknowledged(replicated_service):
    """Synchronous commit to the standby: an intake answered 201 is on the standby before the
    answer. The primary stops mid-load, the standby is promoted with `geogrid db promote`;
    clients retry failures with their idempotency keys until the service answers again."""
    settings, api = replicated_service
    auth = _token(api.base)
    prefix, clients, per_client = f"failover-{os.getpid()}", 4, 30
    acknowledged: dict[str, str] = {}
    errors: list[int] = []
    lost: list[str] = []
    lock = threading.Lock()

    def send(c: int) -> None:
        with httpx.Client(base_url=api.base, headers=auth, trust_env=False, timeout=20) as http:
            for i in range(per_client):
                key = f"{prefix}-{c}-{i}"
                x, y = POINTS[(c + i) % len(POINTS)]
                body = {"category": "sanitation", "description": f"切换 {key}", "lon": x, "lat": y,
                        "idempotency_key": key}
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        r = http.post("/api/incidents", json=body)
                    except httpx.TransportError:
                        time.sleep(0.2)
                        continue
                    receipt = r.json().get("receipt") if r.status_code in (201, 409) else None
                    if receipt:
                        with lock:
                            acknowledged[key] = receipt
                        break
                    errors.append(r.status_code)
                    time.sleep(0.2)
                else:
                    lost.append(key)
                time.sleep(0.02)

    threads = [threading.Thread(target=send, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stored_before = len(acknowledged)
    assert cluster.down(settings, only="primary")
    promoted = subprocess.run([*CLI, "db", "promote"], env={**os.environ, "GEOGRID_STATE_DIR": str(settings.state_dir),
                                                             "GEOGRID_DB_PORT": str(settings.db_port)},
                              capture_output=True, text=True, timeout=60)
    assert promoted.returncode == 0, promoted.stderr
    assert "promoted standby1" in promoted.stdout
    for t in threads:
        t.join(120)
    assert not lost, lost[:5]
    assert stored_before > 0 and len(acknowledged) == clients * per_client
    assert set(errors) <= {503}, sorted(set(errors))  # the outage showed as "try again", briefly
    engine = create_engine(cluster.database_url(settings))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT NOT pg_is_in_recovery()")).scalar()
            stored = dict(conn.execute(text("SELECT idempotency_key, receipt FROM incident WHERE idempotency_key "
                                            "LIKE :p"), {"p": prefix + "-%"}).all())
    finally:
        engine.dispose()
    assert stored == acknowledged  # every acknowledged intake, once, under the receipt its client got
    health = httpx.get(api.base + "/healthz", trust_env=False, timeout=10)
    assert health.status_code == 200
