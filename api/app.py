"""The application factory: ``create_app(settings)`` builds the service (uvicorn runs it
through ``geogrid serve``)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import text
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api import errors
from api import headers as security_headers
from api.deps import known_query_only
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
from geogrid.db.engine import get_engine

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


async def _escalate_periodically(app: FastAPI) -> None:
    """Automatic escalation by rule: overdue cases climb one level per missed time limit."""
    from starlette.concurrency import run_in_threadpool

    from geogrid.db.engine import transaction
    from geogrid.incidents import workflow

    def once() -> list[str]:
        with transaction(app.state.engine) as session:
            session.info["actor"] = "system:escalation"
            return workflow.escalate_overdue(session, app.state.settings)

    while True:
        await asyncio.sleep(app.state.settings.escalation_interval_s)
        try:
            done = await run_in_threadpool(once)
            if done:
                log.info("escalated %d overdue cases", len(done))
        except Exception:  # the loop must survive a database hiccup
            log.exception("automatic escalation failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The engine made below, not a new lookup: `geogrid serve` may have given up root,
        # and with it the right to read the local cluster's password file, since then.
        task = asyncio.create_task(_escalate_periodically(app)) if settings.escalation_interval_s > 0 else None
        yield
        if task is not None:
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
                           allow_headers=["Authorization", "Content-Type", "If-Match"], expose_headers=["ETag"])
    return app
