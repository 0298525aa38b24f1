"""Load test of incident intake (POST /api/incidents) against the real service.

    .venv/bin/python bench/intake_load.py [--clients 50] [--requests 5000] [--workers 1,2]
                                          [--client httpx|raw] [--rate R] [--time-limit 120]
                                          [--warmup 100] [--profile 200] [--seed S]

1. A scratch database (``geogrid_bench_intake_<pid>`` on the configured server) is created,
   migrated and loaded with the demo jurisdiction (``geogrid.io.demo.load``; its demo-account
   passwords go to a temporary state directory, not the project's). An account with the
   inspector role on the demo town is created by the trusted local operator.
2. For each worker count in ``--workers``: the service runs in a subprocess,
   ``uvicorn --factory api.app:create_app --workers N`` on 127.0.0.1 and a free port, with
   GEOGRID_DATABASE_URL pointing at the scratch database and GEOGRID_ESCALATION_INTERVAL_S=0.
   The client logs in once (POST /api/token), reads /api/categories, sends ``--warmup``
   requests (not timed), then ``--clients`` concurrent asyncio clients (httpx.AsyncClient,
   keep-alive, no proxies; or ``--client raw``, a minimal HTTP/1.1 client with one keep-alive
   connection each) POST ``--requests`` incidents in all: random points inside the demo town,
   random categories, a unique idempotency_key each. A client stops after its share or at
   ``--time-limit`` seconds. Closed loop by default (each client sends its next request when the
   last one is answered); ``--rate R`` offers R requests/s in all instead (open loop, latency
   counted from each request's due time). Reported: throughput, p50/p90/p99/max latency,
   errors by status, CPU seconds used by the client, the service (uvicorn and its workers) and
   the scratch database's PostgreSQL backends during the run, and what that CPU per request
   allows at most on this machine.
3. Integrity, from the database: as many incidents with the run's key prefix as 201 answers,
   no duplicate idempotency keys or receipts, every 201 receipt stored under its own key, one
   'report' event per incident.
4. ``--profile N``: N sequential intakes through the same app in this process
   (httpx.ASGITransport: routing, dependencies and thread pool as under uvicorn, no sockets),
   every SQL statement timed (SQLAlchemy cursor events), with the pool check-outs (pre-ping),
   transactions and savepoints per request and the share of request time spent in SQL.

Targets: >= 500 requests/s and p99 < 50 ms. The server is stopped and the scratch database
dropped at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from machine import describe, loadavg  # noqa: E402  (bench/ is on sys.path when run)

from geogrid.access import accounts

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_RPS = 500.0
TARGET_P99_MS = 50.0
TOWN = "339901100"
USER = "bench-inspector"
CLK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc (what the client, the service and PostgreSQL used during a run)


def proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children(p)
    return seen


def _postgres_pids(database: str) -> list[int]:
    """The postgres backends serving ``database`` (their process title names it); the
    cluster's shared processes (WAL writer, checkpointer) and other databases are left out."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if d.joinpath("comm").read_text().strip() == "postgres":
                    title = d.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
                    if database in title:
                        pids.append(int(d.name))
    return pids


class CpuMeter:
    """CPU seconds of this process, the server process tree and the postgres backends of the
    scratch database between start() and stop()."""

    def __init__(self, server_pid: int, database: str):
        self.server_pid, self.database = server_pid, database

    def _sample(self) -> dict[str, dict[int, float]]:
        return {"client": {os.getpid(): proc_cpu(os.getpid())},
                "server": {p: proc_cpu(p) for p in process_tree(self.server_pid)},
                "postgres": {p: proc_cpu(p) for p in _postgres_pids(self.database)}}

    def start(self):
        self.before = self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        return {k: sum(v - self.before[k].get(p, 0.0) for p, v in after[k].items()) for k in after}


