"""Small reusable dependencies: database session, paging, filters, time and language."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Header, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from geogrid.access import accounts, scopes, throttle
from geogrid.areas.lookup import AreaFilter
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.settings import Settings
from geogrid.core.timeutil import as_instant
from geogrid.db import replicas
from geogrid.db.engine import sessionmaker_for

# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in
# its thread pool, one hand-over (and GIL round) per dependency and request.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


bearer = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False,
                              description="Log in with a geogrid account; the token goes in 'Authorization: Bearer'")


MAP_COOKIE = "geogrid_token"  # set by /maps/login
MAP_HEADER = "geogrid-map"  # X-Requested-With of the maps' own scripts
SAFE_METHODS = ("GET", "HEAD")


def own_origin(request: Request) -> str:
    """This service's origin as the client reached it (behind a trusted proxy, the scheme
    uvicorn's proxy-headers middleware took from it)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def _in_lang(request: Request, zh: str, en: str) -> str:
    # The maps show these messages to the person at the map, in the page's language.
    return en if request.query_params.get("lang") == "en" else zh


def map_session_token(request: Request) -> tuple[str | None, bool]:
    """The map cookie's token if this request may use it, and whether it comes from a map
    page's own script (else from a browser opening a page).

    A browser sends the cookie with any request to this service, even one another site
    makes it send; so the cookie counts for a page read (GET /maps/...), and for anything
    else only when the request carries ``X-Requested-With: geogrid-map`` (a header no other
    site can add without a CORS preflight this service refuses) and, for a write, an
    ``Origin`` equal to this service's own (defence in depth beside SameSite=Strict)."""
    token = request.cookies.get(MAP_COOKIE)
    if not token:
        return None, False
    if request.headers.get("x-requested-with") == MAP_HEADER:
        if request.method not in SAFE_METHODS and request.headers.get("origin") != own_origin(request):
            raise GeogridError(_in_lang(request, "地图会话只能从本服务自己的页面保存（Origin 缺失或来自其他网站），未做任何修改。",
                                        "the map session only writes from this service's own pages "
                                        "(Origin missing or foreign): nothing was changed"), status=403)
        return token, True
    if request.method == "GET" and request.url.path.startswith("/maps/"):
        return token, False
    return None, False


def _principal(request: Request, session: Session, token: str | None, from_cookie: bool,
               from_script: bool) -> scopes.Principal:
    if not token:
        return scopes.ANONYMOUS
    principal = accounts.principal_for_token(session, token)
    if principal is None and replicas.primary_for(session) is not None:
        # A standby session: a token made moments ago (a login) may not have reached it yet.
        with sessionmaker_for(request.app.state.engine)() as primary:
            principal = accounts.principal_for_token(primary, token)
    if principal is None and from_script:
        raise GeogridError(_in_lang(request, "地图会话已过期，请在 /maps/login 重新登录。",
                                    "the map session has expired: log in again at /maps/login"), status=401)
    if principal is None and from_cookie:
        return scopes.ANONYMOUS  # a stale cookie: the public pages stay open
    if principal is None:
        raise GeogridError("invalid or expired token: log in again at /api/token", status=401)
    return principal


def _end(session: Session) -> None:
    session.rollback()
    session.close()


def _credentials(request: Request, token: str | None) -> tuple[str | None, bool, bool]:
    """The token a request carries, whether it came from the map cookie, and whether from
    a map page's own script (:func:`map_session_token`)."""
    if token:
        return token, False, False
    token, from_script = map_session_token(request)
    return token, bool(token), from_script


async def _primary_session(request: Request, token: str | None, from_cookie: bool, from_script: bool) -> Session:
    """A session on the primary carrying the caller; the token's lookup in the thread pool."""
    session = sessionmaker_for(request.app.state.engine)()
    try:
        session.info["principal"] = (await run_in_threadpool(_principal, request, session, token, from_cookie,
                                                             from_script) if token else scopes.ANONYMOUS)
    except BaseException:
        session.close()
        raise
    return session


async def _finish(session: Session, end=_end) -> None:
    """End a request's session: in the thread pool when it still holds a transaction; a
    session its endpoint committed, or never used, ends without I/O."""
    if session.in_transaction():
        await run_in_threadpool(end, session)
    else:
        session.close()


async def get_session(request: Request, token: Annotated[str | None, Depends(bearer)]) -> AsyncIterator[Session]:
    """A session per request, carrying the caller (``scopes.Principal``; anonymous without
    a token). The bearer token wins; else the map cookie where :func:`map_session_token`
    allows it. Writers call ``session.commit()`` before answering, so a client never sees
    success for a write that did not commit; anything else rolls back."""
    session = await _primary_session(request, *_credentials(request, token))
    try:
        yield session
    finally:
        await _finish(session)


SessionDep = Annotated[Session, Depends(get_session)]


