"""Assessment indicators (考核指标) over the case register and patrols.

Every indicator is defined once, in :data:`INDICATORS` (name, unit and definition in
Chinese and English); the API, the dashboard, the exports and the score sheets all read
:func:`indicators`, and README's table is written from the same list.

Cases are counted by cohort: the cases *reported* in the period ``[start, end)``, in the
area's subtree (where they happened: their grid, or the territorial authority of a blind
spot), with their state as of now. Patrols count the patrols *made* in the period on
the environment grids of the subtree against the number due by the patrol frequency.

>>> [i.key for i in INDICATORS][:4]
['received', 'accepted', 'closed', 'closure_rate']
>>> by_key()["on_time_rate"].zh
'按期结案率'
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.settings import Settings
from geogrid.environment.sources import ENVIRONMENT
from geogrid.incidents import steps
from geogrid.incidents.states import CENTRE
from geogrid.incidents.steps import COUNTED, SATISFACTION_SCORES


@dataclass(frozen=True)
class Indicator:
    key: str
    zh: str
    en: str
    unit: str  # "count", "rate" (0-1), "hours", "score"
    definition_zh: str
    definition_en: str

    def name(self, lang: str = "zh") -> str:
        """The indicator's name in ``lang``."""
        return self.en if lang == "en" else self.zh

    def definition(self, lang: str = "zh") -> str:
        """The indicator's definition in ``lang``."""
        return self.definition_en if lang == "en" else self.definition_zh


INDICATORS: tuple[Indicator, ...] = (
    Indicator("received", "上报数", "Received", "count",
              "期内上报（接收）的案件数", "cases reported in the period"),
    Indicator("accepted", "受理数", "Accepted", "count",
              "其中已受理的案件数（受理环节已完成）", "of these, cases whose accept step was done"),
    Indicator("closed", "结案数", "Closed", "count", "其中已结案的案件数", "of these, cases closed"),
    Indicator("closure_rate", "结案率", "Closure rate", "rate",
              "结案数 ÷ 应结案数（上报数 − 作废数）", "closed ÷ cases due to close (received − voided)"),
    Indicator("closed_on_time", "按期结案数", "Closed on time", "count",
              "已结案且每个环节都在时限内完成的案件数", "closed cases whose every step ended within its time limit"),
    Indicator("on_time_rate", "按期结案率", "On-time closure rate", "rate",
              "按期结案数 ÷ 应结案数（上报数 − 作废数）", "closed on time ÷ (received − voided)"),
    Indicator("overdue_now", "当前超期数", "Overdue now", "count",
              "未结案、未挂账且当前环节已过时限的案件数", "open cases (not parked) past the deadline of their step"),
    Indicator("overdue_ever", "曾超期数", "Ever overdue", "count",
              "有环节超时完成或当前超期的案件数", "cases with a step that ended late, or overdue now"),
    Indicator("avg_hours", "平均处置时长", "Average handling time", "hours",
              "已结案案件各环节用时之和的平均值（工作小时，不含挂账时间）",
              "mean working hours of the steps of closed cases (parked time excluded)"),
    Indicator("p90_hours", "处置时长P90", "Handling time p90", "hours",
              "已结案案件处置时长的第90百分位（工作小时）", "90th percentile of the handling time of closed cases"),
    Indicator("escalations", "逐级上报次数", "Escalations", "count",
              "案件被提交上一级处理的次数（含超时自动上报）", "times cases went one level up (automatic ones included)"),
    Indicator("voided", "作废数", "Voided", "count", "作废（重复或无效）的案件数", "cases voided (duplicate or invalid)"),
    Indicator("parked", "挂账数", "Parked", "count", "曾挂账的案件数", "cases parked at least once"),
    Indicator("satisfaction_mean", "满意度均值", "Mean satisfaction", "score",
              "已评价案件的满意度平均分（0–10）", "mean satisfaction (0-10) of rated cases"),
    Indicator("satisfaction_rate", "满意率", "Satisfaction rate", "rate",
              "满意度达到满意线的案件 ÷ 已评价案件", "rated cases at or above the satisfied mark ÷ rated cases"),
    Indicator("callbacks", "回访数", "Call-backs", "count",
              "已结案并取得评价的案件数", "closed cases with a satisfaction rating"),
    Indicator("callback_rate", "回访率", "Call-back rate", "rate", "回访数 ÷ 结案数", "call-backs ÷ closed"),
    Indicator("first_reports", "首报数", "First reports", "count",
              "由网格员巡查首先上报的案件数", "cases first reported by the grid's own patrol"),
    Indicator("first_report_rate", "首报率", "First-report rate", "rate", "首报数 ÷ 上报数",
              "first reports ÷ received"),
    Indicator("patrols_due", "应巡查次数", "Patrols due", "count",
              "期内环境网格按巡查频次应巡查的次数", "patrols due on the environment grids by their frequency"),
    Indicator("patrols_done", "已巡查次数", "Patrols done", "count", "期内实际巡查次数", "patrols made in the period"),
    Indicator("patrols_missed", "漏巡次数", "Patrols missed", "count",
              "各网格应巡查次数减实际次数之和（不为负）", "sum over grids of due − done (not below zero)"),
    Indicator("patrol_rate", "巡查完成率", "Patrol completion", "rate",
              "（应巡查 − 漏巡）÷ 应巡查", "(due − missed) ÷ due"),
)