# --------------------------------------------------------------------------------------------
# scratch database and server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_database(name: str | None, state_dir: Path, url: str | None = None, purpose: str = "intake load test"):
    """The database ``name`` created afresh on the project cluster (or the one at ``url``),
    migrated, with the demo and an inspector account on the demo town; (url, settings,
    engine, password, the town's shape, versions)."""
    from sqlalchemy import create_engine, text

    from geogrid.core.settings import Settings
    from geogrid.db import cluster
    from geogrid.db import engine as db
    from geogrid.io import demo

    if url is None:
        url = cluster.create_database(Settings(), str(name), drop_existing=True)
    db.migrate(url)
    settings = Settings(database_url=url, state_dir=state_dir, escalation_interval_s=0)
    engine = create_engine(url)
    demo.load(engine, settings, state_dir / "demo", cases=False)
    password = secrets.token_urlsafe(18)
    with db.transaction(engine) as session:  # no principal: the trusted local operator
        accounts.create_account(session, USER, password, display_name=purpose)
        accounts.grant(session, USER, "inspector", TOWN)
    with engine.connect() as conn:
        wkb = conn.execute(text("SELECT ST_AsBinary(b.geom) FROM boundary b JOIN area a ON a.id = b.area_id "
                                "WHERE a.code = :c AND upper_inf(b.valid)"), {"c": TOWN}).scalar_one()
        pg = conn.execute(text("SHOW server_version")).scalar_one().split()[0]
        postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
        max_conn = conn.execute(text("SHOW max_connections")).scalar_one()
    return url, settings, engine, password, shapely.from_wkb(bytes(wkb)), f"PostgreSQL {pg} / PostGIS {postgis} (max_connections {max_conn})"


class Server:
    def __init__(self, url: str, state_dir: Path, workers: int, log: Path, app: str = "api.app:create_app"):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "GEOGRID_DATABASE_URL": url, "GEOGRID_ESCALATION_INTERVAL_S": "0",
               "GEOGRID_STATE_DIR": str(state_dir), "GEOGRID_HOST": "127.0.0.1", "GEOGRID_PORT": str(self.port)}
        self.log_path = log
        self.log = open(log, "w")
        uvicorn = str(Path(sys.executable).with_name("uvicorn"))
        self.proc = subprocess.Popen(
            [uvicorn, "--factory", app, "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers), "--no-access-log", "--log-level", "warning"],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/healthz", timeout=2, trust_env=False).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, n: int = 15) -> str:
        if not self.log.closed:
            self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            # The server runs in its own session: signal its process group (uvicorn and its workers).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


# --------------------------------------------------------------------------------------------
# the load


def town_points(town, n: int, rng) -> np.ndarray:
    x0, y0, x1, y1 = town.bounds
    shapely.prepare(town)
    out = []
    while sum(len(o) for o in out) < n:
        px, py = rng.uniform(x0, x1, 2 * n), rng.uniform(y0, y1, 2 * n)
        out.append(np.column_stack([px, py])[shapely.contains_xy(town, px, py)])
    return np.round(np.concatenate(out)[:n], 7)