async def get_async_session(request: Request,
                            token: Annotated[str | None, Depends(bearer)]) -> AsyncIterator[AsyncSession]:
    """:func:`get_session` on the asyncio engine, for a route that runs its domain call with
    ``await session.run_sync(fn, ...)``: the same sync domain code, in a greenlet on the
    event loop, so the request never waits for a thread (or the GIL hand-over between
    threads). The token's lookup runs the same way. The sync session is
    ``session.sync_session``; it carries the caller as :func:`get_session`'s does."""
    token, from_cookie, from_script = _credentials(request, token)
    session = AsyncSession(request.app.state.async_engine, expire_on_commit=False)
    try:
        session.sync_session.info["principal"] = (
            await session.run_sync(lambda s: _principal(request, s, token, from_cookie, from_script))
            if token else scopes.ANONYMOUS)
        yield session
    finally:
        await session.close()  # rolls back what was not committed


AsyncSessionDep = Annotated[AsyncSession, Depends(get_async_session)]

# --------------------------------------------------------------------------- reads from standbys

LSN_COOKIE = "geogrid_lsn"  # read-your-writes: the WAL position of the client's last write
LSN_HEADER = "Geogrid-LSN"  # on a successful write's response: the same position
MIN_LSN_HEADER = "Geogrid-Min-LSN"  # on a read: read nothing older than this position
READ_FROM_HEADER = "Geogrid-Read-From"  # on a read's response: primary or standby
READ_SCOPE = "geogrid.read"  # the ASGI scope's dict where a read notes where it read (api.app.ReadRouting)


def _open_read(request: Request, primary: bool, token: str | None, from_cookie: bool,
               from_script: bool) -> Session:
    reads = request.app.state.reads
    wanted = request.headers.get(MIN_LSN_HEADER) or request.cookies.get(LSN_COOKIE)
    session, where = reads.open(wanted, primary=primary)
    request.scope.get(READ_SCOPE, {}).update({"from": where, "standby": session.info.get(replicas.INFO_STANDBY)})
    try:
        session.info["principal"] = _principal(request, session, token, from_cookie, from_script)
    except BaseException:
        session.close()
        raise
    return session


def _read_session(public_only: bool):
    async def get_read_session(request: Request,
                               token: Annotated[str | None, Depends(bearer)]) -> AsyncIterator[Session]:
        token, from_cookie, from_script = _credentials(request, token)
        if not request.app.state.reads:  # no standbys (the default): get_session's own path
            request.scope.get(READ_SCOPE, {})["from"] = "primary"
            session = await _primary_session(request, token, from_cookie, from_script)
        else:  # one hop for the choice of server and the token's lookup
            session = await run_in_threadpool(_open_read, request, public_only and bool(token), token,
                                              from_cookie, from_script)
        try:
            yield session
        finally:
            await _finish(session, _end_read)

    return get_read_session


def _end_read(session: Session) -> None:
    # After the answer: a read has nothing to undo, and a server that went away meanwhile
    # (a standby stopping) must not turn an answered read into a broken connection.
    try:
        session.rollback()
    except DBAPIError:
        pass
    finally:
        session.close()


ReadSessionDep = Annotated[Session, Depends(_read_session(public_only=False))]
"""Like :data:`SessionDep` for reads that tolerate a few seconds of lag: on a standby
(:class:`geogrid.db.replicas.ReadPool`) unless the caller's own last write (the
``geogrid_lsn`` cookie or ``Geogrid-Min-LSN``) is not there yet. Never for a route that writes."""
PublicReadSessionDep = Annotated[Session, Depends(_read_session(public_only=True))]
""":data:`ReadSessionDep` for the public's reads of what staff also edit: a caller with a
token (staff at work, scripts) reads the primary, the anonymous public a standby."""


def require(*roles: str, asynchronous: bool = False):
    """A route dependency: 401 without a valid token, 403 without one of ``roles``.
    Area scopes are checked again by the domain functions, whatever the route.
    ``asynchronous``: for a route on :data:`AsyncSessionDep`."""
    if asynchronous:
        async def check_async(session: AsyncSessionDep) -> scopes.Principal:
            return scopes.require_role(session.sync_session, *roles)

        return Depends(check_async)

    async def check(session: SessionDep) -> scopes.Principal:  # no I/O: the principal is in the session
        return scopes.require_role(session, *roles)

    return Depends(check)


