"""Reads from a hot standby, and replication lag under intake load.

    .venv/bin/python bench/replication_bench.py [--seconds 20] [--clients 32] [--rate 200]
                                                [--workers 2] [--parts reads,async,sync] [--seed S]

1. A cluster of its own (``geogrid.db.cluster.up(settings, replicas=1)``) in a temporary state
   directory on free ports, run by the unprivileged user as the project's is: a primary and one
   hot standby (streaming replication). The schema is migrated and the demo jurisdiction loaded
   (``geogrid.io.demo.load``, no cases; it publishes every layer) on the primary, with an
   inspector account on the demo town; the benchmark waits until the standby has replayed it.
2. Read scaling (part ``reads``): ``GET /api/locate`` (anonymous, random points in the demo
   town), closed loop, ``--clients`` keep-alive clients, against two services with
   ``--workers`` workers each, both on the primary's URL: (a) GEOGRID_REPLICA_URLS=[] and
   (b) GEOGRID_REPLICA_URLS=[the standby]; loaded in turns of 2 s until each had
   ``--seconds``, so that other work on the machine weighs on both alike. Reported: req/s,
   p50/p99, where each read went (``Geogrid-Read-From``: all on the standby in (b)), whether
   25 points get identical answers from both, and CPU per request of the client, the service
   and each node's processes, split into client backends and the rest (walsender,
   startup/walreceiver, writers), from /proc: the nodes are told apart by their postmaster
   (postmaster.pid in each data directory) and its children, since both name the same
   database; also the connections each node opened. Two cores shared by all of it cannot
   show read scaling: the figures show the cost or neutrality of reading from a standby and
   where the work went.
3. Replication lag under write load (part ``async``): ``--rate`` intakes/s offered (open
   loop, POST /api/incidents as the inspector) for ``--seconds``, the service configured as
   in (b), while a thread samples the primary's ``pg_stat_replication`` every 0.2 s
   (write_lag, flush_lag, replay_lag, and the bytes between pg_current_wal_lsn() and
   replay_lsn) and another measures how long the standby takes to replay what the primary
   had written at that moment. Then the standby must hold every acknowledged incident.
   Part ``sync``: the same with synchronous commit to the standby
   (``cluster.up(settings, synchronous=True)``): the intake latency with and without is the
   documented trade-off.

Exits 0 when it ran (no targets).
All nodes stopped and the state directory deleted at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from intake_load import (  # noqa: E402  (bench/ is on sys.path when run)
    USER,
    RawConnection,
    Server,
    children,
    free_port,
    login,
    machine,
    prepare_database,
    proc_cpu,
    process_tree,
    run_load,
    town_points,
)
from machine import loadavg
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SAMPLE_S = 0.2
CLK = os.sysconf("SC_CLK_TCK")
# Process titles of a node's processes that are not client backends ("postgres: <role> ...").
SERVICE_ROLES = {"walsender": "replication", "walreceiver": "replication", "startup": "replication",
                 "checkpointer": "other", "background": "other", "walwriter": "other", "autovacuum": "other",
                 "logical": "other", "archiver": "other", "stats": "other"}


# --------------------------------------------------------------------------------------------
# the cluster


def conninfo(url: str, database: str | None = None) -> str:
    """A libpq connection string for psycopg from a SQLAlchemy URL."""
    u = make_url(url).set(drivername="postgresql")
    if database:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


def one(conn: psycopg.Connection, query: str, params: tuple = ()):
    """The first column of the first row."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def node_urls(settings) -> tuple[str, str, str, str]:
    """(primary URL, standby URL, primary data dir, standby data dir); single-host URLs."""
    from geogrid.db import cluster

    (standby,) = cluster.standbys(settings)
    st = cluster.status(settings)
    primary_url = make_url(standby["url"]).set(port=st["port"]).render_as_string(hide_password=False)
    return primary_url, standby["url"], st["data_dir"], standby["data_dir"]