def body(prefix: str, i: int, point, category: str) -> dict:
    return {"category": category, "lon": float(point[0]), "lat": float(point[1]),
            "description": f"load test {prefix} #{i}: 路面积水，井盖缺失", "channel": "patrol",
            "idempotency_key": f"{prefix}-{i:06d}"}


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client on one asyncio stream (--client raw): a fraction
    of httpx's CPU per request, which matters when client and server share the CPUs."""

    def __init__(self, base: str, token: str):
        host_port = base.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.head = (f"Host: {host_port}\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\n").encode()
        self.reader = self.writer = None

    async def post(self, path: str, payload: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(payload).encode()
        try:
            self.writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\n" + self.head
                              + b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            headers = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
            headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
            content = await self.reader.readexactly(int(headers.get(b"content-length", b"0")))
            if headers.get(b"connection", b"").lower() == b"close":
                await self.close()
            return status, content
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def run_load(base: str, token: str, categories: list[str], points: np.ndarray, prefix: str, start: int,
                   n_requests: int, n_clients: int, time_limit: float, rate: float = 0.0, client_kind: str = "httpx"):
    """n_clients tasks share n_requests; each stops after its share or at the deadline.
    rate > 0: open loop, request k (over all clients) is due at k / rate seconds and its
    latency counts from then (no coordinated omission); 0: each client sends as fast as it can.
    client_kind: "httpx" (one httpx.AsyncClient, a keep-alive pool of n_clients connections)
    or "raw" (RawConnection: one keep-alive connection per client).
    Returns records (key, status, latency s, receipt or error) and the wall time."""
    import httpx

    records: list[tuple[str, int, float, str | None]] = []
    limits = httpx.Limits(max_connections=n_clients, max_keepalive_connections=n_clients)
    headers = {"Authorization": f"Bearer {token}"}
    shares = [n_requests // n_clients + (c < n_requests % n_clients) for c in range(n_clients)]
    offsets = np.cumsum([0] + shares)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30.0, trust_env=False) as client:
        t0 = time.perf_counter()
        deadline = t0 + time_limit

        async def worker(c: int):
            rnd = random.Random(c)
            raw = RawConnection(base, token) if client_kind == "raw" else None
            try:
                for k, i in enumerate(range(offsets[c], offsets[c] + shares[c])):
                    if time.perf_counter() > deadline:
                        return
                    n = start + i
                    payload = body(prefix, n, points[n % len(points)], rnd.choice(categories))
                    t = time.perf_counter()
                    if rate:
                        due = t0 + (c + k * n_clients) / rate
                        if due > t:
                            await asyncio.sleep(due - t)
                        t = due
                    try:
                        if raw is not None:
                            status, content = await asyncio.wait_for(raw.post("/api/incidents", payload), 30.0)
                        else:
                            r = await client.post("/api/incidents", json=payload)
                            status, content = r.status_code, r.content
                        dt_ = time.perf_counter() - t
                        receipt = json.loads(content).get("receipt") if status == 201 else content[:200].decode(errors="replace")
                        records.append((payload["idempotency_key"], status, dt_, receipt))
                    except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
                        cause = exc.__cause__ or exc.__context__
                        detail = f"{type(exc).__name__} after {time.perf_counter() - t:.2f} s, " \
                                 f"{time.perf_counter() - t0:.1f} s into the run" + (f" ({cause!r})" if cause else "")
                        records.append((payload["idempotency_key"], 0, time.perf_counter() - t, detail))
            finally:
                if raw is not None:
                    await raw.close()

        await asyncio.gather(*(worker(c) for c in range(n_clients)))
        wall = time.perf_counter() - t0
    return records, wall


def login(base: str, password: str) -> tuple[str, list[str]]:
    import httpx

    with httpx.Client(base_url=base, trust_env=False, timeout=30) as c:
        r = c.post("/api/token", data={"username": USER, "password": password})
        r.raise_for_status()
        token = r.json()["access_token"]
        cats = c.get("/api/categories", headers={"Authorization": f"Bearer {token}"})
        cats.raise_for_status()
        return token, [k["key"] for k in cats.json()]


def integrity(engine, prefix: str, records) -> dict:
    from sqlalchemy import text

    ok = {k: r for k, s, _, r in records if s == 201}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT idempotency_key, receipt, id FROM incident WHERE idempotency_key LIKE :p"),
                            {"p": prefix + "-%"}).all()
        events = conn.execute(text("""
            SELECT count(*) FILTER (WHERE n <> 1) FROM (
                SELECT i.id, count(e.id) FILTER (WHERE e.action = 'report') AS n
                FROM incident i LEFT JOIN incident_event e ON e.incident_id = i.id
                WHERE i.idempotency_key LIKE :p GROUP BY i.id) q"""), {"p": prefix + "-%"}).scalar_one()
    keys = collections.Counter(r.idempotency_key for r in rows)
    receipts = collections.Counter(r.receipt for r in rows)
    stored = {r.idempotency_key: r.receipt for r in rows}
    lost = [k for k, rc in ok.items() if stored.get(k) != rc]
    extra = [k for k in stored if k not in ok]
    return {"stored": len(rows), "ok": len(ok), "dup_keys": sum(1 for v in keys.values() if v > 1),
            "dup_receipts": sum(1 for v in receipts.values() if v > 1), "lost": len(lost), "extra": len(extra),
            "bad_events": events}


