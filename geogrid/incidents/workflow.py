"""The case workflow: transitions, escalation of overdue cases and moving a case's point.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.core.errors import GeogridError, Problem, conflict
from geogrid.core.jsonenc import dumps_or_none
from geogrid.core.settings import Settings
from geogrid.core.versioning import check_version
from geogrid.incidents.categories import categories
from geogrid.incidents.intake import checked_owner, route, route_summary, validate
from geogrid.incidents.records import (
    event,
    get_incident,
    in_reach,
    require_case_scope,
    require_reader,
)
from geogrid.incidents.states import (
    CENTRE,
    HANDLERS,
    MAY_ENTER,
    STATES,
    STEP_OF,
    TERMINAL,
    TRANSITIONS,
    calendar,
)

# --------------------------------------------------------------------------- who may move a case

# The roles that take part in the workflow: the ones MAY_ENTER names.
WORKFLOW_ROLES = tuple(dict.fromkeys(CENTRE + HANDLERS))


def moves_from(state: str, roles) -> list[str]:
    """The moves out of ``state`` that an account holding ``roles`` (in reach of the case)
    may make: the legal transitions (TRANSITIONS) whose target state one of the roles may
    enter (MAY_ENTER). Pure: the map looks moves up by state after a move of its own.

    >>> moves_from("reported", {"grid_worker"}), moves_from("dispatched", {"grid_worker"})
    ([], ['in_progress'])
    >>> moves_from("reported", {"inspector"})
    ['accepted', 'void']
    """
    roles = set(roles)
    return [to for to in TRANSITIONS[state] if roles & set(MAY_ENTER[to])]


def reach_roles(session: Session, cases: list[dict]) -> list[frozenset[str]]:
    """For each of ``cases`` (which the caller may read), the caller's workflow roles that
    reach it (:func:`geogrid.incidents.records.in_reach`, role by role: with
    :func:`moves_from`, the moves :func:`transition` would allow; department handlers by
    their department only, as when MAY_ENTER's roles are checked together). The local
    operator and admins: every role. Cases that share grid, authority and department share
    the answer, so a map of thousands of cases asks once per place."""
    p = scopes.principal_of(session)
    if p is None or p.is_admin:
        return [frozenset(WORKFLOW_ROLES) for _ in cases]
    held = [r for r in WORKFLOW_ROLES if any(g.role == r for g in p.grants)]
    memo: dict[tuple, frozenset[str]] = {}
    out = []
    for case in cases:
        key = (case["grid"], case["authority"], case["department"])
        if key not in memo:
            memo[key] = frozenset(
                r for r in held
                if (any(g.role == r and g.department and g.department == case["department"] for g in p.grants)
                    if r == "department_handler" else in_reach(session, case, (r,))))
        out.append(memo[key])
    return out


def escalation_levels(session: Session, codes: list[str]) -> dict[str, int]:
    """How many levels lie above each area of ``codes``: how often a case whose authority
    it is can still be escalated (0: the top level, :func:`escalate` refuses)."""
    rows = session.execute(text("""
        WITH RECURSIVE up(code, id, n) AS (
            SELECT a.code, a.parent_id, 0 FROM area a WHERE a.code = ANY(:codes)
            UNION ALL SELECT up.code, a.parent_id, up.n + 1 FROM area a JOIN up ON a.id = up.id WHERE up.n < 64)
        SELECT code, max(n) FROM up GROUP BY code
    """), {"codes": list(set(codes))}).all()
    return {code: int(n) for code, n in rows}


# --------------------------------------------------------------------------- workflow


def _locked(session: Session, incident_id: int, expected_version: int | None, *, check: bool = True) -> dict:
    """The case, locked, once the caller's reach is checked (``check``), then its version."""
    session.execute(text("SELECT id FROM incident WHERE id = :id FOR UPDATE"), {"id": incident_id})
    case = get_incident(session, incident_id, check=check)
    check_version("incident", incident_id, current=case["version"], expected=expected_version)
    return case


def transition(session: Session, incident_id: int, to: str, settings: Settings, *, note: str | None = None,
               satisfaction: int | None = None, expected_version: int | None = None,
               at: dt.datetime | None = None, roles: tuple[str, ...] | None = None) -> dict:
    """Move a case to state ``to``; an illegal move is a 409 listing the allowed ones.
    ``at`` (internal callers: history replays and tests) is when it happened; default now.
    ``roles`` (internal: a request answered on the spot, 即办) replaces the roles that may
    make this move. A promised case (承诺) has its promised date as its handling deadline."""
    require_reader(session)
    case = _locked(session, incident_id, expected_version)
    if to not in STATES:
        raise GeogridError(f"unknown state {to!r}; states: {', '.join(STATES)}")
    allowed = TRANSITIONS[case["state"]]
    if to not in allowed:
        raise GeogridError(f"incident {case['receipt']} is {case['state']}: it cannot go to {to}", status=409,
                           extra={"state": case["state"], "allowed": list(allowed)})
    # The rule moves_from() states for the map: a role that may enter ``to`` (即办: the roles
    # given), in reach of the case.
    require_case_scope(session, case, roles or MAY_ENTER[to], f"move to {to}")
    if satisfaction is not None and to != "closed":
        raise GeogridError("satisfaction is given when a case is closed")
    now = at or dt.datetime.now(dt.UTC)
    work = calendar(settings)
    step = STEP_OF.get(to)
    due = case["due_at"]
    if step:
        due = step_due(case, step, now, work, _limits(session, case["category"]))
    elif to in TERMINAL or to == "parked":
        due = None
    elif to == "in_progress" and case["state"] in ("parked", "handled"):
        # Back from the parked list, or sent back by verification: handling starts again.
        due = step_due(case, "handle", now, work, _limits(session, case["category"]))
    session.execute(text("""
        UPDATE incident SET state = CAST(:to AS varchar), due_at = :due, version = version + 1, updated_at = now(),
               closed_at = CASE WHEN CAST(:to AS varchar) IN ('closed', 'void') THEN :now ELSE closed_at END,
               satisfaction = coalesce(CAST(:satisfaction AS integer), satisfaction)
        WHERE id = :id
    """), {"to": to, "due": due, "id": incident_id, "satisfaction": satisfaction, "now": now})
    event(session, incident_id, "transition", case["state"], to, note=note,
          data={"satisfaction": satisfaction} if satisfaction is not None else None, work=work, at=now)
    return get_incident(session, incident_id, check=False, history=True)


def callback(session: Session, incident_id: int, satisfaction: int, settings: Settings, *, note: str | None = None,
             expected_version: int | None = None, at: dt.datetime | None = None) -> dict:
    """Record the call-back (回访) of a closed case: the resident's satisfaction, found after
    closing (it replaces one given at closing; the history keeps both)."""
    require_reader(session)
    case = _locked(session, incident_id, expected_version)
    require_case_scope(session, case, CENTRE, "record the call-back of")
    if case["state"] != "closed":
        raise GeogridError(f"incident {case['receipt']} is {case['state']}: call-backs are made after closing",
                           status=409)
    now = at or dt.datetime.now(dt.UTC)
    session.execute(text("UPDATE incident SET satisfaction = :s, version = version + 1, updated_at = now() "
                         "WHERE id = :id"), {"s": satisfaction, "id": incident_id})
    event(session, incident_id, "callback", "closed", "closed", note=note,
          data={"satisfaction": satisfaction, "before": case["satisfaction"]}, work=calendar(settings), at=now)
    return get_incident(session, incident_id, check=False, history=True)


def step_due(case: dict, step: str, start: dt.datetime, work, limits: dict) -> dt.datetime:
    """The deadline of ``step`` started at ``start``: the category's time limit, except that
    a promised case (承诺) is handled by the date promised (even one already past: a broken
    promise is overdue at once)."""
    if step == "handle" and case.get("handling") == "promised" and case.get("promised_at"):
        return case["promised_at"]
    return work.add(start, *limits[step])


def _limits(session: Session, category: str) -> dict:
    return session.execute(text("SELECT time_limits FROM category WHERE key = :k"), {"k": category}).scalar_one()


def escalate(session: Session, incident_id: int, settings: Settings, *, note: str | None = None,
             expected_version: int | None = None, automatic: bool = False, at: dt.datetime | None = None) -> dict:
    """Hand the case one level up ("村呼镇应、镇呼县应"): its authority becomes the parent
    area, and the current step's time limit starts again there."""
    if not automatic:
        require_reader(session)
    case = _locked(session, incident_id, expected_version, check=not automatic)
    if case["state"] in TERMINAL:
        raise GeogridError(f"incident {case['receipt']} is {case['state']}", status=409)
    parent = session.execute(text("SELECT p.id, p.code FROM area a JOIN area p ON p.id = a.parent_id WHERE a.code = :c"),
                             {"c": case["authority"]}).first()
    if parent is None:
        raise conflict(f"incident {case['receipt']} is already with the top level ({case['authority']})")
    step = STEP_OF.get(case["state"]) or ("handle" if case["state"] in ("filed", "in_progress", "parked") else "verify")
    now = at or dt.datetime.now(dt.UTC)
    work = calendar(settings)
    due = work.add(now, *_limits(session, case["category"])[step])
    session.execute(text("""
        UPDATE incident SET authority_id = :p, escalation_level = escalation_level + 1, due_at = :due,
               version = version + 1, updated_at = now() WHERE id = :id
    """), {"p": parent.id, "due": due, "id": incident_id})
    event(session, incident_id, "escalate", case["state"], case["state"], note=note,
          data={"from": case["authority"], "to": parent.code, "automatic": automatic}, work=work, at=now)
    return get_incident(session, incident_id, check=False, history=True)


# The automatic escalation runs on one process at a time, whichever host (a fixed key).
ESCALATION_LOCK = 0x6767_6573_6361_6c01


def escalate_overdue(session: Session, settings: Settings, *, now: dt.datetime | None = None,
                     sole_runner: bool = False) -> list[str]:
    """Escalate every overdue open case whose category escalates automatically; returns
    their receipts. Each escalation restarts the step's time limit, so a case climbs one
    level per missed limit. ``sole_runner`` (the service's periodic run): do nothing when
    another process is running it now (a transaction-level advisory lock in PostgreSQL),
    so several API processes on several hosts escalate each case once."""
    if sole_runner and not session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                           {"k": ESCALATION_LOCK}).scalar():
        return []
    rows = session.execute(text("""
        SELECT i.id FROM incident i JOIN category c ON c.key = i.category_key
        WHERE c.auto_escalate AND i.state NOT IN ('closed', 'void', 'parked') AND i.due_at < :now
        ORDER BY i.due_at FOR UPDATE OF i SKIP LOCKED
    """), {"now": now or dt.datetime.now(dt.UTC)}).scalars().all()
    done = []
    for incident_id in rows:
        try:
            with session.begin_nested():
                done.append(escalate(session, incident_id, settings, note="time limit exceeded",
                                     automatic=True, at=now)["receipt"])
        except GeogridError:
            continue  # already at the top level: stays on the overdue list
    return done


