"""Score sheets (考核方案), their periods, manual items, rankings and the red/black list (红黑榜).

A **scheme** belongs to a county or town (its ``area``): a total of 100 or 1,000 points,
a target kind (grid worker, grid, village, town, department, i.e. the groupings of
:func:`geogrid.assessment.indicators.indicators` of the same names), a period kind
(month, quarter, year) and its items. Each item has a ``code``, a ``name``, its maximum
``points``, a ``kind`` (``deduction`` or ``bonus``) and a ``rule``: either ``"manual"``
(an assessor enters the points, with a reason and evidence) or one of

* ``{"indicator": k, "per": n, "points": p}``: p points for every whole n units of k
  (−2 per case closed late: ``{"indicator": "closed_late", "per": 1, "points": 2}``);
* ``{"indicator": k, "below": x, "points": p}``: p points when k < x
  (−5 if 满意率 < 90 %: ``{"indicator": "satisfaction_rate", "below": 0.9, "points": 5}``);
* ``{"indicator": k, "above": x, "points": p}``: p points when k > x.

``k`` is a key of :data:`~geogrid.assessment.indicators.INDICATORS` or of :data:`DERIVED`
(values computed from indicators, defined here once). Rates are fractions 0–1. A rule
takes at most its item's points (deductions and bonuses alike); a rule whose indicator has
no value (a rate without cases, patrols of a department) takes nothing. A target's score
is ``total − deductions + bonuses``, never below 0.

A **period** (``2026-11``, ``2026-Q4``, ``2026``) is computed (again and again while it
is ``computed`` or ``reviewed``), reviewed, then frozen; its red/black list may then be
published. Each computation stores, per target, the indicator values read, every item's
points with its evidence, the score and the rank (competition ranking, 1, 2, 2, 4), and
a copy of the scheme it used: editing a scheme changes the periods computed afterwards,
never a frozen one. Cases count in the period they were reported in and frozen results
are stored, not recomputed, so a correction made after freezing shows only where its
case belongs: in a later period still open.

**Targets** of a period are the units of the scheme's area of its target kind (leaf
grids of every net, villages, towns; grid workers holding a post in the area during the
period; the departments of the categories) plus any unit the indicators found cases for.
Cases of a blind spot count for its village or town, not for a grid.

**Who**: planners with scope on the scheme's area create and edit schemes, compute,
review and freeze; planners and inspectors with scope on a target's area (on the
scheme's area for departments) enter its manual items; staff read the results of the
targets in their scope (all of them with scope on the scheme's area); admins publish. The
public sees published lists only: unit names (a grid worker's only if it is public),
scores, ranks.

>>> item = {"code": "late", "name": "逾期结案", "points": 10, "kind": "deduction",
...         "rule": {"indicator": "closed_late", "per": 1, "points": 2}}
>>> rule_points(item, {"closed_late": 3})["points"], rule_points(item, {"closed_late": 7})["points"]
(6, 10)
>>> competition_ranks([90, 80, 80, 70])
[1, 2, 2, 4]
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.assessment import indicators as ind
from geogrid.assessment.periods import Period, parse_period
from geogrid.core.errors import GeogridError, Problem, conflict, not_found
from geogrid.core.jsonenc import dumps
from geogrid.core.settings import Settings
from geogrid.core.versioning import check_version

TARGET_KINDS = ("worker", "grid", "village", "town", "department")
PERIOD_KINDS = ("month", "quarter", "year")
TOTALS = (100, 1000)
ITEM_KINDS = ("deduction", "bonus")
STATES = ("computed", "reviewed", "frozen")
EDITORS = ("planner",)
ASSESSORS = ("planner", "inspector")
READERS = ("planner", "inspector", "grid_worker")
BOTTOM = 3  # 末三位
DEFAULT_LIST = 3  # red and black lists: top and bottom three unless published otherwise
MAX_ITEMS = 200
CODE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
PATROL_KEYS = ("patrols_due", "patrols_done", "patrols_missed", "patrol_rate")


@dataclass(frozen=True)
class Derived:
    """A value computed from indicators for the rules (defined here only)."""

    key: str
    zh: str
    en: str
    unit: str
    definition_zh: str
    definition_en: str
    compute: Callable[[dict], float | int | None]


def _difference(a: str, *rest: str) -> Callable[[dict], int | None]:
    def compute(values: dict) -> int | None:
        parts = [values.get(k) for k in (a, *rest)]
        if any(p is None for p in parts):
            return None
        return max(0, parts[0] - sum(parts[1:]))
    return compute


# The values rules may read besides INDICATORS. closed_on_time counts closed cases with no
# late step, so the rest of the closed cases are the ones closed late.
DERIVED: tuple[Derived, ...] = (
    Derived("closed_late", "逾期结案数", "Closed late", "count",
            "结案数 − 按期结案数（已结案但有环节超时的案件）", "closed − closed on time (closed cases with a late step)",
            _difference("closed", "closed_on_time")),
    Derived("unclosed", "未结案数", "Not closed", "count",
            "上报数 − 作废数 − 结案数", "received − voided − closed",
            _difference("received", "voided", "closed")),
)


def rule_keys() -> dict[str, tuple[str, str]]:
    """Every key a rule may name, with its unit and Chinese name."""
    out = {i.key: (i.unit, i.zh) for i in ind.INDICATORS}
    out.update({d.key: (d.unit, d.zh) for d in DERIVED})
    return out


def with_derived(values: dict) -> dict:
    """Indicator values plus the :data:`DERIVED` ones.

    >>> with_derived({"received": 5, "voided": 1, "closed": 3, "closed_on_time": 1})["closed_late"]
    2
    """
    out = dict(values)
    for d in DERIVED:
        out[d.key] = d.compute(values)
    return out


# --------------------------------------------------------------------------- items and rules


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _reporter(problems: list[Problem], i: int) -> Callable[..., None]:
    """Adds a problem of item ``i`` (its member, its code) to ``problems``."""
    def bad(message: str, member: str | None = None, code: str | None = None) -> None:
        where = f"items[{i}]"
        problems.append(Problem(message, field=f"{where}.{member}" if member else where, index=i, unit="item",
                                code=code))
    return bad


def check_items(items, total: int | None = None) -> list[Problem]:
    """Every problem with a scheme's items (all at once), each naming its item."""
    if not isinstance(items, list) or not items:
        return [Problem("items must be a non-empty list", field="items")]
    if len(items) > MAX_ITEMS:
        return [Problem(f"at most {MAX_ITEMS} items", field="items")]
    keys = rule_keys()
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        bad = _reporter(problems, i)
        if not isinstance(item, dict):
            bad("an item is an object with code, name, points, kind and rule")
            continue
        code = item.get("code")
        label = code if isinstance(code, str) else None
        unknown = sorted(set(item) - {"code", "name", "points", "kind", "rule"})
        if unknown:
            bad(f"unknown member {', '.join(unknown)}", code=label)
        if not isinstance(code, str) or not CODE.match(code):
            bad("code must be 1-32 letters, digits, _ . or -", "code", label)
        elif code in seen:
            bad(f"code {code!r} is repeated", "code", label)
        else:
            seen.add(code)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            bad("name is required (at most 200 characters)", "name", label)
        points = item.get("points")
        if not _number(points) or points <= 0:
            bad("points (the item's maximum) must be a number above 0", "points", label)
        elif total is not None and points > total:
            bad(f"points {points} exceed the scheme's total {total}", "points", label)
        if item.get("kind") not in ITEM_KINDS:
            bad(f"kind must be one of {', '.join(ITEM_KINDS)}", "kind", label)
        rule = item.get("rule")
        if rule == "manual":
            continue
        if not isinstance(rule, dict):
            bad('rule must be "manual" or an object {"indicator", "per" | "below" | "above", "points"}', "rule", label)
            continue
        rule = {k: v for k, v in rule.items() if v is not None}  # an absent member may come as null
        extra = sorted(set(rule) - {"indicator", "per", "below", "above", "points"})
        if extra:
            bad(f"unknown member {', '.join(extra)} in the rule", "rule", label)
        key = rule.get("indicator")
        unit = None
        if key not in keys:
            bad(f"unknown indicator {key!r}; known: {', '.join(keys)}", "rule.indicator", label)
        else:
            unit = keys[key][0]
        conditions = [c for c in ("per", "below", "above") if c in rule]
        if len(conditions) != 1:
            bad("a rule has exactly one of per, below, above", "rule", label)
        for c in conditions:
            value = rule[c]
            if not _number(value):
                bad(f"{c} must be a number", f"rule.{c}", label)
            elif c == "per" and value <= 0:
                bad("per must be above 0", "rule.per", label)
            elif c == "per" and unit == "rate":
                bad(f"{key} is a rate: use below or above, not per", "rule.per", label)
            elif c in ("below", "above") and unit == "rate" and not 0 <= value <= 1:
                bad(f"{key} is a rate between 0 and 1: write 0.9 for 90 %", f"rule.{c}", label)
        rule_points_ = rule.get("points")
        if not _number(rule_points_) or rule_points_ <= 0:
            bad("the rule's points must be a number above 0", "rule.points", label)
    return problems