def summarise(workers: int, records, wall: float, cpu: dict, check: dict, clients: int) -> dict:
    lat = np.array([r[2] for r in records]) * 1000
    status = collections.Counter(r[1] for r in records)
    ok = status.get(201, 0)
    out = {"workers": workers, "n": len(records), "ok": ok, "wall": wall, "rps": len(records) / wall,
           "ok_rps": ok / wall, "p50": np.percentile(lat, 50), "p90": np.percentile(lat, 90),
           "p99": np.percentile(lat, 99), "max": lat.max(), "mean": lat.mean(), "status": dict(status), "cpu": cpu,
           "check": check, "clients": clients}
    out["errors"] = {s: n for s, n in status.items() if s != 201}
    samples = collections.defaultdict(list)
    for _, s, _, detail in records:
        if s != 201 and len(samples[s]) < 2:
            samples[s].append(detail)
    out["error_samples"] = dict(samples)
    out["pass"] = (out["rps"] >= TARGET_RPS and out["p99"] < TARGET_P99_MS and not out["errors"]
                   and check["stored"] == ok and not check["lost"] and not check["dup_keys"]
                   and not check["dup_receipts"] and not check["bad_events"])
    return out


def print_run(r: dict) -> None:
    c, k = r["cpu"], r["check"]
    errors = ", ".join(f"{s or 'transport'}: {n}" for s, n in sorted(r["errors"].items())) or "none"
    print(f"  {r['n']:,} requests in {r['wall']:.2f} s: {r['rps']:.0f} req/s ({r['ok_rps']:.0f} x 201/s); latency ms "
          f"p50 {r['p50']:.1f}, p90 {r['p90']:.1f}, p99 {r['p99']:.1f}, max {r['max']:.1f}, mean {r['mean']:.1f}")
    print(f"  status: {dict(sorted(r['status'].items()))}; errors: {errors}")
    for s, details in r["error_samples"].items():
        for d in details:
            print(f"    e.g. {s}: {d}")
    per = {k: v / max(1, r["n"]) * 1000 for k, v in c.items()}
    ceiling = (os.cpu_count() or 1) * 1000 / max(1e-9, sum(per.values()))
    print(f"  CPU seconds during the run: client {c['client']:.1f}, service {c['server']:.1f}, "
          f"postgres backends {c['postgres']:.1f} (of {r['wall'] * (os.cpu_count() or 1):.1f} available); per request "
          f"{per['client']:.1f} + {per['server']:.1f} + {per['postgres']:.1f} ms: at most ~{ceiling:.0f} req/s "
          f"on {os.cpu_count()} idle CPUs")
    print(f"  database: {k['stored']:,} incidents stored for {k['ok']:,} answers 201; duplicate keys {k['dup_keys']}, "
          f"duplicate receipts {k['dup_receipts']}, lost 201 receipts {k['lost']}, stored without a 201 {k['extra']}, "
          f"incidents without exactly one report event {k['bad_events']}")


# --------------------------------------------------------------------------------------------
# in-process profile: which statements an intake spends its time on


def normalise_sql(statement: str) -> str:
    s = " ".join(statement.split())
    s = re.sub(r"\s+", " ", s)
    return s[:110]