def move(session: Session, incident_id: int, lon: float, lat: float, crs: str, settings: Settings, *,
         note: str | None = None, expected_version: int | None = None) -> dict:
    """Correct an incident's location: it is routed again, and the old route stays in its history."""
    require_reader(session)
    case = _locked(session, incident_id, expected_version)
    if case["state"] in TERMINAL:
        raise GeogridError(f"incident {case['receipt']} is {case['state']}: its location is final", status=409)
    problems: list[Problem] = []
    clean, problems = validate(session, {"category": case["category"], "description": case["description"],
                                          "lon": lon, "lat": lat, "crs": crs, "channel": case["channel"],
                                          "occurred_at": case["occurred_at"], "attributes": case["attributes"]},
                                settings, dt.datetime.now(dt.UTC))
    # The answers were checked at intake; a question added to the category since is no
    # reason to refuse a corrected location.
    problems = [p for p in problems if not (p.field or "").startswith("attributes.")]
    if problems:
        raise GeogridError(f"incident {case['receipt']} was not moved", problems=problems)
    tz = ZoneInfo(settings.timezone)
    category = categories(session)[case["category"]]
    where = route(session, *clean["point"], category, at=case["occurred_at"],
                  day=case["occurred_at"].astimezone(tz).date())
    moved_to = {**case, "grid": where["grid"] and where["grid"]["code"], "authority": where["authority"]["code"]}
    require_case_scope(session, moved_to, CENTRE + HANDLERS, f"move to {moved_to['authority']}")  # the new place too
    session.execute(text("""
        UPDATE incident SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), original = CAST(:original AS jsonb),
               route_kind = :kind, grid_id = :grid_id, authority_id = :authority_id, nearest_grid = CAST(:nearest AS jsonb),
               responsible = CAST(:responsible AS jsonb), escalation_level = 0, version = version + 1, updated_at = now()
        WHERE id = :id
    """), {"lon": clean["point"][0], "lat": clean["point"][1], "original": dumps_or_none(clean["original"]),
           "kind": where["kind"], "grid_id": where["grid_id"], "authority_id": where["authority_id"],
           "nearest": dumps_or_none(where["nearest_grid"]), "responsible": dumps_or_none(where["responsible"]), "id": incident_id})
    event(session, incident_id, "move", case["state"], case["state"], note=note, work=calendar(settings),
          at=dt.datetime.now(dt.UTC),
          data={"from": {"lon": case["lon"], "lat": case["lat"], "grid": case["grid"], "authority": case["authority"]},
                "to": {"lon": clean["point"][0], "lat": clean["point"][1], **route_summary(where)}})
    return get_incident(session, incident_id, check=False, history=True)


