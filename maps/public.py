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

from geogrid import areas, incidents, people
from geogrid.models import ADMIN_LAYER
from geogrid.settings import Settings
from maps.base import Search, feature_collection, for_display, lean, new_map, page, safe_url, text


def render(session: Session, settings: Settings, *, area: str, layer: str = "comprehensive", lang: str = "zh",
           inline: bool = True, nonce: str | None = None, incidents_days: int = 30) -> str:
    t = text(lang)
    parent = areas.get_area(session, area, lang=lang)
    m = lean(new_map(settings, shapely.geometry.shape(parent["geometry"]).bounds, lang))
    grids = areas.frame(session, areas.AreaFilter(code_prefix=area, layer=layer), with_notes=False, with_ids=True)
    villages = areas.frame(session, areas.AreaFilter(code_prefix=area, layer=ADMIN_LAYER), with_notes=False)
    posts = people.responsible_persons(session, [int(i) for i in grids["area_id"]] if len(grids) else [],
                                       areas.local_today(settings), lang, public_only=True)
    strings: list[str] = []
    index: dict[str, int] = {}

    def ref(value) -> int:  # repeated texts (posts, duties) travel once
        value = value or ""
        if value not in index:
            index[value] = len(strings)
            strings.append(value)
        return index[value]

    props = []
    for row in grids.itertuples():
        persons = [[ref(p["role_name"]), p.get("name", ""), p.get("phone", ""), safe_url(p.get("photo_url")) or "",
                     ref(p["duties"])] for p in posts.get(int(row.area_id), [])]
        props.append({"code": row.code, "name": row.name, "p": persons})
    if len(villages):
        folium.GeoJson(
            feature_collection(for_display(villages.geometry.array, settings.map_simplify_m),
                               [{"name": n} for n in villages["name"]]),
            name=t["parents"], style_function=lambda f: {"fill": False, "color": "#333", "weight": 2.5},
            interactive=False).add_to(m)
    board = folium.GeoJson(
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
    found, _ = incidents.list_incidents(session, public_only=True, area=area, limit=5000,
                                        reported_since=dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
    if not found:
        return
    shown = [(r["lat"], r["lon"], incidents.public_view(r, lang)) for r in found if r["state"] != "void"]
    group = folium.FeatureGroup(name=f"{t['public_incidents']} ({len(shown)})", show=False)
    plugins.FastMarkerCluster(
        [[lat, lon, [f"{v['category_name']} · {v['state_name']} · {v['reported_at']:%Y-%m-%d}"]]
         for lat, lon, v in shown],
        callback="function (row) { return L.circleMarker(new L.LatLng(row[0], row[1]), {radius: 5, color: '#555'})"
                 ".bindPopup(geogrid.popup(row[2])); }").add_to(group)
    group.add_to(m)


class Board(branca.element.MacroElement):
    """Builds each grid's public board from its compact properties, and finds the grid at
    the browser's location (point in polygon on the page: no request leaves it)."""

    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        (function() {
            var map = {{ this.map_name }}, grids = {{ this.layer_name }};
            var S = {{ this.strings|tojson }}, T = {{ this.t|tojson }}, hotline = {{ this.hotline|tojson }};
            var esc = geogrid.esc;  // every text below, labels included, goes through it
            function board(p) {
                var h = '<div class="geogrid-board"><b>' + esc(p.name) + '</b><br>' + esc(T.code) + ': ' + esc(p.code);
                if (!p.p.length) h += '<br><i>' + esc(T.no_persons) + '</i>';
                p.p.forEach(function(q) {
                    h += '<div style="margin-top:6px;border-top:1px solid #eee;padding-top:4px">';
                    if (q[3]) h += '<img src="' + esc(q[3]) + '" alt="" style="width:48px;height:60px;float:left;'
                                 + 'object-fit:cover;margin-right:6px">';
                    h += '<b>' + esc(S[q[0]]) + '</b> ' + esc(q[1]);
                    if (q[2]) h += '<br>' + esc(T.phone) + ': <a href="tel:' + esc(q[2]) + '">' + esc(q[2]) + '</a>';
                    if (S[q[4]]) h += '<br><small>' + esc(T.duties) + ': ' + esc(S[q[4]]) + '</small>';
                    h += '<div style="clear:both"></div></div>';
                });
                return h + '<div style="margin-top:6px">' + esc(T.hotline) + ': <b>' + esc(hotline) + '</b></div></div>';
            }
            grids.eachLayer(function(l) { l.bindPopup(board(l.feature.properties), {maxWidth: 320}); });
            function inRing(x, y, ring) {
                var inside = false;
                for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
                    var xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
                    if (((yi > y) !== (yj > y)) && (x < (xj - xi) * (y - yi) / (yj - yi) + xi)) inside = !inside;
                }
                return inside;
            }
            function covers(g, x, y) {
                var polys = g.type === 'Polygon' ? [g.coordinates] : g.coordinates;
                return polys.some(function(rings) {
                    return inRing(x, y, rings[0]) && !rings.slice(1).some(function(h) { return inRing(x, y, h); });
                });
            }
            window.geogridFindGrid = function(lat, lng) {
                var found = null;
                grids.eachLayer(function(l) { if (!found && covers(l.feature.geometry, lng, lat)) found = l; });
                if (found) { found.openPopup(L.latLng(lat, lng)); }
                return found ? found.feature.properties.code : null;
            };
            map.on('locationfound', function(e) { window.geogridFindGrid(e.latlng.lat, e.latlng.lng); });
        })();
        {% endmacro %}""")

    def __init__(self, m, layer, strings, t, *, hotline: str):
        super().__init__()
        self.m, self.layer, self.strings, self.hotline = m, layer, strings, hotline
        self.t = {k: t[k] for k in ("code", "phone", "duties", "hotline", "no_persons")}

    def render(self, **kwargs):
        self.map_name, self.layer_name = self.m.get_name(), self.layer.get_name()
        super().render(**kwargs)