def rule_points(item: dict, values: dict) -> dict:
    """The points a rule item takes (deduction) or gives (bonus) for ``values``, capped at
    the item's points, with the evidence: the rule, the value read, the points before the cap.
    A value that is None (no data) takes nothing.

    >>> item = {"code": "sat", "name": "满意率", "points": 5, "kind": "deduction",
    ...         "rule": {"indicator": "satisfaction_rate", "below": 0.9, "points": 5}}
    >>> [rule_points(item, {"satisfaction_rate": v})["points"] for v in (0.8, 0.9, None)]
    [5, 0, 0]
    """
    rule = item["rule"]
    value = values.get(rule["indicator"])
    if value is None:
        raw = 0
    elif "per" in rule:
        # Whole multiples; the rounding keeps 0.3 / 0.1 from falling to 2.
        raw = math.floor(round(value / rule["per"], 9)) * rule["points"]
    elif "below" in rule:
        raw = rule["points"] if value < rule["below"] else 0
    else:
        raw = rule["points"] if value > rule["above"] else 0
    points = min(raw, item["points"])
    return {"code": item["code"], "name": item["name"], "kind": item["kind"], "max": item["points"],
            "rule": rule, "indicator": rule["indicator"], "value": value, "raw": raw, "points": points,
            "capped": raw > item["points"]}


def manual_points(item: dict, entry: dict | None) -> dict:
    """A manual item's result: the points entered (none: 0) with reason and evidence."""
    out = {"code": item["code"], "name": item["name"], "kind": item["kind"], "max": item["points"],
           "rule": "manual", "points": 0, "entered": entry is not None}
    if entry is not None:
        out.update(points=entry["points"], reason=entry["reason"], evidence=entry["evidence"],
                   entered_by=entry["entered_by"], entered_at=entry["entered_at"])
    return out


def score_target(scheme: dict, values: dict, manual: dict[str, dict]) -> dict:
    """One target's items, deductions, bonuses and score under ``scheme`` (total and
    items), from its indicator ``values`` and its manual entries by item code."""
    items = [manual_points(i, manual.get(i["code"])) if i["rule"] == "manual" else rule_points(i, values)
             for i in scheme["items"]]
    deductions = round(sum(i["points"] for i in items if i["kind"] == "deduction"), 4)
    bonuses = round(sum(i["points"] for i in items if i["kind"] == "bonus"), 4)
    return {"items": items, "deductions": deductions, "bonuses": bonuses,
            "score": round(max(0.0, scheme["total"] - deductions + bonuses), 4)}


def _places(scores: Sequence[float], *, highest_first: bool) -> list[int]:
    keyed = [round(s, 4) for s in scores]
    first: dict[float, int] = {}
    for i, s in enumerate(sorted(keyed, reverse=highest_first)):
        first.setdefault(s, i + 1)
    return [first[s] for s in keyed]


