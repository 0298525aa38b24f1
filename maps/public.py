"""The public grid map (网格公示): every grid with its board (code, name, the responsible
persons' published name, post, photo, phone and duties, and the supervision hotline), and
"find my grid": by a tap on the map, by the browser's location (point in polygon on the
page: no request leaves it) or by searching a village, a grid or an address
(``/api/public/places`` on a served page, the page's own names in a standalone file).

The page is laid out for a phone first: a title bar with the search box at the top, the
board in a bottom sheet (a side panel on a desktop) that the map's controls never cover,
village names on the map, and a "locate me" button that needs nothing from the network.
``grid=CODE`` opens the page on that grid's board (the printed board's QR code links there).

An area with more published grids than ``settings.tiles_above`` (a county, a province) is
served without them: the grids (and, when they are as many, the villages) are drawn from the
service's vector tiles (:class:`TiledLayer`, maps/static/tiles.js) and a board is asked of
/api/locate when its grid is tapped, so the page is as small as a town's. A standalone file
has no service: it always carries its grids.

Only published, public fields reach this page: persons' fields flagged public, never
notes, reporters or internal fields; incidents only of categories marked public, and of
those only category, state and date.
"""

from __future__ import annotations

import datetime as dt

import branca
import folium
import shapely
from sqlalchemy.orm import Session

from geogrid.areas import lookup
from geogrid.core import timeutil
from geogrid.core.errors import GeogridError
from geogrid.core.settings import Settings
from geogrid.db.schema import ADMIN_LAYER
from geogrid.incidents import records
from geogrid.people import assignments
from geogrid.publication import tiles
from maps import assets, public_report, views
from maps.base import (
    Cluster,
    GeoJson,
    Script,
    feature_collection,
    for_display,
    lean,
    new_map,
    page,
    text,
)

# The page's own texts (board.js and places.js read them as JSON).
TEXTS = {
    "zh": {
        "hint": "点击地图或搜索地址，查看您所在网格的网格员", "search": "搜索村（社区）、网格或地址",
        "search_none": "未找到匹配的村（社区）、网格或地址", "search_offline": "离线文件只能按村（社区）、网格名称或编码查找",
        "kinds": {"village": "村（社区）", "grid": "网格", "address": "地址"},
        "locate": "定位我所在的网格", "locating": "正在获取您的位置……", "outside": "您的位置不在本辖区网格范围内",
        "denied": "位置权限被拒绝：请在浏览器设置中允许本页面获取位置", "unavailable": "无法获取位置，请稍后再试或搜索地址",
        "close": "关闭", "dismiss": "关闭提示", "code": "网格编码", "village": "所属村（社区）", "phone": "电话",
        "call": "拨打", "duties": "职责", "hotline": "监督电话", "no_persons": "暂无公示的网格员",
        "download": "下载公示牌 (PDF)", "photo": "照片", "no_photo": "暂无照片", "address": "您查找的地址",
        "grid_missing": "未找到网格 {code}：它可能已调整，请点击地图或搜索地址", "board": "网格公示牌", "colon": "：",
        "zoom_for_grids": "放大地图以查看网格", "board_failed": "暂时无法获取网格公示信息，请稍后再试",
        "loading": "正在查询……",
    },
    "en": {
        "hint": "Tap the map or search an address to see your grid's workers", "search": "Village, grid or address",
        "search_none": "No village, grid or address found", "search_offline": "A saved file finds villages and grids "
        "by name or code only",
        "kinds": {"village": "village", "grid": "grid", "address": "address"},
        "locate": "Find the grid where I am", "locating": "Finding your location…",
        "outside": "Your location is outside the grids of this jurisdiction",
        "denied": "Location permission denied: allow this page to use your location in the browser's settings",
        "unavailable": "Your location is not available: try again later or search an address",
        "close": "Close", "dismiss": "Dismiss", "code": "Grid code", "village": "Village", "phone": "Phone",
        "call": "Call", "duties": "Duties", "hotline": "Supervision hotline", "no_persons": "No published grid worker yet",
        "download": "Download the board (PDF)", "photo": "Photo", "no_photo": "No photo", "address": "The address you searched",
        "grid_missing": "Grid {code} was not found: it may have been redrawn; tap the map or search an address",
        "board": "Grid board", "colon": ": ",
        "zoom_for_grids": "Zoom in to see the grids", "board_failed": "The grid's board cannot be loaded now: try again later",
        "loading": "Loading…",
    },
}
# folium.plugins.VectorGridProtobuf's address of Leaflet.VectorGrid: maps/assets.py pins it.
VECTORGRID = "https://unpkg.com/leaflet.vectorgrid@latest/dist/Leaflet.VectorGrid.bundled.js"
BOARD_PDF = "/maps/public/board.pdf"  # the printable board (maps/boards.py, served by api/routers/maps.py)