def wait_replayed(primary_url: str, standby_url: str, timeout: float = 60.0) -> float:
    """Seconds until the standby has replayed all the primary has inserted into its WAL so far."""
    t0 = time.monotonic()
    with psycopg.connect(conninfo(primary_url), autocommit=True) as p:
        target = one(p, "SELECT pg_current_wal_insert_lsn()")
    with psycopg.connect(conninfo(standby_url), autocommit=True) as s:
        while not one(s, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)):
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"the standby has not replayed {target} after {timeout:.0f} s")
            time.sleep(0.05)
    return time.monotonic() - t0


def prepare(settings, tmp: Path) -> tuple[str, str, str, object, str]:
    """Schema, demo (published), inspector account on the primary; the standby caught up.
    Returns primary URL, standby URL, the inspector's password, the town, versions."""
    primary_url, standby_url, _, _ = node_urls(settings)
    _, _, engine, password, town, versions = prepare_database(None, tmp, url=primary_url,
                                                              purpose="replication benchmark")
    engine.dispose()
    wait_replayed(primary_url, standby_url)
    with psycopg.connect(conninfo(primary_url), autocommit=True) as p, \
            psycopg.connect(conninfo(standby_url), autocommit=True) as s:
        q = "SELECT count(*) FROM published_area"
        if one(p, q) != one(s, q):
            raise RuntimeError("the standby does not hold the published demo after replaying the primary's WAL")
    return primary_url, standby_url, password, town, versions


@contextlib.contextmanager
def environment(**values: str):
    """os.environ with ``values`` set (the service subprocess inherits it), restored after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def launch_server(primary_url: str, replicas: list[str], tmp: Path, workers: int, label: str) -> Server:
    """intake_load's uvicorn subprocess on the primary, with these standbys for reads."""
    with environment(GEOGRID_REPLICA_URLS=json.dumps(replicas)):
        return Server(primary_url, tmp, workers, tmp / f"server-{label.replace(' ', '')}.log")


def start_server(primary_url: str, replicas: list[str], tmp: Path, workers: int, label: str) -> Server:
    server = launch_server(primary_url, replicas, tmp, workers, label)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------------------------
# CPU per node, from /proc


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _postmaster(data_dir: str) -> int | None:
    try:
        return int(Path(data_dir, "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _reaped_cpu(pid: int) -> float:
    """CPU seconds of the children ``pid`` has waited for (cutime + cstime): for a
    postmaster, its backends that ended (connections closed) since it started."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def _node_sample(data_dir: str) -> dict[int, tuple[str, float]]:
    """pid -> (kind, CPU seconds) for a node's postmaster and its children; kind is
    "backends" (client connections), "replication" or "other". Backends that ended are
    counted under the postmaster's negated pid (their CPU went to its cutime/cstime)."""
    pm = _postmaster(data_dir)
    if pm is None:
        return {}
    out = {pm: ("other", proc_cpu(pm)), -pm: ("backends", _reaped_cpu(pm))}
    for pid in children(pm):
        title = _title(pid)
        words = title.removeprefix("postgres:").split()
        kind = SERVICE_ROLES.get(words[0], "backends") if title.startswith("postgres:") and words else "other"
        out[pid] = (kind, proc_cpu(pid))
    return out


class Meter:
    """CPU seconds of this process (the client), the service's process tree, and the
    primary's and the standby's processes by kind, between start() and stop(); also the
    sessions (connections) each node's database had opened (pg_stat_database.sessions),
    as "<node> sessions"."""

    def __init__(self, server_pid: int, nodes: dict[str, str], urls: dict[str, str]):
        self.server_pid, self.nodes, self.urls = server_pid, nodes, urls

    def _sessions(self) -> dict[str, dict[int, float]]:
        out = {}
        for node, url in self.urls.items():
            with psycopg.connect(conninfo(url), autocommit=True) as conn:
                out[f"{node} sessions"] = {0: float(one(conn, "SELECT sessions FROM pg_stat_database "
                                                             "WHERE datname = current_database()"))}
        return out

    def _sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {"client": {os.getpid(): proc_cpu(os.getpid())},
                                            "service": {p: proc_cpu(p) for p in process_tree(self.server_pid)}}
        for node, data_dir in self.nodes.items():
            for pid, (kind, cpu) in _node_sample(data_dir).items():
                out.setdefault(f"{node} {kind}", {})[pid] = cpu
        return out | self._sessions()

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        return {k: sum(v - self.before.get(k, {}).get(p, 0.0) for p, v in pids.items()) for k, pids in after.items()}


def node_cpu(cpu: dict[str, float], node: str) -> tuple[float, float]:
    """(client backends, everything else) of one node."""
    return cpu.get(f"{node} backends", 0.0), cpu.get(f"{node} replication", 0.0) + cpu.get(f"{node} other", 0.0)


# --------------------------------------------------------------------------------------------
# read load: GET /api/locate


class RawGet(RawConnection):
    """intake_load's keep-alive client, anonymous, for GET; also returns the headers."""

    def __init__(self, base: str):
        super().__init__(base, "")
        self.head = f"Host: {base.split('://', 1)[1]}\r\n".encode()

    async def get(self, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)  # type: ignore[assignment]
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head + b"\r\n")
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(b":", 1) for ln in lines[1:] if b":" in ln)}
            content = await self.reader.readexactly(int(headers.get(b"content-length", b"0")))
            if headers.get(b"connection", b"").lower() == b"close":
                await self.close()
            return status, headers, content
        except BaseException:
            await self.close()
            raise