PLANNER = [require("planner")]
ADMIN = [require("admin")]
STAFF = [require(*scopes.STAFF)]
STAFF_ASYNC = [require(*scopes.STAFF, asynchronous=True)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Lang = Annotated[Literal["zh", "en"], Query(description="Language of labels: zh (default) or en")]


@dataclass
class Page:
    limit: int
    offset: int


async def page(
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, description="Items per page")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page:
    limit = limit or settings.default_page_size
    if limit > settings.max_page_size:
        raise GeogridError(f"limit {limit} is above the maximum page size {settings.max_page_size}")
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page)]


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        box = tuple(float(v) for v in value.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise GeogridError(f"bbox must be minlon,minlat,maxlon,maxlat, got {value!r}")
    x0, y0, x1, y1 = box
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise GeogridError(f"bbox {value!r} is not minlon,minlat,maxlon,maxlat in degrees (lon first)")
    return box


async def instant(
    settings: SettingsDep,
    at: Annotated[
        dt.datetime | dt.date | None,
        Query(description="Look at the boundaries in force at this date (end of day, service time zone) "
                          "or ISO datetime; default now"),
    ] = None,
) -> dt.datetime | None:
    return as_instant(at, settings)


AtDep = Annotated[dt.datetime | None, Depends(instant)]


@dataclass
class AreaPeriod:
    area: str
    start: dt.date
    end: dt.date


async def area_period(
    area: Annotated[str, Query(description="Area code: its whole subtree is counted")],
    period: Annotated[str | None, Query(description="2026-11, 2026-Q4 or 2026 (instead of from/to)")] = None,
    start: Annotated[dt.date | None, Query(alias="from", description="First day (local date)")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="First day after the period (exclusive)")] = None,
) -> AreaPeriod:
    """The area and period of an assessment request: ``from``/``to`` (``to`` exclusive) or a
    named ``period``."""
    from geogrid.assessment.periods import parse_period

    if period is not None and (start or end):
        raise GeogridError("give either period or from/to, not both",
                           problems=[Problem("period and from/to both given", field="period")])
    if period is not None:
        named = parse_period(period)
        start, end = named.start, named.end
    if start is None or end is None:
        raise GeogridError("the period is missing: give period=2026-11 or from=YYYY-MM-DD&to=YYYY-MM-DD",
                           problems=[Problem("missing", field="from" if start is None else "to")])
    return AreaPeriod(area, start, end)


AreaPeriodDep = Annotated[AreaPeriod, Depends(area_period)]


async def area_filter(
    at: AtDep,
    layer: Annotated[str | None, Query(description="Thematic net, e.g. comprehensive, environment, admin")] = None,
    level: Annotated[str | None, Query(description="Level key, e.g. town, village, grid")] = None,
    parent: Annotated[str | None, Query(description="Code of the parent area")] = None,
    code_prefix: Annotated[str | None, Query(pattern=r"^\d+$", description="Codes starting with these digits")] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")] = None,
    include_retired: Annotated[bool, Query(description="Also list retired areas (their last boundary)")] = False,
) -> AreaFilter:
    return AreaFilter(layer=layer, level=level, parent=parent, code_prefix=code_prefix, bbox=parse_bbox(bbox),
                      include_retired=include_retired, at=at)


FilterDep = Annotated[AreaFilter, Depends(area_filter)]


async def if_match(if_match: Annotated[str | None, Header(description='Version the edit is based on (ETag, e.g. "3")')] = None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise GeogridError(f"If-Match must be an ETag such as \"3\", got {if_match!r}", status=400) from None


IfMatchDep = Annotated[int | None, Depends(if_match)]


async def client_address(request: Request) -> str:
    """The client's IP address, for limits. Behind a reverse proxy listed in
    ``settings.trusted_proxies`` the app's proxy-headers middleware has already put the
    address that proxy vouched for in its place (see ``api.app.create_app``)."""
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]


def rate_limit(name: str, per_minute: Callable[[Settings], int]):
    """A route dependency: at most ``per_minute(settings)`` requests a minute per client
    address, counted in PostgreSQL across every worker (429 with Retry-After above)."""

    def check(request: Request, settings: SettingsDep, address: ClientAddress) -> None:
        throttle.hit(request.app.state.engine, f"{name}:{address}", per_minute(settings), address)

    return check


# --------------------------------------------------------------------------- strict writes

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _query_names(dependant) -> frozenset[str]:
    """The query parameters a route declares, its dependencies' included (by their alias)."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        names.update(field.alias for field in current.query_params)
        stack.extend(current.dependencies)
    return frozenset(names)


async def known_query_only(request: Request) -> None:
    """On write routes, a query parameter the route does not declare is refused with a 422
    naming it: a mistyped or unsupported option (``dry_run``) must not be ignored while the
    write goes ahead. Reads ignore unknown parameters, as caches and map clients expect."""
    route = request.scope.get("route")
    if request.method not in WRITE_METHODS or route is None or not hasattr(route, "dependant"):
        return
    # Kept on the route object itself: built once per route, gone with it.
    known = getattr(route, "geogrid_query_names", None)
    if known is None:
        known = route.geogrid_query_names = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise GeogridError(f"unknown query parameter {', '.join(unknown)}; {request.method} {route.path} takes: {takes}",
                           status=422, problems=[Problem(f"unknown query parameter {name!r}", field=f"query.{name}")
                                                 for name in unknown])
