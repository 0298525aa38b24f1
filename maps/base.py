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
    },
}
PALETTE = ["#8dd3c7", "#ffffb3", "#bebada", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#d9d9d9"]
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
                    "textPlaceholder": this.placeholder, "position": this.position}|tojson }});
        {% endmacro %}""")

    def __init__(self, layer, *, search_label: str, placeholder: str, collapsed: bool = False,
                 position: str = "topright"):
        super().__init__(layer, search_label=search_label, geom_type="Polygon", placeholder=placeholder,
                         collapsed=collapsed, position=position)


def new_map(settings: Settings, bounds, lang: str) -> folium.Map:
    """A map framed on ``bounds`` (minx, miny, maxx, maxy) with the configured tiles."""
    tiles = None if settings.map_tiles.lower() == "none" else settings.map_tiles
    # maxZoom must be set even without tiles: marker clustering needs it.
    m = folium.Map(tiles=tiles, attr=settings.map_attribution if tiles else None, control_scale=True,
                   prefer_canvas=True, max_zoom=19)
    m.options["maxZoom"] = 19
    m.add_child(Helpers())  # first: every later script of the page uses geogrid.js
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
    features = []
    for g, props in zip(geoms, properties):
        features.append({"type": "Feature", "properties": props,
                         "geometry": json.loads(shapely.to_geojson(g)) if g is not None else None})
    return {"type": "FeatureCollection", "features": features}


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


def toolbox(m: folium.Map, *, minimap: bool = True) -> None:
    plugins.Fullscreen(position="topleft").add_to(m)
    # No leaflet-measure: it compiles its templates with new Function(), which the pages'
    # Content-Security-Policy forbids ('unsafe-eval'). Leaflet.draw shows lengths and areas.
    if minimap:
        plugins.MiniMap(toggle_display=True, tile_layer=None).add_to(m)


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
    rendered = m.get_root().render()
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
        <form method="post" action="/maps/logout" class="geogrid-logout"
              style="position:absolute;bottom:24px;right:10px;z-index:1000;margin:0">
          <button type="submit" style="font-size:12px;padding:3px 8px">{{ this.label|e }}</button>
        </form>
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
