"""The planner's map: grids of an area coloured so that neighbours differ (never in a
problem's colour), codes as labels when zoomed in, the parent boundaries over them, one
layer per thematic net, the coverage problems (live from the service on a served page,
embedded with their run's time in an exported file) with a list that zooms to each, and
the boundary editor on leaflet-geoman: reshape (shared vertices move in the neighbours),
split, merge and new grids, each saved after a dry run whose impact the map shows. Panels
(editor, impact, problems, legend, layers) live in one control so none covers another."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import branca
import folium
import numpy as np
import shapely
from folium import plugins
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.areas import lookup, reference
from geogrid.areas.versions import get_area_row
from geogrid.core import timeutil
from geogrid.core.settings import Settings
from geogrid.coverage import runs
from geogrid.db.schema import ADMIN_LAYER
from geogrid.incidents.states import STATES
from geogrid.people import assignments
from maps import views
from maps.base import (
    PALETTE,
    GeoJson,
    LogoutButton,
    Script,
    Search,
    describe,
    esc,
    feature_collection,
    for_display,
    neighbour_colours,
    new_map,
    page,
    text,
    toolbox,
)

PROBLEM_STYLE = {
    "gap": {"color": "#d7191c", "fillColor": "#d7191c", "fillOpacity": 0.6, "weight": 2},
    "overlap": {"color": "#fd8d3c", "fillColor": "#fd8d3c", "fillOpacity": 0.6, "weight": 2},
    "spill_over": {"color": "#7b3294", "fillColor": "#7b3294", "fillOpacity": 0.5, "weight": 2},
    # Exempt land is blanked out (white, dashed grey edge): no grid fill is white.
    "exempt": {"color": "#636363", "fillColor": "#ffffff", "fillOpacity": 0.7, "weight": 1, "dashArray": "4 3"},
    "no_responsible": {"color": "#d7191c", "fill": False, "weight": 3, "dashArray": "6 4"},
    "expiring": {"color": "#fdae61", "fill": False, "weight": 3, "dashArray": "2 4"},
    "size_outlier": {"color": "#2c7bb6", "fill": False, "weight": 2, "dashArray": "1 4"},
    "area_outlier": {"color": "#2c7bb6", "fill": False, "weight": 2, "dashArray": "1 4"},
    "other": {"color": "#000", "weight": 2, "fillOpacity": 0.3},
}
# What an edit's dry run draws: problems it would create or remove, the grids it would make.
IMPACT_STYLE = {
    "created": {"color": "#000000", "weight": 4, "dashArray": "2 6", "fillColor": "#d7191c", "fillOpacity": 0.8},
    "removed": {"color": "#1a9641", "weight": 4, "dashArray": "8 4", "fill": False},
    "new_grid": {"color": "#0033cc", "weight": 3, "dashArray": "6 3", "fillOpacity": 0.05},
}
SELECTED_STYLE = {"color": "#0033cc", "weight": 3, "dashArray": "8 4"}
VIEWERS = ("planner", "inspector")


def render(session: Session, settings: Settings, *, area: str, layer: str = "comprehensive", lang: str = "zh",
           inline: bool = False, nonce: str | None = None, api: str | None = None, can_edit: bool = True) -> str:
    """``api``: the service an exported file saves to (its origin is let through the policy).
    ``can_edit``: whether the editing tools are shown (an inspector reads the map only).
    A served page asks the service for the current problems; an exported file carries
    those of the latest stored run (or of a check made now), with the run's time."""
    t = text(lang)
    # Persons' private contacts and the grids' notes are on this map: only for the area's staff.
    area_id = get_area_row(session, area).id
    scopes.require_scope(session, VIEWERS, [area_id], strict=False, action="view")
    # The tools only where the caller may plan (an inspector here, a planner elsewhere: none).
    can_edit = can_edit and not scopes.outside_scope(session, ("planner",), [area_id])
    parent = lookup.get_area(session, area, lang=lang)
    parent_geom = shapely.geometry.shape(parent["geometry"])
    nets = lookup.frame(session, lookup.AreaFilter(code_prefix=area, grids_only=True), with_notes=False, with_ids=True)
    admin = lookup.frame(session, lookup.AreaFilter(code_prefix=area, layer=ADMIN_LAYER), with_notes=False)
    m = new_map(settings, parent_geom.bounds, lang)
    posts = assignments.responsible_persons(session, [int(i) for i in nets["area_id"]] if len(nets) else [],
                                       timeutil.local_today(settings), lang, public_only=False)
    layer_names = {k: v["name_en" if lang == "en" else "name_zh"] for k, v in reference.layers(session).items()}
    grid_layer = None
    for net in sorted(set(nets["layer"]) if len(nets) else [], key=lambda k: (k != layer, k)):
        part = nets[nets["layer"] == net]
        geoms = for_display(part.geometry.array, settings.map_simplify_m)
        colours = neighbour_colours(part.geometry.array)
        props = views.grid_properties(part.itertuples(), colours, posts, t, net)
        # Leaflet's layer control writes layer names with innerHTML.
        group = folium.FeatureGroup(name=esc(f"{t['grids']} · {layer_names.get(net, net)}"), show=(net == layer))
        gj = GeoJson(
            feature_collection(geoms, props),
            style_function=lambda f: {"fillColor": f["properties"]["colour"], "color": "#555", "weight": 1,
                                      "fillOpacity": 0.55},
            highlight_function=lambda f: {"weight": 3, "color": "#000"},
        )
        describe(gj, fields=["code", "name", "households", "population", "area_m2", "persons"],
                 aliases=[t["code"], t["name"], t["households"], t["population"], f"{t['area']} ({t['m2']})",
                          t["persons"]], sticky=True)
        gj.add_to(group)
        group.add_to(m)
        if net == layer:
            grid_layer = gj
            _labels(part, geoms, t).add_to(m)
    parents = folium.FeatureGroup(name=t["parents"], show=True)
    if len(admin):
        # Not interactive: on a shared canvas an outline would take every click meant for
        # the grids under it (Leaflet's hit test ignores fill: false).
        GeoJson(
            feature_collection(for_display(admin.geometry.array, settings.map_simplify_m),
                               [{"code": r.code} for r in admin.itertuples()]),
            style_function=lambda f: {"fill": False, "color": "#222", "weight": 3, "interactive": False},
        ).add_to(parents)
    parents.add_to(m)
    drawn = folium.FeatureGroup(name=esc(t["editor"]["editor"]), show=True, control=False).add_to(m)
    if can_edit and grid_layer is not None:
        plugins.GeoMan(feature_group=drawn, position="topleft", drawMarker=False, drawCircleMarker=False,
                       drawRectangle=False, drawCircle=False, drawText=False, editMode=False, dragMode=False,
                       cutPolygon=False, removalMode=False, rotateMode=False, drawPolyline=True,
                       drawPolygon=True).add_to(m)
    if grid_layer is not None:
        Search(grid_layer, search_label="search", placeholder=t["search_placeholder"], lang=lang).add_to(m)
    toolbox(m, minimap=settings.map_tiles.lower() != "none", lang=lang)
    control = folium.LayerControl(collapsed=False).add_to(m)
    dock = Dock(m, control, t, legend_items(t))
    m.add_child(dock)
    m.add_child(Problems(m, control, dock, t, area=area, layer=layer, lang=lang, tz=settings.timezone,
                         standalone=inline, embedded=_embedded(session, settings, area, layer) if inline else None))
    if grid_layer is not None and can_edit:
        m.add_child(Editor(m, grid_layer, drawn, dock, t, settings, parent_code=area, layer=layer, lang=lang,
                           standalone=inline))
    if can_edit and not inline:  # an exported file has no session to publish with
        m.add_child(Publish(m, grid_layer, control, dock, t, area=area, area_name=parent["properties"]["name"],
                            layer=layer, layer_name=layer_names.get(layer, layer), lang=lang, tz=settings.timezone))
    if not inline:
        m.add_child(LogoutButton(lang))
    if api:
        m.get_root().header.add_child(folium.Element(f'<meta name="geogrid-api" content="{esc(api)}"/>'))
    return page(m, settings, inline=inline, title=f"{parent['properties']['name']} · {t['grids']}", nonce=nonce,
                connect=_origin(api))


