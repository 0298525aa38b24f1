"""What the three maps share: labels in two languages, the base map, neighbour-distinct
colours, display simplification, legends and the final HTML."""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import re
import urllib.parse

import branca
import folium
import numpy as np
import shapely
from folium import plugins

from geogrid.core.settings import Settings
from geogrid.geo.coverage import simplify_layer
from maps import assets

LABELS = {
    "zh": {
        "grids": "网格", "parents": "上级边界", "code": "编码", "name": "名称", "households": "户数",
        "population": "人口", "area": "面积", "persons": "责任人", "gaps": "缺口（盲区）", "overlaps": "重叠",
        "spill": "越界", "invalid": "无效几何", "responsibility": "责任空缺", "labels": "网格编码",
        "legend_planner": "图例", "hotline": "监督电话", "duties": "职责", "phone": "电话", "role": "职务",
        "find": "查找我的网格", "incidents": "事件", "sources": "污染源", "heat": "事件热力图",
        "choropleth": "网格事件数", "patrol": "巡查状态", "behind": "巡查滞后", "on_schedule": "按期巡查",
        "overdue": "超期", "state": "状态", "category": "类别", "due": "时限", "grid": "网格",
        "history": "处理记录", "key_source": "重点监管", "risk": "风险等级", "public_title": "网格公示",
        "search_placeholder": "输入网格编码或名称", "search_code": "输入网格编码", "public_incidents": "公开事件",
        "save": "保存到服务", "login": "登录", "username": "用户名", "password": "密码", "new_grid": "新建网格",
        "reshape": "修改所选网格边界", "parent": "上级编码", "selected": "已选网格", "none": "无",
        "m2": "平方米", "no_persons": "暂无公示责任人", "size": "规模异常",
        "exempt": "豁免区域", "search_error": "未找到", "cancel": "取消", "fullscreen": "全屏",
        "exit_fullscreen": "退出全屏", "zoom_in": "放大", "zoom_out": "缩小", "minimap_hide": "隐藏鹰眼图",
        "minimap_show": "显示鹰眼图", "layers": "图层",
    },
    "en": {
        "grids": "Grids", "parents": "Parent boundaries", "code": "Code", "name": "Name", "households": "Households",
        "population": "Population", "area": "Area", "persons": "Responsible", "gaps": "Gaps (blind spots)",
        "overlaps": "Overlaps", "spill": "Spill-over", "invalid": "Invalid geometry", "responsibility": "No one responsible",
        "labels": "Grid codes", "legend_planner": "Legend", "hotline": "Supervision hotline", "duties": "Duties",
        "phone": "Phone", "role": "Post", "find": "Find my grid", "incidents": "Incidents", "sources": "Pollution sources",
        "heat": "Incident heat map", "choropleth": "Incidents per grid", "patrol": "Patrol status",
        "behind": "Patrol behind", "on_schedule": "On schedule", "overdue": "Overdue", "state": "State",
        "category": "Category", "due": "Time limit", "grid": "Grid", "history": "History", "key_source": "Key supervision",
        "risk": "Risk", "public_title": "Grid board", "search_placeholder": "Grid code or name",
        "search_code": "Grid code", "public_incidents": "Public incidents", "save": "Save to the service", "login": "Log in",
        "username": "Username", "password": "Password", "new_grid": "New grid", "reshape": "Reshape selected grid",
        "parent": "Parent code", "selected": "Selected grid", "none": "none", "m2": "m²",
        "no_persons": "No published responsible person yet", "size": "Size outliers",
        "exempt": "Exemptions", "search_error": "Not found", "cancel": "Cancel", "fullscreen": "Full screen",
        "exit_fullscreen": "Exit full screen", "zoom_in": "Zoom in", "zoom_out": "Zoom out",
        "minimap_hide": "Hide overview map", "minimap_show": "Show overview map", "layers": "Layers",
    },
}
# Grid fills: greens, blues, yellows and grey only, so that no grid can be taken for a
# problem (red gaps, orange overlaps, purple spill-over).
PALETTE = ["#8dd3c7", "#ffffb3", "#80b1d3", "#b3de69", "#d9d9d9", "#ccebc5", "#a6cee3", "#ffed6f"]
PRECISION = 6  # decimals of a degree in a page: about 0.1 m