def by_key() -> dict[str, Indicator]:
    """The indicators by key."""
    return {i.key: i for i in INDICATORS}


READERS = CENTRE + ("grid_worker",)
PLACES = ("grid", "village", "town")
TIMES = ("day", "week", "month", "quarter", "year")
MONTHLY = PLACES + ("month", "quarter", "year")
_STEP = {"day": "1 day", "week": "1 week", "month": "1 month", "quarter": "3 months", "year": "1 year"}
GROUPS = PLACES + ("department", "category", "worker") + TIMES
GROUP_NAMES = {"grid": ("网格", "Grid"), "village": ("村/社区", "Village"), "town": ("镇/街道", "Town"),
               "department": ("部门", "Department"), "category": ("类别", "Category"), "worker": ("网格员", "Grid worker"),
               "day": ("日", "Day"), "week": ("周", "Week"), "month": ("月", "Month"), "quarter": ("季度", "Quarter"),
               "year": ("年", "Year")}

# Patrol groups (places only): SQL of the key and of its label over the subtree rows ``s``.
_PATROL_KEYS = {"grid": ("s.code", "s.name"), "village": ("v.code", "v.name"), "town": ("t.code", "t.name")}

_SUBTREE = """
    WITH RECURSIVE sub AS (
        SELECT a.id, a.code, a.name, a.level_key, a.layer_key, a.retired_at, 0 AS depth,
               CASE WHEN a.level_key = 'village' THEN a.id ELSE :root_village END AS village_id,
               CASE WHEN a.level_key = 'town' THEN a.id ELSE :root_town END AS town_id
        FROM area a WHERE a.id = :root
        UNION ALL
        SELECT a.id, a.code, a.name, a.level_key, a.layer_key, a.retired_at, sub.depth + 1,
               CASE WHEN a.level_key = 'village' THEN a.id ELSE sub.village_id END,
               CASE WHEN a.level_key = 'town' THEN a.id ELSE sub.town_id END
        FROM area a JOIN sub ON a.parent_id = sub.id WHERE sub.depth < 64
    )
"""


def parse_groupings(spec: str | None) -> list[str]:
    """The groupings a comma-separated request names (checked by :func:`indicators`).

    >>> parse_groupings(" grid, month ,")
    ['grid', 'month']
    """
    return [b.strip() for b in (spec or "").split(",") if b.strip()]


def check_request(by: list[str], start: dt.date, end: dt.date) -> None:
    """422 for an unknown grouping or an empty date range."""
    problems = [Problem(f"unknown grouping {b!r}; use {', '.join(GROUPS)}", field="by") for b in by if b not in GROUPS]
    if len(set(by)) != len(by):
        problems.append(Problem("a grouping is repeated", field="by"))
    if end <= start:
        problems.append(Problem(f"the period is empty: {start} to {end} (the end is exclusive)", field="to"))
    if problems:
        raise GeogridError("indicators cannot be computed", problems=problems)


def resolve_area(session: Session, code: str) -> dict:
    """The area the indicators are for, after the caller's scope check (READERS): its id,
    code, name, and its own village and town when it lies below them."""
    row = session.execute(text("SELECT id, code, name, level_key FROM area WHERE code = :c"), {"c": code}).first()
    scopes.require_object(session, f"area {code}", READERS, None if row is None else [row.id])
    assert row is not None
    up = session.execute(text("""
        WITH RECURSIVE up(id, level_key, depth) AS (
            SELECT id, level_key, 0 FROM area WHERE id = :id
            UNION ALL SELECT a.id, a.level_key, up.depth + 1 FROM area a JOIN area c ON c.parent_id = a.id
            JOIN up ON c.id = up.id WHERE up.depth < 64)
        SELECT (SELECT id FROM up WHERE level_key = 'village' ORDER BY depth LIMIT 1) AS village,
               (SELECT id FROM up WHERE level_key = 'town' ORDER BY depth LIMIT 1) AS town
    """), {"id": row.id}).one()
    return {"id": row.id, "code": row.code, "name": row.name, "level": row.level_key,
            "village_id": up.village, "town_id": up.town}