def locate_path(point) -> str:
    return f"/api/locate?lon={point[0]:.7f}&lat={point[1]:.7f}"


async def sample_answers(base: str, points: np.ndarray) -> list[tuple[int, str, bytes]]:
    """Status, Geogrid-Read-From and body for each point, one after another."""
    conn = RawGet(base)
    try:
        out = []
        for p in points:
            status, headers, content = await conn.get(locate_path(p))
            out.append((status, headers.get(b"geogrid-read-from", b"-").decode(), content))
        return out
    finally:
        await conn.close()


async def locate_load(base: str, points: np.ndarray, clients: int, seconds: float, seed: int):
    """Closed loop: each client sends its next locate when the last one is answered, until
    ``seconds`` have passed. Returns [(status, latency s, read_from)] and the wall time."""
    records: list[tuple[int, float, str]] = []
    t0 = time.perf_counter()
    deadline = t0 + seconds

    async def client(c: int) -> None:
        rng = np.random.default_rng(seed + c)
        conn = RawGet(base)
        try:
            while (t := time.perf_counter()) < deadline:
                try:
                    status, headers, _ = await asyncio.wait_for(conn.get(locate_path(points[rng.integers(len(points))])),
                                                                30.0)
                    records.append((status, time.perf_counter() - t, headers.get(b"geogrid-read-from", b"-").decode()))
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                    records.append((0, time.perf_counter() - t, "-"))
        finally:
            await conn.close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    return records, time.perf_counter() - t0


SLICE_S = 2.0  # the read configurations take turns in slices this long


def read_runs(primary_url: str, standby_url: str, nodes: dict[str, str], tmp: Path, points: np.ndarray,
              args) -> list[dict]:
    """Both read configurations, (a) primary only and (b) primary + standby, served at once
    by two services (the idle one costs nothing) and loaded in turns of SLICE_S seconds,
    ABBA..., so that the load of other work on the machine falls on both alike."""
    urls = {"primary": primary_url, "standby": standby_url}
    configs = [("primary only", []), ("primary + standby", [standby_url])]
    servers: list[Server] = []
    try:
        for label, replicas in configs:
            servers.append(launch_server(primary_url, replicas, tmp, args.workers, label))
        for server in servers:
            server.wait_ready()
        runs: list[dict[str, Any]] = []
        for (label, _), server in zip(configs, servers, strict=True):
            answers = asyncio.run(sample_answers(server.base, points[:25]))
            asyncio.run(locate_load(server.base, points, args.clients, args.warmup, args.seed + 1000))  # untimed
            runs.append({"label": label, "records": [], "wall": 0.0, "cpu": collections.Counter(),
                         "answers": answers, "loads": []})
        slices = max(1, round(args.seconds / SLICE_S))
        for k in range(slices):
            for i in ((0, 1) if k % 2 == 0 else (1, 0)):
                run, server = runs[i], servers[i]
                run["loads"].append(float(loadavg()))
                meter = Meter(server.proc.pid, nodes, urls)
                meter.start()
                records, wall = asyncio.run(locate_load(server.base, points, args.clients, args.seconds / slices,
                                                        args.seed + 10 * k + i))
                run["cpu"].update(meter.stop())
                run["records"] += records
                run["wall"] += wall
    finally:
        for server in servers:
            server.stop()
    out = []
    for run in runs:
        records = run.pop("records")
        lat = np.array([r[1] for r in records]) * 1000
        out.append(run | {"n": len(records), "rps": len(records) / run["wall"], "slices": slices,
                          "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                          "status": collections.Counter(r[0] for r in records),
                          "read_from": collections.Counter(r[2] for r in records),
                          "load": f"{min(run['loads']):.1f}-{max(run['loads']):.1f}"})
    return out