# Folium's templates write data with Jinja's tojson; without the default spaces after
# "," and ":" a map of 10,000 grids is about a tenth smaller.
folium.template.Template("").environment.policies["json.dumps_kwargs"] = {"sort_keys": True, "separators": (",", ":")}


def text(lang: str) -> dict:
    return LABELS["en" if lang == "en" else "zh"]


def esc(value) -> str:
    """The one escaping of text for HTML built in Python (element text and quoted attributes)."""
    return html.escape("" if value is None else str(value))


def safe_url(value) -> str | None:
    """``value`` if it is an http(s) address, else None: a user's URL never becomes ``javascript:``."""
    value = (value or "").strip()
    return value if urllib.parse.urlsplit(value).scheme.lower() in ("http", "https") else None


class Script(folium.elements.JSCSSMixin):
    """An element whose code is a file of ``maps/static``: the page loads ``files`` (from
    /maps/assets/geogrid/ when served, inlined in a standalone file, under the same
    Content-Security-Policy as the libraries) and the element's template only calls that
    code with the names of Leaflet objects and data as JSON (Jinja's tojson)."""

    files: tuple[str, ...] = ()

    def render(self, **kwargs):
        self.default_js = [(f"geogrid-{name}", assets.static_url(name)) for name in self.files]
        super().render(**kwargs)


class Helpers(Script):
    """The page's one way of showing user text (``maps/static/geogrid.js``): ``geogrid.card``
    builds popups and tooltips as DOM nodes with textContent, ``geogrid.esc`` escapes what must
    be an HTML string (the public board), ``geogrid.search`` writes search suggestions as text.
    User data reaches the page only as JSON (Jinja's tojson: no raw ``<``, ``>``, ``&``, quote)."""

    files = ("geogrid.js",)
    _template = branca.element.Template("")


class Controls(branca.element.MacroElement):
    """The scale in metres only (the plain map's scale adds feet and miles) and the zoom
    buttons' titles in the page's language."""

    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        L.control.scale({imperial: false}).addTo({{ this._parent.get_name() }});
        geogrid.zoomTitles({{ this._parent.get_name() }}, {{ this.titles|tojson }});
        {% endmacro %}""")

    def __init__(self, t: dict):
        super().__init__()
        self.titles = [t["zoom_in"], t["zoom_out"]]


class Describe(branca.element.MacroElement):
    """Tooltips (or popups) of a GeoJSON layer's features, built by ``geogrid.card``."""

    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        geogrid.describe({{ this.layer.get_name() }}, {{ this.how|tojson }}, {{ this.fields|tojson }},
                         {{ this.aliases|tojson }}, {{ this.exclude|tojson }}, {{ this.options|tojson }});
        {% endmacro %}""")

    def __init__(self, layer, *, fields=None, aliases=None, exclude=(), popup: bool = False, **options):
        super().__init__()
        self.layer, self.fields, self.aliases, self.exclude = layer, fields, aliases, list(exclude)
        self.how, self.options = ("bindPopup" if popup else "bindTooltip"), options


def describe(layer, **kwargs) -> None:
    layer.add_child(Describe(layer, **kwargs))


class Points(Script):
    """Font Awesome markers in ``group``, each with a popup card: rows are
    [lat, lon, marker colour, icon name, card] (``geogrid.points``, maps/static/markers.js)."""

    files = ("markers.js",)
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        geogrid.points({{ this.group.get_name() }}, {{ this.rows|tojson }});
        {% endmacro %}""")

    def __init__(self, group, rows):
        super().__init__()
        self.group, self.rows = group, rows


class Cluster(plugins.FastMarkerCluster):
    """Fast marker clusters of ``rows`` whose markers ``geogrid.<marker>`` makes
    (maps/static/markers.js): the rows are data, the code is in the file."""

    def __init__(self, rows, marker: str, **options):
        if not marker.isidentifier():
            raise ValueError(f"not a function of markers.js: {marker!r}")
        super().__init__(rows, callback=f"geogrid.{marker}", **options)

    def render(self, **kwargs):
        self.default_js = [*type(self).default_js, ("geogrid-markers.js", assets.static_url("markers.js"))]
        super().render(**kwargs)