def legend_items(t: dict) -> list[tuple[str, str]]:
    """Every colour and line the planner map draws, as (CSS style, label)."""
    swatches = "".join(f"linear-gradient({c},{c}) {i * 3}px 0/4px 100% no-repeat,"
                       for i, c in enumerate(PALETTE[:4]))
    lt, pt = t["legend"], t["problem"]["kinds"]

    def fill(kind):
        s = PROBLEM_STYLE[kind]
        return f"background:{s['fillColor']};border:2px {'dashed' if s.get('dashArray') else 'solid'} {s['color']}"

    def line(kind, style=PROBLEM_STYLE):
        s = style[kind]
        return f"border:3px {'dotted' if s.get('dashArray', '').startswith(('1 ', '2 ')) else 'dashed'} {s['color']}"

    return [
        (f"background:{swatches.rstrip(',')};border:1px solid #555", lt["grids"]),
        ("border:3px solid #222", lt["parents"]),
        (f"border:3px dashed {SELECTED_STYLE['color']}", lt["selected"]),
        (fill("gap"), pt["gap"]), (fill("overlap"), pt["overlap"]), (fill("spill_over"), pt["spill_over"]),
        (fill("exempt"), pt["exempt"]), (line("no_responsible"), pt["no_responsible"]),
        (line("expiring"), pt["expiring"]), (line("size_outlier"), lt["size"]),
        (f"background:{IMPACT_STYLE['created']['fillColor']};border:3px dotted #000", lt["impact_created"]),
        (line("removed", IMPACT_STYLE), lt["impact_removed"]),
        (line("new_grid", IMPACT_STYLE), lt["impact_new"]),
    ]