def competition_ranks(scores: Sequence[float]) -> list[int]:
    """Competition ranks (1, 2, 2, 4) of ``scores``, highest first, in the given order."""
    return _places(scores, highest_first=True)


def bottom_ranks(scores: Sequence[float]) -> list[int]:
    """Places counted from the bottom (lowest = 1, ties share), in the given order.

    >>> bottom_ranks([90, 80, 70, 70, 60])
    [5, 4, 2, 2, 1]
    """
    return _places(scores, highest_first=False)


# --------------------------------------------------------------------------- schemes

_SCHEME = """
    SELECT s.id, s.area_id, a.code AS area, a.name AS area_name, s.name, s.total, s.target_kind, s.period_kind,
           s.items, s.version, s.created_at, s.updated_at, s.created_by
    FROM assessment_scheme s JOIN area a ON a.id = s.area_id
"""


def _scheme_row(session: Session, scheme_id: int, *, for_update: bool = False) -> dict | None:
    row = session.execute(text(_SCHEME + " WHERE s.id = :id" + (" FOR UPDATE OF s" if for_update else "")),
                          {"id": scheme_id}).mappings().first()
    return None if row is None else dict(row)


def _shown_scheme(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "area_id"}


def _reached_scheme(session: Session, scheme_id: int, roles, *, for_update: bool = False) -> dict:
    """The scheme, once the caller's scope over its area is checked (unknown and out of scope alike)."""
    row = _scheme_row(session, scheme_id, for_update=for_update)
    scopes.require_object(session, f"assessment scheme {scheme_id}", roles, None if row is None else [row["area_id"]])
    return row


def _check_scheme(data: dict, *, partial: bool) -> list[Problem]:
    problems = []
    if not partial or "name" in data:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            problems.append(Problem("name is required (at most 200 characters)", field="name"))
    if (not partial or "total" in data) and data.get("total") not in TOTALS:
        problems.append(Problem("total must be 100 or 1000 points", field="total"))
    if (not partial or "target_kind" in data) and data.get("target_kind") not in TARGET_KINDS:
        problems.append(Problem(f"target_kind must be one of {', '.join(TARGET_KINDS)}", field="target_kind"))
    if (not partial or "period_kind" in data) and data.get("period_kind") not in PERIOD_KINDS:
        problems.append(Problem(f"period_kind must be one of {', '.join(PERIOD_KINDS)}", field="period_kind"))
    return problems


def _plain_items(items: list[dict]) -> list[dict]:
    """Items as stored: the declared members only, rule "manual" or its members."""
    out = []
    for i in items:
        rule = i["rule"] if i["rule"] == "manual" else {k: v for k, v in i["rule"].items() if v is not None}
        out.append({"code": i["code"], "name": i["name"].strip(), "points": i["points"], "kind": i["kind"],
                    "rule": rule})
    return out


def create_scheme(session: Session, data: dict) -> dict:
    """Store a scheme (planners with scope on its area, a county or town code); every
    problem with ``data`` is reported at once (items by index and code), nothing stored."""
    scopes.require_role(session, *EDITORS)
    area = session.execute(text("SELECT id, code FROM area WHERE code = :c AND retired_at IS NULL"),
                           {"c": str(data.get("area") or "")}).first()
    if area is None:
        raise GeogridError(f"area {data.get('area')!r} does not exist", problems=[Problem("unknown area", field="area")])
    scopes.require_scope(session, EDITORS, [area.id], strict=False, action="define an assessment scheme for")
    problems = _check_scheme(data, partial=False)
    problems += check_items(data.get("items"), data.get("total") if data.get("total") in TOTALS else None)
    if problems:
        raise GeogridError("assessment scheme rejected; nothing was stored", problems=problems)
    if session.execute(text("SELECT 1 FROM assessment_scheme WHERE area_id = :a AND name = :n"),
                       {"a": area.id, "n": data["name"].strip()}).first():
        raise conflict(f"area {area.code} has a scheme named {data['name'].strip()!r} already")
    scheme_id = session.execute(text("""
        INSERT INTO assessment_scheme (area_id, name, total, target_kind, period_kind, items, created_by)
        VALUES (:area, :name, :total, :target, :period, CAST(:items AS jsonb), :by) RETURNING id
    """), {"area": area.id, "name": data["name"].strip(), "total": data["total"], "target": data["target_kind"],
           "period": data["period_kind"], "items": dumps(_plain_items(data["items"])),
           "by": scopes.actor(session)}).scalar_one()
    out = _shown_scheme(_scheme_row(session, scheme_id))
    audit.record(session, "create", "assessment_scheme", scheme_id, after=out)
    return out


def get_scheme(session: Session, scheme_id: int) -> dict:
    """A scheme, for staff with scope on its area."""
    return _shown_scheme(_reached_scheme(session, scheme_id, READERS))


def list_schemes(session: Session, *, area: str | None = None) -> list[dict]:
    """The schemes whose area lies in the caller's scope (``area``: that area's and those below it)."""
    scopes.require_role(session, *READERS)
    cond, params = scopes.scope_filter(session, READERS, "s.area_id")
    where = [cond]
    if area:
        where.append("(a.code = :area OR a.code LIKE :prefix)")
        params.update(area=area, prefix=area + "%")
    rows = session.execute(text(f"{_SCHEME} WHERE {' AND '.join(where)} ORDER BY a.code, s.name"), params).mappings()
    return [_shown_scheme(dict(r)) for r in rows]