def indicators(session: Session, settings: Settings, *, area: str, start: dt.date, end: dt.date,
               by: list[str] | tuple[str, ...] = (), now: dt.datetime | None = None,
               use_months: bool | None = None) -> dict:
    """The indicators of :data:`INDICATORS` for the cases of ``area``'s subtree reported from
    ``start`` to ``end`` (exclusive, local dates), one row per group of ``by`` (any of
    :data:`GROUPS`; none: one row for the whole area), plus the total.

    Rows carry each group's key and label (``grid`` and ``grid_name``; times as the
    first day of the period), then every indicator. ``now`` is the moment "overdue now"
    is measured at. Groupings of places and months, quarters or years over whole months
    read the monthly sums (``case_month``), others every case (``case_fact``); both give
    the same figures (``use_months`` forces one, for tests and benchmarks). The caller needs a staff role (planner, inspector, grid worker) on
    the area."""
    by = list(by)
    check_request(by, start, end)
    root = resolve_area(session, area)
    now = now or dt.datetime.now(dt.UTC)
    tz = ZoneInfo(settings.timezone)
    lo = dt.datetime.combine(start, dt.time(), tzinfo=tz)
    hi = dt.datetime.combine(end, dt.time(), tzinfo=tz)
    params = {"root": root["id"], "root_village": root["village_id"], "root_town": root["town_id"],
              "lo": lo, "hi": hi, "lo_day": start, "hi_day": end, "now": now, "tz": settings.timezone,
              "satisfied": settings.satisfied_from, "env": ENVIRONMENT,
              "every": json.dumps(settings.patrol_days_by_level)}
    monthly = all(b in MONTHLY for b in by) and start.day == 1 and end.day == 1
    steps.catch_up_before_reading(session, settings.timezone)
    cases, case_total = _case_rows(session, by, params, monthly=monthly if use_months is None else use_months)
    patrols = _patrol_rows(session, by, params) if all(b in PLACES + TIMES for b in by) else {}
    patrols_known = bool(patrols) or not by
    rows = []
    for key in sorted(set(cases) | set(patrols), key=_sortable):
        row = cases.get(key) or {**dict(zip(by, key)), **{f"{b}_name": label for b, label in
                                                          zip(by, patrols[key]["_labels"])}, **_NO_CASES}
        row.update(_patrol_figures(patrols.get(key), known=patrols_known))
        rows.append(row)
    if by:
        total = {**(case_total or _NO_CASES),
                 **_patrol_figures(_patrol_rows(session, [], params).get(()), known=True)}
    else:
        total = rows[0] if rows else {**_NO_CASES, **_patrol_figures(None, known=True)}
    return {"area": {"code": root["code"], "name": root["name"]}, "from": start, "to": end, "by": by,
            "now": now, "rows": rows, "total": total}


def _sortable(key: tuple) -> tuple:
    return tuple("" if k is None else str(k) for k in key)


# Group key -> (SQL of the key aggregated on, label join, SQL of the shown key, SQL of its label).
# Cases are aggregated on narrow keys (area and person ids, local dates) and labelled after.
_CASE_KEYS = {
    "grid": ("s.id", "LEFT JOIN area a{i} ON a{i}.id = agg.k{i}", "a{i}.code", "a{i}.name"),
    "village": ("s.village_id", "LEFT JOIN area a{i} ON a{i}.id = agg.k{i}", "a{i}.code", "a{i}.name"),
    "town": ("s.town_id", "LEFT JOIN area a{i} ON a{i}.id = agg.k{i}", "a{i}.code", "a{i}.name"),
    "department": ("f.department", "", "agg.k{i}", "agg.k{i}"),
    "category": ("f.category_key", "LEFT JOIN category c{i} ON c{i}.key = agg.k{i}", "agg.k{i}", "c{i}.name_zh"),
    "worker": ("w.person_id", "LEFT JOIN person p{i} ON p{i}.id = agg.k{i}", "agg.k{i}::text", "p{i}.name"),
}


