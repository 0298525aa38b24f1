"""The public grid map (网格公示): every grid with its board (code, name, the responsible
persons' published name, post, photo, phone and duties, and the supervision hotline),
and "find my grid" by clicking, by the browser's location or by typing a code.

Only published, public fields reach this page: persons' fields flagged public, never
notes, reporters or internal fields; incidents only of categories marked public, and of
those only category, state and date.
"""

from __future__ import annotations

import datetime as dt

import branca
import folium
import shapely
from folium import plugins
from sqlalchemy.orm import Session

from geogrid.areas import lookup
from geogrid.core import timeutil
from geogrid.core.settings import Settings
from geogrid.db.schema import ADMIN_LAYER
from geogrid.incidents import records
from geogrid.people import assignments
from maps import views
from maps.base import (
    Cluster,
    GeoJson,
    Script,
    Search,
    feature_collection,
    for_display,
    lean,
    new_map,
    page,
    text,
)


def render(session: Session, settings: Settings, *, area: str, layer: str = "comprehensive", lang: str = "zh",
           inline: bool = True, nonce: str | None = None, incidents_days: int = 30) -> str:
    t = text(lang)
    parent = lookup.get_area(session, area, lang=lang)
    m = lean(new_map(settings, shapely.geometry.shape(parent["geometry"]).bounds, lang))
    grids = lookup.frame(session, lookup.AreaFilter(code_prefix=area, layer=layer), with_notes=False, with_ids=True)
    villages = lookup.frame(session, lookup.AreaFilter(code_prefix=area, layer=ADMIN_LAYER), with_notes=False)
    posts = assignments.responsible_persons(session, [int(i) for i in grids["area_id"]] if len(grids) else [],
                                       timeutil.local_today(settings), lang, public_only=True)
    props, strings = views.board_properties(grids.itertuples(), posts)
    if len(villages):
        GeoJson(
            feature_collection(for_display(villages.geometry.array, settings.map_simplify_m),
                               [{"name": n} for n in villages["name"]]),
            name=t["parents"], style_function=lambda f: {"fill": False, "color": "#333", "weight": 2.5},
            interactive=False).add_to(m)
    board = GeoJson(
        feature_collection(for_display(grids.geometry.array, settings.map_simplify_m), props), name=t["grids"],
        style_function=lambda f: {"color": "#2b83ba", "weight": 1, "fillColor": "#abdda4", "fillOpacity": 0.25},
        highlight_function=lambda f: {"weight": 3, "fillOpacity": 0.45})
    board.add_to(m)
    Search(board, search_label="code", placeholder=t["search_code"]).add_to(m)
    plugins.LocateControl(strings={"title": t["find"]}, flyTo=True).add_to(m)
    m.add_child(Board(m, board, strings, t, hotline=settings.supervision_hotline))
    _public_incidents(session, m, area, t, lang, incidents_days)
    plugins.Fullscreen(position="topleft").add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    return page(m, settings, inline=inline, title=f"{parent['properties']['name']} · {t['public_title']}",
                nonce=nonce)


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


class Board(Script):
    """Builds each grid's public board from its compact properties, and finds the grid at
    the browser's location (point in polygon on the page: no request leaves it):
    ``geogrid.board``, maps/static/board.js."""

    files = ("board.js",)
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        geogrid.board({{ this.map_name }}, {{ this.layer_name }}, {{ this.strings|tojson }}, {{ this.t|tojson }},
                      {{ this.hotline|tojson }});
        {% endmacro %}""")

    def __init__(self, m, layer, strings, t, *, hotline: str):
        super().__init__()
        self.m, self.layer, self.strings, self.hotline = m, layer, strings, hotline
        self.t = {k: t[k] for k in ("code", "phone", "duties", "hotline", "no_persons")}

    def render(self, **kwargs):
        self.map_name, self.layer_name = self.m.get_name(), self.layer.get_name()
        super().render(**kwargs)
