"""The planner's map: grids of an area coloured so that neighbours differ, codes as labels
when zoomed in, the parent boundaries over them, one layer per thematic net, the latest
coverage problems as layers of their own, and drawing/reshaping boundaries saved to the
service (as new boundary versions) with the planner's token."""

from __future__ import annotations

import urllib.parse

import branca
import folium
import numpy as np
import shapely
from folium import plugins
from sqlalchemy.orm import Session

from geogrid.areas import lookup, reference
from geogrid.core import timeutil
from geogrid.core.settings import Settings
from geogrid.coverage import runs
from geogrid.db.schema import ADMIN_LAYER
from geogrid.people import assignments
from maps import views
from maps.base import (
    PALETTE,
    LogoutButton,
    Script,
    Search,
    describe,
    esc,
    feature_collection,
    for_display,
    legend,
    neighbour_colours,
    new_map,
    page,
    text,
    toolbox,
)

NEW_GRID_NAME = "新网格"  # a grid drawn and saved without a name
PROBLEM_STYLE = {
    "gap": {"color": "#d7191c", "fillColor": "#d7191c", "fillOpacity": 0.6, "weight": 2},
    "overlap": {"color": "#fd8d3c", "fillColor": "#fd8d3c", "fillOpacity": 0.6, "weight": 2},
    "spill_over": {"color": "#7b3294", "fillColor": "#7b3294", "fillOpacity": 0.5, "weight": 2},
    "exempt": {"color": "#2c7bb6", "fillColor": "#2c7bb6", "fillOpacity": 0.3, "weight": 1},
    "no_responsible": {"color": "#d7191c", "fill": False, "weight": 3, "dashArray": "6 4"},
    "expiring": {"color": "#fdae61", "fill": False, "weight": 3, "dashArray": "2 4"},
    "size_outlier": {"color": "#2c7bb6", "fill": False, "weight": 2, "dashArray": "1 4"},
    "area_outlier": {"color": "#2c7bb6", "fill": False, "weight": 2, "dashArray": "1 4"},
}


