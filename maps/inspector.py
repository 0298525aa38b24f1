"""The environmental inspector's map: incidents by category and state in clusters whose
bubbles count the overdue cases, pollution sources (clustered, spiderfied where they share
a spot), the patrol status of environment grids, a heat map and a choropleth of one
thematic net at a time; a filter bar over the cases, a legend of every symbol, and on a
served page the caller's own moves on each case (through the workflow API, with the
case's version), computed by :func:`geogrid.incidents.workflow.moves_from`, the rule the
workflow enforces."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import branca
import folium
import numpy as np
import shapely
from folium import plugins
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.areas import lookup, reference
from geogrid.core.settings import Settings
from geogrid.environment import patrols, sources
from geogrid.incidents import records, states, workflow
from maps import views
from maps.base import (
    Cluster,
    GeoJson,
    LogoutButton,
    Script,
    describe,
    feature_collection,
    for_display,
    new_map,
    page,
    text,
    toolbox,
)

# The choropleth's colours, low to high (one scale per net, from 0 to its busiest grid).
CHOROPLETH = ["#ffffcc", "#fd8d3c", "#bd0026"]
HEAT_GRADIENT = {0.4: "blue", 0.65: "lime", 1: "red"}  # Leaflet.heat's default, shown in the legend
# Moves that need a reason in the history; the others take an optional note.
NOTE_REQUIRED = ("void", "parked", "escalate")

TEXTS = {
    "zh": {
        "filters": "筛选", "legend": "图例", "layers": "图层", "state": "状态", "category": "类别",
        "department": "责任部门", "all": "全部", "overdue_only": "仅看超期", "reported": "上报日期",
        "from": "从", "to": "至", "mine": "我的案件", "reset": "重置", "shown": "显示 {n} / {total} 件",
        "overdue": "超期", "overdue_ring": "超期事件（红圈）", "cluster": "聚合点：总数，红色角标为其中超期数",
        "sources_key": "重点监管污染源", "sources_other": "其他污染源", "sources_cluster": "同一位置的多个污染源：点击展开",
        "patrol_ok": "环境网格：按期巡查", "patrol_behind": "环境网格：巡查滞后（紫色虚线）",
        "heat": "事件热力图（蓝→红：少→多）", "choropleth": "网格事件数", "net": "网格类型",
        "unplaced": "无位置诉求", "due": "时限", "history": "处理记录", "actions": "办理",
        "escalate": "上报上级", "note_required": "说明（必填）", "note_optional": "备注（选填）",
        "confirm": "确认", "cancel": "取消", "sending": "正在提交……", "done": "已办理：{what}",
        "need_note": "请填写说明。", "stale": "该事件已被他人更新，已重新载入（当前状态：{state}），请确认后再办理。",
        "forbidden": "无权办理：该事件不在您的职责范围内。", "no_role": "无权办理：您的账号没有此项操作的权限。",
        "illegal": "该事件当前为“{state}”，不能办理“{to}”。", "top": "该事件已在最高层级，无法继续上报。",
        "conflict": "该事件状态已变化，无法办理，请刷新后重试。", "unauthorized": "登录已失效，请重新登录。",
        "invalid": "提交的内容无效（说明最多 2000 字）。", "offline": "无法连接服务，请稍后重试。",
        "failed": "办理失败（错误 {status}）。", "reload_failed": "重新载入失败（错误 {status}）。",
        "none_moves": "您对该事件暂无可办理的操作。",
    },
    "en": {
        "filters": "Filters", "legend": "Legend", "layers": "Layers", "state": "State", "category": "Category",
        "department": "Department", "all": "All", "overdue_only": "Overdue only", "reported": "Reported",
        "from": "from", "to": "to", "mine": "My cases", "reset": "Reset", "shown": "{n} of {total} shown",
        "overdue": "Overdue", "overdue_ring": "Overdue case (red ring)",
        "cluster": "Cluster: cases, red badge: overdue among them",
        "sources_key": "Key supervision source", "sources_other": "Other pollution source",
        "sources_cluster": "Sources at one spot: click to spread", "patrol_ok": "Environment grid: patrols on schedule",
        "patrol_behind": "Environment grid: patrols behind (dashed purple)", "heat": "Incident heat map (blue→red: few→many)",
        "choropleth": "Incidents per grid", "net": "Net", "unplaced": "Requests without a location", "due": "Time limit",
        "history": "History", "actions": "Act", "escalate": "Escalate", "note_required": "Reason (required)",
        "note_optional": "Note (optional)", "confirm": "Confirm", "cancel": "Cancel", "sending": "Sending…",
        "done": "Done: {what}", "need_note": "Please give a reason.",
        "stale": "Someone else changed this case; it was reloaded (now: {state}). Check it, then act again.",
        "forbidden": "Not allowed: this case is outside your area.", "no_role": "Not allowed: your account lacks this role.",
        "illegal": "The case is {state}: it cannot go to {to}.", "top": "The case is already at the top level.",
        "conflict": "The case has changed: reload and try again.", "unauthorized": "Your session has ended: log in again.",
        "invalid": "Invalid input (a note has at most 2000 characters).", "offline": "The service cannot be reached.",
        "failed": "Failed (error {status}).", "reload_failed": "Reloading failed (error {status}).",
        "none_moves": "You have no move on this case.",
    },
}


def render(session: Session, settings: Settings, *, area: str, lang: str = "zh", since: dt.datetime | None = None,
           until: dt.datetime | None = None, inline: bool = False, nonce: str | None = None,
           limit: int = 100_000) -> str:
    t = text(lang)
    words = TEXTS["en" if lang == "en" else "zh"]
    parent = lookup.get_area(session, area, lang=lang)
    m = new_map(settings, shapely.geometry.shape(parent["geometry"]).bounds, lang)
    cases, _ = records.list_incidents(session, area=area, since=since, until=until, limit=limit)
    history = records.events_of(session, [c["id"] for c in cases])
    state_names = {k: v[1 if lang == "en" else 0] for k, v in states.STATES.items()}
    actions = not inline  # an exported file has no session to act with
    moves = tables = None
    if actions:
        # The caller's moves, by the workflow's own rule: one table per set of roles in reach.
        reach = workflow.reach_roles(session, cases)
        keys = [",".join(sorted(r)) for r in reach]
        tables = {k: {s: workflow.moves_from(s, r) for s in states.STATES} for k, r in dict(zip(keys, reach)).items()}
        moves = keys
    person = scopes.caller_person(session) if actions else None
    levels = workflow.escalation_levels(session, [c["authority"] for c in cases]) if actions and cases else {}
    rows = views.case_rows(cases, history, t, lang, tz=ZoneInfo(settings.timezone), person_id=person, moves=moves,
                           levels=levels)
    group = folium.FeatureGroup(name=f"{t['incidents']} ({len(rows)})", show=True)
    cluster = Cluster(rows, "caseMarker", icon_create_function="geogrid.caseClusterIcon", maxClusterRadius=60)
    cluster.add_to(group)
    group.add_to(m)
    heat_group = folium.FeatureGroup(name=t["heat"], show=False)
    heat = plugins.HeatMap([[r[0], r[1]] for r in rows], radius=14, blur=18, gradient=HEAT_GRADIENT)
    heat.add_to(heat_group)
    heat_group.add_to(m)
    nets = _choropleth(session, settings, m, area, cases, t, lang)
    _sources(session, m, area, t, lang)
    _patrols(session, settings, m, area, t)
    toolbox(m, minimap=settings.map_tiles.lower() != "none", lang=lang)
    control = folium.LayerControl(collapsed=False).add_to(m)
    categories = sorted({(c["category"], c["category_en" if lang == "en" else "category_zh"]) for c in cases
                         if c["lat"] is not None}, key=lambda x: x[1])
    options = {
        "t": words, "tz": settings.timezone, "actions": actions, "moves": tables or {},
        "states": state_names, "colours": views.STATE_COLOURS, "actionNames": views.action_names(lang),
        "terminal": list(states.TERMINAL), "noteRequired": list(NOTE_REQUIRED), "card": {
            "due": t["due"], "history": t["history"], "overdue": t["overdue"]},
        "categories": [list(c) for c in categories],
        "departments": sorted({c["department"] for c in cases if c["lat"] is not None and c["department"]}),
        "mine": person is not None, "groupName": group.layer_name, "incidentsLabel": t["incidents"],
        "legendStates": ["reported", "accepted", "filed", "dispatched", "in_progress", "handled", "verified",
                         "closed", "parked", "void"],
        "patrol": {"ok": views.PATROL_ON_SCHEDULE, "behind": views.PATROL_BEHIND},
        "heatGradient": HEAT_GRADIENT, "choropleth": CHOROPLETH,
        "nets": [{"key": k, "name": name, "max": vmax} for k, name, vmax, _ in nets],
        "unplaced": views.unplaced_rows(cases, lang, state_names),
    }
    m.add_child(Inspector(m, cluster, heat, control, nets, options))
    if not inline:
        m.add_child(LogoutButton(lang))
    return page(m, settings, inline=inline, title=f"{parent['properties']['name']} · {t['incidents']}", nonce=nonce)


class Inspector(Script):
    """The page's panels and actions (``geogrid.inspector``, maps/static/inspector.js): the
    filter bar, the legend, the layer control and the list of cases without a point in one
    dock (panels.js), the choropleth's net, and on a served page the case actions through
    the API with the page's session (api.js)."""

    files = ("api.js", "panels.js", "inspector.js")
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        geogrid.inspector({{ this.m.get_name() }}, {
            cluster: {{ this.cluster.get_name() }}, heat: {{ this.heat.get_name() }},
            control: {{ this.control.get_name() }},
            choropleth: {{ this.choropleth_group }},
            nets: { {%- for key, name in this.net_layers %}{{ key|tojson }}: {{ name }}{{ "," if not loop.last }}{% endfor -%} },
            api: geogrid.api({standalone: {{ (not this.options.actions)|tojson }}, t: {}})
        }, {{ this.options|tojson }});
        {% endmacro %}""")

    def __init__(self, m, cluster, heat, control, nets, options):
        super().__init__()
        self.m, self.cluster, self.heat, self.control, self.options = m, cluster, heat, control, options
        self.nets = nets

    def render(self, **kwargs):
        self.net_layers = [(key, layer.get_name()) for key, _, _, layer in self.nets]
        self.choropleth_group = self.nets[0][3]._parent.get_name() if self.nets else "null"
        super().render(**kwargs)


def net_counts(geoms, codes, cases: list[dict]) -> list[int]:
    """How many of ``cases`` lie in each grid (``geoms``, ``codes``) of one net: by their
    point, or by their grid for a case placed without one."""
    counts = np.zeros(len(codes), dtype=int)
    placed = [c for c in cases if c["lat"] is not None]
    if placed and len(codes):
        points = shapely.points([c["lon"] for c in placed], [c["lat"] for c in placed])
        _, grid = shapely.STRtree(np.asarray(geoms, dtype=object)).query(points, predicate="intersects")
        np.add.at(counts, grid, 1)
    unplaced = views.incident_counts(codes, [c for c in cases if c["lat"] is None])
    return [int(a) + b for a, b in zip(counts, unplaced)]


def _choropleth(session: Session, settings: Settings, m, area: str, cases: list[dict], t: dict,
                lang: str) -> list[tuple]:
    """One GeoJSON layer per thematic net present (its finest grids only), in one group that
    shows the net the page picks: (key, name, busiest count, layer) per net."""
    grids = lookup.frame(session, lookup.AreaFilter(code_prefix=area, grids_only=True), with_notes=False)
    if not len(grids):
        return []
    names = {k: v["name_en" if lang == "en" else "name_zh"] for k, v in reference.layers(session).items()}
    group = folium.FeatureGroup(name=t["choropleth"], show=False)
    out = []
    for net in sorted(set(grids["layer"]), key=lambda k: (k != "comprehensive", k)):
        part = grids[grids["layer"] == net]
        part = part[~part["code"].isin(set(part["parent"].dropna()))]  # a net's finest grids: no nesting
        values = net_counts(part.geometry.array, list(part["code"]), cases)
        vmax = max(values + [1])
        scale = branca.colormap.LinearColormap(CHOROPLETH, vmin=0, vmax=vmax)
        props = [{"code": code, "name": name, "count": v, "colour": scale(v)}
                 for code, name, v in zip(part["code"], part["name"], values)]
        layer = GeoJson(feature_collection(for_display(part.geometry.array, settings.map_simplify_m), props),
                        style_function=lambda f: {"fillColor": f["properties"]["colour"], "color": "#666",
                                                  "weight": 0.5, "fillOpacity": 0.7})
        describe(layer, fields=["code", "name", "count"], aliases=[t["code"], t["name"], t["incidents"]])
        layer.add_to(group)
        out.append((net, names.get(net, net), vmax, layer))
    group.add_to(m)
    return out


class SourcePoints(Script):
    """Pollution sources as Font Awesome markers in a cluster of their own (spiderfied where
    they share a spot) inside ``group``: ``geogrid.sourcePoints`` (maps/static/markers.js)."""

    files = ("markers.js",)
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        geogrid.sourcePoints({{ this.group.get_name() }}, {{ this.rows|tojson }});
        {% endmacro %}""")

    def __init__(self, group, rows):
        super().__init__()
        self.group, self.rows = group, rows