def profile(settings, password: str, points: np.ndarray, n: int, prefix: str) -> None:
    """n sequential intakes through the ASGI app in this process (httpx.ASGITransport: the same
    routing, dependencies and thread pool as under uvicorn, no sockets), every SQL statement timed."""
    import httpx
    from sqlalchemy import event

    from api.app import create_app
    from geogrid.db.engine import get_async_engine, get_engine

    # Intake runs on the asyncio engine (its sync face carries the events); the rest on the sync one.
    engines = [get_engine(settings), get_async_engine(settings).sync_engine]
    stats = collections.defaultdict(lambda: [0, 0.0])
    tx = collections.Counter()
    started = {}

    def before(conn, cursor, statement, params, context, executemany):
        started[id(cursor)] = time.perf_counter()

    def after(conn, cursor, statement, params, context, executemany):
        s = stats[normalise_sql(statement)]
        s[0] += 1
        s[1] += time.perf_counter() - started.pop(id(cursor), time.perf_counter())

    listeners = [("before_cursor_execute", before), ("after_cursor_execute", after)]
    for name in ("begin", "commit", "rollback", "savepoint", "release_savepoint"):
        def count(*_a, _name=name, **_k):
            tx[_name] += 1
        listeners.append((name, count))
    for engine in engines:
        for name, fn in listeners:
            event.listen(engine, name, fn)

    def checkout(*_a):
        tx["pool checkout (pre-ping)"] += 1

    pools = [engine.pool for engine in engines]  # dispose() below gives an engine a new pool
    for pool in pools:
        event.listen(pool, "checkout", checkout)

    async def go():
        app = create_app(settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            r = await client.post("/api/token", data={"username": USER, "password": password})
            h = {"Authorization": f"Bearer {r.json()['access_token']}"}
            categories = [c["key"] for c in (await client.get("/api/categories", headers=h)).json()]
            rnd = random.Random(7)
            for i in range(20):  # warm-up: connections, prepared statements
                await client.post("/api/incidents", json=body(prefix + "w", i, points[i], rnd.choice(categories)), headers=h)
            stats.clear()
            tx.clear()
            lat = []
            cpu0, t0 = time.process_time(), time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                r = await client.post("/api/incidents", headers=h,
                                      json=body(prefix, i, points[i % len(points)], rnd.choice(categories)))
                lat.append(time.perf_counter() - t)
                assert r.status_code == 201, r.text
            done = lat, time.perf_counter() - t0, time.process_time() - cpu0
        await get_async_engine(settings).dispose()  # its connections belong to this event loop
        return done

    try:
        lat, wall, cpu = asyncio.run(go())
    finally:
        for engine, pool in zip(engines, pools):
            for name, fn in listeners:
                event.remove(engine, name, fn)
            event.remove(pool, "checkout", checkout)
        engines[0].dispose()
    db_total = sum(v[1] for v in stats.values())
    per = sum(v[0] for v in stats.values()) / n
    print(f"\n[profile] {n} sequential intakes in-process (ASGI transport, no sockets): mean {wall / n * 1000:.2f} ms, "
          f"p50 {np.percentile(lat, 50) * 1000:.2f} ms, Python CPU {cpu / n * 1000:.2f} ms/request; "
          f"{per:.1f} SQL statements/request taking {db_total / n * 1000:.2f} ms ({db_total / wall:.0%} of the time)")
    print("  also per request: " + ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(tx.items()))
          + " (pre-ping, BEGIN and COMMIT are round trips outside the statement list)")
    print(f"  {'ms/req':>7} {'mean ms':>8} {'calls/req':>9}  statement")
    for sql, (calls, total) in sorted(stats.items(), key=lambda kv: -kv[1][1])[:16]:
        print(f"  {total / n * 1000:7.2f} {total / calls * 1000:8.2f} {calls / n:9.1f}  {sql}")


# --------------------------------------------------------------------------------------------


