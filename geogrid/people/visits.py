"""Visits (走访, 民情日记): the visit log, the visit quotas, who and which households are
behind, and a cadre's day list.

**A visit** is one cadre's call on one or more households on a day (findings, measures, a
deadline, photos by URL) and may open a case, linked back (``visit.incident_id``). Its
place (``visit.area_id``, for scope) is the households' common grid, or their lowest
common ancestor area when they lie in different grids.

**Quotas.** A household's obligations on day D come from

(a) its contact links active on D (:mod:`geogrid.people.contacts`): each link's kind gives
    a longest gap ``contact_kind.visit_every_days`` and ``visits_per_year``; every linked
    household is owed at least ``settings.visits_per_year_min`` visits a year;
(b) its live residents' special-group tags active on D: ``special_group.visit_every_days``.

Each obligation has a start (its link's or tag's ``start_date``). With ``last`` the last
visit on or before D by any cadre, an obligation of gap ``e`` starting on ``s`` is due by
``max(last, s) + e`` (from its start when there was no visit since then); the household
is **behind on the gap** when the earliest of these dates is before D. It is **behind on
the count** when its visits this calendar year up to D are fewer than the pro-rata number
due, ``floor(per_year * n / days_in_year)``, where ``per_year`` is the largest quota of
its links (at least the floor) and ``n`` counts the days from 1 January (or from its
first active link's start, if later) to D, both included. The yearly count restarts on
1 January; the gap runs across it.

Worked example (central household: every 31 days, 12 a year; floor 6). Visits on
2026-12-20 and none since. On 2027-01-15 the visit is due by 2026-12-20 + 31 =
2027-01-20: on time; the count due is floor(12 * 15 / 365) = 0: on time. On 2027-01-20
still on time (the gap is 31 days, not more); on 2027-01-21 behind on the gap, since
2027-01-21. A radiating household (92 days, 6 a year) visited on 2027-02-01 only: on
2027-05-01 (day 121) floor(6 * 121 / 365) = 1 visit is due: on time; on 2027-05-02 (day
122) 2 are due: behind on the count since that day, though the gap runs until 2027-05-04.

"Behind since" is the first day a household is behind: the day after the gap's due date,
or the first day on which the pro-rata count due exceeded the number of visits made this
year up to D (in the example, 2027-05-02).

The lists are computed set-based in SQL, one query for an area. For today and later days
only the households whose stored "behind from" date (:mod:`geogrid.people.due`) has come
are judged; a past day judges them all. Same answers; on a county of 500,000 households
with one in eight behind, 2.0 s instead of 5.7 s (``bench/visits_bench.py``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import GeogridError, Problem, not_found
from geogrid.core.settings import Settings
from geogrid.core.timeutil import local_today
from geogrid.environment.patrols import patrols_behind
from geogrid.people.contacts import (
    ADDRESS_COLUMNS,
    HOUSEHOLDS_IN_SUB,
    READERS,
    SUB_ROWS,
    SUBTREE,
    WRITERS,
    area_subtree,
    as_date,
    households_in_sub,
    require_households,
    villages_of,
    visible_person,
    with_address,
    without_jit,
)
from geogrid.people.due import refresh_due

MAX_TEXT = 5000
MAX_PHOTOS = 10
MAX_URL = 500
MAX_HOUSEHOLDS = 100  # one visit's households: a building's, at most

# --------------------------------------------------------------------------- the visit log

_VISIT_SELECT = """
    SELECT v.id, v.visited_on, v.person_id, p.name AS person_name, a.code AS area, a.name AS area_name,
           v.findings, v.measures, v.deadline, v.photo_urls, v.incident_id, i.receipt AS incident_receipt,
           v.created_at, v.created_by,
           (SELECT coalesce(json_agg(json_build_object('id', h.id, 'ref', h.ref) ORDER BY h.ref), '[]')
            FROM visit_household vh JOIN household h ON h.id = vh.household_id WHERE vh.visit_id = v.id) AS households
    FROM visit v JOIN person p ON p.id = v.person_id JOIN area a ON a.id = v.area_id
    LEFT JOIN incident i ON i.id = v.incident_id