def _sources(session: Session, m, area: str, t: dict, lang: str) -> None:
    found, _ = sources.list_sources(session, area=area, limit=100_000)
    group = folium.FeatureGroup(name=f"{t['sources']} ({len(found)})", show=True)
    kind_names = {k: v[1 if lang == "en" else 0] for k, v in sources.KINDS.items()}
    group.add_child(SourcePoints(group, views.source_rows(found, t, kind_names, lang)))
    group.add_to(m)


def _patrols(session: Session, settings: Settings, m, area: str, t: dict) -> None:
    env = lookup.frame(session, lookup.AreaFilter(code_prefix=area, layer=sources.ENVIRONMENT), with_notes=False)
    if not len(env):
        return
    behind = {g["code"]: g for g in patrols.patrols_behind(session, settings, area=area)["grids"]}
    props = views.patrol_properties(env["code"], env["name"], behind, t)
    group = folium.FeatureGroup(name=t["patrol"], show=True)
    layer = GeoJson(feature_collection(for_display(env.geometry.array, settings.map_simplify_m), props),
                    style_function=lambda f: {"fill": False, "color": f["properties"]["colour"], "weight": 3,
                                              "dashArray": f["properties"]["dash"]})
    describe(layer, fields=["code", "name", "status", "last"], aliases=[t["code"], t["name"], t["patrol"], "≤"])
    layer.add_to(group)
    group.add_to(m)
