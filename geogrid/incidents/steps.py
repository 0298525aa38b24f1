"""The steps of a case and the facts assessment reads (考核的依据).

A case moves through timed steps: accept (受理), dispatch (派遣), handle (处置) and verify
(核查). Each step is a row of ``incident_step`` with the area that had to finish it, the
deadline it had, when it ended, how (done, escalated, parked, voided, reopened) and by
whom, and the working time it took. Nothing is cleared when a case moves on or closes:
"closed on time" can always be rebuilt from the rows.

``case_fact`` holds one narrow row per case with what the indicators count (where it
happened, the grid workers then in post, accepted, closed, late steps, escalations,
handling time, satisfaction), and ``case_month`` their sums per place and local month (a
county's year is 60,000 such rows instead of a million cases). :func:`advance` keeps the
steps and the facts after every event of a case; it is called by
:func:`geogrid.incidents.records.event`, the one writer of a case's history, so no path
through the workflow can skip it. Intake, the one hot path, only marks its new case as
behind; the monthly sums are rewritten by :func:`catch_up`, one runner at a time, from
the marks every writer leaves (readers of the indicators call it first).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import text

from geogrid.incidents.states import STEP_IN, STEP_OF
from geogrid.incidents.workcal import WorkCalendar

OUTCOMES = ("done", "escalated", "parked", "voided", "reopened")

# What a case counts for, as conditions on its ``case_fact`` row ``f``: the one definition
# shared by the monthly sums and the indicators' queries over cases.
COUNTED = {
    "received": "true",
    "accepted": "f.accepted",
    "closed": "f.closed_at IS NOT NULL",
    "closed_on_time": "f.closed_at IS NOT NULL AND f.late_steps = 0",
    "voided": "f.voided",
    "parked": "f.parked",
    "late_cases": "f.late_steps > 0",
    "callbacks": "f.closed_at IS NOT NULL AND f.satisfaction IS NOT NULL",
    "first_reports": "f.channel = 'patrol'",
}
SATISFACTION_SCORES = range(11)


def outcome(action: str, from_state: str | None, to_state: str | None) -> str:
    """How an event ends the step a case was in.

    >>> outcome("escalate", "dispatched", "dispatched"), outcome("transition", "handled", "in_progress")
    ('escalated', 'reopened')
    >>> outcome("transition", "in_progress", "parked"), outcome("transition", "verified", "closed")
    ('parked', 'done')
    """
    if action == "escalate":
        return "escalated"
    if to_state == "parked":
        return "parked"
    if to_state == "void":
        return "voided"
    if from_state == "handled" and to_state == "in_progress":
        return "reopened"
    return "done"


def advance(db: Any, incident_id: int, *, action: str, from_state: str | None, to_state: str | None,
            at: dt.datetime, actor: str, work: WorkCalendar) -> None:
    """Bring the case's steps up to date after an event written at ``at``: the open step
    ends when the case leaves it, gets a new deadline (escalation, back from parked) or a
    new authority; the step of the case's new state opens with the case's deadline. A
    moved case keeps its step, now owed by the area it was routed to. ``db`` is a Session
    or a Connection."""
    case = db.execute(text("SELECT state, due_at, authority_id FROM incident WHERE id = :id"),
                      {"id": incident_id}).one()
    open_step = db.execute(text("""
        SELECT id, step, started_at, due_at, authority_id FROM incident_step
        WHERE incident_id = :id AND ended_at IS NULL
    """), {"id": incident_id}).first()
    wanted = STEP_IN.get(case.state)
    if open_step is not None:
        if action == "move":
            db.execute(text("UPDATE incident_step SET authority_id = :a, due_at = :due WHERE id = :s"),
                       {"a": case.authority_id, "due": case.due_at, "s": open_step.id})
        elif (wanted, case.due_at, case.authority_id) != (open_step.step, open_step.due_at, open_step.authority_id):
            db.execute(text("""
                UPDATE incident_step SET ended_at = :at, ended_by = :actor, outcome = :outcome, working_hours = :hours
                WHERE id = :s
            """), {"at": at, "actor": actor, "outcome": outcome(action, from_state, to_state),
                   "hours": max(work.working_hours_between(open_step.started_at, at), 0.0), "s": open_step.id})
            open_step = None
    if open_step is None and wanted is not None:
        db.execute(text("""
            INSERT INTO incident_step (incident_id, step, authority_id, started_at, due_at)
            VALUES (:id, :step, :a, :at, :due)
        """), {"id": incident_id, "step": wanted, "a": case.authority_id, "at": at, "due": case.due_at})
    refresh_facts(db, [incident_id], work.tz.key)


def open_imported(db: Any, incident_ids: list[int], tz: str) -> None:
    """Open the current step of imported cases (from when they happened, with their
    deadline) and write their facts: an imported history has no steps before that."""
    db.execute(text("""
        INSERT INTO incident_step (incident_id, step, authority_id, started_at, due_at)
        SELECT i.id, s.step, i.authority_id, i.reported_at, i.due_at
        FROM incident i JOIN jsonb_each_text(CAST(:steps AS jsonb)) s(state, step) ON s.state = i.state
        WHERE i.id = ANY(:ids)
    """), {"ids": incident_ids, "steps": json.dumps(STEP_IN)})
    refresh_facts(db, incident_ids, tz)


def refresh_facts(db: Any, incident_ids: list[int], tz: str, *, mark: bool = True) -> None:
    """Write the ``case_fact`` rows of these cases from the cases and their steps and events
    (days are local days in time zone ``tz``), in one statement, and mark the (place, month)
    cells they were and are counted in as behind (``case_month_stale``): :func:`catch_up`
    rewrites those sums, one runner at a time, so that two writers of one cell never race.
    ``mark=False`` leaves the sums to the caller (:func:`rebuild` writes them all)."""
    db.execute(text(f"""
        WITH before AS (  -- the statement's snapshot: where they were counted until now
            SELECT place_id, date_trunc('month', reported_day)::date AS month FROM case_fact
            WHERE incident_id = ANY(:ids)
        ), written AS (
            INSERT INTO case_fact AS f (incident_id, reported_at, reported_day, place_id, category_key, department, channel,
                                        worker_ids, state, accepted, closed_at, voided, parked, escalations, late_steps,
                                        due_at, handling_hours, satisfaction)
            SELECT i.id, i.reported_at, (i.reported_at AT TIME ZONE :tz)::date,
                   coalesce(i.grid_id, CASE WHEN i.escalation_level = 0 THEN i.authority_id END,
                            (SELECT s.authority_id FROM incident_step s WHERE s.incident_id = i.id ORDER BY s.id LIMIT 1),
                            i.authority_id),
                   i.category_key, i.department, i.channel,
                   coalesce((SELECT array_agg(DISTINCT (p->>'person_id')::int) FROM jsonb_array_elements(i.responsible) p
                             WHERE starts_with(p->>'role', 'grid_worker') AND p->>'person_id' IS NOT NULL), '{{}}'),
                   i.state,
                   coalesce(st.accept_done, i.state NOT IN ('reported', 'void') AND NOT coalesce(st.has_accept, false)),
                   CASE WHEN i.state = 'closed' THEN i.closed_at END,
                   i.state = 'void',
                   i.state = 'parked' OR coalesce(st.parked, false),
                   (SELECT count(*) FROM incident_event e WHERE e.incident_id = i.id AND e.action = 'escalate'),
                   coalesce(st.late, 0),
                   CASE WHEN i.state NOT IN ('closed', 'void', 'parked') THEN i.due_at END,
                   CASE WHEN i.state = 'closed' THEN coalesce(st.hours, 0) END,
                   i.satisfaction
            FROM incident i
            LEFT JOIN LATERAL (
                SELECT bool_or(s.step = 'accept' AND s.outcome = 'done') AS accept_done,
                       bool_or(s.step = 'accept') AS has_accept,
                       bool_or(s.outcome = 'parked') AS parked,
                       count(*) FILTER (WHERE s.late) AS late,
                       sum(s.working_hours) AS hours
                FROM incident_step s WHERE s.incident_id = i.id
            ) st ON true
            WHERE i.id = ANY(:ids)
            ON CONFLICT (incident_id) DO UPDATE SET
                reported_at = EXCLUDED.reported_at, reported_day = EXCLUDED.reported_day, place_id = EXCLUDED.place_id,
                category_key = EXCLUDED.category_key, department = EXCLUDED.department, channel = EXCLUDED.channel,
                worker_ids = EXCLUDED.worker_ids, state = EXCLUDED.state, accepted = EXCLUDED.accepted,
                closed_at = EXCLUDED.closed_at, voided = EXCLUDED.voided, parked = EXCLUDED.parked,
                escalations = EXCLUDED.escalations, late_steps = EXCLUDED.late_steps, due_at = EXCLUDED.due_at,
                handling_hours = EXCLUDED.handling_hours, satisfaction = EXCLUDED.satisfaction
            RETURNING place_id, date_trunc('month', reported_day)::date AS month
        )
        {"INSERT INTO case_month_stale (place_id, month)" if mark else ""}
        SELECT place_id, month FROM before UNION SELECT place_id, month FROM written
    """), {"ids": list(incident_ids), "tz": tz})
    if mark:
        marked(db)


# One runner at a time folds the stale marks in, on any host (an arbitrary fixed key).
CATCH_UP_LOCK = 0x6767_6361_7463_6801 & 0x7FFF_FFFF_FFFF_FFFF


def catch_up(db: Any, tz: str, *, wait: bool = True) -> tuple[int, int]:
    """Bring ``case_fact`` and ``case_month`` up to date: the facts of the cases marked
    behind (``case_fact_stale``: intake marks every new case), then the sums of the cells
    marked behind (``case_month_stale``). One runner at a time across every process (a
    transaction-level advisory lock); ``wait=False`` returns (0, 0) at once when another
    runner holds it. The marks are taken with the rows committed before them, so a case
    committed later leaves its own mark for the next run. Returns (cases, cells) done.

    Call it in its own transaction before reading the facts (indicators do)."""
    if wait:
        db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CATCH_UP_LOCK})
    elif not db.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": CATCH_UP_LOCK}).scalar():
        return 0, 0
    cases = sorted(set(db.execute(text("DELETE FROM case_fact_stale RETURNING incident_id")).scalars()))
    if cases:
        refresh_facts(db, cases, tz)
    cells = {(r.place_id, r.month) for r in db.execute(text("DELETE FROM case_month_stale RETURNING place_id, month"))}
    refresh_months(db, cells)
    return len(cases), len(cells)


def marked(db: Any) -> None:
    """Note that ``db`` (a Session or Connection) has left marks of its own, not committed
    yet: a reader in the same transaction must fold them in itself."""
    db.info[_MARKED] = True


_MARKED = "geogrid.facts_marked"


def catch_up_before_reading(session: Any, tz: str) -> None:
    """:func:`catch_up` before facts are read: in a transaction of its own, committed at
    once (a reader's request may be long and never commits), when the session is on an
    engine. A session that left marks of its own (a writer reading its own changes, not
    committed yet) catches up in its own transaction instead, which then holds the lock
    until it ends: a second transaction of its own would wait for that lock forever. So
    does a session on one connection (bulk jobs)."""
    from sqlalchemy import Engine

    bind = session.get_bind()
    if isinstance(bind, Engine) and not session.info.get(_MARKED):
        with bind.begin() as conn:
            catch_up(conn, tz)
        return
    catch_up(session, tz)


def month_sums_sql(where: str) -> str:
    """The SELECT of ``case_month`` rows from the ``case_fact`` rows ``f`` matching ``where``."""
    counted = ", ".join(f"count(*) FILTER (WHERE {cond})" for cond in COUNTED.values())
    scores = ", ".join(f"count(*) FILTER (WHERE f.satisfaction = {k})" for k in SATISFACTION_SCORES)
    return f"""
        SELECT f.place_id, date_trunc('month', f.reported_day)::date, {counted},
               coalesce(sum(f.escalations), 0), ARRAY[{scores}],
               coalesce(array_agg(f.handling_hours ORDER BY f.handling_hours)
                        FILTER (WHERE f.closed_at IS NOT NULL AND f.handling_hours IS NOT NULL), '{{}}'),
               coalesce(sum(f.handling_hours) FILTER (WHERE f.closed_at IS NOT NULL), 0),
               coalesce(array_agg(f.due_at) FILTER (WHERE f.due_at IS NOT NULL), '{{}}'),
               coalesce(array_agg(f.due_at) FILTER (WHERE f.due_at IS NOT NULL AND f.late_steps = 0), '{{}}')
        FROM case_fact f WHERE {where}
        GROUP BY 1, 2
    """


MONTH_COLUMNS = ("place_id", "month", *COUNTED, "escalations", "satisfaction", "hours", "hours_sum", "open_due",
                 "open_due_in_time")
_IN_CELLS = """(f.place_id, date_trunc('month', f.reported_day)::date) IN (
    SELECT * FROM unnest(CAST(:places AS int[]), CAST(:months AS date[])))"""


def refresh_months(db: Any, cells: set[tuple[int, dt.date]]) -> None:
    """Write again the ``case_month`` rows of these (place id, month) cells from their cases."""
    if not cells:
        return
    params = {"places": [c[0] for c in cells], "months": [c[1] for c in cells]}
    db.execute(text("""
        DELETE FROM case_month m USING unnest(CAST(:places AS int[]), CAST(:months AS date[])) c(place_id, month)
        WHERE m.place_id = c.place_id AND m.month = c.month
    """), params)
    db.execute(text(f"INSERT INTO case_month ({', '.join(MONTH_COLUMNS)}) {month_sums_sql(_IN_CELLS)}"), params)


def rebuild(db: Any, work: WorkCalendar) -> int:
    """Rebuild every case's steps and facts by replaying its events (the migration of
    cases stored before steps were kept). A step that has ended gets the deadline the
    category's time limits give from its start; the open step keeps the case's own.
    Returns the number of cases."""
    db.execute(text("DELETE FROM incident_step"))
    cases = db.execute(text("""
        SELECT i.id, i.state, i.due_at, i.authority_id, i.reported_at, c.time_limits,
               coalesce(i.grid_id, i.authority_id) AS first_authority
        FROM incident i JOIN category c ON c.key = i.category_key ORDER BY i.id
    """)).all()
    events: dict[int, list] = {}
    for e in db.execute(text("SELECT incident_id, at, actor, action, from_state, to_state, data "
                             "FROM incident_event ORDER BY id")).all():
        events.setdefault(e.incident_id, []).append(e)
    rows = []
    for case in cases:
        open_step: dict | None = None
        authority = case.first_authority
        state = None
        for e in events.get(case.id, []):
            if e.action == "escalate":
                authority = _area_id(db, (e.data or {}).get("to")) or authority
            new_state = e.to_state or state
            wanted = STEP_IN.get(new_state) if new_state else None
            restart = e.action in ("escalate", "import") or (new_state in STEP_OF and new_state != state) or (
                new_state == "in_progress" and state in ("parked", "handled"))
            if open_step and (restart or wanted != open_step["step"]):
                open_step.update(ended_at=e.at, ended_by=e.actor, outcome=outcome(e.action, state, new_state),
                                 working_hours=max(work.working_hours_between(open_step["started_at"], e.at), 0.0))
                rows.append(open_step)
                open_step = None
            if open_step is None and wanted is not None:
                step = wanted
                amount, unit = case.time_limits.get(step, (None, None)) if isinstance(case.time_limits, dict) else (None, None)
                due = work.add(e.at, amount, unit) if amount is not None else None
                open_step = {"incident_id": case.id, "step": step, "authority_id": authority, "started_at": e.at,
                             "due_at": due, "ended_at": None, "ended_by": None, "outcome": None, "working_hours": None}
            state = new_state
        if open_step is not None:
            open_step.update(due_at=case.due_at, authority_id=case.authority_id)
            rows.append(open_step)
    if rows:
        db.execute(text("""
            INSERT INTO incident_step (incident_id, step, authority_id, started_at, due_at, ended_at, ended_by,
                                       outcome, working_hours)
            VALUES (:incident_id, :step, :authority_id, :started_at, :due_at, :ended_at, :ended_by, :outcome,
                    :working_hours)
        """), rows)
    db.execute(text("DELETE FROM case_fact"))
    db.execute(text("DELETE FROM case_month"))
    if cases:
        # Every cell at once (migration 0009 runs this before the stale marks existed).
        refresh_facts(db, [c.id for c in cases], work.tz.key, mark=False)
        db.execute(text(f"INSERT INTO case_month ({', '.join(MONTH_COLUMNS)}) {month_sums_sql('TRUE')}"))
    return len(cases)


def _area_id(db: Any, code: str | None) -> int | None:
    if not code:
        return None
    return db.execute(text("SELECT id FROM area WHERE code = :c"), {"c": code}).scalar()

