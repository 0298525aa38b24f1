"""The application factory: ``create_app(settings)`` builds the service (uvicorn runs it
through ``geogrid serve``)."""

from __future__ import annotations

import asyncio
import logging
import math
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api import errors
from api import headers as security_headers
from api.deps import (
    LSN_COOKIE,
    LSN_HEADER,
    MIN_LSN_HEADER,
    READ_FROM_HEADER,
    READ_SCOPE,
    SAFE_METHODS,
    WRITE_METHODS,
    known_query_only,
)
from api.routers import (
    accounts,
    areas,
    categories,
    contacts,
    coverage,
    environment,
    files,
    households,
    incidents,
    locate,
    maps,
    ogc,
    open311,
    people,
    public,
    publications,
    reference,
    reports,
    scores,
    stats,
    tiles,
)
from api.schemas.common import Health
from geogrid.core.settings import Settings, get_settings
from geogrid.db.engine import get_async_engine, get_engine
from geogrid.db.replicas import ReadPool

log = logging.getLogger("geogrid.api")


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with 413, whether or not the client
    sent a Content-Length, before the body reaches a parser."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.limit:
                return await self._refuse(send)
            return await self.app(scope, receive, send)
        # No length declared (chunked): read up to the limit first, then replay the body.
        # Raising from inside receive() would reach the body parser as a 400 instead.
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await self._refuse(send)
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send):
        body = f'{{"detail": "request body larger than the {self.limit:,} byte limit"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class ReadRouting:
    """Where reads read, and read-your-writes (:mod:`geogrid.db.replicas`), on the wire:
    a response to a read that chose its server (``ReadSessionDep``) says which in
    ``Geogrid-Read-From``; with standbys, a write answered 2xx (its transaction committed
    on the primary before the answer) carries the primary's WAL position after it, as
    ``Geogrid-LSN`` and as the ``geogrid_lsn`` cookie that sends the writer's next reads to
    the primary until a standby has replayed it. Without standbys writes get neither: no
    read needs them, and the position costs a round trip.

    A read whose standby failed under it (stopped mid-query: the 503 of a lost database)
    is answered once more, by another standby or the primary, before the client sees it."""

    def __init__(self, app, reads: ReadPool, keep_s: float):
        self.app, self.reads, self.max_age = app, reads, math.ceil(keep_s)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self.reads:
            return await self._attempt(scope, receive, send, stamp=False, may_retry=False)
        if scope["method"] not in SAFE_METHODS:
            return await self._attempt(scope, receive, send, stamp=scope["method"] in WRITE_METHODS,
                                       may_retry=False)
        received: list = []

        async def recording():
            message = await receive()
            received.append(message)
            return message

        if not await self._attempt(scope, recording, send, stamp=False, may_retry=True):
            return

        async def replay():
            return received.pop(0) if received else await receive()

        await self._attempt(scope, replay, send, stamp=False, may_retry=False)

    async def _attempt(self, scope, receive, send, *, stamp: bool, may_retry: bool) -> bool:
        """Run the app once; True when it answered a standby's failure that was held back
        (``may_retry``) for another attempt."""
        read: dict = {}
        scope[READ_SCOPE] = read
        held = False

        async def send_stamped(message):
            nonlocal held
            if message["type"] == "http.response.start":
                if may_retry and message["status"] == 503 and read.get("standby"):
                    held = True
                    await run_in_threadpool(self.reads.recheck, read["standby"])
                    return
                extra = []
                if "from" in read:
                    extra.append((READ_FROM_HEADER.lower().encode(), read["from"].encode()))
                if stamp and 200 <= message["status"] < 300:
                    if lsn := await run_in_threadpool(self.reads.write_lsn):
                        extra.append((LSN_HEADER.lower().encode(), lsn.encode()))
                        if self.max_age > 0:
                            secure = "; Secure" if scope.get("scheme") == "https" else ""
                            extra.append((b"set-cookie", f"{LSN_COOKIE}={lsn}; Max-Age={self.max_age}; Path=/; "
                                                         f"HttpOnly; SameSite=Strict{secure}".encode()))
                if extra:
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif held:
                return
            await send(message)

        await self.app(scope, receive, send_stamped)
        return held