def render(session: Session, settings: Settings, *, area: str, layer: str = "comprehensive", lang: str = "zh",
           inline: bool = False, nonce: str | None = None, api: str | None = None) -> str:
    """``api``: the service an exported file saves to (its origin is let through the policy)."""
    t = text(lang)
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
        gj = folium.GeoJson(
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
        folium.GeoJson(
            feature_collection(for_display(admin.geometry.array, settings.map_simplify_m),
                               [{"code": r.code} for r in admin.itertuples()]),
            style_function=lambda f: {"fill": False, "color": "#222", "weight": 3, "interactive": False},
        ).add_to(parents)
    parents.add_to(m)
    _problems(session, settings, m, area, layer, t)
    drawn = folium.FeatureGroup(name="✎", show=True).add_to(m)
    plugins.Draw(feature_group=drawn, export=False, position="topleft",
                 draw_options={"polyline": False, "circle": False, "circlemarker": False, "marker": False,
                               "rectangle": True, "polygon": {"allowIntersection": False, "showArea": True}},
                 edit_options={"edit": True, "remove": True}).add_to(m)
    if grid_layer is not None:
        Search(grid_layer, search_label="search", placeholder=t["search_placeholder"]).add_to(m)
        m.add_child(SavePanel(m, drawn, grid_layer, t, parent_code=area, layer=layer))
    toolbox(m, minimap=settings.map_tiles.lower() != "none")
    m.add_child(legend(t["legend_planner"], [(c, f"{t['grids']} {i + 1}") for i, c in enumerate(PALETTE[:3])] + [
        (PROBLEM_STYLE["gap"]["fillColor"], t["gaps"]), (PROBLEM_STYLE["overlap"]["fillColor"], t["overlaps"]),
        (PROBLEM_STYLE["spill_over"]["fillColor"], t["spill"]),
        ("border:3px dashed #d7191c", t["responsibility"])]))
    folium.LayerControl(collapsed=False).add_to(m)
    if not inline:
        m.add_child(LogoutButton(lang))
    if api:
        m.get_root().header.add_child(folium.Element(f'<meta name="geogrid-api" content="{esc(api)}"/>'))
    return page(m, settings, inline=inline, title=f"{parent['properties']['name']} · {t['grids']}", nonce=nonce,
                connect=_origin(api))


def _origin(url: str | None) -> tuple[str, ...]:
    parts = urllib.parse.urlsplit(url or "")
    return (f"{parts.scheme}://{parts.netloc}",) if parts.scheme in ("http", "https") and parts.netloc else ()


def _labels(part, geoms, t) -> folium.FeatureGroup:
    """Codes at the grids' label points; shown only when zoomed in enough to read them."""
    group = folium.FeatureGroup(name=t["labels"], show=True)
    points = shapely.point_on_surface(np.asarray(geoms, dtype=object))
    group.add_child(Labels(group, views.label_points(part["code"], points)))
    group.add_child(ZoomGate(group, min_zoom=15))
    return group


def _problems(session: Session, settings: Settings, m: folium.Map, area: str, layer: str, t: dict) -> None:
    features = runs.problems_to_show(session, area, layer, settings)
    groups = {
        "gap": t["gaps"], "overlap": t["overlaps"], "spill_over": t["spill"], "exempt": "exempt",
        "no_responsible": t["responsibility"], "expiring": t["responsibility"],
        "size_outlier": t["size"], "area_outlier": t["size"],
    }
    made: dict[str, list[dict]] = {}
    for f in features:
        if f.get("geometry") is not None:
            made.setdefault(groups.get(f["properties"]["kind"], t["invalid"]), []).append(f)
    for label, found in made.items():
        group = folium.FeatureGroup(name=esc(label), show=True)
        # Points (a ring's self-intersection...) as circles; the popup lists every property.
        layer = folium.GeoJson(
            {"type": "FeatureCollection", "features": found},
            style_function=lambda f: PROBLEM_STYLE.get(f["properties"]["kind"],
                                                       {"color": "#000", "weight": 2, "fillOpacity": 0.3}),
            marker=folium.CircleMarker(radius=7, color="#000", fill=True, fill_opacity=0.8))
        describe(layer, exclude=["parent"], popup=True, maxWidth=320)
        layer.add_to(group)
        group.add_to(m)


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


class SavePanel(Script):
    """The planner's save control: log in (token kept in this tab only), pick a grid to
    reshape or give a parent for a new one, draw, save; shows the service's answer,
    validation errors included. Saving a reshaped grid sends If-Match, so a boundary
    someone else changed meanwhile is not overwritten (412). Its markup is here, its code
    ``geogrid.savePanel`` in maps/static/savepanel.js."""

    files = ("savepanel.js",)
    _template = branca.element.Template("""
        {% macro html(this, kwargs) %}
        <div id="geogrid-save" style="position:absolute;top:10px;left:60px;z-index:1000;background:#fff;padding:8px;
             border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);font-size:12px;max-width:300px">
          <div id="geogrid-login">
            <input id="geogrid-user" placeholder="{{ this.t.username }}" style="width:90px">
            <input id="geogrid-pass" type="password" placeholder="{{ this.t.password }}" style="width:90px">
            <button id="geogrid-login-btn">{{ this.t.login }}</button>
          </div>
          <div>{{ this.t.selected }}: <b id="geogrid-selected">{{ this.t.none }}</b></div>
          <div><label><input type="radio" name="geogrid-mode" value="reshape" checked> {{ this.t.reshape }}</label></div>
          <div><label><input type="radio" name="geogrid-mode" value="new"> {{ this.t.new_grid }}</label>
            <input id="geogrid-parent" value="{{ this.parent_code|e }}" placeholder="{{ this.t.parent }}" style="width:110px">
            <input id="geogrid-name" placeholder="{{ this.t.name }}" style="width:80px"></div>
          <button id="geogrid-save-btn">{{ this.t.save }}</button>
          <pre id="geogrid-status" style="white-space:pre-wrap;max-height:160px;overflow:auto;margin:4px 0 0"></pre>
        </div>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        geogrid.savePanel({{ this.map_name }}, {{ this.drawn_name }}, {{ this.grids_name }}, {{ this.options|tojson }});
        {% endmacro %}""")

    def __init__(self, m, drawn, grids, t, *, parent_code: str, layer: str):
        super().__init__()
        self.m, self.drawn, self.grids, self.t = m, drawn, grids, t
        self.parent_code, self.layer = parent_code, layer
        self.options = {"layer": layer, "noneSelected": f"{t['selected']}: {t['none']}", "defaultName": NEW_GRID_NAME}

    def render(self, **kwargs):
        self.map_name, self.drawn_name, self.grids_name = self.m.get_name(), self.drawn.get_name(), self.grids.get_name()
        super().render(**kwargs)