def update_scheme(session: Session, scheme_id: int, changes: dict, expected_version: int | None = None) -> dict:
    """Edit a scheme's name, total, items (and its kinds while it has no period). Periods
    computed later use the new version; frozen ones keep the scheme they were computed with."""
    before = _shown_scheme(_reached_scheme(session, scheme_id, EDITORS, for_update=True))
    check_version("assessment scheme", scheme_id, current=before["version"], expected=expected_version)
    changes = {k: v for k, v in changes.items() if k in ("name", "total", "target_kind", "period_kind", "items")}
    problems = _check_scheme(changes, partial=True)
    total = changes.get("total", before["total"])
    if "items" in changes or "total" in changes:
        problems += check_items(changes.get("items", before["items"]), total if total in TOTALS else None)
    if problems:
        raise GeogridError(f"assessment scheme {scheme_id} was not changed", problems=problems)
    kinds = [k for k in ("target_kind", "period_kind") if k in changes and changes[k] != before[k]]
    if kinds and session.execute(text("SELECT 1 FROM assessment_period WHERE scheme_id = :id LIMIT 1"),
                                 {"id": scheme_id}).first():
        raise conflict(f"assessment scheme {scheme_id} has periods: its {' and '.join(kinds)} cannot change; "
                       f"define a new scheme instead")
    if "name" in changes:
        changes["name"] = changes["name"].strip()
        if changes["name"] != before["name"] and session.execute(text(
                "SELECT 1 FROM assessment_scheme WHERE area_id = (SELECT area_id FROM assessment_scheme WHERE id = :id) "
                "AND name = :n AND id <> :id"), {"id": scheme_id, "n": changes["name"]}).first():
            raise conflict(f"area {before['area']} has a scheme named {changes['name']!r} already")
    if not changes:
        return before
    values = dict(changes)
    if "items" in values:
        values["items"] = dumps(_plain_items(values["items"]))
    sets = [f"{k} = CAST(:{k} AS jsonb)" if k == "items" else f"{k} = :{k}" for k in values]
    session.execute(text(f"UPDATE assessment_scheme SET {', '.join(sets)}, version = version + 1, updated_at = now() "
                         f"WHERE id = :id"), {**values, "id": scheme_id})
    after = _shown_scheme(_scheme_row(session, scheme_id))
    audit.record(session, "update", "assessment_scheme", scheme_id, before, after)
    return after


# --------------------------------------------------------------------------- targets


_SUBTREE = """
    WITH RECURSIVE sub AS (
        SELECT a.id, a.code, a.name, a.level_key, a.layer_key, a.retired_at, 0 AS depth FROM area a WHERE a.id = :root
        UNION ALL
        SELECT a.id, a.code, a.name, a.level_key, a.layer_key, a.retired_at, sub.depth + 1
        FROM area a JOIN sub ON a.parent_id = sub.id WHERE sub.depth < 64
    )
"""


def _units(session: Session, kind: str, root: int, period: Period, lo: dt.datetime,
           hi: dt.datetime) -> dict[str, dict]:
    """The units of ``kind`` of the area ``root`` for ``period`` (``lo`` to ``hi``): key ->
    name and areas. Places count when a version of their boundary was in force during the
    period: a grid split or retired in it counts, one drawn afterwards does not."""
    params = {"root": root, "lo": lo, "hi": hi, "start": period.start, "end": period.end}

    def live(alias: str) -> str:
        return (f"EXISTS (SELECT 1 FROM boundary b WHERE b.area_id = {alias}.id "
                f"AND b.valid && tstzrange(:lo, :hi))")

    if kind == "grid":
        # Leaf grids of every net (what patrols count too): no child on their net in the period.
        sql = _SUBTREE + f"""SELECT s.code AS key, s.name, ARRAY[s.id] AS area_ids FROM sub s
            WHERE s.layer_key <> 'admin' AND {live("s")} AND NOT EXISTS (
                SELECT 1 FROM area c WHERE c.parent_id = s.id AND c.layer_key = s.layer_key AND {live("c")})"""
    elif kind in ("village", "town"):
        sql = _SUBTREE + f"""SELECT s.code AS key, s.name, ARRAY[s.id] AS area_ids FROM sub s
            WHERE s.layer_key = 'admin' AND s.level_key = :level AND {live("s")}"""
        params["level"] = kind
    elif kind == "worker":
        sql = _SUBTREE + """SELECT p.id::text AS key, p.name, array_agg(DISTINCT g.area_id ORDER BY g.area_id) AS area_ids
            FROM assignment g JOIN sub s ON s.id = g.area_id JOIN person p ON p.id = g.person_id
            WHERE starts_with(g.role_key, 'grid_worker') AND g.start_date < :end
              AND (g.end_date IS NULL OR g.end_date >= :start)
            GROUP BY p.id, p.name"""
    else:  # departments answer for the whole area of the scheme
        sql = "SELECT DISTINCT department AS key, department AS name, ARRAY[:root] AS area_ids FROM category"
    return {r.key: {"name": r.name, "area_ids": list(r.area_ids)} for r in session.execute(text(sql), params)}


def _empty_values(kind: str) -> dict:
    """The indicator values of a target without cases or patrols: counts 0, the rest None
    (patrols are not counted per person or department)."""
    out = {i.key: (0 if i.unit == "count" else None) for i in ind.INDICATORS}
    if kind not in ind.PLACES:
        out.update({k: None for k in PATROL_KEYS})
    return out


def _targets(session: Session, settings: Settings, scheme: dict, period: Period, now: dt.datetime) -> list[dict]:
    """Every target of the period with its indicator values (and derived ones)."""
    kind = scheme["target_kind"]
    tz = ZoneInfo(settings.timezone)
    lo, hi = (dt.datetime.combine(day, dt.time(), tzinfo=tz) for day in (period.start, period.end))
    units = _units(session, kind, scheme["area_id"], period, lo, hi)
    found = ind.indicators(session, settings, area=scheme["area"], start=period.start, end=period.end, by=[kind],
                           now=now)
    rows = {str(r[kind]): r for r in found["rows"] if r[kind] is not None}
    if kind in ("worker", "department"):
        # Cases name these even when the unit list does not (a post that ended, a renamed department).
        missing = [k for k in rows if k not in units]
        if kind == "worker" and missing:
            for r in session.execute(text(_SUBTREE + """
                    SELECT g.person_id::text AS key, array_agg(DISTINCT g.area_id ORDER BY g.area_id) AS area_ids
                    FROM assignment g JOIN sub s ON s.id = g.area_id
                    WHERE g.person_id = ANY(:ids) GROUP BY g.person_id"""),
                    {"root": scheme["area_id"], "ids": [int(k) for k in missing]}):
                units[r.key] = {"name": rows[r.key][f"{kind}_name"], "area_ids": list(r.area_ids)}
        for k in missing:
            units.setdefault(k, {"name": rows[k][f"{kind}_name"], "area_ids": [scheme["area_id"]]})
    keys = set(ind.by_key())
    out = []
    for key, unit in units.items():
        row = rows.get(key)
        values = {k: row[k] for k in keys} if row else _empty_values(kind)
        out.append({"target": key, "name": unit["name"] or key, "area_ids": unit["area_ids"],
                    "indicator_values": with_derived(values)})
    return out