def _embedded(session: Session, settings: Settings, area: str, layer: str) -> dict:
    """The problems an exported file carries, and when they were found."""
    stored = runs.latest_run(session, area, layer)
    if stored is not None:
        return {"features": stored["problems"]["features"], "at": str(stored["at"].isoformat())}
    return {"features": runs.problems_to_show(session, area, layer, settings), "at": dt.datetime.now(dt.UTC).isoformat()}


def _origin(url: str | None) -> tuple[str, ...]:
    parts = urllib.parse.urlsplit(url or "")
    return (f"{parts.scheme}://{parts.netloc}",) if parts.scheme in ("http", "https") and parts.netloc else ()


def _labels(part, geoms, t) -> folium.FeatureGroup:
    """Codes at the grids' label points; shown only when zoomed in enough to read them."""
    # Off the map at first: the zoom gate adds it when zoomed in. Added and then taken off,
    # a town's thousands of labels would cost the first render a second of layout.
    group = folium.FeatureGroup(name=t["labels"], show=False)
    points = shapely.point_on_surface(np.asarray(geoms, dtype=object))
    group.add_child(Labels(group, views.label_points(part["code"], points)))
    group.add_child(ZoomGate(group, min_zoom=15))
    return group


class Labels(Script):
    """Grid codes as text markers: ``points`` are [lat, lon, text] (``geogrid.labels``,
    maps/static/markers.js)."""

    files = ("markers.js",)
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        geogrid.labels({{ this.group.get_name() }}, {{ this.points|tojson }});
        {% endmacro %}""")

    def __init__(self, group, points):
        super().__init__()
        self.group, self.points = group, points


class ZoomGate(Script):
    """Show a layer only from ``min_zoom`` on (labels would be noise further out):
    ``geogrid.zoomGate``, maps/static/zoomgate.js."""

    files = ("zoomgate.js",)
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        geogrid.zoomGate({{ this.map_name }}, {{ this.layer_name }}, {{ this.min_zoom|tojson }});
        {% endmacro %}""")

    def __init__(self, layer, min_zoom: int):
        super().__init__()
        self.layer, self.min_zoom = layer, min_zoom

    def render(self, **kwargs):
        self.map_name = self.layer._parent.get_name()
        self.layer_name = self.layer.get_name()
        super().render(**kwargs)




class Dock(Script):
    """The map's panels (editor, impact, problems, legend, layers) as one control with a
    button each: ``geogrid.dock`` in maps/static/panels.js."""

    files = ("panels.js",)
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = geogrid.dock({{ this.map_name }},
            {order: ['editor', 'impact', 'problems', 'legend', 'layers']});
        geogrid.dockLegend({{ this.get_name() }}, 'legend', {{ this.t.legend.title|tojson }}, {{ this.items|tojson }});
        geogrid.dockLayers({{ this.get_name() }}, 'layers', {{ this.t.layers|tojson }}, {{ this.control_name }});
        {% endmacro %}""")

    def __init__(self, m, control, t, items):
        super().__init__()
        self.m, self.control, self.t, self.items = m, control, t, items

    def render(self, **kwargs):
        self.map_name, self.control_name = self.m.get_name(), self.control.get_name()
        super().render(**kwargs)


class Problems(Script):
    """Coverage problems as layers and a list panel (``geogrid.problems``, maps/static/problems.js):
    asked of the service on a served page, embedded in an exported one."""

    files = ("api.js", "problems.js")
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = geogrid.problems({{ this.map_name }}, {{ this.control_name }}, {{ this.dock_name }},
            geogrid.api({standalone: {{ this.standalone|tojson }}, t: {{ this.t.editor|tojson }}}), {{ this.options|tojson }});
        {% endmacro %}""")

    def __init__(self, m, control, dock, t, *, area: str, layer: str, lang: str, tz: str, embedded: dict | None,
                 standalone: bool):
        super().__init__()
        self.m, self.control, self.dock, self.t, self.standalone = m, control, dock, t, standalone
        groups = {"gap": t["gaps"], "overlap": t["overlaps"], "spill_over": t["spill"], "exempt": t["exempt"],
                  "no_responsible": t["responsibility"], "expiring": t["responsibility"],
                  "size_outlier": t["size"], "area_outlier": t["size"], "invalid": t["invalid"]}
        self.options = {"t": {**t["problem"], "lang": "en" if lang == "en" else "zh"}, "styles": PROBLEM_STYLE,
                        "groups": groups, "tz": tz}
        if embedded is None:
            self.options["url"] = f"/api/coverage/current?{urllib.parse.urlencode({'area': area, 'layer': layer})}"
        else:
            self.options.update(data=embedded["features"], at=embedded["at"])

    def render(self, **kwargs):
        self.map_name, self.control_name = self.m.get_name(), self.control.get_name()
        self.dock_name = self.dock.get_name()
        super().render(**kwargs)