class Search(plugins.Search):
    """leaflet-search whose suggestions are text (its own writes them with innerHTML):
    ``geogrid.search`` in maps/static/geogrid.js."""

    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = geogrid.search({{ this._parent.get_name() }}, {{ this.layer.get_name() }},
                {{ {"propertyName": this.search_label, "collapsed": this.collapsed,
                    "textPlaceholder": this.placeholder, "position": this.position,
                    "textErr": this.texts.textErr, "textCancel": this.texts.textCancel}|tojson }});
        {% endmacro %}""")

    def __init__(self, layer, *, search_label: str, placeholder: str, collapsed: bool = False,
                 position: str = "topright", lang: str | None = None):
        super().__init__(layer, search_label=search_label, geom_type="Polygon", placeholder=placeholder,
                         collapsed=collapsed, position=position)
        t = text(lang) if lang else {}
        self.texts = {"textErr": t.get("search_error"), "textCancel": t.get("cancel")}


def new_map(settings: Settings, bounds, lang: str) -> folium.Map:
    """A map framed on ``bounds`` (minx, miny, maxx, maxy) with the configured tiles."""
    tiles = None if settings.map_tiles.lower() == "none" else settings.map_tiles
    # maxZoom must be set even without tiles: marker clustering needs it.
    m = folium.Map(tiles=tiles, attr=settings.map_attribution if tiles else None, control_scale=False,
                   prefer_canvas=True, max_zoom=19)
    m.options["maxZoom"] = 19
    m.add_child(Helpers())  # first: every later script of the page uses geogrid.js
    m.add_child(Controls(text(lang)))
    x0, y0, x1, y1 = bounds
    m.fit_bounds([[y0, x0], [y1, x1]])
    m.get_root().header.add_child(folium.Element(f'<meta name="geogrid-lang" content="{esc(lang)}"/>'))
    return m


def neighbour_colours(geoms) -> np.ndarray:
    """Greedy colouring so that grids sharing an edge differ (six colours are always enough
    for a planar map in practice; eight are available)."""
    geoms = np.asarray(geoms, dtype=object)
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    neighbours: dict[int, list[int]] = {}
    for i, j in zip(a, b):
        if i != j:
            neighbours.setdefault(int(i), []).append(int(j))
    colour = np.full(len(geoms), -1, dtype=int)
    for i in np.argsort([-len(neighbours.get(k, [])) for k in range(len(geoms))], kind="stable"):
        used = {colour[j] for j in neighbours.get(int(i), [])}
        colour[i] = next(c for c in range(len(PALETTE) * 4) if c not in used)
    return colour % len(PALETTE)


def for_display(geoms, tolerance_m: float) -> np.ndarray:
    """Simplify for display, only where neighbours keep their shared edges exactly
    (an edge-matched layer: GEOS coverage simplification). A layer with gaps or overlaps
    is shown as stored: simplifying grids one by one would open slivers between them
    where "find my grid" would find nothing."""
    geoms = np.asarray(geoms, dtype=object)
    if len(geoms) and tolerance_m > 0 and shapely.coverage_is_valid(geoms):
        # Rounding is safe only here: edge-matched neighbours share their vertices exactly.
        # Coordinates keep a tenth of the tolerance (1e-5 degrees is about a metre).
        decimals = PRECISION if tolerance_m < 5 else PRECISION - 1
        return shapely.set_precision(simplify_layer(geoms, tolerance_m), 10 ** -decimals, mode="pointwise")
    return geoms


def feature_collection(geoms, properties: list[dict]) -> dict:
    """GeoJSON (RFC 7946: counter-clockwise exteriors) with rounded coordinates."""
    geoms = shapely.orient_polygons(np.asarray(geoms, dtype=object))
    # One parse of every geometry at once: a town has thousands.
    texts = shapely.to_geojson(geoms)
    parsed = json.loads("[" + ",".join(t if t is not None else "null" for t in texts) + "]") if len(texts) else []
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": props, "geometry": g} for g, props in zip(parsed, properties)]}


class GeoJson(folium.GeoJson):
    """folium's GeoJson layer whose data :func:`page` writes into the page after rendering.

    branca compiles every rendered script once more as a Jinja template: with a town's grids
    in it (a megabyte of coordinates) that costs more than the rest of the page. The
    template gets a placeholder instead; the data is written as JSON safe inside a script
    (no ``<``, ``>``, ``&``), as Jinja's ``tojson`` would."""

    def render(self, **kwargs):
        data = self.data
        if (self.style or self.highlight) and data["features"]:
            mapper = folium.features.GeoJsonStyleMapper(data, self.feature_identifier, self)
            if self.style:
                self.style_map = mapper.get_style_map(self.style_function)
            if self.highlight:
                self.highlight_map = mapper.get_highlight_map(self.highlight_function)
        self.parent_map = folium.utilities.get_obj_in_upper_tree(self, folium.Map)
        token = f"__geogrid_data_{self.get_name()}__"
        deferred = self.get_root().__dict__.setdefault("geogrid_deferred", {})
        deferred[json.dumps(token)] = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace(
            "<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        self.data = token
        try:
            super(folium.GeoJson, self).render(**kwargs)  # folium's own render, without its style pass
        finally:
            self.data = data


def _write_deferred(root, rendered: str) -> str:
    """The page with the data of its :class:`GeoJson` layers in place of their placeholders."""
    for token, data in getattr(root, "geogrid_deferred", {}).items():
        if rendered.count(token) != 1:
            raise RuntimeError(f"the page should hold {token} once")
        rendered = rendered.replace(token, data)
    return rendered


def legend(title: str, items: list[tuple[str, str]]) -> branca.element.MacroElement:
    """A small legend box: (colour or CSS style, label) pairs."""
    rows = "".join(
        f'<div><span style="display:inline-block;width:14px;height:14px;margin-right:6px;'
        f'vertical-align:middle;{style if ":" in style else "background:" + style}"></span>{esc(label)}</div>'
        for style, label in items)
    template = branca.element.Template(f"""
        {{% macro html(this, kwargs) %}}
        <div class="geogrid-legend" style="position:absolute;bottom:24px;left:10px;z-index:1000;background:white;
             padding:8px 10px;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);font-size:12px;line-height:18px">
          <b>{esc(title)}</b>{rows}
        </div>
        {{% endmacro %}}""")
    element = branca.element.MacroElement()
    element._template = template
    return element


def toolbox(m: folium.Map, *, minimap: bool = True, lang: str = "zh") -> None:
    """Full screen and the overview map, their titles in ``lang``."""
    t = text(lang)
    plugins.Fullscreen(position="topleft", title=t["fullscreen"], title_cancel=t["exit_fullscreen"]).add_to(m)
    # No leaflet-measure: it compiles its templates with new Function(), which the pages'
    # Content-Security-Policy forbids ('unsafe-eval').
    if minimap:
        plugins.MiniMap(toggle_display=True, tile_layer=None,
                        strings={"hideText": t["minimap_hide"], "showText": t["minimap_show"]}).add_to(m)


_ESCAPED_CJK = re.compile(r"(?<!\\)\\u((?:4[ef]|[5-9][0-9a-f])[0-9a-f]{2}|30[0-3][0-9a-f]|ff[0-9a-e][0-9a-f])")


_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL)
_OPEN_SCRIPT = re.compile(r"<script\b")


