"""The environmental inspector's map: incidents by category and state (overdue ones
ringed in red) in fast clusters, pollution sources with their key-supervision flag, the
patrol status of environment grids, a heat map and a per-grid choropleth for a window."""

from __future__ import annotations

import datetime as dt

import branca
import folium
import shapely
from folium import plugins
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from geogrid import areas, incidents, sources
from geogrid.settings import Settings
from maps.base import LogoutButton, Points, describe, feature_collection, for_display, legend, new_map, page, text, toolbox

STATE_COLOURS = {
    "reported": "#6a3d9a", "accepted": "#1f78b4", "filed": "#1f78b4", "dispatched": "#ff7f00",
    "in_progress": "#ff7f00", "handled": "#33a02c", "verified": "#33a02c", "closed": "#999999",
    "void": "#cccccc", "parked": "#b15928",
}
SOURCE_ICONS = {"enterprise": "industry", "outfall": "water", "chimney": "smog", "livestock_farm": "cow",
                "construction_site": "person-digging", "catering": "utensils", "mine": "mountain",
                "hazardous_chemicals": "flask", "other": "circle-exclamation"}
MAX_POPUP_HISTORY = 5


def render(session: Session, settings: Settings, *, area: str, lang: str = "zh", since: dt.datetime | None = None,
           until: dt.datetime | None = None, inline: bool = False, nonce: str | None = None,
           limit: int = 100_000) -> str:
    t = text(lang)
    parent = areas.get_area(session, area, lang=lang)
    m = new_map(settings, shapely.geometry.shape(parent["geometry"]).bounds, lang)
    cases, _ = incidents.list_incidents(session, area=area, since=since, until=until, limit=limit)
    history = _history(session, [c["id"] for c in cases])
    rows = []
    for c in cases:
        colour = STATE_COLOURS.get(c["state"], "#000")
        state_name = incidents.STATES[c["state"]][1 if lang == "en" else 0]
        persons = "、".join(f"{p['role_name']} {p['name']}" for p in c["responsible"]) or t["none"]
        events = [f"{str(e['at'])[:16]} {e['action']} {e['to_state'] or ''}"
                  for e in history.get(c["id"], [])[-MAX_POPUP_HISTORY:]]
        # A card for geogrid.card: data, never HTML.
        card = [f"{c['category_en' if lang == 'en' else 'category_zh']} · {state_name}",
                [None, t["overdue"] if c["overdue"] else None, "#d7191c"], [None, c["receipt"]],
                [t["due"], str(c["due_at"])[:16] if c["due_at"] else "—"],
                [t["grid"], f"{c['grid'] or c['authority']} {c['grid_name'] or c['authority_name']}"],
                [t["persons"], persons], [None, c["description"][:200]], [t["history"], events]]
        rows.append([c["lat"], c["lon"], colour, 1 if c["overdue"] else 0, card])
    group = folium.FeatureGroup(name=f"{t['incidents']} ({len(rows)})", show=True)
    plugins.FastMarkerCluster(rows, callback="""
        function (row) {
            var marker = L.circleMarker(new L.LatLng(row[0], row[1]), {
                radius: row[3] ? 8 : 6, color: row[3] ? '#d7191c' : '#333', weight: row[3] ? 3 : 1,
                fillColor: row[2], fillOpacity: 0.9});
            marker.bindPopup(geogrid.popup(row[4]), {maxWidth: 320});
            return marker;
        }""", disableClusteringAtZoom=17).add_to(group)
    group.add_to(m)
    heat = folium.FeatureGroup(name=t["heat"], show=False)
    plugins.HeatMap([[r[0], r[1]] for r in rows], radius=14, blur=18).add_to(heat)
    heat.add_to(m)
    _choropleth(session, settings, m, area, cases, t)
    _sources(session, m, area, t, lang)
    _patrols(session, settings, m, area, t)
    toolbox(m, minimap=settings.map_tiles.lower() != "none")
    m.add_child(legend(t["legend_planner"], [(STATE_COLOURS[s], incidents.STATES[s][1 if lang == "en" else 0])
                                             for s in ("reported", "accepted", "dispatched", "handled", "closed")]
                       + [("border:3px solid #d7191c", t["overdue"])]))
    folium.LayerControl(collapsed=False).add_to(m)
    if not inline:
        m.add_child(LogoutButton(lang))
    return page(m, settings, inline=inline, title=f"{parent['properties']['name']} · {t['incidents']}", nonce=nonce)