def _keys(by: list[str], day_column: str) -> tuple[list[str], list[str], list[str], list[str]]:
    keys, joins, shown, labels = [], [], [], []
    for i, b in enumerate(by):
        if b in TIMES:
            keys.append(f"date_trunc('{b}', {day_column})::date")
            joins.append("")
            shown.append(f"agg.k{i}::text")
            labels.append(f"agg.k{i}::text")
        else:
            key, join, show, label = _CASE_KEYS[b]
            keys.append(key)
            joins.append(join.format(i=i))
            shown.append(show.format(i=i))
            labels.append(label.format(i=i))
    return keys, joins, shown, labels


def _rate_sql(part: str, whole: str) -> str:
    return f"round(({part})::numeric / nullif({whole}, 0), 4)::float8"


# Each case indicator from the parts both sources give (see _case_rows), finished in SQL:
# a county's year by grid and month is 60,000 rows, too many to finish one by one in Python.
_FIGURES_SQL = {
    "received": "received::int", "accepted": "accepted::int", "closed": "closed::int",
    "closure_rate": _rate_sql("closed", "received - voided"),
    "closed_on_time": "closed_on_time::int", "on_time_rate": _rate_sql("closed_on_time", "received - voided"),
    "overdue_now": "overdue_now::int", "overdue_ever": "overdue_ever::int",
    "avg_hours": "round((hours_sum / nullif(hours_n, 0))::numeric, 2)::float8",
    "p90_hours": "round(p90_hours::numeric, 2)::float8",
    "escalations": "escalations::int", "voided": "voided::int", "parked": "parked::int",
    "satisfaction_mean": "round(satisfaction_sum::numeric / nullif(rated, 0), 2)::float8",
    "satisfaction_rate": _rate_sql("satisfied", "rated"),
    "callbacks": "callbacks::int", "callback_rate": _rate_sql("callbacks", "closed"),
    "first_reports": "first_reports::int", "first_report_rate": _rate_sql("first_reports", "received"),
}
_NO_CASES = {k: (0 if e.endswith("::int") else None) for k, e in _FIGURES_SQL.items()}


def sorted_percentile_sql(array: str, p: float) -> str:
    """SQL of the ``p`` percentile of a sorted array, interpolated as ``percentile_cont``
    does (written out: a function call per row costs more than the whole sum).

    >>> sorted_percentile_sql("a", 0.5).startswith("CASE WHEN cardinality(a) = 0 THEN NULL")
    True
    """
    pos = f"({p} * (cardinality({array}) - 1))"
    lo = f"floor({pos})::int"
    return (f"CASE WHEN cardinality({array}) = 0 THEN NULL ELSE {array}[{lo} + 1] + ({pos} - {lo}) * "
            f"({array}[least({lo} + 2, cardinality({array}))] - {array}[{lo} + 1]) END")


