"""The environmental inspector's map: incidents by category and state (overdue ones
ringed in red) in fast clusters, pollution sources with their key-supervision flag, the
patrol status of environment grids, a heat map and a per-grid choropleth for a window."""

from __future__ import annotations

import datetime as dt

import branca
import folium
import shapely
from folium import plugins
from sqlalchemy.orm import Session

from geogrid.areas import lookup
from geogrid.core.settings import Settings
from geogrid.environment import patrols, sources
from geogrid.incidents import records, states
from maps import views
from maps.base import (
    Cluster,
    GeoJson,
    LogoutButton,
    Points,
    describe,
    feature_collection,
    for_display,
    legend,
    new_map,
    page,
    text,
    toolbox,
)


def render(session: Session, settings: Settings, *, area: str, lang: str = "zh", since: dt.datetime | None = None,
           until: dt.datetime | None = None, inline: bool = False, nonce: str | None = None,
           limit: int = 100_000) -> str:
    t = text(lang)
    parent = lookup.get_area(session, area, lang=lang)
    m = new_map(settings, shapely.geometry.shape(parent["geometry"]).bounds, lang)
    cases, _ = records.list_incidents(session, area=area, since=since, until=until, limit=limit)
    history = records.events_of(session, [c["id"] for c in cases])
    state_names = {k: v[1 if lang == "en" else 0] for k, v in states.STATES.items()}
    rows = views.case_rows(cases, history, t, lang, state_names)
    group = folium.FeatureGroup(name=f"{t['incidents']} ({len(rows)})", show=True)
    Cluster(rows, "caseMarker", disableClusteringAtZoom=17).add_to(group)
    group.add_to(m)
    heat = folium.FeatureGroup(name=t["heat"], show=False)
    plugins.HeatMap([[r[0], r[1]] for r in rows], radius=14, blur=18).add_to(heat)
    heat.add_to(m)
    _choropleth(session, settings, m, area, cases, t)
    _sources(session, m, area, t, lang)
    _patrols(session, settings, m, area, t)
    toolbox(m, minimap=settings.map_tiles.lower() != "none")
    m.add_child(legend(t["legend_planner"], [(views.STATE_COLOURS[s], state_names[s])
                                             for s in ("reported", "accepted", "dispatched", "handled", "closed")]
                       + [("border:3px solid #d7191c", t["overdue"])]))
    folium.LayerControl(collapsed=False).add_to(m)
    if not inline:
        m.add_child(LogoutButton(lang))
    return page(m, settings, inline=inline, title=f"{parent['properties']['name']} · {t['incidents']}", nonce=nonce)


def _choropleth(session: Session, settings: Settings, m, area: str, cases: list[dict], t: dict) -> None:
    grids = lookup.frame(session, lookup.AreaFilter(code_prefix=area, grids_only=True), with_notes=False)
    if not len(grids):
        return
    values = views.incident_counts(grids["code"], cases)
    scale = branca.colormap.LinearColormap(["#ffffcc", "#fd8d3c", "#bd0026"], vmin=0, vmax=max(values + [1]),
                                           caption=t["choropleth"])
    props = [{"code": code, "name": name, "count": v, "colour": scale(v)}
             for code, name, v in zip(grids["code"], grids["name"], values)]
    group = folium.FeatureGroup(name=t["choropleth"], show=False)
    layer = GeoJson(feature_collection(for_display(grids.geometry.array, settings.map_simplify_m), props),
                           style_function=lambda f: {"fillColor": f["properties"]["colour"], "color": "#666",
                                                     "weight": 0.5, "fillOpacity": 0.7})
    describe(layer, fields=["code", "name", "count"], aliases=[t["code"], t["name"], t["incidents"]])
    layer.add_to(group)
    group.add_to(m)
    scale.add_to(m)


def _sources(session: Session, m, area: str, t: dict, lang: str) -> None:
    found, _ = sources.list_sources(session, area=area, limit=100_000)
    group = folium.FeatureGroup(name=f"{t['sources']} ({len(found)})", show=True)
    kind_names = {k: v[1 if lang == "en" else 0] for k, v in sources.KINDS.items()}
    group.add_child(Points(group, views.source_rows(found, t, kind_names)))
    group.add_to(m)


def _patrols(session: Session, settings: Settings, m, area: str, t: dict) -> None:
    env = lookup.frame(session, lookup.AreaFilter(code_prefix=area, layer=sources.ENVIRONMENT), with_notes=False)
    if not len(env):
        return
    behind = {g["code"]: g for g in patrols.patrols_behind(session, settings, area=area)["grids"]}
    props = views.patrol_properties(env["code"], env["name"], behind, t)
    group = folium.FeatureGroup(name=t["patrol"], show=True)
    layer = GeoJson(feature_collection(for_display(env.geometry.array, settings.map_simplify_m), props),
                           style_function=lambda f: {"fill": False, "color": f["properties"]["colour"], "weight": 3})
    describe(layer, fields=["code", "name", "status", "last"], aliases=[t["code"], t["name"], t["patrol"], "≤"])
    layer.add_to(group)
    group.add_to(m)