"""


def _photos(value, problems: list[Problem]) -> list[str]:
    urls = value or []
    if not isinstance(urls, list) or len(urls) > MAX_PHOTOS or any(
            not isinstance(u, str) or not u.startswith(("http://", "https://")) or len(u) > MAX_URL for u in urls):
        problems.append(Problem(f"photo_urls: at most {MAX_PHOTOS} http(s) URLs of {MAX_URL} characters",
                                field="photo_urls"))
        return []
    return urls


def common_area(session: Session, place_ids) -> int | None:
    """The lowest area whose subtree holds every one of ``place_ids`` (the place itself when
    there is one); None when they share no ancestor."""
    ids = sorted(set(place_ids))
    if len(ids) == 1:
        return ids[0]
    return session.execute(text("""
        WITH RECURSIVE up(start, id, depth) AS (
            SELECT id, id, 0 FROM area WHERE id = ANY(:ids)
            UNION ALL SELECT up.start, a.parent_id, up.depth + 1 FROM area a JOIN up ON a.id = up.id
            WHERE a.parent_id IS NOT NULL AND up.depth < 64)
        SELECT id FROM up GROUP BY id HAVING count(DISTINCT start) = :n ORDER BY sum(depth) LIMIT 1
    """), {"ids": ids, "n": len(ids)}).scalar()


def record_visit(session: Session, data: dict, settings: Settings, *, lang: str = "zh") -> dict:
    """Log one visit (planners and grid workers whose scope holds every household visited)
    and, with ``open_case``, open a case tied to the first household, linked back. All or
    nothing."""
    scopes.require_role(session, *WRITERS)
    raw = data.get("household_ids")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_HOUSEHOLDS or \
            any(not isinstance(i, int) or isinstance(i, bool) for i in raw):
        raise GeogridError("household_ids: one to 100 household ids", problems=[
            Problem(f"give 1 to {MAX_HOUSEHOLDS} household ids", field="household_ids")])
    household_ids = list(dict.fromkeys(raw))
    places = require_households(session, household_ids, WRITERS)
    problems: list[Problem] = []
    person_id = visible_person(session, data.get("person_id"))
    today = local_today(settings)
    visited_on = as_date(data.get("visited_on"), "visited_on", problems, required=True)
    if visited_on and visited_on > today:
        problems.append(Problem(f"visited_on {visited_on} is in the future", field="visited_on"))
    if visited_on and visited_on < dt.date(1949, 10, 1):
        problems.append(Problem(f"visited_on {visited_on} is not a plausible date", field="visited_on"))
    deadline = as_date(data.get("deadline"), "deadline", problems)
    if deadline and visited_on and deadline < visited_on:
        problems.append(Problem(f"deadline {deadline} is before the visit ({visited_on})", field="deadline"))
    texts = {}
    for key in ("findings", "measures"):
        value = data.get(key) or ""
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            problems.append(Problem(f"{key}: text of at most {MAX_TEXT} characters", field=key))
            value = ""
        texts[key] = value.strip()
    photos = _photos(data.get("photo_urls"), problems)
    case = data.get("open_case")
    if case is not None and (not isinstance(case, dict) or not case.get("category")):
        problems.append(Problem("open_case needs at least a category", field="open_case.category"))
    area_id = common_area(session, [p for p in places.values() if p is not None]) if any(places.values()) else None
    if area_id is None:
        problems.append(Problem("the households lie in no common area", field="household_ids"))
    if problems:
        raise GeogridError("visit rejected; nothing was stored", problems=problems)
    incident_id = None
    if case is not None:
        from geogrid.incidents import intake

        request = {**case, "household_id": household_ids[0],
                   "description": case.get("description") or texts["findings"]}
        request.setdefault("channel", "visit" if "visit" in intake.CHANNELS else "walk_in")
        incident_id = intake.intake(session, request, settings, lang=lang)["id"]
    visit_id = session.execute(text("""
        INSERT INTO visit (visited_on, person_id, area_id, findings, measures, deadline, photo_urls, incident_id,
                           created_by)
        VALUES (:visited_on, :person_id, :area_id, :findings, :measures, :deadline, CAST(:photos AS jsonb),
                :incident_id, :by) RETURNING id
    """), {"visited_on": visited_on, "person_id": person_id, "area_id": area_id, **texts, "deadline": deadline,
           "photos": json.dumps(photos), "incident_id": incident_id, "by": scopes.actor(session)}).scalar_one()
    session.execute(text("INSERT INTO visit_household (visit_id, household_id, visited_on) "
                         "SELECT :v, unnest(CAST(:h AS integer[])), :d"),
                    {"v": visit_id, "h": household_ids, "d": visited_on})
    refresh_due(session, household_ids, settings)
    out = _visit(session, visit_id)
    audit.record(session, "create", "visit", visit_id, None, out)
    return out


def _visit(session: Session, visit_id: int) -> dict:
    return dict(session.execute(text(f"{_VISIT_SELECT} WHERE v.id = :id"), {"id": visit_id}).mappings().one())


def get_visit(session: Session, visit_id: int) -> dict:
    """One visit whose place lies in the caller's scope (readers); unknown and hidden alike."""
    area_id = session.execute(text("SELECT area_id FROM visit WHERE id = :id"), {"id": visit_id}).scalar()
    scopes.require_object(session, f"visit {visit_id}", READERS, None if area_id is None else [area_id])
    return _visit(session, visit_id)


