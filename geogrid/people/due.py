"""The stored "behind from" date of each household (``household.visit_behind_from``): the
index that lets :func:`geogrid.people.visits.behind` read only the households that can be
behind on a day instead of judging a whole county.

**The promise.** Refreshed on day T (``local_today``), ``visit_behind_from`` is a day B such
that, as long as the household's links, tags, live residents and visits on or before T do
not change, the household is not behind (rule of :mod:`geogrid.people.visits`) on any day
D >= T before B; NULL when it is behind on none. B is a lower bound, exact in the usual case
(no link or tag starting or ending after T): a household read through the index is still
judged by the full rule, so a B too early only costs a row read, never a wrong answer.

Why it holds (D >= T, nothing changed):

- *gap*: behind on D iff some obligation o active on D has ``max(last, start_o) + every_o
  < D``. ``last`` (the last visit on or before D) is at least the last one on or before T,
  so o cannot make the household behind before ``max(last_T, start_o) + every_o + 1``, nor
  after its ``end_date``: B_gap is the least such day over the obligations not ended by T
  whose day falls on or before their end. Visits before the longest gap of any kind or
  group (and before 1 January) are not read: leaving ``last`` out only makes the day
  earlier (``max(last, start) >= start``), and a household whose last visit is that old is
  behind on T already, either way.
- *count*, in T's year: the count due is ``floor(per_year * n / days_in_year)`` with
  ``per_year`` at most the largest quota of the links not ended by T, ``n`` counted from at
  least ``max(1 January, earliest start of those links)``, and the visits made this year at
  least those up to T (``made``): not behind before ``count_from + ceil((made + 1) * diy /
  per_year) - 1`` (kept when that day is in T's year and on or before the links' last end).
- *count*, in later years: the count restarts on 1 January, so in the first later year Y in
  which a link is active (the year after T's, or of the earliest start if later) the same
  bound with ``made = 0``; any later year gives a later day.

B is the least of the three. With it, ``household.visit_obliged`` keeps the days on which
the household has an obligation (from T on: the union of its links' and live tags'
periods), so that the per-grid totals need no look at links and tags either.

B is the least of the three. The yearly floor ``settings.visits_per_year_min`` is left out
(B does not depend on settings): it changes nothing while it is at most every kind's own
quota, and :func:`geogrid.people.visits.behind` judges every household when it is higher.
Everything a writer can change is covered by calling
:func:`refresh_due` for the households it touched, in the same transaction: visits,
contact links, resident tags, residents (new or retired). A household's grid and its
retirement do not enter B (the area query filters on both itself), so moving or retiring a
household needs no refresh. The kinds' and groups' own figures (``contact_kind``,
``special_group``) are reference data written by migrations: changing them means
``refresh_due(session, None)``. Days after T are covered without any refresh: a day passing
never moves B.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.core.settings import Settings, get_settings
from geogrid.core.timeutil import local_today

BULK = 5000  # more households than this are refreshed through a counted temporary table

# One statement for any set of households (``:ids``, NULL for all): a bulk writer such as the
# register import refreshes half a million households with it as cheaply as one.
_REFRESH = """
    WITH target AS MATERIALIZED ({target}),
    obl AS MATERIALIZED (
        SELECT l.household_id, k.visit_every_days AS every, l.start_date AS since, l.end_date AS until,
               k.visits_per_year AS per_year
        FROM contact_link l JOIN target t ON t.id = l.household_id JOIN contact_kind k ON k.key = l.kind
        WHERE l.end_date IS NULL OR l.end_date >= :today
        UNION ALL
        SELECT r.household_id, g.visit_every_days, tg.start_date, tg.end_date, NULL
        FROM resident_tag tg JOIN resident r ON r.id = tg.resident_id JOIN special_group g ON g.key = tg.group_key
        JOIN target t ON t.id = r.household_id
        WHERE r.retired_at IS NULL AND g.visit_every_days IS NOT NULL
          AND (tg.end_date IS NULL OR tg.end_date >= :today)),
    seen AS (
        SELECT v.household_id, max(v.visited_on) AS last_visit,
               count(*) FILTER (WHERE v.visited_on >= :jan1) AS made
        FROM visit_household v JOIN target t ON t.id = v.household_id
        WHERE v.visited_on BETWEEN :window AND :today
        GROUP BY v.household_id),
    per_h AS (
        SELECT o.household_id,
               min(greatest(s.last_visit, o.since) + o.every + 1)
                   FILTER (WHERE o.until IS NULL OR greatest(s.last_visit, o.since) + o.every + 1 <= o.until)
                   AS gap_from,
               max(o.per_year) AS per_year, coalesce(max(s.made), 0) AS made,
               min(o.since) FILTER (WHERE o.per_year IS NOT NULL) AS since,
               max(coalesce(o.until, DATE 'infinity')) FILTER (WHERE o.per_year IS NOT NULL) AS until,
               range_agg(daterange(o.since, o.until, '[]')) AS obliged
        FROM obl o LEFT JOIN seen s ON s.household_id = o.household_id
        GROUP BY o.household_id),
    years AS (
        SELECT p.*, greatest(CAST(:jan1 AS date), p.since) AS from0,
               make_date(greatest(extract(year FROM CAST(:today AS date))::int + 1, extract(year FROM p.since)::int),
                         1, 1) AS jan1_next
        FROM per_h p),
    bounds AS (
        SELECT y.household_id, y.gap_from, y.obliged,
               CASE WHEN y.per_year > 0 THEN
                    y.from0 + CAST(ceil((y.made + 1) * CAST(:diy AS numeric) / y.per_year) AS integer) - 1 END AS count0,
               CASE WHEN y.per_year > 0 THEN
                    greatest(y.jan1_next, y.since)
                    + CAST(ceil(CAST((y.jan1_next + interval '1 year')::date - y.jan1_next AS numeric) / y.per_year)
                           AS integer) - 1 END AS count1,
               y.until
        FROM years y),
    fresh AS (
        SELECT t.id,
               least(b.gap_from,
                     CASE WHEN b.count0 <= least(CAST(:dec31 AS date), b.until) THEN b.count0 END,
                     CASE WHEN b.count1 <= b.until THEN b.count1 END) AS behind_from, b.obliged
        FROM target t LEFT JOIN bounds b ON b.household_id = t.id)
    UPDATE household h SET visit_behind_from = f.behind_from, visit_obliged = f.obliged
    FROM fresh f WHERE h.id = f.id AND (h.visit_behind_from IS DISTINCT FROM f.behind_from
                                        OR h.visit_obliged IS DISTINCT FROM f.obliged)
