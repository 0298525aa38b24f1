"""The maps, served: /maps/planner, /maps/inspector and /maps/dashboard for staff (bearer
token, or the cookie set by /maps/login), /maps/public for everyone; Leaflet's files from
/maps/assets."""

from __future__ import annotations

import datetime as dt
import secrets
from html import escape
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from api.deps import MAP_COOKIE, ClientAddress, Lang, SessionDep, SettingsDep, rate_limit, require
from geogrid.access import accounts, scopes
from geogrid.core.errors import GeogridError
from maps import assets, boards, dashboard, render
from maps.base import content_security_policy, nonce_source

router = APIRouter(prefix="/maps", tags=["maps"])
COOKIE = MAP_COOKIE


@router.get("/planner", response_class=HTMLResponse, dependencies=[require("planner", "inspector")],
            summary="Planner's map: grids, coverage problems, drawing and saving boundaries")
def planner(session: SessionDep, settings: SettingsDep, area: Annotated[str, Query()],
            layer: str = "comprehensive", lang: Lang = "zh") -> HTMLResponse:
    # An inspector may look at the planner's map, without its editing tools.
    can_edit = scopes.principal_of(session).has_role("planner")
    return _map_page("planner", session, settings, area=area, layer=layer, lang=lang, can_edit=can_edit)


@router.get("/inspector", response_class=HTMLResponse, dependencies=[require(*scopes.STAFF)],
            summary="Inspector's map: incidents, pollution sources, patrols, heat map, choropleth")
def inspector(session: SessionDep, settings: SettingsDep, area: Annotated[str, Query()], lang: Lang = "zh",
              since: dt.datetime | None = None, until: dt.datetime | None = None) -> HTMLResponse:
    return _map_page("inspector", session, settings, area=area, lang=lang, since=since, until=until)


@router.get("/public", response_class=HTMLResponse, summary="Public grid map (网格公示): published fields only")
def public(session: SessionDep, settings: SettingsDep, area: Annotated[str, Query()],
           layer: str = "comprehensive", lang: Lang = "zh",
           grid: Annotated[str | None, Query(max_length=32, pattern="^[0-9]+$",
                                             description="Open on this grid's board (a printed board's QR code)")] = None,
           ) -> HTMLResponse:
    session.info["principal"] = scopes.ANONYMOUS  # the public page never shows more than the public may see
    return _map_page("public", session, settings, area=area, layer=layer, lang=lang, grid=grid)


# A booklet takes seconds of CPU to lay out: a public route limits each client address.
board_limit = rate_limit("board", lambda settings: settings.board_pdfs_per_minute)


@router.get("/public/board.pdf", response_class=Response, dependencies=[Depends(board_limit)],
            responses={200: {"content": {"application/pdf": {}}, "description": "The poster(s) as PDF (attachment)"}},
            summary="Printable grid board (网格公示牌): a grid's A4/A3 poster, or a village's booklet of them")
def public_board(session: SessionDep, settings: SettingsDep,
                 grid: Annotated[str | None, Query(description="A grid's code: its poster")] = None,
                 village: Annotated[str | None, Query(description="A village's code: one poster per grid")] = None,
                 layer: Annotated[str | None, Query(description="Thematic net; default: the grid's own, or "
                                                    "comprehensive for a village")] = None,
                 size: Literal["A4", "A3"] = "A4", lang: Lang = "zh") -> Response:
    session.info["principal"] = scopes.ANONYMOUS  # a poster prints what the public map shows, nothing more
    export = boards.board_pdf(session, settings, grid=grid, village=village, layer=layer, size=size, lang=lang)
    # Published fields only, so a shared cache may keep it a little while (a poster costs a second to lay out).
    return Response(export.content, media_type=export.media_type,
                    headers={"Content-Disposition": export.content_disposition(), "Cache-Control": "public, max-age=300"})


@router.get("/dashboard", response_class=HTMLResponse, dependencies=[require(*dashboard.READERS)],
            summary="Assessment dashboard (考核看板): indicator cards, trends, choropleth and ranking of a month")
def dashboard_page(request: Request, session: SessionDep, settings: SettingsDep, area: Annotated[str, Query()],
                   month: Annotated[str | None, Query(description="YYYY-MM; default: this month")] = None,
                   unit: Literal["town", "village", "grid"] | None = None, lang: Lang = "zh") -> HTMLResponse:
    nonce = secrets.token_urlsafe(18)
    try:
        html = dashboard.render(session, settings, area=area, month=month, unit=unit, lang=lang, nonce=nonce)
    except GeogridError as exc:
        # A person in a browser reads why (out of scope, no such area, a bad month) on a page;
        # a client gets the Problem as JSON like everywhere else.
        if exc.status in (403, 404, 422) and "text/html" in request.headers.get("accept", ""):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return HTMLResponse(dashboard.error_page(exc, lang, target), status_code=exc.status,
                                headers={"Cache-Control": "no-store"})
        raise
    policy = content_security_policy(settings, scripts=[nonce_source(nonce)])
    return HTMLResponse(html, headers={"Content-Security-Policy": policy, "Cache-Control": "no-store"})


def _map_page(kind: str, session, settings, **params) -> HTMLResponse:
    """A served map: its scripts carry this response's nonce, the only ones its policy runs."""
    nonce = secrets.token_urlsafe(18)
    html = render(kind, session, settings, inline=False, nonce=nonce, **params)
    policy = content_security_policy(settings, scripts=[nonce_source(nonce)])
    return HTMLResponse(html, headers={"Content-Security-Policy": policy, "Cache-Control": "no-store"})


