"""The maps, served: /maps/planner and /maps/inspector for staff (bearer token, or the
cookie set by /maps/login), /maps/public for everyone; Leaflet's files from
/maps/assets."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from api.deps import Lang, SessionDep, SettingsDep, require
from geogrid import access
from geogrid.errors import GeogridError
from maps import assets, render

router = APIRouter(prefix="/maps", tags=["maps"])
COOKIE = "geogrid_token"


@router.get("/planner", response_class=HTMLResponse, dependencies=[require("planner", "inspector")],
            summary="Planner's map: grids, coverage problems, drawing and saving boundaries")
def planner(session: SessionDep, settings: SettingsDep, area: Annotated[str, Query()],
            layer: str = "comprehensive", lang: Lang = "zh") -> HTMLResponse:
    return HTMLResponse(render("planner", session, settings, area=area, layer=layer, lang=lang))


@router.get("/inspector", response_class=HTMLResponse, dependencies=[require(*access.STAFF)],
            summary="Inspector's map: incidents, pollution sources, patrols, heat map, choropleth")
def inspector(session: SessionDep, settings: SettingsDep, area: Annotated[str, Query()], lang: Lang = "zh",
              since: dt.datetime | None = None, until: dt.datetime | None = None) -> HTMLResponse:
    return HTMLResponse(render("inspector", session, settings, area=area, lang=lang, since=since, until=until))


@router.get("/public", response_class=HTMLResponse, summary="Public grid map (网格公示): published fields only")
def public(session: SessionDep, settings: SettingsDep, area: Annotated[str, Query()],
           layer: str = "comprehensive", lang: Lang = "zh") -> HTMLResponse:
    session.info["principal"] = access.ANONYMOUS  # the public page never shows more than the public may see
    return HTMLResponse(render("public", session, settings, area=area, layer=layer, lang=lang, inline=False))


@router.get("/assets/{path:path}", include_in_schema=False)
def asset(settings: SettingsDep, path: str) -> FileResponse:
    return FileResponse(assets.serve_path(settings, path), headers={"Cache-Control": "public, max-age=86400"})


LOGIN_PAGE = """<!doctype html><meta charset="utf-8"><title>geogrid</title>
<form method="post" style="font:14px sans-serif;margin:3em auto;max-width:20em">
<h3>geogrid 登录 / Log in</h3>
<input name="username" placeholder="用户名 / username" required style="width:100%"><br><br>
<input name="password" type="password" placeholder="密码 / password" required style="width:100%"><br><br>
<input type="hidden" name="next" value="{next}"><button>登录 / Log in</button></form>"""


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(next: str = "/maps/planner") -> HTMLResponse:
    from html import escape

    return HTMLResponse(LOGIN_PAGE.format(next=escape(next if next.startswith("/maps/") else "/maps/planner")))


@router.post("/login", include_in_schema=False)
def login(session: SessionDep, settings: SettingsDep, username: Annotated[str, Form()],
          password: Annotated[str, Form()], next: Annotated[str, Form()] = "/maps/planner"):
    out = access.login(session, username, password, dt.timedelta(hours=settings.token_hours))
    session.commit()
    if not next.startswith("/maps/"):
        raise GeogridError("next must be a /maps/ page")
    response = RedirectResponse(next, status_code=303)
    # Only GET requests under /maps read this cookie: it cannot be used to write anything.
    response.set_cookie(COOKIE, out["access_token"], httponly=True, samesite="strict", path="/maps",
                        max_age=int(settings.token_hours * 3600))
    return response