def list_visits(session: Session, *, area: str | None = None, person: int | None = None,
                start: dt.date | None = None, end: dt.date | None = None, limit: int = 100,
                offset: int = 0) -> tuple[list[dict], int]:
    """Visits whose place lies in the caller's scope, newest first, filtered by area (its
    subtree), cadre and days (``start`` included, ``end`` excluded); a page and the count."""
    scopes.require_role(session, *READERS)
    scope, params = scopes.scope_filter(session, READERS, "v.area_id")
    where, sub = [scope], ""
    if area:
        root = session.execute(text("SELECT id FROM area WHERE code = :c"), {"c": area}).scalar()
        if root is None:
            raise not_found(f"area {area}")
        sub = SUBTREE
        params.update(root=root, root_village=None)
        where.append("v.area_id IN (SELECT id FROM sub)")
    for cond, key, value in (("v.person_id = :person", "person", person), ("v.visited_on >= :start", "start", start),
                             ("v.visited_on < :end", "end", end)):
        if value is not None:
            where.append(cond)
            params[key] = value
    cond = " AND ".join(where)
    total = session.execute(text(f"{sub} SELECT count(*) FROM visit v WHERE {cond}"), params).scalar_one()
    rows = session.execute(text(f"{sub} {_VISIT_SELECT} WHERE {cond} ORDER BY v.visited_on DESC, v.id DESC "
                                "LIMIT :limit OFFSET :offset"), {**params, "limit": limit, "offset": offset})
    return [dict(r) for r in rows.mappings()], total


# --------------------------------------------------------------------------- quotas and "behind"


def _year_bounds(day: dt.date) -> tuple[dt.date, int]:
    return dt.date(day.year, 1, 1), 366 if calendar.isleap(day.year) else 365