@router.get("/assets/{path:path}", response_class=FileResponse, include_in_schema=False)
def asset(settings: SettingsDep, path: str) -> FileResponse:
    return FileResponse(assets.serve_path(settings, path), headers={"Cache-Control": "public, max-age=86400"})


LOGIN_TEXT = {
    "zh": {"title": "geogrid 登录", "username": "用户名", "password": "密码", "submit": "登录",
           401: "用户名或密码错误。", 429: "尝试次数过多，请在 {wait} 秒后再试。",
           "next": "登录后要打开的页面无效：只能是 /maps/ 下的页面。"},
    "en": {"title": "geogrid log in", "username": "Username", "password": "Password", "submit": "Log in",
           401: "Wrong username or password.", 429: "Too many attempts: try again in {wait} s.",
           "next": "The page to open after logging in is invalid: it must be a page under /maps/."},
}
DEFAULT_NEXT = "/maps/planner"


def _safe_next(target: str) -> str | None:
    """A page of this service under /maps/, or None: never another site (``//host``, a
    backslash that browsers read as a slash) and no control characters."""
    if target.startswith("/maps/") and "\\" not in target and target.isprintable():
        return target
    return None


def _login_lang(lang: str | None, target: str, settings) -> str:
    """The language asked for, else the one of the page to open next, else the default."""
    if lang is None:
        lang = parse_qs(urlsplit(target).query).get("lang", [settings.language])[-1]
    return lang if lang in LOGIN_TEXT else "zh"


def _login_page(lang: str, target: str, username: str = "", error: str | None = None, status: int = 200,
                headers: dict | None = None) -> HTMLResponse:
    t = {k: escape(v) for k, v in LOGIN_TEXT[lang].items() if isinstance(k, str)}
    alert = f'<p id="geogrid-login-error" role="alert" style="color:#b00020">{escape(error)}</p>' if error else ""
    html = f"""<!doctype html><html lang="{'en' if lang == 'en' else 'zh-CN'}"><meta charset="utf-8">
<title>{t["title"]}</title>
<form method="post" action="/maps/login" style="font:14px sans-serif;margin:3em auto;max-width:20em">
<h3>{t["title"]}</h3>{alert}
<input name="username" value="{escape(username)}" placeholder="{t["username"]}" aria-label="{t["username"]}"
 autocomplete="username" required style="width:100%"><br><br>
<input name="password" type="password" placeholder="{t["password"]}" aria-label="{t["password"]}"
 autocomplete="current-password" required style="width:100%"><br><br>
<input type="hidden" name="next" value="{escape(target)}"><input type="hidden" name="lang" value="{escape(lang)}">
<button>{t["submit"]}</button></form></html>"""
    return HTMLResponse(html, status_code=status, headers=headers)


def _cookie_attributes(request: Request, path: str = "/") -> dict:
    # Path / so that the maps' scripts can save through the API; the API takes it only with
    # the maps' header and, for writes, this service's Origin (api.deps.map_session_token).
    # Secure whenever the page came over HTTPS (behind a trusted proxy, uvicorn takes the
    # scheme from X-Forwarded-Proto).
    return {"httponly": True, "samesite": "strict", "path": path, "secure": request.url.scheme == "https"}


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(settings: SettingsDep, next: str = DEFAULT_NEXT, lang: Literal["zh", "en"] | None = None) -> HTMLResponse:
    target = _safe_next(next) or DEFAULT_NEXT
    return _login_page(_login_lang(lang, target, settings), target)


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)  # the form again, or a redirect
def login(request: Request, session: SessionDep, settings: SettingsDep, address: ClientAddress,
          username: Annotated[str, Form()], password: Annotated[str, Form()],
          next: Annotated[str, Form()] = DEFAULT_NEXT, lang: Annotated[Literal["zh", "en"] | None, Form()] = None):
    """The form's login: the same throttled ``accounts.login`` as /api/token; errors come
    back as the form with a message, the token as a cookie for the map pages."""
    target = _safe_next(next)
    lang = _login_lang(lang, target or "", settings)
    words = LOGIN_TEXT[lang]
    if target is None:  # refused before the password is checked, so no token is issued for it
        return _login_page(lang, DEFAULT_NEXT, username, words["next"], status=400)
    try:
        out = accounts.login(session, username, password, dt.timedelta(hours=settings.token_hours),
                           address=address, settings=settings)
    except GeogridError as exc:
        if exc.status == 401:
            return _login_page(lang, target, username, words[401], status=401, headers={"WWW-Authenticate": "Bearer"})
        if exc.status == 429:
            wait = int(exc.extra.get("retry_after", 60))
            return _login_page(lang, target, username, words[429].format(wait=wait), status=429,
                               headers={"Retry-After": str(wait)})
        raise
    session.commit()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, out["access_token"], max_age=int(settings.token_hours * 3600),
                        **_cookie_attributes(request))
    return response


@router.post("/logout", response_class=RedirectResponse, include_in_schema=False)
def logout(request: Request, session: SessionDep, lang: Literal["zh", "en"] | None = None) -> RedirectResponse:
    """End the map session: the cookie's tokens are revoked (no longer valid anywhere) and
    the cookie cleared, then back to the login form."""
    # A browser logged in before the cookie moved to path / sends both cookies: revoke each.
    tokens = {v for k, _, v in (c.strip().partition("=") for c in request.headers.get("cookie", "").split(";"))
              if k == COOKIE and v}
    for token in tokens:
        accounts.logout(session, token)
    session.commit()
    response = RedirectResponse("/maps/login" + (f"?lang={lang}" if lang else ""), status_code=303)
    for path in ("/", "/maps"):  # /maps: the cookie's path before the API took it
        response.delete_cookie(COOKIE, **_cookie_attributes(request, path))
    return response
