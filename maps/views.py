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
# Patrol outlines: never the overdue red, so that a late patrol is not read as an overdue case.
PATROL_ON_SCHEDULE = {"colour": "#1a9641", "dash": None}
PATROL_BEHIND = {"colour": "#7b3294", "dash": "8 5"}
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


# Every action a case's history can hold (``incident_event.action``: written by
# geogrid.incidents.records.event and the bulk import), named in both languages.
ACTION_NAMES = {
    "report": ("上报登记", "Reported"), "import": ("历史导入", "Imported"), "transition": ("状态变更", "State changed"),
    "escalate": ("上报上级", "Escalated"), "move": ("更正位置", "Location corrected"),
    "owner": ("指定包案领导", "Owner named"), "note": ("备注", "Note"), "callback": ("回访", "Call-back"),
}


def action_names(lang: str) -> dict[str, str]:
    """The history's action names in ``lang``."""
    return {k: v[1 if lang == "en" else 0] for k, v in ACTION_NAMES.items()}


def history_events(events: Sequence[Mapping]) -> list[list]:
    """The last events of a case as [time (ISO 8601), action, new state]: the page names
    them in its language and writes the time in the service's time zone."""
    return [[_iso(e["at"]), e["action"], e["to_state"]] for e in events[-MAX_POPUP_HISTORY:]]


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def case_rows(cases: Iterable[Mapping], history: Mapping[int, list[dict]], t: Mapping, lang: str, *,
              tz=None, person_id: int | None = None, moves: Sequence[str] | None = None,
              levels: Mapping[str, int] | None = None) -> list[list]:
    """The inspector's incidents: [lat, lon, state colour, 1 if overdue else 0, card, case];
    cases without a point (placed by a household or an area) are not drawn.

    The card holds what does not change when the case moves on (category, receipt, place,
    persons, description); ``case`` what does and what the filters read: id, version, state,
    overdue (``o``), deadline, history, category key, department, day reported (in ``tz``),
    whether it is the caller's own (``person_id`` responsible or owner), the key of the
    caller's moves table (``moves``, one per case; None: no actions) and how many levels
    it can still be escalated (``levels`` by authority code)."""
    rows = []
    for i, c in enumerate(cases):
        if c["lat"] is None:
            continue
        card = [c["category_en" if lang == "en" else "category_zh"], [None, c["receipt"]],
                [t["grid"], f"{c['grid'] or c['authority']} {c['grid_name'] or c['authority_name']}"],
                [t["persons"], persons_text(c["responsible"], t["none"])], [None, c["description"][:200]]]
        reported = c["reported_at"].astimezone(tz) if tz is not None else c["reported_at"]
        mine = person_id is not None and (c.get("owner_person_id") == person_id or any(
            p.get("person_id") == person_id for p in c["responsible"] or ()))
        case = {"id": c["id"], "v": c["version"], "s": c["state"], "o": 1 if c["overdue"] else 0,
                "due": _iso(c["due_at"]), "h": history_events(history.get(c["id"], [])), "c": c["category"],
                "d": c["department"] or "", "r": f"{reported:%Y-%m-%d}", "m": 1 if mine else 0,
                "k": moves[i] if moves is not None else None,
                "up": (levels or {}).get(c["authority"], 0), "e": c["escalation_level"]}
        rows.append([c["lat"], c["lon"], STATE_COLOURS.get(c["state"], "#000"), case["o"], card, case])
    return rows


def unplaced_rows(cases: Iterable[Mapping], lang: str, state_names: Mapping[str, str]) -> list[list[str]]:
    """Cases without a point (requests placed by a household or an area): [receipt, text]
    for the page's list, by grid or area name."""
    return [[c["receipt"], f"{c['grid_name'] or c['authority_name']} · {c['category_en' if lang == 'en' else 'category_zh']}"
             f" · {state_names[c['state']]}"]
            for c in sorted((c for c in cases if c["lat"] is None),
                            key=lambda c: (c["grid_name"] or c["authority_name"] or "", c["receipt"]))]


def incident_counts(codes: Iterable[str], cases: Iterable[Mapping]) -> list[int]:
    """How many of ``cases`` lie in each grid of ``codes``."""
    counts: dict[str, int] = {}
    for c in cases:
        if c["grid"]:
            counts[c["grid"]] = counts.get(c["grid"], 0) + 1
    return [counts.get(code, 0) for code in codes]


RISK_NAMES = {"low": ("低", "low"), "medium": ("中", "medium"), "high": ("高", "high")}


def source_rows(found: Iterable[Mapping], t: Mapping, kind_names: Mapping[str, str], lang: str = "zh") -> list[list]:
    """Pollution sources as markers: [lat, lon, marker colour, icon, card]."""
    rows = []
    for s in found:
        risk = RISK_NAMES.get(s["risk_level"], (s["risk_level"], s["risk_level"]))[1 if lang == "en" else 0]
        card = [s["name"], [None, kind_names.get(s["kind"], "")], [t["risk"], risk],
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
             **(PATROL_BEHIND if code in behind else PATROL_ON_SCHEDULE)}
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