def page(m: folium.Map, settings: Settings, *, inline: bool, title: str, nonce: str | None = None,
         connect: tuple[str, ...] = ()) -> str:
    """The final HTML. Served (``nonce`` given): every script tag carries the nonce of the
    response's Content-Security-Policy. Standalone (``inline``): the policy travels in a
    ``<meta>`` with the hashes of the inline scripts. ``connect``: other origins the page
    may call (an exported planner map's service)."""
    m.get_root().header.add_child(folium.Element(f"<title>{esc(title)}</title>"))
    rendered = _write_deferred(m.get_root(), m.get_root().render())
    # User text reaches the page only as JSON (tojson: no raw "<") or through esc(), so every
    # script tag was written by a template: folium's two inline ones (its globals in the
    # head, the map's bundle) and the libraries'. Anything else would get the nonce below,
    # so the page is refused instead.
    inline_scripts = [m for m in _SCRIPT.finditer(rendered) if "src=" not in m.group(1)]
    if len(inline_scripts) != 2 or len(_OPEN_SCRIPT.findall(rendered)) != len(list(_SCRIPT.finditer(rendered))):
        raise RuntimeError("the map page holds a script tag no template wrote")
    html_text = assets.localize(rendered, settings, inline=inline)
    # Folium writes Chinese as \uXXXX escapes (6 bytes a character); as UTF-8 it is 3. Only
    # CJK ideographs and punctuation are unescaped: never quotes, angle brackets or surrogates.
    html_text = _ESCAPED_CJK.sub(lambda mt: chr(int(mt.group(1), 16)), html_text)
    if inline:
        hashes = [script_hash(body) for attrs, body in _SCRIPT.findall(html_text) if "src=" not in attrs]
        policy = content_security_policy(settings, scripts=hashes, connect=connect, meta=True)
        html_text = html_text.replace(
            "<head>", f'<head>\n<meta http-equiv="Content-Security-Policy" content="{esc(policy)}">', 1)
    elif nonce is not None:
        html_text = stamp_nonce(html_text, nonce)
    return html_text