class Editor(Script):
    """The planner's editor on leaflet-geoman (``geogrid.editor``, maps/static/editor.js):
    reshape (moves of shared vertices), split, merge, new grid; a dry run and its impact
    before every save."""

    files = ("api.js", "problems.js", "editor.js")
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        {{ this.map_name }}.pm.setLang({{ this.lang|tojson }}, {{ this.geoman_texts|tojson }}, 'en');
        var {{ this.get_name() }} = geogrid.editor({{ this.map_name }}, {{ this.grids_name }}, {{ this.drawn_name }},
            {{ this.dock_name }}, geogrid.api({standalone: {{ this.standalone|tojson }}, t: {{ this.options.t|tojson }}}),
            {{ this.options|tojson }});
        {% endmacro %}""")

    def __init__(self, m, grids, drawn, dock, t, settings: Settings, *, parent_code: str, layer: str, lang: str,
                 standalone: bool):
        super().__init__()
        self.m, self.grids, self.drawn, self.dock, self.standalone = m, grids, drawn, dock, standalone
        self.lang = "en" if lang == "en" else "zh"
        self.geoman_texts = GEOMAN_TEXTS.get(self.lang, {})
        # State names as the incident workflow gives them (geogrid.incidents.states).
        state_names = {k: v[1 if self.lang == "en" else 0] for k, v in STATES.items()}
        self.options = {"t": {**t["editor"], "states": state_names, "lang": self.lang}, "problemText": {**t["problem"], "lang": self.lang},
                        "layer": layer, "parent": parent_code, "snapPx": settings.snap_tolerance_px,
                        "palette": PALETTE, "impactStyles": IMPACT_STYLE}

    def render(self, **kwargs):
        self.map_name, self.grids_name = self.m.get_name(), self.grids.get_name()
        self.drawn_name, self.dock_name = self.drawn.get_name(), self.dock.get_name()
        super().render(**kwargs)


# What a publication would change, outlined over the grids (dashed: changed; dotted: added).
PUBLISH_STYLE = {
    "changed": {"color": "#c51b7d", "weight": 3, "dashArray": "8 4", "fill": False},
    "added": {"color": "#c51b7d", "weight": 3, "dashArray": "2 5", "fill": False},
}
PUBLISH_TEXTS = {
    "zh": {
        "title": "发布", "scope": "发布范围：{area}（{code}）· {layer}", "loading": "正在查询待发布的修改…",
        "summary": "自上次发布以来：新增 {added} 个、修改 {changed} 个、撤销 {withdrawn} 个网格（未变 {unchanged} 个）",
        "list_added": "新增", "list_changed": "修改", "list_withdrawn": "撤销", "more": "……另有 {n} 个",
        "legend_changed": "待发布：修改的网格", "legend_added": "待发布：新增的网格", "overlay": "待发布的修改",
        "last": "上次发布", "last_note": "公示说明", "never": "尚未发布过",
        "note": "公示说明", "note_placeholder": "选填，如：2026年11月网格调整",
        "publish": "发布", "refresh": "刷新", "nothing": "没有需要发布的修改",
        "confirm_title": "确认发布？", "confirm_public": "发布后，公众地图、OGC 服务和矢量瓦片将显示这些网格的当前边界和名称。",
        "confirm_yes": "确认发布", "confirm_no": "取消", "cancelled": "已取消，未发布。", "publishing": "正在发布…",
        "published": "已发布（发布编号 {id}）：新增 {added} 个、修改 {changed} 个、撤销 {withdrawn} 个、未变 {unchanged} 个",
        "unknown": "无法查询待发布的修改",
        "forbidden": "无权发布：该区域不在您的规划管理范围内", "unauthorized": "登录已失效，请重新登录",
        "not_found": "未找到该区域或图层", "conflict": "数据已被他人修改，请刷新后重试",
        "invalid": "请求有误，未能发布", "offline": "无法连接服务，请检查网络", "failed": "发布失败",
        "service_said": "服务返回", "sep": "：",
    },
    "en": {
        "title": "Publish", "scope": "Publishes: {area} ({code}) · {layer}", "loading": "Asking what is pending…",
        "summary": "Since the last publication: {added} added, {changed} changed, {withdrawn} withdrawn grids "
                   "({unchanged} unchanged)",
        "list_added": "Added", "list_changed": "Changed", "list_withdrawn": "Withdrawn", "more": "… and {n} more",
        "legend_changed": "To publish: changed grid", "legend_added": "To publish: added grid",
        "overlay": "Changes to publish", "last": "Last published", "last_note": "Note", "never": "Never published",
        "note": "Note for the public", "note_placeholder": "Optional, e.g. grid changes of November 2026",
        "publish": "Publish", "refresh": "Refresh", "nothing": "Nothing to publish",
        "confirm_title": "Publish now?",
        "confirm_public": "The public map, the OGC API and the vector tiles will show these grids' current "
                          "boundaries and names.",
        "confirm_yes": "Publish", "confirm_no": "Cancel", "cancelled": "Cancelled: nothing published.",
        "publishing": "Publishing…",
        "published": "Published (publication {id}): {added} added, {changed} changed, {withdrawn} withdrawn, "
                     "{unchanged} unchanged",
        "unknown": "Could not ask what is pending",
        "forbidden": "Not allowed: this area is outside your planning scope",
        "unauthorized": "Your login has expired: log in again", "not_found": "No such area or layer",
        "conflict": "Changed by someone else meanwhile: refresh and try again",
        "invalid": "The request was refused: nothing published", "offline": "The service cannot be reached",
        "failed": "Publishing failed", "service_said": "The service said", "sep": ": ",
    },
}


class Publish(Script):
    """The publish panel (``geogrid.publish``, maps/static/publish.js): what publishing the
    page's net under its area would change, outlined on the map, and the planner's button
    that publishes it (served pages only)."""

    files = ("api.js", "publish.js")
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = geogrid.publish({{ this.map_name }}, {{ this.grids_name }}, {{ this.control_name }},
            {{ this.dock_name }}, geogrid.api({standalone: false, t: {{ this.t.editor|tojson }}}), {{ this.options|tojson }});
        {% endmacro %}""")

    def __init__(self, m, grids, control, dock, t, *, area: str, area_name: str, layer: str, layer_name: str,
                 lang: str, tz: str):
        super().__init__()
        self.m, self.grids, self.control, self.dock, self.t = m, grids, control, dock, t
        lang = "en" if lang == "en" else "zh"
        self.options = {"t": PUBLISH_TEXTS[lang], "lang": lang, "area": area, "areaName": area_name, "layer": layer,
                        "layerName": layer_name, "styles": PUBLISH_STYLE, "tz": tz}

    def render(self, **kwargs):
        self.map_name, self.control_name = self.m.get_name(), self.control.get_name()
        self.grids_name = self.grids.get_name() if self.grids is not None else "null"
        self.dock_name = self.dock.get_name()
        super().render(**kwargs)


# leaflet-geoman's Chinese lacks these (it falls back to English for them).
GEOMAN_TEXTS = {"zh": {
    "tooltips": {"placeText": "单击放置文字", "selectFirstLayerFor": "选择第一个图层", "selectSecondLayerFor": "选择第二个图层"},
    "buttonTitles": {"drawPolyButton": "画新网格（多边形）", "drawLineButton": "画切分线", "drawTextButton": "绘制文字",
                     "scaleButton": "缩放图层", "autoTracingButton": "自动追踪线", "snapGuidesButton": "显示吸附辅助线",
                     "unionButton": "合并图层", "differenceButton": "相减图层"},
    "measurements": {"totalLength": "长度", "segmentLength": "线段长度", "area": "面积", "radius": "半径",
                     "perimeter": "周长", "height": "高度", "width": "宽度", "coordinates": "位置",
                     "coordinatesMarker": "标记位置"},
}, "en": {"buttonTitles": {"drawPolyButton": "Draw a new grid", "drawLineButton": "Draw a split line"}}}