async def _every(seconds: float, job, what: str) -> None:
    """Run ``job`` (blocking, in the thread pool) every ``seconds``, surviving its failures."""
    from starlette.concurrency import run_in_threadpool

    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(job)
        except Exception:  # the loop must survive a database hiccup or a failover
            log.exception("%s failed", what)


def _upkeep(app: FastAPI) -> list[asyncio.Task]:
    """The periodic jobs every API process runs; each takes an advisory lock in PostgreSQL,
    so with several processes on several hosts one of them does the work each time:
    automatic escalation by rule (overdue cases climb one level per missed time limit), and
    the catch-up of the cases' assessment facts and monthly sums."""
    from geogrid.db.engine import transaction
    from geogrid.incidents import steps, workflow

    settings = app.state.settings

    def escalate() -> None:
        with transaction(app.state.engine) as session:
            session.info["actor"] = "system:escalation"
            if done := workflow.escalate_overdue(session, settings, sole_runner=True):
                log.info("escalated %d overdue cases", len(done))

    def catch_up() -> None:
        with app.state.engine.begin() as conn:
            steps.catch_up(conn, settings.timezone, wait=False)

    jobs = [(settings.escalation_interval_s, escalate, "automatic escalation"),
            (settings.facts_interval_s, catch_up, "catch-up of the case facts")]
    return [asyncio.create_task(_every(s, job, what)) for s, job, what in jobs if s > 0]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The engine made below, not a new lookup: `geogrid serve` may have given up root,
        # and with it the right to read the local cluster's password file, since then.
        tasks = _upkeep(app)
        yield
        for task in tasks:
            task.cancel()

    app = FastAPI(
        title="geogrid",
        version="0.1.0",
        description="Grid-based governance (网格化管理): grids and their responsible persons in PostGIS, "
                    "point lookup, import and export. GeoJSON is RFC 7946 (WGS84 lon/lat).",
        lifespan=lifespan,
        docs_url=None,  # served by api.headers, under the pages' policy
        dependencies=[Depends(known_query_only)],
    )
    app.state.settings = settings
    app.state.engine = get_engine(settings)
    app.state.async_engine = get_async_engine(settings)  # intake's path (api.deps.AsyncSessionDep)
    app.state.reads = ReadPool(settings, app.state.engine)  # standbys for lag-tolerant reads, if any

    errors.install(app)

    @app.get("/healthz", tags=["service"], response_model=Health, summary="Liveness and database check")
    def healthz() -> dict:
        with app.state.engine.connect() as conn:
            postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar()
        return {"status": "ok", "postgis": postgis}

    for router in (accounts.router, coverage.router, categories.router, incidents.router, environment.router, public.router, open311.router, maps.router, areas.areas_router, areas.grids_router, locate.router, files.router,
                   people.router, contacts.router, reference.router, stats.router, scores.router,
                   reports.router, households.router, publications.router):
        app.include_router(router)
    app.include_router(tiles.router)  # vector tiles, and OGC API - Tiles under /ogc/collections
    app.include_router(ogc.router)  # OGC API - Features under /ogc (published data only)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(ReadRouting, reads=app.state.reads, keep_s=settings.read_your_writes_s)
    if settings.trusted_proxies:
        # The client's address (for limits) and scheme (for Secure cookies) as the reverse
        # proxy saw them, believed only from the proxies listed; uvicorn's own middleware.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    security_headers.install(app, settings)  # security headers on every response, /docs included
    if settings.cors_origins:
        # Bearer tokens are never sent by a browser on its own, so a cross-origin page (an
        # exported planner map opened from disk) gains nothing it was not given a token for.
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "If-Match", MIN_LSN_HEADER],
                           expose_headers=["ETag", LSN_HEADER, READ_FROM_HEADER])
    return app