def stamp_nonce(html_text: str, nonce: str) -> str:
    """Give every script tag of a page the service wrote (never one holding user text) a nonce."""
    return _OPEN_SCRIPT.sub(f'<script nonce="{esc(nonce)}"', html_text)


def script_hash(body: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'"


@functools.lru_cache(maxsize=16)
def tile_origins(tiles: str) -> tuple[str, ...]:
    """The origins a tile layer loads images from: ``settings.map_tiles`` is a URL template
    or a name folium knows (OpenStreetMap, CartoDB positron...)."""
    if tiles.lower() == "none":
        return ()
    url = tiles if "{" in tiles or "://" in tiles else folium.TileLayer(tiles).tiles
    parts = urllib.parse.urlsplit(url.replace("{s}", "a"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ()
    host = re.sub(r"\{[^}]*\}", "*", urllib.parse.urlsplit(url).netloc.replace("{s}.", "*."))
    return (f"{parts.scheme}://{host}",)


def content_security_policy(settings: Settings, *, scripts=(), connect=(), meta: bool = False) -> str:
    """The one policy of the service's pages. ``scripts``: nonce or hash sources (none: no
    script at all). Styles need 'unsafe-inline': Leaflet and folium's templates write style
    attributes. Images: tiles, data: URIs (inlined icons) and https: (published photos)."""
    directives = {
        "default-src": "'none'",
        "script-src": " ".join(scripts) or "'none'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": " ".join(("'self'", "data:", "blob:", "https:", *tile_origins(settings.map_tiles))),
        "font-src": "'self' data:",
        "connect-src": " ".join(("'self'", *connect)),
        "form-action": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
    }
    if not meta:  # ignored (with a console error) when given in a <meta>
        directives["frame-ancestors"] = "'none'"
    return "; ".join(f"{k} {v}" for k, v in directives.items())


def nonce_source(nonce: str) -> str:
    return f"'nonce-{nonce}'"


class LogoutButton(branca.element.MacroElement):
    """On staff maps served by the service: ends the map session (POST /maps/logout)."""

    _template = branca.element.Template("""
        {% macro html(this, kwargs) %}
        <form method="post" action="/maps/logout" class="geogrid-logout" id="{{ this.get_name() }}">
          <button type="submit" style="font-size:12px;padding:3px 8px">{{ this.label|e }}</button>
        </form>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        geogrid.control({{ this._parent.get_name() }}, {{ this.get_name()|tojson }}, 'bottomleft');
        {% endmacro %}""")

    def __init__(self, lang: str):
        super().__init__()
        self.label = "Log out" if lang == "en" else "退出登录"


def lean(m: folium.Map) -> folium.Map:
    """Leave out what folium loads by default and a page without markers never uses
    (jQuery, Bootstrap, Font Awesome, awesome-markers: about 2 MB inlined)."""
    m.default_js = [(name, url) for name, url in m.default_js if name == "leaflet"]
    m.default_css = [(name, url) for name, url in m.default_css if name == "leaflet_css"]
    return m


# The planner's editor and problem list (maps/static/editor.js, problems.js): nested
# under LABELS[lang]["editor"] and ["problem"].
LABELS["zh"]["editor"] = {
    "editor": "编辑", "impact": "影响", "selected": "已选网格", "none": "无", "mode_reshape": "修改边界",
    "mode_split": "切分", "mode_merge": "合并", "mode_new": "新建", "move_shared": "移动共用边界（相邻网格随之调整）",
    "hint_reshape": "点击网格，拖动其顶点修改边界（吸附相邻网格的顶点和边）。",
    "hint_split": "点击要切分的网格，再画一条穿过它的线（双击结束）。",
    "hint_merge": "依次点击两个或更多相邻网格。", "hint_new": "在地图上画出新网格的边界（点击第一个顶点结束）。",
    "name": "名称", "parent": "上级编码", "preview": "预览影响", "save": "保存", "cancel": "取消",
    "note": "地图编辑", "new_grid_name": "新网格", "none_selected": "请先点击选择一个网格。",
    "draw_line": "请画一条穿过所选网格的切分线。", "pick_two": "请至少选择两个相邻网格。",
    "draw_polygon": "请先画出新网格的边界。", "unchanged": "边界没有改动，无需保存。",
    "checking_impact": "正在计算影响……", "preview_done": "已计算影响（尚未保存）。", "not_saved": "未保存。",
    "saving": "正在保存……", "saved": "已保存：",
    "stale": "网格 {code} 已被他人修改（当前版本 {version}）：请重新载入后再编辑",
    "forbidden": "无权修改：涉及的网格不在您的管辖范围内", "versions_needed": "缺少相关网格的版本号：请先预览影响再保存",
    "invalid": "提交的内容无效", "unauthorized": "登录已失效：请重新登录", "conflict": "与已存数据冲突",
    "offline": "无法连接服务", "failed": "保存失败", "assign_to": "接收原网格人员的新网格",
    "no_impact": "校验通过。", "code": "编码", "state": "状态", "area_before": "原面积（平方米）",
    "area_after": "新面积（平方米）", "change": "变化",
    "statuses": {"changed": "修改", "new": "新建", "retired": "撤销", "unchanged": "不变"},
    "created_problems": "新产生的缺口/重叠", "removed_problems": "消除的缺口/重叠", "width": "宽度",
    "households_moved": "转移户数（按面积估算）", "population_moved": "转移人口（按面积估算）",
    "incidents_moved": "所属网格将改变的在办事件", "incidents_keep_route": "在办事件保持原流转路线不变。",
    "confirm_title": "此次修改需要确认：", "confirm_yes": "确认保存", "confirm_no": "返回修改", "back": "返回编辑",
    "username": "用户名", "password": "密码", "login": "登录", "logged_in": "已登录", "bad_login": "用户名或密码错误",
}
LABELS["en"]["editor"] = {
    "editor": "Edit", "impact": "Impact", "selected": "Selected grid", "none": "none", "mode_reshape": "Reshape",
    "mode_split": "Split", "mode_merge": "Merge", "mode_new": "New", "move_shared": "Move shared edges (neighbours follow)",
    "hint_reshape": "Click a grid, then drag its vertices (they snap to neighbours' vertices and edges).",
    "hint_split": "Click the grid to split, then draw a line across it (double-click to finish).",
    "hint_merge": "Click two or more adjacent grids.", "hint_new": "Draw the new grid's outline (click the first vertex to finish).",
    "name": "Name", "parent": "Parent code", "preview": "Preview impact", "save": "Save", "cancel": "Cancel",
    "note": "map edit", "new_grid_name": "New grid", "none_selected": "Click a grid to select it first.",
    "draw_line": "Draw a line across the selected grid.", "pick_two": "Pick at least two adjacent grids.",
    "draw_polygon": "Draw the new grid's outline first.", "unchanged": "The boundary is unchanged: nothing to save.",
    "checking_impact": "Computing the impact…", "preview_done": "Impact computed (not saved yet).", "not_saved": "Not saved.",
    "saving": "Saving…", "saved": "Saved:",
    "stale": "Grid {code} was changed by someone else (now version {version}): reload it and edit again",
    "forbidden": "Not allowed: a grid this edit touches is outside your area",
    "versions_needed": "Versions of the grids touched are missing: preview the impact, then save",
    "invalid": "The edit is invalid", "unauthorized": "Your session has ended: log in again",
    "conflict": "Conflicts with stored data", "offline": "The service cannot be reached", "failed": "Saving failed",
    "assign_to": "New grid that takes the old grid's persons", "no_impact": "Validated.", "code": "Code",
    "state": "Status", "area_before": "Area before (m²)", "area_after": "Area after (m²)", "change": "Change",
    "statuses": {"changed": "changed", "new": "new", "retired": "retired", "unchanged": "unchanged"},
    "created_problems": "Gaps/overlaps created", "removed_problems": "Gaps/overlaps removed", "width": "width",
    "households_moved": "Households moved (estimated by area)", "population_moved": "Population moved (estimated by area)",
    "incidents_moved": "Open incidents whose grid changes", "incidents_keep_route": "Open incidents keep their current route.",
    "confirm_title": "This edit needs confirming:", "confirm_yes": "Save anyway", "confirm_no": "Back to editing",
    "back": "Back to editing",
    "username": "Username", "password": "Password", "login": "Log in", "logged_in": "Logged in",
    "bad_login": "Wrong username or password",
}
LABELS["zh"]["legend"] = {
    "title": "图例", "grids": "网格（相邻网格颜色不同）", "parents": "上级边界", "selected": "所选网格（编辑中）",
    "size": "户数/人口/面积异常", "impact_created": "修改将产生的缺口或重叠", "impact_removed": "修改将消除的缺口或重叠",
    "impact_new": "修改后的新网格",
}
LABELS["en"]["legend"] = {
    "title": "Legend", "grids": "Grids (neighbours differ in colour)", "parents": "Parent boundaries",
    "selected": "Selected grid (editing)", "size": "Households/population/area outliers",
    "impact_created": "Gap or overlap the edit would create", "impact_removed": "Gap or overlap the edit would remove",
    "impact_new": "Grids the edit would make",
}
LABELS["zh"]["problem"] = {
    "problems": "问题", "check_again": "重新检查", "checking": "正在检查……", "run_at": "检查时间", "fresh": "刚刚检查",
    "no_problems": "没有发现问题。", "area": "面积", "m2": "平方米", "width": "宽度", "width_class": "宽度类别",
    "grids": "网格", "parent": "上级", "missing": "缺少", "leaving": "即将离任", "person": "人员", "reason": "原因",
    "kinds": {"gap": "缺口（盲区）", "overlap": "重叠", "spill_over": "越界", "exempt": "豁免区域", "invalid": "无效几何",
              "no_responsible": "无责任人", "expiring": "责任人即将离任", "overloaded_person": "一人负责网格过多",
              "size_outlier": "户数/人口异常", "area_outlier": "面积异常", "other": "其他问题"},
    "widths": {"sliver": "狭缝", "blind_spot": "盲区"},
    "posts": {"grid_leader": "网格长", "grid_worker": "网格员"},
    "fields": {"households": "户数", "population": "人口"},
}
LABELS["en"]["problem"] = {
    "problems": "Problems", "check_again": "Check again", "checking": "Checking…", "run_at": "Checked at",
    "fresh": "just now", "no_problems": "No problems found.", "area": "Area", "m2": "m²", "width": "Width",
    "width_class": "Width class", "grids": "Grids", "parent": "Parent", "missing": "Missing", "leaving": "Leaving soon",
    "person": "Person", "reason": "Reason",
    "kinds": {"gap": "Gap (blind spot)", "overlap": "Overlap", "spill_over": "Spill-over", "exempt": "Exemption",
              "invalid": "Invalid geometry", "no_responsible": "No one responsible", "expiring": "Posts ending soon",
              "overloaded_person": "Person with too many grids", "size_outlier": "Households/population outlier",
              "area_outlier": "Area outlier", "other": "Other problem"},
    "widths": {"sliver": "sliver", "blind_spot": "blind spot"},
    "posts": {"grid_leader": "grid leader", "grid_worker": "grid worker"},
    "fields": {"households": "Households", "population": "Population"},
}