def _start(session: Session, bounds, area: str, layer: str, grid: str | None):
    """Where a tiled page opens: on ``grid`` when it is a published grid of the area (the
    printed board's QR code), else the whole area. Opening on the area first would load
    its tiles before moving to the grid."""
    if not grid or not grid.startswith(area):
        return bounds
    try:
        found = lookup.get_area(session, grid, published=True)
    except GeogridError:
        return bounds  # the page says it was not found (board.js)
    if found["properties"]["layer"] != layer:
        return bounds
    return shapely.geometry.shape(found["geometry"]).bounds


def render(session: Session, settings: Settings, *, area: str, layer: str = "comprehensive", lang: str = "zh",
           inline: bool = True, nonce: str | None = None, incidents_days: int = 30, grid: str | None = None) -> str:
    """The page of ``area`` (a town, a county) on net ``layer``; ``grid``: the grid whose
    board it opens on (an unknown code: the page says so and shows the whole area)."""
    t = text(lang)
    words = TEXTS["en" if lang == "en" else "zh"]
    # The public sees what was published (geogrid.publication), never the planners' drafts.
    parent = lookup.get_area(session, area, lang=lang, published=True)
    bounds = shapely.geometry.shape(parent["geometry"]).bounds
    # A large area's grids come from the vector tiles (/tiles) instead of the page: a served
    # page only (a standalone file has no service to ask).
    tiled = not inline and published_count(session, area, layer) > settings.tiles_above
    m = lean(new_map(settings, _start(session, bounds, area, layer, grid) if tiled else bounds, lang))
    tiled_villages = tiled and published_count(session, area, ADMIN_LAYER) > settings.tiles_above
    if tiled_villages:
        villages = None
        TiledLayer(ADMIN_LAYER, area, name=t["parents"], lang=lang,
                   minzoom=tiles.min_zoom(session, ADMIN_LAYER)).add_to(m)
    else:
        villages = lookup.frame(session, lookup.AreaFilter(code_prefix=area, layer=ADMIN_LAYER, published=True),
                                with_notes=False)
    if villages is not None and len(villages):
        GeoJson(
            feature_collection(for_display(villages.geometry.array, settings.map_simplify_m),
                               [{"name": n} for n in villages["name"]]),
            name=t["parents"], style_function=lambda f: {"fill": False, "color": "#333", "weight": 2.5},
            interactive=False).add_to(m)
    board: folium.map.Layer
    if tiled:
        # The boards come from /api/locate when a grid is tapped (maps/static/tiles.js).
        strings: list = []
        board = TiledLayer(layer, area, name=t["grids"], lang=lang, minzoom=tiles.min_zoom(session, layer),
                           hint=str(words["zoom_for_grids"]))
        board.add_to(m)
    else:
        grids = lookup.frame(session, lookup.AreaFilter(code_prefix=area, layer=layer, published=True),
                             with_notes=False, with_ids=True)
        posts = assignments.responsible_persons(session, [int(i) for i in grids["area_id"]] if len(grids) else [],
                                                timeutil.local_today(settings), lang, public_only=True)
        props, strings = views.board_properties(grids.itertuples(), posts)
        for prop, parent_code in zip(props, grids["parent"] if len(grids) else []):
            prop["v"] = parent_code or ""  # the village: its name on the board and in search suggestions
        board = GeoJson(
            feature_collection(for_display(grids.geometry.array, settings.map_simplify_m), props), name=t["grids"],
            style_function=lambda f: {"color": "#2b83ba", "weight": 1, "fillColor": "#abdda4", "fillOpacity": 0.25},
            highlight_function=lambda f: {"weight": 3, "fillOpacity": 0.45})
        board.add_to(m)
    title = f"{parent['properties']['name']} · {t['public_title']}"
    m.get_root().header.add_child(folium.Element(f"<style>{CSS}</style>"))
    m.add_child(Header(title, words))
    config = {"area": area, "layer": layer, "lang": lang, "api": not inline, "hotline": settings.supervision_hotline,
              "bounds": [[bounds[1], bounds[0]], [bounds[3], bounds[2]]], "grid": grid, "pdf": BOARD_PDF,
              "villages": village_rows(villages, area) if villages is not None else [],
              "tiles": tiled, "tiles_above": settings.tiles_above}
    m.add_child(Board(m, board, strings, words, config))
    m.add_child(Places(m, board))
    # Tiled: a province's outline simplified for the page (the form only refuses a point far
    # outside before asking; the service checks the point itself).
    boundary = (shapely.geometry.mapping(for_display([shapely.geometry.shape(parent["geometry"])],
                                                     max(settings.map_simplify_m, 50))[0]) if tiled else parent["geometry"])
    m.add_child(public_report.ReportForm(m, board, session, settings, boundary=boundary, lang=lang,
                                          served=not inline))
    _public_incidents(session, m, area, t, lang, incidents_days)
    folium.LayerControl(collapsed=True).add_to(m)
    return page(m, settings, inline=inline, title=title, nonce=nonce)