def _history(session: Session, ids: list[int]) -> dict[int, list[dict]]:
    if not ids:
        return {}
    out: dict[int, list[dict]] = {}
    for r in session.execute(sql("SELECT incident_id, at, action, to_state FROM incident_event "
                                 "WHERE incident_id = ANY(:ids) ORDER BY id"), {"ids": ids}).mappings():
        out.setdefault(r["incident_id"], []).append(dict(r))
    return out


def _choropleth(session: Session, settings: Settings, m, area: str, cases: list[dict], t: dict) -> None:
    grids = areas.frame(session, areas.AreaFilter(code_prefix=area, grids_only=True), with_notes=False)
    if not len(grids):
        return
    counts: dict[str, int] = {}
    for c in cases:
        if c["grid"]:
            counts[c["grid"]] = counts.get(c["grid"], 0) + 1
    values = [counts.get(code, 0) for code in grids["code"]]
    scale = branca.colormap.LinearColormap(["#ffffcc", "#fd8d3c", "#bd0026"], vmin=0, vmax=max(values + [1]),
                                           caption=t["choropleth"])
    props = [{"code": code, "name": name, "count": v, "colour": scale(v)}
             for code, name, v in zip(grids["code"], grids["name"], values)]
    group = folium.FeatureGroup(name=t["choropleth"], show=False)
    layer = folium.GeoJson(feature_collection(for_display(grids.geometry.array, settings.map_simplify_m), props),
                           style_function=lambda f: {"fillColor": f["properties"]["colour"], "color": "#666",
                                                     "weight": 0.5, "fillOpacity": 0.7})
    describe(layer, fields=["code", "name", "count"], aliases=[t["code"], t["name"], t["incidents"]])
    layer.add_to(group)
    group.add_to(m)
    scale.add_to(m)


def _sources(session: Session, m, area: str, t: dict, lang: str) -> None:
    found, _ = sources.list_sources(session, area=area, limit=100_000)
    group = folium.FeatureGroup(name=f"{t['sources']} ({len(found)})", show=True)
    rows = []
    for s in found:
        kind = sources.KINDS.get(s["kind"], ("", ""))[1 if lang == "en" else 0]
        card = [s["name"], [None, kind], [t["risk"], s["risk_level"]],
                [None, t["key_source"] if s["key_supervision"] else None, "#d7191c"],
                [None, ", ".join(s["pollutants"])], [t["grid"], s["grid"] or "—"]]
        rows.append([s["lat"], s["lon"], "red" if s["key_supervision"] else "darkblue",
                     SOURCE_ICONS.get(s["kind"], "circle"), card])
    group.add_child(Points(group, rows))
    group.add_to(m)


def _patrols(session: Session, settings: Settings, m, area: str, t: dict) -> None:
    env = areas.frame(session, areas.AreaFilter(code_prefix=area, layer=sources.ENVIRONMENT), with_notes=False)
    if not len(env):
        return
    behind = {g["code"]: g for g in sources.patrols_behind(session, settings, area=area)["grids"]}
    props = [{"code": code, "name": name,
              "status": t["behind"] if code in behind else t["on_schedule"],
              "last": str(behind[code]["last_patrol"] or "—")[:16] if code in behind else "",
              "colour": "#d7191c" if code in behind else "#1a9641"}
             for code, name in zip(env["code"], env["name"])]
    group = folium.FeatureGroup(name=t["patrol"], show=True)
    layer = folium.GeoJson(feature_collection(for_display(env.geometry.array, settings.map_simplify_m), props),
                           style_function=lambda f: {"fill": False, "color": f["properties"]["colour"], "weight": 3})
    describe(layer, fields=["code", "name", "status", "last"], aliases=[t["code"], t["name"], t["patrol"], "≤"])
    layer.add_to(group)
    group.add_to(m)
