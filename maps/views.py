"""What the maps show, as plain data: functions that take domain results (dicts, the rows
of an area frame) and return the properties, marker rows and cards the pages' scripts read
(``maps/static/*.js``). No SQL, no Folium, no imports from the domain: the pages
(``planner.py``, ``inspector.py``, ``public.py``) fetch the results and put these on a map.

A card is ``[title, [label, value, colour], ...]`` for ``geogrid.card``: data, never HTML.

>>> persons_text([{"role_name": "网格员", "name": "张三"}], "无")
'网格员 张三'
>>> persons_text([], "none")
'none'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from maps.base import PALETTE, safe_url

STATE_COLOURS = {
    "reported": "#6a3d9a", "accepted": "#1f78b4", "filed": "#1f78b4", "dispatched": "#ff7f00",
    "in_progress": "#ff7f00", "handled": "#33a02c", "verified": "#33a02c", "closed": "#999999",
    "void": "#cccccc", "parked": "#b15928",
}
SOURCE_ICONS = {"enterprise": "industry", "outfall": "water", "chimney": "smog", "livestock_farm": "cow",
                "construction_site": "person-digging", "catering": "utensils", "mine": "mountain",
                "hazardous_chemicals": "flask", "other": "circle-exclamation"}
MAX_POPUP_HISTORY = 5
LABEL_DIGITS = 3  # a grid's label: the last digits of its code


def persons_text(persons: Iterable[Mapping], none: str) -> str:
    """Responsible persons as one line of text ("post name、post name"), or ``none``."""
    return "、".join(f"{p['role_name']} {p['name']}" for p in persons) or none


def count(value) -> int | None:
    """A count from a frame cell: None for a missing value (None or NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


# --------------------------------------------------------------------------- planner


def grid_properties(rows: Iterable, colours: Iterable[int], posts: Mapping[int, list[dict]], t: Mapping,
                    layer: str) -> list[dict]:
    """Properties of the planner's grids of one layer: ``rows`` of an area frame (with ids),
    ``colours`` indexes into PALETTE, ``posts`` the responsible persons by area id. Plain
    text: the page shows it with textContent (tooltips, search suggestions)."""
    return [{
        "code": row.code, "name": row.name, "parent": row.parent, "search": f"{row.code} {row.name}",
        "households": count(row.households), "population": count(row.population),
        "area_m2": round(float(row.area_m2)), "colour": PALETTE[colour], "layer": layer,
        "persons": persons_text(posts.get(int(row.area_id), []), t["none"]),
    } for row, colour in zip(rows, colours)]


def label_points(codes: Iterable[str], points: Iterable) -> list[list]:
    """[lat, lon, text] of each grid's label (shapely points at the grids' label places)."""
    return [[round(p.y, 6), round(p.x, 6), code[-LABEL_DIGITS:]] for code, p in zip(codes, points)]


# --------------------------------------------------------------------------- inspector


def history_lines(events: Sequence[Mapping]) -> list[str]:
    """The last events of a case, one line each (time, action, new state)."""
    return [f"{str(e['at'])[:16]} {e['action']} {e['to_state'] or ''}" for e in events[-MAX_POPUP_HISTORY:]]


def case_rows(cases: Iterable[Mapping], history: Mapping[int, list[dict]], t: Mapping, lang: str,
              state_names: Mapping[str, str]) -> list[list]:
    """The inspector's incidents: [lat, lon, state colour, 1 if overdue else 0, card]; cases
    without a point (placed by a household or an area) are not drawn."""
    rows = []
    for c in cases:
        if c["lat"] is None:
            continue
        card = [f"{c['category_en' if lang == 'en' else 'category_zh']} · {state_names[c['state']]}",
                [None, t["overdue"] if c["overdue"] else None, "#d7191c"], [None, c["receipt"]],
                [t["due"], str(c["due_at"])[:16] if c["due_at"] else "—"],
                [t["grid"], f"{c['grid'] or c['authority']} {c['grid_name'] or c['authority_name']}"],
                [t["persons"], persons_text(c["responsible"], t["none"])], [None, c["description"][:200]],
                [t["history"], history_lines(history.get(c["id"], []))]]
        rows.append([c["lat"], c["lon"], STATE_COLOURS.get(c["state"], "#000"), 1 if c["overdue"] else 0, card])
    return rows


def incident_counts(codes: Iterable[str], cases: Iterable[Mapping]) -> list[int]:
    """How many of ``cases`` lie in each grid of ``codes``."""
    counts: dict[str, int] = {}
    for c in cases:
        if c["grid"]:
            counts[c["grid"]] = counts.get(c["grid"], 0) + 1
    return [counts.get(code, 0) for code in codes]


def source_rows(found: Iterable[Mapping], t: Mapping, kind_names: Mapping[str, str]) -> list[list]:
    """Pollution sources as markers: [lat, lon, marker colour, icon, card]."""
    rows = []
    for s in found:
        card = [s["name"], [None, kind_names.get(s["kind"], "")], [t["risk"], s["risk_level"]],
                [None, t["key_source"] if s["key_supervision"] else None, "#d7191c"],
                [None, ", ".join(s["pollutants"])], [t["grid"], s["grid"] or "—"]]
        rows.append([s["lat"], s["lon"], "red" if s["key_supervision"] else "darkblue",
                     SOURCE_ICONS.get(s["kind"], "circle"), card])
    return rows


def patrol_properties(codes: Iterable[str], names: Iterable[str], behind: Mapping[str, Mapping],
                      t: Mapping) -> list[dict]:
    """Environment grids' patrol status; ``behind``: the grids whose patrols are late, by code."""
    return [{"code": code, "name": name,
             "status": t["behind"] if code in behind else t["on_schedule"],
             "last": str(behind[code]["last_patrol"] or "—")[:16] if code in behind else "",
             "colour": "#d7191c" if code in behind else "#1a9641"}
            for code, name in zip(codes, names)]


# --------------------------------------------------------------------------- public


def board_properties(rows: Iterable, posts: Mapping[int, list[dict]]) -> tuple[list[dict], list[str]]:
    """The public boards' compact properties {code, name, p: [[post, name, phone, photo,
    duties], ...]} (only published fields; a photo only if it is an http(s) address) and the
    texts that post and duties index: repeated texts travel once.

    >>> class Row: code, name, area_id = "001", "一", 1
    >>> board_properties([Row], {1: [{"role_name": "网格员", "name": "张三", "duties": "巡查"}]})
    ([{'code': '001', 'name': '一', 'p': [[0, '张三', '', '', 1]]}], ['网格员', '巡查'])
    """
    strings: list[str] = []
    index: dict[str, int] = {}

    def ref(value) -> int:
        value = value or ""
        if value not in index:
            index[value] = len(strings)
            strings.append(value)
        return index[value]

    props = []
    for row in rows:
        persons = [[ref(p["role_name"]), p.get("name", ""), p.get("phone", ""), safe_url(p.get("photo_url")) or "",
                    ref(p["duties"])] for p in posts.get(int(row.area_id), [])]
        props.append({"code": row.code, "name": row.name, "p": persons})
    return props, strings


def public_case_rows(shown: Iterable[tuple[float, float, Mapping]]) -> list[list]:
    """Public incidents (lat, lon, public view) as [lat, lon, card]: category, state, date."""
    return [[lat, lon, [f"{v['category_name']} · {v['state_name']} · {v['reported_at']:%Y-%m-%d}"]]
            for lat, lon, v in shown]