def per_request(r: dict) -> dict[str, float]:
    """CPU milliseconds per request by process group (session counts left out)."""
    return {k: v / max(1, r["n"]) * 1000 for k, v in r["cpu"].items() if not k.endswith(" sessions")}


def sessions(r: dict) -> str:
    return f"connections opened: primary {r['cpu']['primary sessions']:.0f}, standby {r['cpu']['standby sessions']:.0f}"


def print_read(r: dict) -> None:
    per = per_request(r)
    pb, po = node_cpu(per, "primary")
    sb, so = node_cpu(per, "standby")
    print(f"  {r['n']:,} locates in {r['wall']:.1f} s: {r['rps']:.0f} req/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms; "
          f"status {dict(r['status'])}; Geogrid-Read-From {dict(r['read_from'])}; load average {r['load']}")
    print(f"  CPU ms per request: client {per['client']:.2f}, service {per['service']:.2f}, primary backends {pb:.2f} "
          f"(+{po:.2f} other), standby backends {sb:.2f} (+{so:.2f} other); total "
          f"{sum(per.values()):.2f} ms of {os.cpu_count()} CPUs; {sessions(r)} (the meter's own included)")


# --------------------------------------------------------------------------------------------
# write load and replication lag


class LagSampler(threading.Thread):
    """pg_stat_replication on the primary every SAMPLE_S seconds, on its own connection."""

    QUERY = """SELECT sync_state,
                      extract(epoch FROM write_lag) * 1000, extract(epoch FROM flush_lag) * 1000,
                      extract(epoch FROM replay_lag) * 1000,
                      pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
               FROM pg_stat_replication WHERE application_name = 'standby1'"""

    def __init__(self, primary_url: str):
        super().__init__(daemon=True)
        self.conn = psycopg.connect(conninfo(primary_url, "postgres"), autocommit=True)
        self.rows: list[tuple] = []
        self.halt = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.halt.is_set():
            row = self.conn.execute(self.QUERY).fetchone()
            self.rows.append(row if row else (None,) * 5)
            next_at += SAMPLE_S
            self.halt.wait(max(0.0, next_at - time.monotonic()))

    def finish(self) -> list[tuple]:
        self.halt.set()
        self.join(5)
        self.conn.close()
        return self.rows