def published_count(session: Session, area: str, layer: str) -> int:
    """How many published areas of ``layer`` lie in ``area`` (its code prefix): a count, no boundary read."""
    return lookup.list_areas(session, lookup.AreaFilter(code_prefix=area, layer=layer, published=True),
                             limit=0, offset=0)[1]


def village_rows(villages, area: str) -> list[list]:
    """[code, name, parent's name, label lat, label lon, [minx, miny, maxx, maxy]] of each
    administrative area below ``area``, largest first (its label wins a crowded spot)."""
    if not len(villages):
        return []
    names = dict(zip(villages["code"], villages["name"]))
    rows = []
    for code, name, parent, geom in zip(villages["code"], villages["name"], villages["parent"], villages.geometry):
        if code == area or geom is None or geom.is_empty:
            continue
        spot = max(shapely.get_parts(geom), key=lambda g: g.area).representative_point()
        rows.append((geom.area, [code, name, names.get(parent, ""), round(spot.y, 6), round(spot.x, 6),
                                 [round(v, 6) for v in geom.bounds]]))
    return [row for _, row in sorted(rows, key=lambda r: -r[0])]


def _public_incidents(session: Session, m, area: str, t: dict, lang: str, days: int) -> None:
    found, _ = records.list_incidents(session, public_only=True, area=area, limit=5000,
                                        reported_since=dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
    if not found:
        return
    # Requests placed by a household or an area have no point: not on the map.
    shown = [(r["lat"], r["lon"], records.public_view(r, lang)) for r in found
             if r["state"] != "void" and r["lat"] is not None]
    group = folium.FeatureGroup(name=f"{t['public_incidents']} ({len(shown)})", show=False)
    Cluster(views.public_case_rows(shown), "publicCaseMarker").add_to(group)
    group.add_to(m)


class Header(branca.element.MacroElement):
    """The title bar: the town's name and 网格公示, the one-line instruction and the search
    box (places.js fills its suggestions). Outside the map: no map control lies over it."""

    _template = branca.element.Template("""
        {% macro html(this, kwargs) %}
        <div id="geogrid-public-head" class="geogrid-public-head">
          <div class="geogrid-public-titles">
            <h1 id="geogrid-public-title">{{ this.title|e }}</h1>
            <p id="geogrid-public-hint">{{ this.hint|e }}</p>
          </div>
          <div id="geogrid-search" class="leaflet-control-search geogrid-search" role="search">
            <input id="geogrid-search-input" type="search" autocomplete="off" maxlength="50" enterkeyhint="search"
                   placeholder="{{ this.placeholder|e }}" aria-label="{{ this.placeholder|e }}"
                   aria-controls="geogrid-search-tips" aria-autocomplete="list">
            <ul id="geogrid-search-tips" class="search-tooltip" role="listbox" hidden></ul>
          </div>
        </div>
        {% endmacro %}""")

    def __init__(self, title: str, words: dict):
        super().__init__()
        self.title, self.hint, self.placeholder = title, words["hint"], words["search"]


class Board(Script):
    """Each grid's board in the page's sheet (a tap on the grid, a search, the location),
    notices, the locate button and the village labels: ``geogrid.board``, maps/static/board.js."""

    files = ("board.js",)
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        geogrid.board({{ this.map_name }}, {{ this.layer_name }}, {{ this.strings|tojson }}, {{ this.words|tojson }},
                      {{ this.config|tojson }});
        {% endmacro %}""")

    def __init__(self, m, layer, strings, words, config):
        super().__init__()
        self.m, self.layer, self.strings, self.words, self.config = m, layer, strings, words, config

    def render(self, **kwargs):
        self.map_name, self.layer_name = self.m.get_name(), self.layer.get_name()
        super().render(**kwargs)


class TiledLayer(folium.elements.JSCSSMixin, folium.map.Layer):
    """A published layer drawn from the service's vector tiles (``/tiles/{layer}/{z}/{x}/{y}.mvt``,
    Leaflet.VectorGrid on canvas) instead of GeoJSON in the page: grids (interactive, their
    boards asked from /api/locate) or administrative outlines. Only the areas below ``area``
    are drawn, as on a page that carries them (``geogrid.tiledLayer``, maps/static/tiles.js)."""

    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = geogrid.tiledLayer({{ this.options|tojson }});
        {% endmacro %}""")

    def __init__(self, layer: str, area: str, *, name: str, lang: str, minzoom: int, hint: str = ""):
        super().__init__(name=name, overlay=True, control=True, show=True)
        self.options = {"url": f"/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt", "layer": layer, "area": area,
                        "admin": layer == ADMIN_LAYER, "minzoom": minzoom, "lang": lang, "hint": hint}

    def render(self, **kwargs):
        self.default_js = [("vectorgrid", VECTORGRID), ("geogrid-tiles.js", assets.static_url("tiles.js"))]
        super().render(**kwargs)