"""


def refresh_due(session: Session, household_ids: Sequence[int] | None, settings: Settings | None = None, *,
                today: dt.date | None = None) -> int:
    """Recompute ``household.visit_behind_from`` (module docstring) for ``household_ids``
    (all households with None) as of ``today`` (default: today in the service's time
    zone), in the caller's transaction; the number of households whose date changed. Every
    writer of visits, contact links, resident tags or residents calls it for the households
    it touched."""
    if household_ids is not None and not household_ids:
        return 0
    settings = settings or get_settings()
    day = today or local_today(settings)
    jan1 = dt.date(day.year, 1, 1)
    longest = session.execute(text("SELECT greatest((SELECT max(visit_every_days) FROM contact_kind), "
                                   "(SELECT max(visit_every_days) FROM special_group))")).scalar() or 0
    ids = None if household_ids is None else sorted(set(household_ids))
    params = {"ids": ids, "today": day, "jan1": jan1,
              "window": min(jan1, day - dt.timedelta(days=longest)),
              "dec31": dt.date(day.year, 12, 31), "diy": (dt.date(day.year + 1, 1, 1) - jan1).days}
    if ids is None:
        target = "SELECT id FROM household"
    elif len(ids) <= BULK:
        target = "SELECT id FROM unnest(CAST(:ids AS integer[])) AS t(id)"
    else:  # a table the planner has counted: hash joins, not a loop per household (15 s vs 7 s for 500,000)
        session.execute(text("CREATE TEMP TABLE IF NOT EXISTS due_target (id integer PRIMARY KEY) ON COMMIT DROP"))
        session.execute(text("TRUNCATE due_target"))
        session.execute(text("INSERT INTO due_target SELECT unnest(CAST(:ids AS integer[]))"), params)
        session.execute(text("ANALYZE due_target"))
        target = "SELECT id FROM due_target"
    result = session.execute(text(_REFRESH.format(target=target)), params)
    return getattr(result, "rowcount", 0) or 0