# --------------------------------------------------------------------------- periods

_PERIOD = """
    SELECT p.id, p.scheme_id, p.name, p.start_date, p.end_date, p.state, p.published, p.scheme_version, p.scheme,
           p.red_n, p.black_n, p.measured_at, p.computed_at, p.computed_by, p.reviewed_at, p.reviewed_by,
           p.frozen_at, p.frozen_by, p.published_at, p.published_by,
           (SELECT count(*) FROM assessment_score x WHERE x.period_id = p.id) AS targets
    FROM assessment_period p
"""


def _period_row(session: Session, scheme_id: int, start: dt.date, *, for_update: bool = False) -> dict | None:
    row = session.execute(text(_PERIOD + " WHERE p.scheme_id = :s AND p.start_date = :start"
                               + (" FOR UPDATE OF p" if for_update else "")),
                          {"s": scheme_id, "start": start}).mappings().first()
    return None if row is None else dict(row)


def _shown_period(row: dict) -> dict:
    return {"scheme_id": row["scheme_id"], "name": row["name"], "kind": row["scheme"]["period_kind"],
            "start": row["start_date"], "end": row["end_date"], **{k: row[k] for k in (
                "state", "published", "scheme_version", "red_n", "black_n", "measured_at", "computed_at",
                "computed_by", "reviewed_at", "reviewed_by", "frozen_at", "frozen_by", "published_at",
                "published_by", "targets")},
            "scheme": row["scheme"]}


def _period_of(scheme: dict, name: str) -> Period:
    period = parse_period(name)
    if period.kind != scheme["period_kind"]:
        raise GeogridError(f"assessment scheme {scheme['id']} is assessed by {scheme['period_kind']}: "
                           f"{name!r} is a {period.kind}", problems=[Problem("wrong kind of period", field="period")])
    return period


def _manual_entries(session: Session, period_id: int) -> dict[str, dict[str, dict]]:
    rows = session.execute(text("SELECT target, item_code, points, reason, evidence, entered_by, entered_at "
                                "FROM assessment_manual WHERE period_id = :p"), {"p": period_id}).mappings()
    out: dict[str, dict[str, dict]] = {}
    for r in rows:
        out.setdefault(r["target"], {})[r["item_code"]] = dict(r)
    return out


def _rank(results: list[dict]) -> None:
    """Set each result's rank (competition ranking by score; ties share)."""
    for r, rank in zip(results, competition_ranks([r["score"] for r in results]), strict=True):
        r["rank"] = rank


def _store_scores(session: Session, period_id: int, snapshot: dict, targets: list[dict], *, insert: bool) -> None:
    """Score every target from its stored values and manual entries, rank, and write the rows."""
    manual = _manual_entries(session, period_id)
    results = []
    for t in targets:
        results.append({**t, **score_target(snapshot, t["indicator_values"], manual.get(t["target"], {}))})
    _rank(results)
    params = [{"p": period_id, "target": r["target"], "name": r["name"], "area_ids": r["area_ids"],
               "values": dumps(r["indicator_values"]), "items": dumps(r["items"]), "d": r["deductions"],
               "b": r["bonuses"], "score": r["score"], "rank": r["rank"]} for r in results]
    if not params:
        return
    if insert:
        session.execute(text("""
            INSERT INTO assessment_score (period_id, target, name, area_ids, indicator_values, items, deductions,
                                          bonuses, score, rank)
            VALUES (:p, :target, :name, :area_ids, CAST(:values AS jsonb), CAST(:items AS jsonb), :d, :b, :score, :rank)
        """), params)
    else:
        session.execute(text("""
            UPDATE assessment_score SET items = CAST(:items AS jsonb), deductions = :d, bonuses = :b, score = :score,
                   rank = :rank
            WHERE period_id = :p AND target = :target
        """), params)


def _snapshot(scheme: dict) -> dict:
    return {k: scheme[k] for k in ("name", "total", "target_kind", "period_kind", "items")}


def _frozen(scheme: dict, period: dict) -> GeogridError:
    return conflict(f"period {period['name']} of assessment scheme {scheme['id']} is frozen: its results never "
                    f"change; a correction counts in the period its case belongs to", state=period["state"])


def compute_period(session: Session, settings: Settings, scheme_id: int, period: str,
                   now: dt.datetime | None = None) -> dict:
    """(Re)compute a period of a scheme (planners with scope on its area): the indicators of
    every target over the period, each item's points with evidence, scores and ranks, stored
    with a copy of the scheme. A reviewed period goes back to computed; a frozen one is
    refused (409). ``now``: the moment "overdue now" is measured at (default now)."""
    scheme = _reached_scheme(session, scheme_id, EDITORS)
    p = _period_of(scheme, period)
    now = now or dt.datetime.now(dt.UTC)
    actor = scopes.actor(session)
    created = session.execute(text("""
        INSERT INTO assessment_period (scheme_id, name, start_date, end_date, scheme_version, scheme, measured_at,
                                       computed_at, computed_by)
        VALUES (:s, :name, :start, :end, :version, CAST(:scheme AS jsonb), :now, now(), :by)
        ON CONFLICT (scheme_id, start_date) DO NOTHING RETURNING id
    """), {"s": scheme_id, "name": p.name, "start": p.start, "end": p.end, "version": scheme["version"],
           "scheme": dumps(_snapshot(scheme)), "now": now, "by": actor}).first()
    before = _period_row(session, scheme_id, p.start, for_update=True)
    if before["state"] == "frozen":
        raise _frozen(scheme, before)
    targets = _targets(session, settings, scheme, p, now)
    session.execute(text("""
        UPDATE assessment_period SET state = 'computed', scheme_version = :version, scheme = CAST(:scheme AS jsonb),
               measured_at = :now, computed_at = now(), computed_by = :by, reviewed_at = NULL, reviewed_by = NULL
        WHERE id = :id
    """), {"id": before["id"], "version": scheme["version"], "scheme": dumps(_snapshot(scheme)), "now": now,
           "by": actor})
    session.execute(text("DELETE FROM assessment_score WHERE period_id = :p"), {"p": before["id"]})
    _store_scores(session, before["id"], _snapshot(scheme), targets, insert=True)
    after = _shown_period(_period_row(session, scheme_id, p.start))
    audit.record(session, "compute", "assessment_period", f"{scheme_id}/{p.name}",
                 None if created else {k: before[k] for k in ("state", "scheme_version", "targets")},
                 {k: after[k] for k in ("state", "scheme_version", "targets", "measured_at")})
    return after