def _case_rows(session: Session, by: list[str], params: dict, *, monthly: bool) -> tuple[dict[tuple, dict], dict | None]:
    """The case indicators per group of ``by`` (with its keys and labels) and, in the same
    pass (grouping sets), the total; summed from the monthly sums (``monthly``) or counted
    over every case. Both give the same parts, finished by :data:`_FIGURES_SQL`."""
    keys, joins, shown, labels = _keys(by, "m.month" if monthly else "f.reported_day")
    key_list = "".join(f"{key} AS k{i}, " for i, key in enumerate(keys))
    grouping = f"GROUP BY GROUPING SETS (({', '.join(keys)}), ())" if by else ""
    whole = f"GROUPING({', '.join(keys)}) > 0" if by else "true"
    if monthly:
        scores = list(SATISFACTION_SCORES)
        rated = " + ".join(f"m.satisfaction[{k + 1}]" for k in scores)
        # Most places have no open case: the deadlines are looked at only where there are some.
        overdue = "CASE WHEN cardinality(m.{0}) = 0 THEN 0 ELSE (SELECT count(*) FROM unnest(m.{0}) d WHERE d < :now) END"
        parts = ", ".join(f"sum(m.{c}) AS {c}" for c in COUNTED) + f""",
            sum(m.escalations) AS escalations,
            sum({overdue.format("open_due")}) AS overdue_now,
            sum(m.late_cases + {overdue.format("open_due_in_time")}) AS overdue_ever,
            sum(m.hours_sum) AS hours_sum, sum(cardinality(m.hours)) AS hours_n,
            sum({rated}) AS rated,
            sum({" + ".join(f"{k} * m.satisfaction[{k + 1}]" for k in scores)}) AS satisfaction_sum,
            sum(CASE {" ".join(f"WHEN :satisfied = {k} THEN {' + '.join(f'm.satisfaction[{j + 1}]' for j in scores[k:])}"
                                for k in scores)} END) AS satisfied"""
        source = """case_month m JOIN sub s ON s.id = m.place_id
            WHERE m.month >= :lo_day AND m.month < :hi_day"""
        # The p90 needs every case's hours: each month keeps its own, sorted, in ``hours``.
        # A group of one place and month reads it off its array; the total and coarser
        # groups sort the hours of all their months.
        one_month = sorted(by) == ["grid", "month"]
        cell = f"ROW({whole}, {', '.join(keys) or 'NULL'})::text"
        p90 = f""", p AS (
            SELECT {cell if not one_month else "ROW(true)::text"} AS cell,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY h) AS p90_hours
            FROM case_month m JOIN sub s ON s.id = m.place_id CROSS JOIN LATERAL unnest(m.hours) h
            WHERE m.month >= :lo_day AND m.month < :hi_day {grouping if not one_month else ""})"""
        p90_join = "LEFT JOIN p ON p.cell = agg.cell"
        if one_month:
            cell = f"CASE WHEN {whole} THEN ROW(true)::text END"
            p90_join += (" LEFT JOIN (SELECT place_id, month AS cell_month, hours AS month_hours FROM case_month) mm"
                         f" ON mm.place_id = agg.k{by.index('grid')} AND mm.cell_month = agg.k{by.index('month')}")
    else:
        parts = ", ".join(f"count(*) FILTER (WHERE {cond}) AS {c}" for c, cond in COUNTED.items()) + """,
            coalesce(sum(f.escalations), 0) AS escalations,
            count(*) FILTER (WHERE f.due_at < :now) AS overdue_now,
            count(*) FILTER (WHERE f.late_steps > 0 OR f.due_at < :now) AS overdue_ever,
            sum(f.handling_hours) AS hours_sum, count(f.handling_hours) AS hours_n,
            percentile_cont(0.9) WITHIN GROUP (ORDER BY f.handling_hours) AS p90_hours,
            count(*) FILTER (WHERE f.satisfaction IS NOT NULL) AS rated,
            sum(f.satisfaction) AS satisfaction_sum,
            count(*) FILTER (WHERE f.satisfaction >= :satisfied) AS satisfied"""
        worker = "CROSS JOIN LATERAL unnest(f.worker_ids) w(person_id)" if "worker" in by else ""
        source = f"""case_fact f JOIN sub s ON s.id = f.place_id {worker}
            WHERE f.reported_day >= :lo_day AND f.reported_day < :hi_day"""
        p90, p90_join = "", ""
    p90_sql = "p90_hours"
    if monthly:
        p90_sql = (f"CASE WHEN agg.whole THEN p.p90_hours ELSE {sorted_percentile_sql('mm.month_hours', 0.9)} END"
                   if one_month else "p.p90_hours")
    figures = ", ".join(f"{expr.replace('p90_hours', p90_sql)} AS {name}" for name, expr in _FIGURES_SQL.items())
    sql = _SUBTREE + f"""
        , agg AS (SELECT {key_list} {whole} AS whole, {cell + " AS cell," if monthly else ""} {parts}
                  FROM {source} {grouping}) {p90}
        SELECT agg.whole,
               {"".join(f"{show} AS {b}, {label} AS {b}_name, " for b, show, label in zip(by, shown, labels))}
               {figures}
        FROM agg {" ".join(joins)} {p90_join}
    """
    # A county's year sorted in memory, not on disk (the p90 over every case).
    session.execute(text("SET LOCAL work_mem = '256MB'"))
    result = session.execute(text(sql), params)
    columns = list(result.keys())[1:]
    groups, total = {}, None
    for whole_row, *values in result.all():
        row = dict(zip(columns, values))
        if not by or whole_row:
            total = {k: row[k] for k in _FIGURES_SQL}
        if not (by and whole_row):
            groups[tuple(row[b] for b in by)] = row
    return groups, total