# The quota rule of the module docstring over the households of a CTE ``hh(id, place,
# village_id)`` defined before it: one row per household with an obligation on :day, judged
# (``grid_id`` is the household's place: its grid). Visits older than the longest gap (and
# than 1 January) cannot change whether a household is behind, so only those are
# aggregated; the true last visit of a household behind without a visit in that window is
# looked up by index afterwards (``fixed``).
QUOTA_CTES = """
    obl AS MATERIALIZED (
        SELECT l.household_id, hh.place AS grid_id, hh.village_id, k.visit_every_days AS every, l.start_date AS since,
               greatest(k.visits_per_year, :per_year_min) AS per_year
        FROM contact_link l JOIN hh ON hh.id = l.household_id JOIN contact_kind k ON k.key = l.kind
        WHERE l.start_date <= :day AND (l.end_date IS NULL OR l.end_date >= :day)
        UNION ALL
        SELECT r.household_id, hh.place AS grid_id, hh.village_id, g.visit_every_days, t.start_date, NULL
        FROM resident_tag t JOIN resident r ON r.id = t.resident_id JOIN special_group g ON g.key = t.group_key
        JOIN hh ON hh.id = r.household_id
        WHERE r.retired_at IS NULL AND g.visit_every_days IS NOT NULL
          AND t.start_date <= :day AND (t.end_date IS NULL OR t.end_date >= :day)),
    seen AS (
        SELECT v.household_id, max(v.visited_on) AS last_visit,
               count(*) FILTER (WHERE v.visited_on >= :jan1) AS this_year
        FROM visit_household v JOIN hh ON hh.id = v.household_id
        WHERE v.visited_on BETWEEN :window AND :day
        GROUP BY v.household_id),
    judged AS (
        SELECT o.household_id, o.grid_id, o.village_id, min(o.every) AS every_days, max(s.last_visit) AS last_visit,
               min(greatest(s.last_visit, o.since) + o.every) AS due_on,
               max(o.per_year) AS per_year, coalesce(max(s.this_year), 0) AS this_year,
               greatest(CAST(:jan1 AS date), min(o.since) FILTER (WHERE o.per_year IS NOT NULL)) AS count_since
        FROM obl o LEFT JOIN seen s ON s.household_id = o.household_id
        GROUP BY o.household_id, o.grid_id, o.village_id),
    counted AS MATERIALIZED (
        SELECT j.*,
               CASE WHEN j.per_year > 0 THEN floor(j.per_year * (:day - j.count_since + 1) / CAST(:diy AS numeric))
                    ELSE 0 END AS count_due
        FROM judged j),
    late AS MATERIALIZED (
        SELECT c.* FROM counted c WHERE c.due_on < :day OR c.this_year < c.count_due),
    fixed AS (
        SELECT f.household_id, f.last_visit, min(greatest(f.last_visit, o.since) + o.every) AS due_on
        FROM (SELECT l.household_id, (SELECT max(x.visited_on) FROM visit_household x
                                      WHERE x.household_id = l.household_id AND x.visited_on <= :day) AS last_visit
              FROM late l WHERE l.last_visit IS NULL) f
        JOIN obl o ON o.household_id = f.household_id GROUP BY f.household_id, f.last_visit),
    behind AS MATERIALIZED (
        SELECT l.household_id, l.grid_id, l.village_id, l.every_days, coalesce(l.last_visit, f.last_visit) AS last_visit,
               coalesce(f.due_on, l.due_on) AS due_on, l.per_year, l.this_year, l.count_due,
               l.due_on < :day AS gap_late, l.this_year < l.count_due AS count_late,
               least(CASE WHEN l.due_on < :day THEN coalesce(f.due_on, l.due_on) + 1 END,
                     CASE WHEN l.this_year < l.count_due
                          THEN l.count_since + CAST(ceil((l.this_year + 1) * CAST(:diy AS numeric) / l.per_year) AS integer) - 1
                     END) AS since
        FROM late l LEFT JOIN fixed f ON f.household_id = l.household_id)
"""


def quota_params(session: Session, settings: Settings, day: dt.date) -> dict:
    """The parameters of :data:`QUOTA_CTES` for ``day``. The window of visits read: from 1
    January or the longest gap of any kind or group before ``day``, whichever is earlier
    (a constant, so that the planner sees how many visits it covers)."""
    jan1, diy = _year_bounds(day)
    longest = session.execute(text("SELECT greatest((SELECT max(visit_every_days) FROM contact_kind), "
                                   "(SELECT max(visit_every_days) FROM special_group))")).scalar() or 0
    return {"day": day, "jan1": jan1, "diy": diy, "per_year_min": settings.visits_per_year_min,
            "window": min(jan1, day - dt.timedelta(days=longest))}


def reasons(row: dict, lang: str = "zh") -> list[dict]:
    """Why a household of :data:`QUOTA_CTES`'s ``behind`` is behind, in words and figures."""
    out = []
    if row["gap_late"]:
        out.append({"rule": "gap", "every_days": row["every_days"], "due_on": row["due_on"],
                    "text": (f"last visit older than {row['every_days']} days (due by {row['due_on']})" if lang == "en"
                             else f"超过{row['every_days']}天未走访（应于{row['due_on']}前走访）")})
    if row["count_late"]:
        out.append({"rule": "count", "visits": row["this_year"], "due": int(row["count_due"]),
                    "per_year": row["per_year"],
                    "text": (f"{row['this_year']} visits this year, {int(row['count_due'])} due by now "
                             f"({row['per_year']} a year)" if lang == "en" else
                             f"本年已走访{row['this_year']}次，按每年{row['per_year']}次应已走访{int(row['count_due'])}次")})
    return out