def _existing_period(session: Session, scheme: dict, period: str, *, for_update: bool = False) -> tuple[Period, dict]:
    p = _period_of(scheme, period)
    row = _period_row(session, scheme["id"], p.start, for_update=for_update)
    if row is None:
        raise not_found(f"period {p.name} of assessment scheme {scheme['id']} (not computed yet)")
    return p, row


def _move(session: Session, scheme_id: int, period: str, *, frm: str, to: str, stamp: str,
          settings: Settings | None = None) -> dict:
    scheme = _reached_scheme(session, scheme_id, EDITORS)
    p, row = _existing_period(session, scheme, period, for_update=True)
    if row["state"] == "frozen":
        raise _frozen(scheme, row)
    if row["state"] != frm:
        raise conflict(f"period {p.name} of assessment scheme {scheme_id} is {row['state']}, not {frm}: "
                       f"it cannot become {to}", state=row["state"])
    if to == "frozen":
        today = dt.datetime.now(ZoneInfo(settings.timezone)).date()
        if today < p.end:
            raise conflict(f"period {p.name} runs until {p.end - dt.timedelta(days=1)}: it can be frozen once it "
                           f"has ended", state=row["state"])
    session.execute(text(f"UPDATE assessment_period SET state = :to, {stamp}_at = now(), {stamp}_by = :by "
                         f"WHERE id = :id"), {"to": to, "by": scopes.actor(session), "id": row["id"]})
    after = _shown_period(_period_row(session, scheme_id, p.start))
    audit.record(session, to, "assessment_period", f"{scheme_id}/{p.name}", {"state": row["state"]},
                 {"state": to})
    return after


def review_period(session: Session, scheme_id: int, period: str) -> dict:
    """Mark a computed period reviewed (planners with scope on the scheme's area)."""
    return _move(session, scheme_id, period, frm="computed", to="reviewed", stamp="reviewed")


def freeze_period(session: Session, settings: Settings, scheme_id: int, period: str) -> dict:
    """Freeze a reviewed period that has ended: its stored results never change again."""
    return _move(session, scheme_id, period, frm="reviewed", to="frozen", stamp="frozen", settings=settings)


def publish_period(session: Session, scheme_id: int, period: str, *, red: int = DEFAULT_LIST,
                   black: int = DEFAULT_LIST) -> dict:
    """Publish the red/black list (top ``red``, bottom ``black``) of a frozen period (admins; 409 otherwise)."""
    scopes.require_role(session, "admin")
    scheme = _scheme_row(session, scheme_id)
    if scheme is None:
        raise not_found(f"assessment scheme {scheme_id}")
    problems = [Problem("must be between 1 and 50", field=f) for f, v in (("red", red), ("black", black))
                if not (isinstance(v, int) and 1 <= v <= 50)]
    if problems:
        raise GeogridError("the red/black list cannot be published so", problems=problems)
    p, row = _existing_period(session, scheme, period, for_update=True)
    if row["state"] != "frozen":
        raise conflict(f"period {p.name} of assessment scheme {scheme_id} is {row['state']}: only a frozen period "
                       f"is published", state=row["state"])
    session.execute(text("UPDATE assessment_period SET published = true, published_at = now(), published_by = :by, "
                         "red_n = :red, black_n = :black WHERE id = :id"),
                    {"by": scopes.actor(session), "red": red, "black": black, "id": row["id"]})
    after = _shown_period(_period_row(session, scheme_id, p.start))
    audit.record(session, "publish", "assessment_period", f"{scheme_id}/{p.name}",
                 {k: row[k] for k in ("published", "red_n", "black_n")},
                 {k: after[k] for k in ("published", "red_n", "black_n")})
    return after


def list_periods(session: Session, scheme_id: int) -> list[dict]:
    """The periods of a scheme, newest first (staff with scope on its area)."""
    scheme = _reached_scheme(session, scheme_id, READERS)
    rows = session.execute(text(_PERIOD + " WHERE p.scheme_id = :s ORDER BY p.start_date DESC"),
                           {"s": scheme["id"]}).mappings()
    return [_shown_period(dict(r)) for r in rows]


# --------------------------------------------------------------------------- manual items


def _scheme_for(session: Session, scheme_id: int, roles) -> tuple[dict, bool, str]:
    """The scheme for a caller with one of ``roles``, whether its whole area is in their
    scope, and its name in messages; an unknown scheme answers like one out of scope."""
    scopes.require_role(session, *roles)
    scheme = _scheme_row(session, scheme_id)
    what = f"assessment scheme {scheme_id}"
    if scheme is None:
        scopes.require_object(session, what, roles, None)
    assert scheme is not None
    return scheme, scopes.in_scope(session, roles, [scheme["area_id"]]), what