class Places(Script):
    """The search box's suggestions: ``/api/public/places`` on a served page, the page's own
    grids and villages in a standalone file (``geogrid.places``, maps/static/places.js)."""

    files = ("places.js",)
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        geogrid.places({{ this.map_name }}, {{ this.layer_name }});
        {% endmacro %}""")

    def __init__(self, m, layer):
        super().__init__()
        self.m, self.layer = m, layer

    def render(self, **kwargs):
        self.map_name, self.layer_name = self.m.get_name(), self.layer.get_name()
        super().render(**kwargs)


# No user text: the layout of the title bar, the search box, the sheet and the notices.
CSS = """
html, body { overscroll-behavior: none; }
.geogrid-public-head { position: fixed; top: 0; left: 0; right: 0; z-index: 1200; background: #fff;
  box-shadow: 0 1px 6px rgba(0,0,0,.25); padding: 8px 12px; display: flex; flex-wrap: wrap; gap: 4px 16px;
  align-items: center; font-family: system-ui, -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif; }
.geogrid-public-titles { flex: 1 1 260px; min-width: 0; }
.geogrid-public-head h1 { font-size: 18px; margin: 0; line-height: 1.3; color: #174a7c; }
.geogrid-public-head p { font-size: 13px; margin: 2px 0 0; color: #444; line-height: 1.35; }
.geogrid-search { position: relative; flex: 1 1 320px; max-width: 460px; }
.geogrid-search input { width: 100%; box-sizing: border-box; font-size: 16px; padding: 8px 12px 8px 34px;
  border: 1px solid #8aa; border-radius: 20px; background: #fff url("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='16' height='16' viewBox='0 0 16 16'%3E%3Ccircle cx='6.5' cy='6.5' r='5' fill='none' stroke='%23567' stroke-width='2'/%3E%3Cpath d='M10.5 10.5l4 4' stroke='%23567' stroke-width='2'/%3E%3C/svg%3E") no-repeat 11px 50%; }
.geogrid-search .search-tooltip { position: absolute; left: 0; right: 0; top: 100%; margin: 4px 0 0; padding: 0;
  list-style: none; background: #fff; border-radius: 8px; box-shadow: 0 3px 12px rgba(0,0,0,.3); z-index: 2500;
  max-height: 50vh; overflow-y: auto; }
.geogrid-search .search-tooltip[hidden] { display: none; }
.geogrid-search .search-tip, .geogrid-search-none { padding: 10px 12px; font-size: 15px; border-bottom: 1px solid #eee;
  cursor: pointer; overflow-wrap: anywhere; }
.geogrid-search .search-tip { display: flex; gap: 8px; align-items: baseline; }
.geogrid-tip-text { flex: 1; min-width: 0; }
.geogrid-search .search-tip[aria-selected="true"], .geogrid-search .search-tip:hover { background: #e8f1fa; }
.geogrid-search-none { color: #666; cursor: default; }
.geogrid-kind { flex: none; font-size: 12px; color: #fff; background: #6b8fb3; border-radius: 9px;
  padding: 1px 7px; }
.geogrid-sheet { position: fixed; z-index: 1500; background: #fff; box-shadow: 0 -2px 12px rgba(0,0,0,.35);
  overflow-y: auto; overscroll-behavior: contain; font-family: system-ui, -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif; }
.geogrid-sheet[hidden] { display: none; }
.geogrid-sheet.narrow { left: 0; right: 0; bottom: 0; max-height: 50vh; border-radius: 14px 14px 0 0; }
.geogrid-sheet.wide { right: 10px; width: 360px; max-height: calc(100vh - 120px); border-radius: 8px; }
.geogrid-sheet .leaflet-popup-content { margin: 0; font-size: 15px; line-height: 1.45; min-height: 0; width: auto !important; }
.geogrid-sheet-head { position: sticky; top: 0; background: #fff; display: flex; align-items: center; gap: 8px;
  padding: 10px 8px 8px 16px; border-bottom: 1px solid #e5e5e5; z-index: 1; }
.geogrid-sheet-head h2 { flex: 1; margin: 0; font-size: 18px; line-height: 1.3; overflow-wrap: anywhere; }
.geogrid-sheet-close { flex: none; width: 44px; height: 44px; font-size: 28px; line-height: 1; border: 0; background: none;
  cursor: pointer; color: #333; border-radius: 22px; }
.geogrid-sheet-close:hover { background: #eee; }
.geogrid-sheet-body { padding: 8px 16px 16px; }
.geogrid-board .geogrid-meta { color: #555; font-size: 14px; }
.geogrid-person { display: flex; gap: 12px; padding: 10px 0; border-top: 1px solid #eee; }
.geogrid-person:first-of-type { border-top: 0; }
.geogrid-person img { flex: none; width: 64px; height: 80px; object-fit: cover; border-radius: 4px; background: #e8edf2; }
.geogrid-person .geogrid-post { font-weight: bold; }
.geogrid-tel { display: inline-block; margin-top: 4px; padding: 6px 12px; border-radius: 16px; background: #1a7f37;
  color: #fff !important; text-decoration: none; font-size: 15px; }
.geogrid-hotline { margin-top: 10px; padding: 10px 12px; background: #fff4e5; border-radius: 6px; }
.geogrid-hotline .geogrid-tel { background: #c2410c; }
.geogrid-pdf { display: inline-block; margin-top: 10px; color: #174a7c; }
.geogrid-pdf[hidden] { display: none; }
.geogrid-address { margin: 4px 0; padding: 6px 10px; background: #eef5fb; border-radius: 6px; font-size: 14px; }
.geogrid-notice { position: fixed; top: 8px; left: 50%; transform: translateX(-50%); z-index: 3000; max-width: calc(100vw - 24px);
  box-sizing: border-box; display: flex; align-items: center; gap: 8px; padding: 10px 8px 10px 14px; border-radius: 8px;
  box-shadow: 0 2px 10px rgba(0,0,0,.35); font-size: 15px; background: #174a7c; color: #fff; }
.geogrid-notice.error { background: #b42318; }
.geogrid-notice[hidden] { display: none; }
.geogrid-notice button { flex: none; border: 0; background: none; color: #fff; font-size: 22px; width: 36px; height: 36px;
  cursor: pointer; }
.geogrid-locate a { display: flex !important; align-items: center; justify-content: center; }
.geogrid-village-label { position: absolute; transform: translate(-50%, -50%); white-space: nowrap; font-size: 14px;
  font-weight: bold; color: #222; pointer-events: none; text-shadow: 0 0 3px #fff, 0 0 3px #fff, 0 0 2px #fff; }
.geogrid-village-icon { pointer-events: none; }
.geogrid-zoom-hint { position: absolute; left: 50%; top: 12px; transform: translateX(-50%); z-index: 1000;
  max-width: calc(100% - 140px); box-sizing: border-box; padding: 8px 14px; border-radius: 18px; background: rgba(23,74,124,.9);
  color: #fff; font-size: 15px; pointer-events: none; font-family: system-ui, -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif; }
.geogrid-zoom-hint[hidden] { display: none; }
"""