def set_owner(session: Session, incident_id: int, person_id: int | None, settings: Settings, *,
              note: str | None = None, expected_version: int | None = None) -> dict:
    """Name the leader who owns the case (包案), or nobody (``None``): the centre where the
    case lies; the person must be one the caller may see (422 otherwise, unknown and hidden
    alike). Kept in the case's history."""
    require_reader(session)
    case = _locked(session, incident_id, expected_version)
    require_case_scope(session, case, CENTRE, "name the owner of")
    if person_id is not None:
        problems: list[Problem] = []
        checked_owner(session, person_id, problems)
        if problems:
            raise GeogridError(f"the owner of incident {case['receipt']} was not changed", problems=problems)
    session.execute(text("UPDATE incident SET owner_person_id = :p, version = version + 1, updated_at = now() "
                         "WHERE id = :id"), {"p": person_id, "id": incident_id})
    event(session, incident_id, "owner", case["state"], case["state"], note=note,
          data={"from": case["owner_person_id"], "to": person_id}, work=calendar(settings), at=dt.datetime.now(dt.UTC))
    return get_incident(session, incident_id, check=False, history=True)


def add_note(session: Session, incident_id: int, note: str, settings: Settings) -> dict:
    """A comment in the case's history by anyone who may read the case, co-handling
    departments of a joint case (联办) included; the case itself does not change."""
    require_reader(session)
    case = _locked(session, incident_id, None)
    if not (note or "").strip():
        raise GeogridError("a note needs text", problems=[Problem("note is required", field="note")])
    event(session, incident_id, "note", case["state"], case["state"], note=note.strip(), work=calendar(settings),
          at=dt.datetime.now(dt.UTC))
    return get_incident(session, incident_id, check=False, history=True)