def machine() -> str:
    import fastapi
    import httpx
    import sqlalchemy
    import uvicorn

    return describe(uvicorn=uvicorn.__version__, fastapi=fastapi.__version__, sqlalchemy=sqlalchemy.__version__,
                    httpx=f"{httpx.__version__} (client and server share the machine)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=5000, help="requests per worker configuration")
    ap.add_argument("--workers", default="1,2", help="uvicorn worker counts to try, e.g. 2 or 1,2 (default)")
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds; clients stop sending after this")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="open loop: offered requests/s over all clients (default 0: closed loop, as fast as possible)")
    ap.add_argument("--client", choices=("httpx", "raw"), default="httpx",
                    help="httpx.AsyncClient (default) or a minimal asyncio HTTP/1.1 client that leaves more CPU to the server")
    ap.add_argument("--warmup", type=int, default=100, help="untimed requests after each server start")
    ap.add_argument("--profile", type=int, default=200, metavar="N", help="in-process profile of N intakes (0: skip)")
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args(argv)
    worker_counts = [int(w) for w in str(args.workers).split(",") if w.strip()]
    rng = np.random.default_rng(args.seed)

    print(machine())
    name = f"geogrid_bench_intake_{os.getpid()}"
    state_dir = Path(tempfile.mkdtemp(prefix="geogrid-intake-"))
    server = engine = None
    results = []
    from geogrid.core.settings import Settings
    from geogrid.db import cluster

    # SIGTERM (e.g. from timeout) must also run the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        t = time.perf_counter()
        url, settings, engine, password, town, versions = prepare_database(name, state_dir)
        points = town_points(town, 20_000, rng)
        print(f"scratch database {name}: demo jurisdiction loaded, account {USER} (inspector on {TOWN}) "
              f"in {time.perf_counter() - t:.1f} s; {versions}")
        run_id = secrets.token_hex(3)
        start = 0
        for workers in worker_counts:
            prefix = f"bench-{run_id}-w{workers}"
            server = Server(url, state_dir, workers, state_dir / f"server-w{workers}.log")
            server.wait_ready()
            token, categories = login(server.base, password)
            print(f"\n[{workers} worker{'s' if workers > 1 else ''}] {server.base}, {len(categories)} categories; "
                  f"{args.clients} {args.client} clients x {args.requests:,} requests (limit {args.time_limit:g} s), "
                  f"{args.warmup} warm-up requests first"
                  + (f"; open loop at {args.rate:g} req/s offered" if args.rate else "; closed loop"), flush=True)
            warm, _ = asyncio.run(run_load(server.base, token, categories, points, f"bench-{run_id}-warm{workers}", start,
                                           args.warmup, min(args.clients, max(1, args.warmup)), args.time_limit))
            start += args.warmup
            meter = CpuMeter(server.proc.pid, name)
            meter.start()
            records, wall = asyncio.run(run_load(server.base, token, categories, points, prefix, start,
                                                 args.requests, args.clients, args.time_limit, args.rate,
                                                 args.client))
            cpu = meter.stop()
            start += args.requests
            server.stop()
            log_text = server.log_path.read_text(errors="replace").strip()
            transport_errors = sum(1 for rec in records if rec[1] == 0)
            if "Traceback" in log_text or transport_errors:
                print(f"  server log ({len(log_text.splitlines())} lines)"
                      + (f", last lines:\n{server.tail()}" if log_text else ": empty (uvicorn at --log-level warning)"))
            server = None
            check = integrity(engine, prefix, records)
            r = summarise(workers, records, wall, cpu, check, args.clients)
            print_run(r)
            if warm_errors := sum(1 for w in warm if w[1] != 201):
                print(f"  (also {warm_errors} errors among the {len(warm)} warm-up requests)")
            results.append(r)
        if args.profile:
            profile(settings, password, points, args.profile, f"bench-{run_id}-profile")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the server and dropping the scratch database")
        return 130
    finally:
        if server is not None:
            server.stop()
        if engine is not None:
            engine.dispose()
        cluster.drop_database(Settings(), name)
        shutil.rmtree(state_dir, ignore_errors=True)

    print(f"\nload average at the end: {loadavg()} on {os.cpu_count()} CPUs")
    print(f"{'workers':>7} {'clients':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
          f"{'errors':>6} {'stored=201':>10}")
    for r in results:
        k = r["check"]
        print(f"{r['workers']:>7} {r['clients']:>7} {r['n']:>8,} {r['rps']:>7.0f} {r['p50']:>7.1f} {r['p90']:>7.1f} "
              f"{r['p99']:>7.1f} {sum(r['errors'].values()):>6} {str(k['stored'] == k['ok'] and not k['lost']):>10}")
    if not args.rate:
        print(f"closed loop: mean latency = clients / throughput (Little's law), so with {args.clients} clients a mean "
              f"under {TARGET_P99_MS:.0f} ms needs over {args.clients * 1000 / TARGET_P99_MS:,.0f} req/s")
    for r in results:
        verdict = "PASS" if r["pass"] else "FAIL"
        why = []
        if r["rps"] < TARGET_RPS:
            why.append(f"{r['rps']:.0f} req/s < {TARGET_RPS:.0f}")
        if r["p99"] >= TARGET_P99_MS:
            why.append(f"p99 {r['p99']:.1f} ms >= {TARGET_P99_MS:.0f}")
        if r["errors"]:
            why.append(f"{sum(r['errors'].values())} errors")
        k = r["check"]
        if k["stored"] != r["ok"] or k["lost"] or k["dup_keys"] or k["dup_receipts"] or k["bad_events"]:
            why.append("database does not match the 201 answers")
        print(f"VERDICT ({r['workers']} worker{'s' if r['workers'] > 1 else ''}): {verdict} (targets >= {TARGET_RPS:.0f} "
              f"req/s, p99 < {TARGET_P99_MS:.0f} ms, no errors, every 201 stored once)" + (": " + "; ".join(why) if why else ""))
    return 0 if results and all(r["pass"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