class VisibilityProbe(threading.Thread):
    """What pg_stat_replication cannot say directly: how long until the standby has replayed
    what the primary had written. Every SAMPLE_S seconds it takes the primary's WAL insert
    position and polls the standby's replay position every 5 ms until it is there; records
    (bytes the standby was behind at that moment, milliseconds until replayed)."""

    def __init__(self, primary_url: str, standby_url: str):
        super().__init__(daemon=True)
        self.primary = psycopg.connect(conninfo(primary_url, "postgres"), autocommit=True)
        self.standby = psycopg.connect(conninfo(standby_url, "postgres"), autocommit=True)
        self.rows: list[tuple[float, float | None]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        behind_q = "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())::bigint"
        while not self.halt.is_set():
            t0 = time.monotonic()
            lsn = one(self.primary, "SELECT pg_current_wal_insert_lsn()::text")
            behind = first = one(self.standby, behind_q, (lsn,))
            while behind > 0 and time.monotonic() - t0 < 5.0 and not self.halt.is_set():
                time.sleep(0.005)
                behind = one(self.standby, behind_q, (lsn,))
            self.rows.append((max(0, first), (time.monotonic() - t0) * 1000 if behind <= 0 else None))
            next_at += SAMPLE_S
            self.halt.wait(max(0.0, next_at - time.monotonic()))

    def finish(self) -> list[tuple[float, float | None]]:
        self.halt.set()
        self.join(10)
        self.primary.close()
        self.standby.close()
        return self.rows


def _stats(values: list) -> tuple[float, float, float, int]:
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return float("nan"), float("nan"), float("nan"), 0
    return float(np.percentile(v, 50)), float(np.percentile(v, 99)), float(v.max()), len(v)


def write_run(label: str, settings, tmp: Path, password: str, points: np.ndarray, args, run_id: str) -> dict:
    primary_url, standby_url, primary_dir, standby_dir = node_urls(settings)
    server = start_server(primary_url, [standby_url], tmp, args.workers, label)
    prefix = f"repl-{run_id}-{label}"
    try:
        token, categories = login(server.base, password)
        asyncio.run(run_load(server.base, token, categories, points, f"repl-{run_id}-warm-{label}", 0, 100, 20, 60.0,
                             client_kind="raw"))
        load = loadavg()
        sampler, probe = LagSampler(primary_url), VisibilityProbe(primary_url, standby_url)
        meter = Meter(server.proc.pid, {"primary": primary_dir, "standby": standby_dir},
                      {"primary": primary_url, "standby": standby_url})
        meter.start()
        sampler.start()
        probe.start()
        n = int(args.rate * args.seconds)
        records, wall = asyncio.run(run_load(server.base, token, categories, points, prefix, 1000, n, args.clients,
                                             args.seconds + 30.0, rate=args.rate, client_kind="raw"))
        rows, seen = sampler.finish(), probe.finish()
        cpu = meter.stop()
    finally:
        server.stop()
    catch_up = wait_replayed(primary_url, standby_url)
    ok = {r[0] for r in records if r[1] == 201}
    q = "SELECT count(*) FROM incident WHERE idempotency_key LIKE %s"
    with psycopg.connect(conninfo(primary_url), autocommit=True) as p, \
            psycopg.connect(conninfo(standby_url), autocommit=True) as s:
        on_primary = one(p, q, (prefix + "-%",))
        on_standby = one(s, q, (prefix + "-%",))
        wal_writer_delay = one(p, "SHOW wal_writer_delay")
    lat = np.array([r[2] for r in records]) * 1000
    return {"label": label, "n": len(records), "ok": len(ok), "wall": wall, "rps": len(records) / wall,
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "max": float(lat.max()),
            "status": collections.Counter(r[1] for r in records), "samples": len(rows),
            "sync_state": collections.Counter(r[0] for r in rows),
            "write": _stats([r[1] for r in rows]), "flush": _stats([r[2] for r in rows]),
            "replay": _stats([r[3] for r in rows]), "bytes": _stats([r[4] for r in rows]),
            "visible": _stats([v for _, v in seen]), "direct_bytes": _stats([b for b, _ in seen]),
            "unseen": sum(1 for _, v in seen if v is None), "catch_up": catch_up, "on_primary": on_primary,
            "on_standby": on_standby, "cpu": cpu, "wal_writer_delay": wal_writer_delay, "load": load}


def print_write(r: dict) -> None:
    per = per_request(r)
    print(f"  {r['n']:,} intakes in {r['wall']:.1f} s ({r['rps']:.0f}/s), {r['ok']:,} answered 201: latency p50 "
          f"{r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.0f} ms; status {dict(r['status'])}; "
          f"load average {r['load']} before")
    print(f"  {r['samples']} samples of pg_stat_replication (sync_state {dict(r['sync_state'])}): "
          + "; ".join(f"{k}_lag p50/p99/max {r[k][0]:.2f}/{r[k][1]:.2f}/{r[k][2]:.2f} ms ({r[k][3]} non-null)"
                      for k in ("write", "flush", "replay"))
          + f"; replay behind by p50/p99/max {r['bytes'][0]:,.0f}/{r['bytes'][1]:,.0f}/{r['bytes'][2]:,.0f} bytes")
    v, d = r["visible"], r["direct_bytes"]
    print(f"  probe every {SAMPLE_S:g} s: the standby replayed what the primary had written after p50/p99/max "
          f"{v[0]:.1f}/{v[1]:.1f}/{v[2]:.1f} ms ({v[3]} probes, {r['unseen']} not within 5 s); it was behind by "
          f"p50/p99/max {d[0]:,.0f}/{d[1]:,.0f}/{d[2]:,.0f} bytes at that moment")
    pb, po = node_cpu(per, "primary")
    sb, so = node_cpu(per, "standby")
    print(f"  CPU ms per intake: client {per['client']:.2f}, service {per['service']:.2f}, primary backends {pb:.2f} "
          f"(walsender {per.get('primary replication', 0):.3f}, other {per.get('primary other', 0):.3f}), standby "
          f"replay+receiver {per.get('standby replication', 0):.3f} (backends {sb:.3f}, other {per.get('standby other', 0):.3f}); "
          f"{sessions(r)}")
    same = "yes" if r["on_standby"] == r["on_primary"] == r["ok"] else "NO"
    print(f"  standby caught up {r['catch_up'] * 1000:.0f} ms after the load; incidents primary {r['on_primary']:,}, "
          f"standby {r['on_standby']:,}, answers 201 {r['ok']:,}: every acknowledged intake on the standby: {same}")


# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each timed run")
    ap.add_argument("--clients", type=int, default=32, help="concurrent clients (closed loop reads; open loop writes)")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    ap.add_argument("--rate", type=float, default=200.0, help="intakes/s offered during the lag measurement")
    ap.add_argument("--warmup", type=float, default=3.0, help="untimed seconds of reads after each server start")
    ap.add_argument("--parts", default="reads,async,sync",
                    help="reads (read scaling), async (lag under intake load), sync (the same with synchronous commit)")
    ap.add_argument("--seed", type=int, default=20240614)
    args = ap.parse_args(argv)

    from geogrid.core.settings import Settings
    from geogrid.db import cluster

    print(machine())
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="geogrid-replbench-"))
    settings = Settings(state_dir=tmp, db_port=free_port(), database_url=None, replica_urls=[])
    reads: list[dict] = []
    writes: list[dict] = []
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if unknown := parts - {"reads", "async", "sync"}:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    # SIGTERM (e.g. from timeout) must also run the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        t = time.monotonic()
        info = cluster.up(settings, replicas=1)
        primary_url, standby_url, primary_dir, standby_dir = node_urls(settings)
        print(f"cluster in {tmp}: primary on port {info.port}, standby1 on port {make_url(standby_url).port} "
              f"(pg_basebackup {info.standbys[0]['seconds']:.1f} s), up in {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        primary_url, standby_url, password, town, versions = prepare(settings, tmp)
        points = town_points(town, 20_000, np.random.default_rng(args.seed))
        print(f"schema, demo (published) and account {USER} on the primary, replayed by the standby, in "
              f"{time.monotonic() - t:.1f} s; {versions}")
        nodes = {"primary": primary_dir, "standby": standby_dir}

        if "reads" in parts:
            print(f"\n[reads] (a) GEOGRID_REPLICA_URLS=[] and (b) GEOGRID_REPLICA_URLS=[standby1], one service each "
                  f"({args.workers} workers), {args.clients} clients, closed loop, {args.seconds:g} s each in turns of "
                  f"{SLICE_S:g} s", flush=True)
            reads = read_runs(primary_url, standby_url, nodes, tmp, points, args)
            for r in reads:
                print(f"  {r['label']}:")
                print_read(r)
            a, b = reads
            same = [x[2] == y[2] for x, y in zip(a["answers"], b["answers"], strict=True)]
            sample_from = collections.Counter(x[1] for x in b["answers"])
            print(f"\n  the same {len(same)} points answered identically from the primary and the standby: "
                  f"{sum(same)}/{len(same)} (statuses {collections.Counter(x[0] for x in a['answers'])}; "
                  f"(b) read from {dict(sample_from)})")

        run_id = secrets.token_hex(3)
        if "async" in parts:
            print(f"\n[writes: asynchronous standby] {args.rate:g} intakes/s offered for {args.seconds:g} s, "
                  f"{args.clients} clients, open loop; service as in (b)", flush=True)
            writes.append(write_run("async", settings, tmp, password, points, args, run_id))
            print_write(writes[-1])
        if "sync" in parts:
            t = time.monotonic()
            cluster.up(settings, synchronous=True)
            print(f"\n[writes: synchronous commit to the standby] synchronous_standby_names='ANY 1 (standby1)', "
                  f"synchronous_commit=on (nodes restarted in {time.monotonic() - t:.1f} s)", flush=True)
            writes.append(write_run("sync", settings, tmp, password, points, args, run_id))
            print_write(writes[-1])
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the cluster and deleting it")
        return 130
    finally:
        try:
            cluster.destroy(settings)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    cores = os.cpu_count() or 1
    print(f"\nload average at the end: {loadavg()} on {cores} CPUs; total {time.monotonic() - started:.0f} s")
    if reads:
        print(f"\n{'reads /api/locate':<22} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'standby':>8} "
              f"{'CPU ms/req: service':>20} {'primary':>8} {'standby':>8} {'client':>7}")
        for r in reads:
            per = per_request(r)
            errors = sum(n for s, n in r["status"].items() if s != 200)
            print(f"{r['label']:<22} {r['rps']:>6.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} {errors:>6} "
                  f"{r['read_from'].get('standby', 0) / max(1, r['n']):>8.0%} {per['service']:>20.2f} "
                  f"{sum(node_cpu(per, 'primary')):>8.2f} {sum(node_cpu(per, 'standby')):>8.2f} {per['client']:>7.2f}")
    if writes:
        print(f"\n{'writes ' + format(args.rate, 'g') + '/s offered':<22} {'/s':>6} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'errors':>6} {'replay_lag ms p50/p99/max':>26} {'replayed after ms':>18} {'bytes behind p50/p99/max':>25}")
        for r in writes:
            errors = sum(n for s, n in r["status"].items() if s != 201)
            lag, seen, size = (f"{r[k][0]:{f}}/{r[k][1]:{f}}/{r[k][2]:{f}}"
                               for k, f in (("replay", ".1f"), ("visible", ".0f"), ("bytes", ",.0f")))
            print(f"{r['label']:<22} {r['rps']:>6.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} {errors:>6} {lag:>26} "
                  f"{seen:>18} {size:>25}")
    if reads:
        a, b = reads
        pa, pb = per_request(a), per_request(b)
        print(f"\nOn {cores} CPUs the client, the services, the primary and the standby share the same cores: a "
              f"standby here adds no capacity. What (b) shows is where the work went: PostgreSQL's share of a locate "
              f"moved from the primary ({sum(node_cpu(pa, 'primary')):.2f} ms a request in (a)) to the standby "
              f"({sum(node_cpu(pb, 'standby')):.2f} ms in (b); primary {sum(node_cpu(pb, 'primary')):.2f} ms), and "
              f"(b)/(a) = {b['rps'] / a['rps']:.2f} is what routing reads to a standby costs or saves on the same "
              f"cores, not read scaling. Projection, not measured: on hosts of their own, an API host of {cores} cores "
              f"serves up to ~{cores * 1000 / pb['service']:.0f} locates/s and a standby host of {cores} cores up to "
              f"~{cores * 1000 / max(1e-9, sum(node_cpu(pb, 'standby'))):.0f}, while the primary keeps only the writes.")
    for r in writes:
        if r["rps"] < 0.95 * args.rate:
            print(f"{r['label']}: {args.rate:g} intakes/s offered, {r['rps']:.0f}/s served: the machine did not keep up, "
                  "the latencies above are mostly queueing")
    if writes and writes[0]["label"] == "async":
        print(f"async: the primary runs synchronous_commit=off, so a commit's WAL is written and sent by the WAL "
              f"writer, every wal_writer_delay ({writes[0]['wal_writer_delay']}) under light load: the standby "
              "replays a commit about that much later. With synchronous commit every commit flushes and waits for "
              "the standby's flush, so it is on the standby (not yet visible to reads: replay follows) when acknowledged.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