def enter_manual(session: Session, scheme_id: int, period: str, data: dict) -> dict:
    """Enter (or replace) the points of a manual item for one target, with a reason and
    evidence (a URL or text), audited. Assessors are planners and inspectors with scope on
    the target's area (on the scheme's area for a department). The points lie between 0
    and the item's points; the period must be computed and not frozen (409); a reviewed
    period goes back to computed. Returns the target's result."""
    scheme, full, what = _scheme_for(session, scheme_id, ASSESSORS)
    p = _period_of(scheme, period)
    row = _period_row(session, scheme_id, p.start, for_update=True)
    target_key = str(data.get("target") or "")
    target = None if row is None else session.execute(text(
        "SELECT target, name, area_ids FROM assessment_score WHERE period_id = :p AND target = :t"),
        {"p": row["id"], "t": target_key}).mappings().first()
    if not full:
        places = None if target is None or scheme["target_kind"] == "department" else list(target["area_ids"])
        if not places or not scopes.in_scope(session, ASSESSORS, places):
            raise scopes.hidden(what)
    if row is None:
        raise conflict(f"period {p.name} of {what} has not been computed yet: compute it first")
    if row["state"] == "frozen":
        raise _frozen(scheme, row)
    if target is None:
        raise GeogridError(f"{target_key!r} is not a target of period {p.name} of {what}",
                           problems=[Problem("unknown target", field="target")])
    items = {i["code"]: i for i in row["scheme"]["items"]}
    item = items.get(data.get("item"))
    problems = []
    if item is None or item["rule"] != "manual":
        manual = [c for c, i in items.items() if i["rule"] == "manual"] or ["(none)"]
        problems.append(Problem(f"{data.get('item')!r} is not a manual item of the scheme; manual items: "
                                f"{', '.join(manual)}", field="item"))
    points = data.get("points")
    if not _number(points) or points < 0 or (item is not None and points > item["points"]):
        limit = f" and {item['points']}" if item is not None else ""
        problems.append(Problem(f"points must be a number between 0{limit}", field="points"))
    for member in ("reason", "evidence"):
        if not isinstance(data.get(member), str) or not data[member].strip():
            problems.append(Problem(f"{member} is required", field=member))
    if problems:
        raise GeogridError(f"manual item for {target_key} rejected; nothing was stored", problems=problems)
    entry = {"points": points, "reason": data["reason"].strip(), "evidence": data["evidence"].strip()}
    key = f"{scheme_id}/{p.name}/{target_key}/{item['code']}"
    old = session.execute(text("SELECT points, reason, evidence, entered_by FROM assessment_manual "
                               "WHERE period_id = :p AND target = :t AND item_code = :c"),
                          {"p": row["id"], "t": target_key, "c": item["code"]}).mappings().first()
    session.execute(text("""
        INSERT INTO assessment_manual (period_id, target, item_code, points, reason, evidence, entered_by)
        VALUES (:p, :t, :c, :points, :reason, :evidence, :by)
        ON CONFLICT (period_id, target, item_code) DO UPDATE SET points = EXCLUDED.points, reason = EXCLUDED.reason,
            evidence = EXCLUDED.evidence, entered_by = EXCLUDED.entered_by, entered_at = now()
    """), {"p": row["id"], "t": target_key, "c": item["code"], **entry, "by": scopes.actor(session)})
    if row["state"] == "reviewed":  # the results changed since they were reviewed
        session.execute(text("UPDATE assessment_period SET state = 'computed', reviewed_at = NULL, reviewed_by = NULL "
                             "WHERE id = :id"), {"id": row["id"]})
    stored = session.execute(text("SELECT target, name, area_ids, indicator_values FROM assessment_score "
                                  "WHERE period_id = :p"), {"p": row["id"]}).mappings()
    _store_scores(session, row["id"], row["scheme"], [dict(r) for r in stored], insert=False)
    audit.record(session, "manual", "assessment_period", key, None if old is None else dict(old),
                 {**entry, "entered_by": scopes.actor(session)})
    return _full_rows(session, row["id"], [target_key])[0]


# --------------------------------------------------------------------------- reading results


def _full_rows(session: Session, period_id: int, targets: list[str] | None = None) -> list[dict]:
    params: dict = {"p": period_id}
    cond = ""
    if targets is not None:
        cond, params["t"] = " AND target = ANY(:t)", targets
    rows = session.execute(text(f"SELECT rank, target, name, score, deductions, bonuses, items, indicator_values, "
                                f"area_ids FROM assessment_score WHERE period_id = :p{cond} "
                                f"ORDER BY rank, name COLLATE \"C\", target"), params).mappings()
    return [dict(r) for r in rows]


def _visible(session: Session, rows: list[dict], full: bool) -> list[dict]:
    """The rows a caller sees: all with scope on the scheme's area, else the targets whose
    areas lie in their scope."""
    if full:
        return rows
    outside = scopes.outside_scope(session, READERS, {a for r in rows for a in r["area_ids"]})
    return [r for r in rows if any(a not in outside for a in r["area_ids"])]


def _readable(session: Session, scheme_id: int, period: str) -> tuple[dict, dict, list[dict]]:
    """Scheme, period and the result rows the caller may read (403 when none, the same
    answer as for a scheme that does not exist)."""
    scheme, full, what = _scheme_for(session, scheme_id, READERS)
    p = _period_of(scheme, period)
    row = _period_row(session, scheme_id, p.start)
    rows = [] if row is None else _visible(session, _full_rows(session, row["id"]), full)
    if not full and not rows:
        raise scopes.hidden(what)
    if row is None:
        raise not_found(f"period {p.name} of {what} (not computed yet)")
    return scheme, row, rows


def get_period(session: Session, scheme_id: int, period: str) -> dict:
    """A period's results: every target in the caller's scope with its score, rank, items
    (points and evidence, manual ones with reason and evidence) and the indicator values read."""
    scheme, row, rows = _readable(session, scheme_id, period)
    for r in rows:
        r.pop("area_ids")
    return {"scheme": _shown_scheme(scheme), "period": _shown_period(row), "rows": rows}


