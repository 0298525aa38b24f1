"""OGC API - Features (Part 1 Core with GeoJSON and HTML, Part 2 CRS) under ``/ogc``:
landing page, conformance, collections, queryables, items and single features, over the
published data only (``geogrid.publication.features``: the published layers, the grids'
public boards, public pollution sources, public cases).

JSON by default (``application/geo+json`` for features), a small HTML view with ``f=html``
or ``Accept: text/html`` (Chinese by default, English with ``lang=en``; every value
escaped, no script). Every bad parameter, and any parameter a route does not know, is a
400 naming it: a mistyped filter must not quietly return everything.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import ReadSessionDep, SettingsDep
from api.schemas.common import GeoJSONResponse
from api.schemas.ogc import (
    CollectionInfo,
    Collections,
    Conformance,
    Feature,
    FeatureCollection,
    LandingPage,
    Queryables,
)
from geogrid.core import jsonenc
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.timeutil import local_today
from geogrid.publication import features as ogc
from maps.base import esc, safe_url

router = APIRouter(prefix="/ogc", tags=["ogc"])

GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
SCHEMA = "application/schema+json"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"

F = Annotated[str | None, Query(description="Format: json (default) or html; also chosen by the Accept header",
                                json_schema_extra={"enum": ["json", "html"]})]
LangParam = Annotated[str | None, Query(description="Language of titles and the HTML view: zh (default) or en",
                                        json_schema_extra={"enum": ["zh", "en"]})]
CommonParams = ("f", "lang")

TEXT = {
    "zh": {"title": "geogrid 网格公示 OGC API", "landing": "已公示的网格、公示牌、公开污染源和公开事件（OGC API - Features）。",
           "collections": "数据集", "conformance": "符合的标准", "items": "要素", "queryables": "可筛选属性",
           "api": "接口文档（OpenAPI）", "docs": "接口说明", "next": "下一页", "prev": "上一页", "json": "JSON",
           "id": "编号", "geometry": "几何", "extent": "范围", "returned": "本页", "matched": "共", "home": "首页",
           "none": "没有要素。"},
    "en": {"title": "geogrid OGC API", "landing": "Published grids, grid boards, public pollution sources and public "
                                                  "cases (OGC API - Features).",
           "collections": "Collections", "conformance": "Conformance", "items": "Features", "queryables": "Queryables",
           "api": "API definition (OpenAPI)", "docs": "API documentation", "next": "Next page",
           "prev": "Previous page", "json": "JSON", "id": "id", "geometry": "Geometry", "extent": "Extent",
           "returned": "on this page", "matched": "in all", "home": "Home", "none": "No features."},
}


# --------------------------------------------------------------------------- request helpers


def only(request: Request, *names: str) -> None:
    """400 naming any query parameter the route does not take."""
    unknown = sorted(set(request.query_params) - set(names) - set(CommonParams))
    if unknown:
        takes = ", ".join(sorted({*names, *CommonParams}))
        raise GeogridError(f"unknown query parameter {', '.join(unknown)}; {request.url.path} takes: {takes}",
                           status=400, problems=[Problem(f"unknown query parameter {n!r}", field=f"query.{n}")
                                                 for n in unknown])


def language(lang: str | None) -> str:
    if lang in (None, "", "zh", "en"):
        return lang or "zh"
    raise ogc.bad(f"lang must be zh or en, got {lang!r}", "lang")


def wants_html(request: Request, f: str | None) -> bool:
    """``f`` decides; without it, a browser's ``Accept: text/html`` asks for the page."""
    if f in ("json", "geojson"):
        return False
    if f == "html":
        return True
    if f:
        raise ogc.bad(f"f must be json or html, got {f!r}", "f")
    return HTML in request.headers.get("accept", "")


def base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


def href(request: Request, path: str, lang: str, **params: str) -> str:
    """An absolute link below /ogc, keeping the language asked for."""
    if lang == "en":
        params = {**params, "lang": "en"}
    query = urlencode(params)
    return base(request) + path + (f"?{query}" if query else "")