def _patrol_rows(session: Session, by: list[str], params: dict) -> dict[tuple, dict]:
    """Patrols due and done per environment grid and time bucket, summed per group.

    A grid's patrols due in a bucket are the bucket's days (within the period) divided by
    the grid level's frequency, rounded down; missed ones are counted per grid and bucket."""
    times = [b for b in by if b in TIMES]
    unit = times[0] if times else None
    bucket = (f"generate_series(date_trunc('{unit}', CAST(:lo AS timestamptz) AT TIME ZONE :tz), "
              f"CAST(:hi AS timestamptz) AT TIME ZONE :tz - interval '1 microsecond', interval '{_STEP[unit]}')"
              if unit else "(SELECT CAST(:lo AS timestamptz) AT TIME ZONE :tz)")
    keys, labels = [], []
    for b in by:
        if b in TIMES:
            keys.append("s.start::date")
            labels.append("s.start::date::text")
        else:
            keys.append(_PATROL_KEYS[b][0])
            labels.append(_PATROL_KEYS[b][1])
    joins = ""
    if "village" in by:
        joins += " LEFT JOIN area v ON v.id = s.village_id"
    if "town" in by:
        joins += " LEFT JOIN area t ON t.id = s.town_id"
    select_keys = "".join(f"{k} AS k{i}, min({lab}) AS l{i}, " for i, (k, lab) in enumerate(zip(keys, labels)))
    group = ("GROUP BY " + ", ".join(f"k{i}" for i in range(len(keys)))) if keys else ""
    step = f"interval '{_STEP[unit]}'" if unit else "(CAST(:hi AS timestamptz) - CAST(:lo AS timestamptz))"
    sql = _SUBTREE + f"""
        , cell AS (
            SELECT s.*, b.start,
                   greatest(b.start, CAST(:lo AS timestamptz) AT TIME ZONE :tz) AS lo,
                   least(b.start + {step}, CAST(:hi AS timestamptz) AT TIME ZONE :tz) AS hi,
                   coalesce((CAST(:every AS jsonb) ->> s.level_key)::int, 7) AS every
            FROM sub s CROSS JOIN {bucket} b(start)
            WHERE s.layer_key = :env AND s.retired_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM area c WHERE c.parent_id = s.id AND c.layer_key = :env
                              AND c.retired_at IS NULL)
        ), counted AS (
            SELECT cell.*, floor(extract(epoch FROM cell.hi - cell.lo) / 86400 / cell.every)::int AS due,
                   (SELECT count(*) FROM patrol p WHERE p.area_id = cell.id
                      AND p.at AT TIME ZONE :tz >= cell.lo AND p.at AT TIME ZONE :tz < cell.hi) AS done
            FROM cell
        )
        SELECT {select_keys} sum(due) AS patrols_due, sum(done) AS patrols_done,
               sum(greatest(due - done, 0)) AS patrols_missed
        FROM counted s {joins}
        {group}
    """
    out = {}
    for r in session.execute(text(sql), params).mappings():
        key = tuple(_plain(r[f"k{i}"]) for i in range(len(keys)))
        out[key] = {"patrols_due": int(r["patrols_due"] or 0), "patrols_done": int(r["patrols_done"] or 0),
                    "patrols_missed": int(r["patrols_missed"] or 0),
                    "_labels": [r[f"l{i}"] for i in range(len(by))]}
    return out


def _plain(value):
    return value.isoformat() if isinstance(value, dt.date) else value


def _rate(part, whole):
    return None if not whole else round(part / whole, 4)


def _patrol_figures(p: dict | None, *, known: bool) -> dict:
    """The patrol indicators of a group from its parts (None for groups patrols have not)."""
    if not known:
        return {"patrols_due": None, "patrols_done": None, "patrols_missed": None, "patrol_rate": None}
    p = p or {"patrols_due": 0, "patrols_done": 0, "patrols_missed": 0}
    return {"patrols_due": p["patrols_due"], "patrols_done": p["patrols_done"], "patrols_missed": p["patrols_missed"],
            "patrol_rate": _rate(p["patrols_due"] - p["patrols_missed"], p["patrols_due"])}


def markdown_table(lang: str = "zh") -> str:
    """The definitions as a Markdown table (README's copy is checked against it).

    >>> markdown_table().splitlines()[2].startswith("| received | 上报数 |")
    True
    """
    lines = ["| key | 指标 | indicator | unit | 定义 | definition |", "|---|---|---|---|---|---|"]
    lines += [f"| {i.key} | {i.zh} | {i.en} | {i.unit} | {i.definition_zh} | {i.definition_en} |" for i in INDICATORS]
    return "\n".join(lines)