def _ranking(scheme: dict, period: dict, rows: list[dict], shown: list[dict], red: int, black: int) -> dict:
    """The ranking shape: rows (rank order), bottom three, red and black lists, computed on
    the whole ranking ``rows`` and restricted to the rows ``shown``."""
    keep = {r["target"] for r in shown}
    plain = [{"rank": r["rank"], "target": r["target"], "name": r["name"], "score": r["score"],
              "deductions": r["deductions"], "bonuses": r["bonuses"]} for r in rows]
    from_bottom = bottom_ranks([r["score"] for r in plain])
    bottom = [r for r, b in zip(plain, from_bottom, strict=True) if b <= BOTTOM and r["target"] in keep]
    black_rows = [r for r, b in zip(plain, from_bottom, strict=True) if b <= black and r["target"] in keep]
    shown_rows = [r for r in plain if r["target"] in keep]
    return {"scheme": {"id": scheme["id"], "name": period["scheme"]["name"],
                       "target_kind": period["scheme"]["target_kind"], "total": period["scheme"]["total"]},
            "period": {"name": period["name"], "start": period["start_date"], "end": period["end_date"],
                       "state": period["state"], "published": period["published"]},
            "rows": shown_rows, "bottom": bottom, "red": [r for r in shown_rows if r["rank"] <= red],
            "black": black_rows}


def ranking(session: Session, scheme_id: int, period: str, *, red: int | None = None,
            black: int | None = None) -> dict:
    """A period's ranking: rows by rank, the bottom three (末三位: the last three places,
    ties included), the red list (top ``red``) and the black list (bottom ``black``; by
    default the numbers published, else 3), for the targets in the caller's scope."""
    scheme, row, rows = _readable(session, scheme_id, period)
    everything = _full_rows(session, row["id"])
    return _ranking(scheme, row, everything, rows, red or row["red_n"], black or row["black_n"])


def latest_ranking(session: Session, area: str, start: dt.date, end: dt.date) -> dict | None:
    """The ranking of the scheme owned by ``area`` (or its nearest ancestor having one)
    whose period is ``[start, end)``, preferring frozen over reviewed over computed
    periods (then the oldest scheme); None when there is none. The caller needs staff scope on ``area``; from an
    ancestor's scheme only the targets within ``area`` are listed (their ranks, bottom
    three and lists those of the whole ranking). Same shape as :func:`ranking`."""
    found = session.execute(text("SELECT id FROM area WHERE code = :c"), {"c": area}).first()
    scopes.require_object(session, f"area {area}", READERS, None if found is None else [found.id])
    best = session.execute(text("""
        WITH RECURSIVE up(id, depth) AS (
            SELECT CAST(:id AS integer), 0
            UNION ALL SELECT a.parent_id, up.depth + 1 FROM area a JOIN up ON a.id = up.id
            WHERE a.parent_id IS NOT NULL AND up.depth < 64)
        SELECT s.id AS scheme_id, up.depth FROM up JOIN assessment_scheme s ON s.area_id = up.id
        JOIN assessment_period p ON p.scheme_id = s.id AND p.start_date = :start AND p.end_date = :end
        ORDER BY up.depth, CASE p.state WHEN 'frozen' THEN 0 WHEN 'reviewed' THEN 1 ELSE 2 END, s.id
        LIMIT 1
    """), {"id": found.id, "start": start, "end": end}).first()
    if best is None:
        return None
    scheme = _scheme_row(session, best.scheme_id)
    period = _period_row(session, best.scheme_id, start)
    rows = _full_rows(session, period["id"])
    shown = rows
    if best.depth > 0:
        within = session.execute(text(_SUBTREE + "SELECT id FROM sub"), {"root": found.id}).scalars().all()
        inside = set(within)
        shown = [r for r in rows if inside.intersection(r["area_ids"])
                 and scheme["target_kind"] != "department"]
    return _ranking(scheme, period, rows, shown, period["red_n"], period["black_n"])


# --------------------------------------------------------------------------- the public board


def published_lists(session: Session, area: str, period: str | None = None) -> dict:
    """The published red/black lists of the schemes of ``area`` and the areas below it (no
    account needed): the latest published period of each scheme, or the one named
    ``period``. Only public fields: unit name (a grid worker's only where the person made
    it public), score, rank, the period and the scheme's name."""
    found = session.execute(text("SELECT id, code, name FROM area WHERE code = :c"), {"c": area}).first()
    if found is None:
        raise not_found(f"area {area}")
    params: dict = {"root": found.id}
    cond = ""
    if period:
        parsed = parse_period(period)
        cond, params["start"], params["kind"] = " AND p.start_date = :start AND s.period_kind = :kind", \
            parsed.start, parsed.kind
    periods = session.execute(text(_SUBTREE + f"""
        SELECT DISTINCT ON (s.id) p.id, p.name, p.start_date, p.end_date, p.published_at, p.red_n, p.black_n,
               p.scheme->>'name' AS scheme_name, p.scheme->>'target_kind' AS target_kind
        FROM assessment_period p JOIN assessment_scheme s ON s.id = p.scheme_id JOIN sub ON sub.id = s.area_id
        WHERE p.published{cond}
        ORDER BY s.id, p.start_date DESC
    """), params).mappings().all()
    lists = []
    for p in sorted(periods, key=lambda r: (r["start_date"], r["scheme_name"]), reverse=True):
        rows = session.execute(text("""
            SELECT x.rank, x.score, CASE WHEN :worker THEN (CASE WHEN pe.name_public THEN pe.name END) ELSE x.name END
                   AS name
            FROM assessment_score x
            LEFT JOIN person pe ON :worker AND pe.id::text = x.target
            WHERE x.period_id = :p ORDER BY x.rank, x.name COLLATE "C", x.target
        """), {"p": p["id"], "worker": p["target_kind"] == "worker"}).mappings().all()
        plain = [{"rank": r["rank"], "name": r["name"], "score": r["score"]} for r in rows]
        from_bottom = bottom_ranks([r["score"] for r in plain])
        lists.append({"scheme": p["scheme_name"], "target_kind": p["target_kind"], "period": p["name"],
                      "start": p["start_date"], "end": p["end_date"],
                      "red": [r for r in plain if r["rank"] <= p["red_n"]],
                      "black": [r for r, b in zip(plain, from_bottom, strict=True) if b <= p["black_n"]]})
    return {"area": {"code": found.code, "name": found.name}, "lists": lists}
