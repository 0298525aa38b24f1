"""What the web framework and the driver cost an intake: the same domain call behind three
servers, under the same load.

    .venv/bin/python bench/intake_paths.py [--clients 50] [--requests 3000] [--workers 2]

1. The service as it ships: ``api.app:create_app`` (FastAPI, its middlewares, dependencies;
   intake in a greenlet on the asyncio engine, as in 3).
2. ``bare-threads``: a bare ASGI callable in this file doing what the intake route does and
   nothing else: the token's principal, the role check, ``IncidentIn`` validation,
   :func:`geogrid.incidents.intake.intake` and its commit in one thread-pool hand-over, the
   answer through ``IncidentCase``: the service's intake before it moved to the event loop.
3. ``bare-greenlet``: the same on the service's asyncio engine (psycopg's async connection,
   ``geogrid.db.engine.get_async_engine``): the same sync domain code runs in
   ``AsyncSession.run_sync`` (a greenlet on the event loop), no thread at all. This is how
   the service runs intake; the difference to 1 is the framework and middlewares, the
   difference to 2 the driver and the thread pool.

Each runs under uvicorn (``--workers``) on a scratch database (the demo jurisdiction, as
``bench/intake_load.py`` prepares it), with ``--clients`` raw keep-alive clients in a closed
loop; reported: req/s, latency, CPU per request of the server processes and of PostgreSQL,
and the stored = 201 check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intake_load import (  # noqa: E402
    CpuMeter,
    Server,
    integrity,
    login,
    prepare_database,
    print_run,
    run_load,
    summarise,
    town_points,
)

# --------------------------------------------------------------------------------------------
# the bare servers (uvicorn --factory bench.intake_paths:threads_app | greenlet_app)


def _parts():
    from api.schemas.incidents import IncidentCase, IncidentIn
    from geogrid.access import accounts, scopes
    from geogrid.core.errors import GeogridError
    from geogrid.core.settings import get_settings
    from geogrid.incidents import intake

    settings = get_settings()

    def take_in(session, token: str | None, body: bytes) -> tuple[int, bytes]:
        """The intake route's work on ``session`` (committed): status and JSON answer."""
        try:
            principal = accounts.principal_for_token(session, token) if token else None
            if principal is None:
                return 401, b'{"detail": "invalid or expired token"}'
            session.info["principal"] = principal
            scopes.require_role(session, *scopes.STAFF)
            data = IncidentIn.model_validate_json(body).intake_data()
            out = intake.intake(session, data, settings)
            session.commit()
            return 201, IncidentCase.model_validate(out).model_dump_json().encode()
        except GeogridError as exc:
            return exc.status, json.dumps({"detail": exc.message}).encode()
        except ValueError as exc:  # pydantic's ValidationError
            return 422, json.dumps({"detail": str(exc)}).encode()

    return settings, take_in


async def _body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send, status: int, payload: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def _bare(handle):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/healthz":
            await _answer(send, 200, b'{"status": "ok"}')
            return
        if scope["method"] != "POST" or scope["path"] != "/api/incidents":
            await _answer(send, 404, b'{"detail": "not found"}')
            return
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        await _answer(send, *await handle(token, await _body(receive)))

    return app


def threads_app():
    """Bare ASGI; the intake in the thread pool on the sync engine (one hand-over)."""
    from starlette.concurrency import run_in_threadpool

    from geogrid.db.engine import get_engine, sessionmaker_for

    settings, take_in = _parts()
    make = sessionmaker_for(get_engine(settings))

    def work(token, body):
        with make() as session:
            return take_in(session, token, body)

    async def handle(token, body):
        return await run_in_threadpool(work, token, body)

    return _bare(handle)


def greenlet_app():
    """Bare ASGI; the same sync domain code in a greenlet on the asyncio engine, no thread."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from geogrid.db.engine import get_async_engine

    settings, take_in = _parts()
    engine = get_async_engine(settings)  # the service's own: its pool size, generic plans

    async def handle(token, body):
        async with AsyncSession(engine, expire_on_commit=False) as session:
            return await session.run_sync(take_in, token, body)

    return _bare(handle)


# --------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=3000, help="per server")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="each server this many times, interleaved")
    args = ap.parse_args()
    from geogrid.core.settings import Settings
    from geogrid.db import cluster

    name = f"geogrid_bench_paths_{os.getpid()}"
    state_dir = Path(tempfile.mkdtemp(prefix="geogrid-paths-"))
    engine = None
    servers = {"service": "api.app:create_app", "bare-threads": "bench.intake_paths:threads_app",
               "bare-greenlet": "bench.intake_paths:greenlet_app"}
    results: dict[str, list[dict]] = {k: [] for k in servers}
    try:
        url, settings, engine, password, town, versions = prepare_database(name, state_dir, purpose="intake paths")
        points = town_points(town, 20_000, np.random.default_rng(7))
        print(f"scratch database {name}; {versions}; {args.clients} raw clients, {args.workers} workers, "
              f"{args.requests:,} requests per run, {args.rounds} rounds")
        run_id, start, token, categories = secrets.token_hex(3), 0, None, None
        for rnd in range(args.rounds):
            for label, factory in servers.items():
                server = Server(url, state_dir, args.workers, state_dir / f"{label}.log", app=factory)
                try:
                    server.wait_ready()
                    if token is None:  # the shipped service logs in; the bare ones take its token
                        token, categories = login(server.base, password)
                    asyncio.run(run_load(server.base, token, categories, points, f"paths-{run_id}-warm-{label}{rnd}",
                                         start, 200, 20, 60, client_kind="raw"))
                    start += 200
                    prefix = f"paths-{run_id}-{label}{rnd}"
                    meter = CpuMeter(server.proc.pid, name)
                    meter.start()
                    records, wall = asyncio.run(run_load(server.base, token, categories, points, prefix, start,
                                                         args.requests, args.clients, 120, client_kind="raw"))
                    cpu = meter.stop()
                    start += args.requests
                finally:
                    server.stop()
                r = summarise(args.workers, records, wall, cpu, integrity(engine, prefix, records), args.clients)
                print(f"\n[{label}, round {rnd + 1}]")
                print_run(r)
                results[label].append(r)
    finally:
        if engine is not None:
            engine.dispose()
        cluster.drop_database(Settings(), name)
        shutil.rmtree(state_dir, ignore_errors=True)

    print(f"\n{'server':>14} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'server CPU ms/req':>18} "
          f"{'PG CPU ms/req':>14} {'errors':>6} {'stored=201':>10}")
    for label, runs in results.items():
        for r in runs:
            k = r["check"]
            print(f"{label:>14} {r['rps']:>7.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} "
                  f"{r['cpu']['server'] / max(r['n'], 1) * 1000:>18.2f} {r['cpu']['postgres'] / max(r['n'], 1) * 1000:>14.2f} "
                  f"{sum(r['errors'].values()):>6} {str(k['stored'] == k['ok'] and not k['lost']):>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