def _as_date(value) -> dt.date | None:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


# Per grid, the households with an obligation on :day (the ``households`` total of the
# grid list) and those behind, when only the candidates of ``visit_behind_from`` were judged.
OBLIGATED_CTES = """
    obligated AS (
        SELECT a.place AS grid_id, a.village_id, count(*) AS households FROM hh_all a GROUP BY a.place, a.village_id),
    per_grid AS (
        SELECT o.grid_id, o.village_id, o.households, count(b.household_id) AS behind
        FROM obligated o LEFT JOIN behind b ON b.grid_id = o.grid_id AND b.village_id IS NOT DISTINCT FROM o.village_id
        GROUP BY o.grid_id, o.village_id, o.households)"""
FULL_PER_GRID = """
    per_grid AS (
        SELECT grid_id, village_id, count(*) AS households,
               count(*) FILTER (WHERE due_on < :day OR this_year < count_due) AS behind
        FROM counted GROUP BY grid_id, village_id)"""


def behind(session: Session, settings: Settings, *, area: str, on: dt.date | None = None, lang: str = "zh",
           limit: int = 1000, offset: int = 0, use_cache: bool = True) -> dict:
    """The households of ``area``'s subtree behind their visit quotas on ``on`` (default
    today, see the module docstring), the cadres linked to them, and totals per grid and
    per village. Lists are paged (``limit``/``offset``, longest behind first); counts are
    complete. Readers with scope on the area.

    For today and later days only the households whose stored ``visit_behind_from``
    (:mod:`geogrid.people.due`) is on or before ``on`` are judged: no other can be behind
    then. A past day, a yearly floor above a kind's own quota (the stored dates leave it
    out), or ``use_cache=False`` judge every household of the area (the same answer,
    slower)."""
    found, params = area_subtree(session, area)
    day = on or local_today(settings)
    params.update(quota_params(session, settings, day), limit=limit, offset=offset)
    without_jit(session)
    floor_inert = settings.visits_per_year_min <= session.execute(
        text("SELECT coalesce(min(visits_per_year), 0) FROM contact_kind")).scalar_one()
    if use_cache and floor_inert and day >= local_today(settings):
        ctes = (f"{households_in_sub('hh', 'h.visit_behind_from <= :day')}, {QUOTA_CTES}, "
                f"{households_in_sub('hh_all', 'h.visit_obliged @> CAST(:day AS date)')}, {OBLIGATED_CTES}")
    else:
        ctes = f"{HOUSEHOLDS_IN_SUB}, {QUOTA_CTES}, {FULL_PER_GRID}"
    row = session.execute(text(f"""
        WITH {SUB_ROWS}, {ctes},
        behind_links AS MATERIALIZED (
            -- a lookup per household behind (OFFSET 0 keeps it one): not a hash of every link
            SELECT l.person_id, b.household_id, hh.ref FROM behind b JOIN hh ON hh.id = b.household_id
            CROSS JOIN LATERAL (SELECT l.person_id FROM contact_link l WHERE l.household_id = b.household_id
                                  AND l.start_date <= :day AND (l.end_date IS NULL OR l.end_date >= :day)
                                OFFSET 0) l)
        SELECT
          (SELECT count(*) FROM behind) AS households_count,
          (SELECT coalesce(json_agg(x ORDER BY x.since, x.ref), '[]') FROM (
              SELECT b.household_id AS id, b.ref, {ADDRESS_COLUMNS}, g.code AS grid, g.name AS grid_name,
                     b.last_visit, b.since, b.due_on, b.every_days, b.per_year, b.this_year, b.count_due,
                     b.gap_late, b.count_late
              FROM (SELECT b.*, hh.ref FROM behind b JOIN hh ON hh.id = b.household_id
                    ORDER BY b.since, hh.ref LIMIT :limit OFFSET :offset) b
              JOIN household h ON h.id = b.household_id LEFT JOIN area g ON g.id = b.grid_id) x) AS households,
          (SELECT count(DISTINCT person_id) FROM behind_links) AS cadres_count,
          (SELECT coalesce(json_agg(c ORDER BY c.behind DESC, c.person_id), '[]') FROM (
              SELECT l.person_id, p.name, count(DISTINCT l.household_id) AS behind,
                     (array_agg(DISTINCT l.ref ORDER BY l.ref))[1:50] AS households
              FROM behind_links l JOIN person p ON p.id = l.person_id
              GROUP BY l.person_id, p.name ORDER BY count(DISTINCT l.household_id) DESC, l.person_id
              LIMIT :limit OFFSET :offset) c) AS cadres,
          (SELECT coalesce(json_agg(t ORDER BY t.code), '[]') FROM (
              SELECT a.code, a.name, v.code AS village, c.households, c.behind
              FROM per_grid c JOIN area a ON a.id = c.grid_id LEFT JOIN area v ON v.id = c.village_id) t) AS grids
    """), params).mappings().one()
    households = []
    for h in with_address(row["households"]):
        h = {**h, **{k: _as_date(h[k]) for k in ("last_visit", "since", "due_on")}}
        households.append({k: h[k] for k in ("id", "ref", "address", "grid", "grid_name", "last_visit", "since")} |
                          {"reasons": reasons(h, lang)})
    grids = row["grids"]
    return {"area": {"code": found["code"], "name": found["name"]}, "on": day,
            "households": {"count": row["households_count"], "items": households},
            "cadres": {"count": row["cadres_count"], "items": row["cadres"]},
            "grids": grids, "villages": villages_of(session, grids)}


