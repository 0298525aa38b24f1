"""How errors answer: the ``Problem`` shape of ``GeogridError`` (401 with
WWW-Authenticate, or to the login form for a browser on a map page; 429 with
Retry-After), request validation as 422 with its problems (GeoReport v2's error list on
/open311/), database errors mapped to 409/422/503, anything else a logged 500."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from geogrid.core.errors import GeogridError

log = logging.getLogger("geogrid.api")


def validation_problems(exc: RequestValidationError) -> list[dict]:
    """One ``{field, message}`` per invalid member of the request."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"field": ".".join(loc), "message": err.get("msg", "invalid")})
    return out


async def geogrid_error(request: Request, exc: GeogridError):
    """The error's Problem as JSON, with its status; a browser on a map page goes to the login form."""
    if (exc.status == 401 and request.method == "GET" and request.url.path.startswith("/maps/")
            and "text/html" in request.headers.get("accept", "")):
        # A person in a browser: to the login form, and back to the map afterwards.
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/maps/login?next={quote(target, safe='/')}", status_code=303)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if exc.status == 429:
        headers = {"Retry-After": str(exc.extra.get("retry_after", 60))}
    return JSONResponse(exc.as_dict(), status_code=exc.status, headers=headers)


async def invalid_request(request: Request, exc: RequestValidationError):
    """422 with every invalid member (on /open311/: GeoReport v2's 400 error list)."""
    problems = validation_problems(exc)
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:3])
    if request.url.path.startswith("/open311/"):  # GeoReport v2 clients expect its error shape
        from api.routers import open311

        return open311.error(open311.format_of(request.url.path), 400, f"invalid request: {summary}")
    return JSONResponse({"detail": f"invalid request: {summary}", "problems": problems}, status_code=422)


async def integrity_error(request: Request, exc: IntegrityError):
    """A constraint of the database refused the write: 409."""
    return JSONResponse({"detail": f"conflicts with stored data: {str(exc.orig).splitlines()[0]}"}, status_code=409)


async def data_error(request: Request, exc: DataError):
    """A value the database cannot store: 422."""
    return JSONResponse({"detail": f"invalid value: {str(exc.orig).splitlines()[0]}"}, status_code=422)


async def database_down(request: Request, exc: OperationalError):
    """No database: 503, logged."""
    log.error("database unavailable: %s", exc)
    return JSONResponse({"detail": "database unavailable; try again later"}, status_code=503)


async def unexpected(request: Request, exc: Exception):
    """Anything else: a logged 500 that reveals nothing."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)


HANDLERS = {GeogridError: geogrid_error, RequestValidationError: invalid_request, IntegrityError: integrity_error,
            DataError: data_error, OperationalError: database_down, Exception: unexpected}


def install(app: FastAPI) -> None:
    """Every handler above, on ``app``."""
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