def link(url: str, rel: str, type_: str, title: str | None = None) -> dict:
    out = {"href": url, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def self_links(request: Request, path: str, lang: str, html: bool, json_type: str = JSON) -> list[dict]:
    """self and alternate: the one answered and the other format."""
    as_json = link(href(request, path, lang), "self" if not html else "alternate", json_type)
    as_html = link(href(request, path, lang, f="html"), "self" if html else "alternate", HTML)
    return [as_html, as_json] if html else [as_json, as_html]


def json_response(body: Any, media_type: str = JSON, headers: dict | None = None) -> Response:
    return Response(jsonenc.dumps(body), media_type=media_type, headers=headers)


def today(settings) -> dt.date:
    return local_today(settings)


# --------------------------------------------------------------------------- HTML


def render_value(value: Any) -> str:
    """One property value as escaped HTML: persons of a board one per line, links only to http(s)."""
    if value is None:
        return ""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "<br>".join(render_value(v) for v in value)
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if k == "role":
                continue
            url = safe_url(v) if k.endswith("url") and isinstance(v, str) else None
            parts.append(f'<a href="{esc(url)}">{esc(k)}</a>' if url else esc(v))
        return " · ".join(parts)
    if isinstance(value, list):
        return esc("、".join(str(v) for v in value))
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return esc(value)


def page(title: str, body: str, lang: str, crumbs: list[tuple[str, str]]) -> HTMLResponse:
    nav = " › ".join(f'<a href="{esc(url)}">{esc(name)}</a>' for name, url in crumbs)
    html = (f'<!doctype html><html lang="{"en" if lang == "en" else "zh-CN"}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            "<style>body{font-family:system-ui,sans-serif;margin:1.2em auto;max-width:72em;padding:0 1em;"
            "line-height:1.45}table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;"
            "padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}nav{color:#666}"
            "code{font-size:.9em}</style></head>"
            f"<body><nav>{nav}</nav><h1>{esc(title)}</h1>{body}</body></html>")
    return HTMLResponse(html)


def crumbs_for(request: Request, lang: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    t = TEXT[lang]
    return [(t["home"], href(request, "", lang, f="html")),
            (t["collections"], href(request, "/collections", lang, f="html")), *extra]


def links_html(links: list[dict]) -> str:
    return "<ul>" + "".join(f'<li><a href="{esc(x["href"])}">{esc(x.get("title") or x["rel"])}</a> '
                            f'<code>{esc(x["type"])}</code></li>' for x in links) + "</ul>"


# --------------------------------------------------------------------------- landing, conformance


@router.get("", response_model=LandingPage, summary="OGC API landing page: links to the API, conformance and data",
            responses={200: {"content": {HTML: {}}}})
def landing(request: Request, f: F = None, lang: LangParam = None) -> Response:
    only(request)
    lang, html = language(lang), wants_html(request, f)
    t = TEXT[lang]
    links = [*self_links(request, "", lang, html),
             link(str(request.base_url).rstrip("/") + "/openapi.json", "service-desc", OPENAPI, t["api"]),
             link(str(request.base_url).rstrip("/") + "/docs", "service-doc", HTML, t["docs"]),
             link(href(request, "/conformance", lang), "conformance", JSON, t["conformance"]),
             link(href(request, "/conformance", lang), REL + "conformance", JSON, t["conformance"]),
             link(href(request, "/collections", lang), "data", JSON, t["collections"]),
             link(href(request, "/collections", lang), REL + "data", JSON, t["collections"])]
    body = {"title": t["title"], "description": t["landing"], "links": links}
    if html:
        return page(t["title"], f"<p>{esc(t['landing'])}</p>" + links_html(links), lang,
                    [(t["home"], href(request, "", lang, f="html"))])
    return json_response(body)


@router.get("/conformance", response_model=Conformance, summary="The conformance classes this API implements",
            responses={200: {"content": {HTML: {}}}})
def conformance(request: Request, f: F = None, lang: LangParam = None) -> Response:
    only(request)
    lang, html = language(lang), wants_html(request, f)
    if html:
        t = TEXT[lang]
        items = "".join(f"<li><code>{esc(c)}</code></li>" for c in ogc.CONFORMANCE)
        return page(t["conformance"], f"<ul>{items}</ul>", lang, [(t["home"], href(request, "", lang, f="html"))])
    return json_response({"conformsTo": ogc.CONFORMANCE})


# --------------------------------------------------------------------------- collections


def collection_info(request: Request, c: dict, lang: str) -> dict:
    cid = c["id"]
    t = TEXT[lang]
    path = f"/collections/{cid}"
    links = [link(href(request, path, lang), "self", JSON, c["title"]),
             link(href(request, path, lang, f="html"), "alternate", HTML, c["title"]),
             link(href(request, path + "/items", lang), "items", GEOJSON, t["items"]),
             link(href(request, path + "/items", lang, f="html"), "items", HTML, t["items"]),
             link(href(request, path + "/queryables", lang), REL + "queryables", SCHEMA, t["queryables"])]
    if c["kind"] == "areas":
        # Vector tiles of the layer (OGC API - Tiles, api/routers/tiles.py).
        links.append(link(href(request, path + "/tiles", lang), REL + "tilesets-vector", JSON,
                          "矢量瓦片" if lang != "en" else "Vector tiles"))
    out = {"id": cid, "title": c["title"], "description": c["description"], "links": links,
           "itemType": "feature", "crs": ogc.CRS_LIST, "storageCrs": ogc.STORAGE_CRS}
    if c["extent"]:
        out["extent"] = c["extent"]
    return out


def collection_rows(info: dict) -> str:
    bbox = (info.get("extent") or {}).get("spatial", {}).get("bbox")
    items = next(x["href"] for x in info["links"] if x["rel"] == "items" and x["type"] == HTML)
    return (f'<tr><td><a href="{esc(items)}">{esc(info["id"])}</a></td><td>{esc(info["title"])}</td>'
            f'<td>{esc(info["description"])}</td>'
            f'<td>{esc(", ".join(f"{v:.5f}" for v in bbox[0])) if bbox else ""}</td></tr>')


@router.get("/collections", response_model=Collections,
            summary="The collections: each published layer, the grids' boards, public sources and cases",
            responses={200: {"content": {HTML: {}}}})
def collections(request: Request, session: ReadSessionDep, f: F = None, lang: LangParam = None) -> Response:
    only(request)
    lang, html = language(lang), wants_html(request, f)
    t = TEXT[lang]
    infos = [collection_info(request, c, lang) for c in ogc.describe_collections(session, lang)]
    if html:
        head = f"<tr><th>id</th><th>{esc(t['collections'])}</th><th></th><th>{esc(t['extent'])}</th></tr>"
        return page(t["collections"], "<table>" + head + "".join(collection_rows(i) for i in infos)
                    + "</table>", lang, crumbs_for(request, lang)[:1])
    return json_response({"links": self_links(request, "/collections", lang, False), "collections": infos})


@router.get("/collections/{collection_id}", response_model=CollectionInfo, summary="One collection",
            responses={200: {"content": {HTML: {}}}})
def collection(request: Request, session: ReadSessionDep, collection_id: str, f: F = None,
               lang: LangParam = None) -> Response:
    only(request)
    lang, html = language(lang), wants_html(request, f)
    info = collection_info(request, ogc.describe_collection(session, collection_id, lang), lang)
    if html:
        body = (f"<p>{esc(info['description'])}</p>"
                + "<table>" + collection_rows(info) + "</table>" + links_html(info["links"]))
        return page(info["title"], body, lang, crumbs_for(request, lang))
    return json_response(info)


@router.get("/collections/{collection_id}/queryables", response_model=Queryables,
            summary="The properties items can be filtered on (?name=value), as a JSON schema",
            responses={200: {"content": {SCHEMA: {"schema": {"$ref": "#/components/schemas/Queryables"}}, HTML: {}}}})
def queryables(request: Request, session: ReadSessionDep, collection_id: str, f: F = None,
               lang: LangParam = None) -> Response:
    only(request)
    lang, html = language(lang), wants_html(request, f)
    c = ogc.resolve(session, collection_id)
    schema = {**ogc.queryables_schema(c, lang), "$id": href(request, f"/collections/{collection_id}/queryables", lang)}
    if html:
        t = TEXT[lang]
        rows = "".join(f"<tr><td><code>{esc(k)}</code></td><td>{esc(v['title'])}</td><td>{esc(v['type'])}</td></tr>"
                       for k, v in schema["properties"].items())
        return page(f"{collection_id} · {t['queryables']}", f"<table>{rows}</table>", lang,
                    crumbs_for(request, lang, (collection_id, href(request, f"/collections/{collection_id}", lang,
                                                                   f="html"))))
    return json_response(schema, SCHEMA)


# --------------------------------------------------------------------------- items

Limit = Annotated[str | None, Query(description=f"Features per page, 1 to {ogc.MAX_LIMIT} "
                                                f"(default {ogc.DEFAULT_LIMIT})",
                                    json_schema_extra={"type": "integer", "minimum": 1, "maximum": ogc.MAX_LIMIT,
                                                       "default": ogc.DEFAULT_LIMIT})]
Bbox = Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (CRS84; in bbox-crs's axis order "
                                               "when given: EPSG:4326/4490 are minlat,minlon,maxlat,maxlon)")]
BboxCrs = Annotated[str | None, Query(alias="bbox-crs", description="CRS of bbox: " + ", ".join(ogc.CRS_LIST),
                                      json_schema_extra={"enum": ogc.CRS_LIST})]
Crs = Annotated[str | None, Query(description="CRS of the answer: " + ", ".join(ogc.CRS_LIST)
                                              + " (EPSG ones in lat, lon order)",
                                  json_schema_extra={"enum": ogc.CRS_LIST})]
Datetime = Annotated[str | None, Query(description="RFC 3339 instant or interval (a/b, .. for an open end). "
                                                   "Areas and boards: the generation(s) published then; cases: "
                                                   "reported_at; sources have no time")]
After = Annotated[str | None, Query(description="Paging cursor: features after this one (from the next link)")]
Before = Annotated[str | None, Query(description="Paging cursor: features before this one (from the prev link)")]


def page_links(request: Request, lang: str, html: bool, result: ogc.ItemsPage) -> list[dict]:
    t = TEXT[lang]
    url = request.url.remove_query_params(["after", "before", "f"])
    fmt = {"f": "html"} if html else {}
    media = HTML if html else GEOJSON
    out = [link(str(url.include_query_params(**fmt)), "self", media),
           link(str(url.include_query_params(f="json" if html else "html")), "alternate", GEOJSON if html else HTML)]
    if request.query_params.get("after") or request.query_params.get("before"):
        cursor = {k: request.query_params[k] for k in ("after", "before") if request.query_params.get(k)}
        out = [link(str(url.include_query_params(**cursor, **fmt)), "self", media),
               link(str(url.include_query_params(**cursor, f="json" if html else "html")), "alternate",
                    GEOJSON if html else HTML)]
    if result.next_after:
        out.append(link(str(url.include_query_params(after=result.next_after, **fmt)), "next", media, t["next"]))
    if result.prev_before:
        out.append(link(str(url.include_query_params(before=result.prev_before, **fmt)), "prev", media, t["prev"]))
    collection_id = request.path_params["collection_id"]
    out.append(link(href(request, f"/collections/{collection_id}", lang), "collection", JSON))
    return out


def items_html(request: Request, collection_id: str, lang: str, features: list[dict], links: list[dict],
               returned: int, matched: int | None) -> HTMLResponse:
    t = TEXT[lang]
    props = list(dict.fromkeys(k for ft in features for k in (ft.get("properties") or {})))
    head = f"<tr><th>{esc(t['id'])}</th>" + "".join(f"<th>{esc(p)}</th>" for p in props) + \
        f"<th>{esc(t['geometry'])}</th></tr>"
    rows = []
    for ft in features:
        one = href(request, f"/collections/{collection_id}/items/{ft['id']}", lang, f="html")
        cells = "".join(f"<td>{render_value((ft.get('properties') or {}).get(p))}</td>" for p in props)
        rows.append(f'<tr><td><a href="{esc(one)}">{esc(ft["id"])}</a></td>{cells}'
                    f"<td>{esc((ft.get('geometry') or {}).get('type'))}</td></tr>")
    count = f"{returned} {t['returned']}" + (f" / {matched} {t['matched']}" if matched is not None else "")
    nav = " ".join(f'<a href="{esc(x["href"])}">{esc(x["title"])}</a>' for x in links if x["rel"] in ("prev", "next"))
    table = f"<table>{head}{''.join(rows)}</table>" if rows else f"<p>{esc(t['none'])}</p>"
    return page(f"{collection_id} · {t['items']}", f"<p>{esc(count)}</p>{table}<p>{nav}</p>", lang,
                crumbs_for(request, lang, (collection_id, href(request, f"/collections/{collection_id}", lang,
                                                               f="html"))))


@router.get("/collections/{collection_id}/items", response_model=FeatureCollection, response_class=GeoJSONResponse,
            summary="Features of a collection (GeoJSON, keyset pages with next/prev links; bbox, datetime, crs, "
                    "property filters)",
            responses={200: {"content": {HTML: {}}}, 400: {"description": "A bad or unknown query parameter"}})
def items(request: Request, session: ReadSessionDep, settings: SettingsDep, collection_id: str,
          limit: Limit = None, bbox: Bbox = None, bbox_crs: BboxCrs = None, datetime: Datetime = None,
          crs: Crs = None, after: After = None, before: Before = None, f: F = None, lang: LangParam = None) -> Response:
    """Besides the parameters below, each of the collection's queryables
    (``/queryables``) filters by equality, e.g. ``?level=village&parent=339901100``."""
    lang, html = language(lang), wants_html(request, f)
    c = ogc.resolve(session, collection_id)
    params = {k: v for k, v in request.query_params.items() if k not in CommonParams}
    q = ogc.item_query(c, params, ZoneInfo(settings.timezone))
    result = ogc.items(session, c, q, lang=lang, today=today(settings))
    links = page_links(request, lang, html, result)
    headers = {"Content-Crs": f"<{q.crs}>"}
    if html:
        response = items_html(request, collection_id, lang, json.loads(result.features), links, result.returned,
                              result.matched)
        response.headers.update(headers)
        return response
    head: dict[str, Any] = {"type": "FeatureCollection",
                            "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                            "numberReturned": result.returned}
    if result.matched is not None:
        head["numberMatched"] = result.matched
    head["links"] = links
    # The features as PostgreSQL wrote them: spliced in, never parsed.
    body = jsonenc.dumps(head)[:-1] + ', "features": ' + result.features + "}"
    return Response(body.encode(), media_type=GEOJSON, headers=headers)


@router.get("/collections/{collection_id}/items/{feature_id}", response_model=Feature,
            response_class=GeoJSONResponse, summary="One feature (an area's id: its code, or code@generation)",
            responses={200: {"content": {HTML: {}}}, 404: {"description": "No such feature in the collection"}})
def item(request: Request, session: ReadSessionDep, settings: SettingsDep, collection_id: str, feature_id: str,
         crs: Crs = None, f: F = None, lang: LangParam = None) -> Response:
    only(request, "crs")
    lang, html = language(lang), wants_html(request, f)
    c = ogc.resolve(session, collection_id)
    out_crs = ogc.parse_crs(crs)
    path = f"/collections/{collection_id}/items/{feature_id}"
    extra = {"crs": out_crs} if crs else {}
    links = [link(href(request, path, lang, **extra), "self" if not html else "alternate", GEOJSON),
             link(href(request, path, lang, f="html", **extra), "self" if html else "alternate", HTML),
             link(href(request, f"/collections/{collection_id}", lang), "collection", JSON)]
    found = ogc.item(session, c, feature_id, crs=out_crs, lang=lang, today=today(settings), links=links)
    headers = {"Content-Crs": f"<{out_crs}>"}
    if html:
        ft = json.loads(found)
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{render_value(v)}</td></tr>"
                       for k, v in (ft.get("properties") or {}).items())
        t = TEXT[lang]
        rows += f"<tr><th>{esc(t['geometry'])}</th><td>{esc((ft.get('geometry') or {}).get('type'))}</td></tr>"
        response = page(f"{collection_id} · {feature_id}", f"<table>{rows}</table>{links_html(links)}", lang,
                        crumbs_for(request, lang,
                                   (collection_id, href(request, f"/collections/{collection_id}", lang, f="html")),
                                   (t["items"], href(request, f"/collections/{collection_id}/items", lang, f="html"))))
        response.headers.update(headers)
        return response
    return Response(found.encode(), media_type=GEOJSON, headers=headers)