# --------------------------------------------------------------------------- the day list


def visits_due(session: Session, settings: Settings, person_id: int, day: dt.date) -> list[dict]:
    """The households of ``person_id``'s links active on ``day`` that are behind on ``day``
    (``overdue``) or would be on the next day unless visited (``due_today``). No scope
    check: a cadre's own households (the caller checks who asks)."""
    own = """hh AS MATERIALIZED (
        SELECT DISTINCT h.id, h.grid_id AS place, CAST(NULL AS integer) AS village_id FROM household h
        JOIN contact_link l ON l.household_id = h.id
        WHERE l.person_id = :person AND h.retired_at IS NULL AND l.start_date <= :today
          AND (l.end_date IS NULL OR l.end_date >= :today))"""
    out: dict[int, dict] = {}
    without_jit(session)
    for status, when in (("overdue", day), ("due_today", day + dt.timedelta(days=1))):
        rows = session.execute(text(f"""
            WITH {own}, {QUOTA_CTES}
            SELECT b.*, h.ref, {ADDRESS_COLUMNS}, g.code AS grid FROM behind b JOIN household h ON h.id = b.household_id
            LEFT JOIN area g ON g.id = b.grid_id ORDER BY b.since, h.ref
        """), {**quota_params(session, settings, when), "person": person_id, "today": day}).mappings().all()
        for r in with_address([dict(r) for r in rows]):
            if r["household_id"] not in out:
                out[r["household_id"]] = {"id": r["household_id"], "ref": r["ref"], "address": r["address"],
                                          "grid": r["grid"], "status": status, "last_visit": r["last_visit"],
                                          "reasons": reasons(r)}
    return list(out.values())


def day_list(session: Session, settings: Settings, *, lang: str = "zh", day: dt.date | None = None) -> dict:
    """The caller's day list ("today: 3 visits due, 2 patrols due"): the visits due of the
    cadre their account belongs to (``account.person_id``; none without one) and the
    environment grids of their scope behind their patrols."""
    scopes.require_role(session, *scopes.STAFF)
    day = day or local_today(settings)
    person_id = scopes.caller_person(session)
    visits = visits_due(session, settings, person_id, day) if person_id is not None else []
    patrols = patrols_behind(session, settings)
    grids = [{"code": g["code"], "name": g["name"], "last_patrol": g["last_patrol"], "due": g["due"]}
             for g in patrols["grids"]]
    summary = (f"today: {len(visits)} visits due, {len(grids)} patrols due" if lang == "en"
               else f"今日：走访到期 {len(visits)} 户，巡查到期 {len(grids)} 个网格")
    person = None
    if person_id is not None:
        person = dict(session.execute(text("SELECT id, name FROM person WHERE id = :id"),
                                      {"id": person_id}).mappings().one())
    return {"day": day, "person": person, "summary": summary,
            "visits": {"count": len(visits), "items": visits},
            "patrols": {"count": len(grids), "items": grids, "key_sources": len(patrols["key_sources"])}}
