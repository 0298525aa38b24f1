"""Roles and assignments: who holds which post in which area, and since when.

An assignment links a person to an area in a role over a date range; ending an
assignment sets its end date and keeps the row, so "who was responsible for this grid on
the day of the incident" stays answerable (:func:`responsible_persons`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import GeogridError, Problem, conflict
from geogrid.core.versioning import check_version
from geogrid.people.persons import (
    EDITORS,
    update_versioned,
    visibility,
)

ASSIGNMENT_FIELDS = ("role", "start_date", "end_date", "duties")


def roles(session: Session) -> dict[str, dict]:
    """The roles persons are appointed to, by key (rank, names, whether its holders count as
    responsible persons for routing)."""
    rows = session.execute(text("SELECT key, rank, name_zh, name_en, responsible FROM role ORDER BY rank, key"))
    return {r.key: r._asdict() for r in rows}


def add_role(session: Session, key: str, name_zh: str, name_en: str, rank: int = 100, responsible: bool = True) -> dict:
    """Add a role for appointments (admin only); 409 when the key is taken. Returns the new role."""
    scopes.require_role(session, "admin")
    if key in roles(session):
        raise conflict(f"role {key!r} exists already")
    session.execute(text("INSERT INTO role (key, rank, name_zh, name_en, responsible) VALUES (:k, :r, :zh, :en, :resp)"),
                    dict(k=key, r=rank, zh=name_zh, en=name_en, resp=responsible))
    audit.record(session, "create", "role", key, after=roles(session)[key])
    return roles(session)[key]


# --------------------------------------------------------------------------- assignments

_ASSIGNMENT_SELECT = """
    SELECT s.id, s.person_id, p.ref AS person_ref, p.name AS person_name, a.code AS area, s.role_key AS role,
           s.start_date, s.end_date, s.duties, s.version, s.created_at
    FROM assignment s JOIN person p ON p.id = s.person_id JOIN area a ON a.id = s.area_id
"""


def _resolve_person(session: Session, value) -> int | None:
    """A person the caller may appoint, by id or ref; None for unknown and out-of-scope alike."""
    _, editable, params = visibility(session)
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        found = session.execute(text(f"SELECT id FROM person p WHERE id = :id AND {editable}"),
                                {**params, "id": int(value)}).scalar()
        if found is not None:
            return found
    return session.execute(text(f"SELECT id FROM person p WHERE ref = :ref AND {editable}"),
                           {**params, "ref": str(value)}).scalar()


def create_assignments(session: Session, records: Sequence[dict]) -> list[dict]:
    """Appoint persons to areas, all or nothing.

    Each record names ``person`` (id or ref), ``area`` (code), ``role``, ``start_date``,
    optional ``end_date`` and ``duties``. The same person cannot hold the same role in the
    same area twice over overlapping dates (409).
    """
    scopes.require_role(session, "planner")
    known_roles = roles(session)
    problems, rows = [], []
    for i, r in enumerate(records):
        person_id = _resolve_person(session, r.get("person")) if r.get("person") is not None else None
        area_id = session.execute(text("SELECT id FROM area WHERE code = :c AND retired_at IS NULL"),
                                  {"c": str(r.get("area"))}).scalar()
        if person_id is None:
            problems.append(Problem(f"unknown person {r.get('person')!r} (or outside your scope)", field="person",
                                    index=i))
        if area_id is None:
            problems.append(Problem(f"unknown or retired area {r.get('area')!r}", field="area", index=i))
        if r.get("role") not in known_roles:
            problems.append(Problem(f"unknown role {r.get('role')!r}; known: {', '.join(known_roles)}", field="role", index=i))
        start, end = _as_date(r.get("start_date"), "start_date", i, problems), _as_date(r.get("end_date"), "end_date", i, problems)
        if start is None and r.get("start_date") is None:
            problems.append(Problem("start_date is required", field="start_date", index=i))
        if start and end and end < start:
            problems.append(Problem(f"end_date {end} is before start_date {start}", field="end_date", index=i))
        rows.append(dict(person_id=person_id, area_id=area_id, role=r.get("role"), start=start, end=end, duties=r.get("duties")))
    if problems:
        raise GeogridError("assignments rejected; nothing was stored", problems=problems)
    scopes.require_scope(session, ("planner",), sorted({r["area_id"] for r in rows}), strict=False)
    ids = []
    try:
        with session.begin_nested():
            for row in rows:
                ids.append(session.execute(text(
                    "INSERT INTO assignment (person_id, area_id, role_key, start_date, end_date, duties) "
                    "VALUES (:person_id, :area_id, :role, :start, :end, :duties) RETURNING id"), row).scalar_one())
    except IntegrityError as exc:
        if "assignment_no_overlap" in str(exc.orig):
            raise conflict("the same person already holds this role in this area over overlapping dates") from None
        raise
    created = list_assignments(session, ids=ids)
    audit.record_many(session, "create", "assignment", [(a["id"], None, a) for a in created])
    return created


def _as_date(value, name: str, i: int, problems: list[Problem]) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        problems.append(Problem(f"{name} must be a date YYYY-MM-DD, got {value!r}", field=name, index=i))
        return None


def list_assignments(session: Session, *, ids: Sequence[int] | None = None, area: str | None = None,
                     person: int | None = None, active_on: dt.date | None = None,
                     limit: int = 1000, offset: int = 0) -> list[dict]:
    """Assignments in areas of the caller's scope, filtered."""
    scopes.require_role(session, *scopes.STAFF)
    scope, params = scopes.scope_filter(session, scopes.STAFF, "s.area_id")
    where = [scope]
    params.update(limit=limit, offset=offset)
    if ids is not None:
        where.append("s.id = ANY(:ids)")
        params["ids"] = list(ids)
    if area:
        where.append("a.code = :area")
        params["area"] = area
    if person is not None:
        where.append("s.person_id = :person")
        params["person"] = person
    if active_on is not None:
        where.append("s.period @> CAST(:day AS date)")
        params["day"] = active_on
    rows = session.execute(text(f"{_ASSIGNMENT_SELECT} WHERE {' AND '.join(where)} "
                                "ORDER BY a.code, s.start_date, s.id LIMIT :limit OFFSET :offset"), params)
    return [dict(r) for r in rows.mappings()]


def get_assignment(session: Session, assignment_id: int, *, for_update: bool = False) -> dict:
    """One assignment in the caller's scope; ``for_update`` locks it and needs a planner's
    scope over its area. Unknown and out-of-scope assignments answer alike."""
    area_id = session.execute(text("SELECT area_id FROM assignment WHERE id = :id" + (" FOR UPDATE" if for_update else "")),
                              {"id": assignment_id}).scalar()
    scopes.require_object(session, f"assignment {assignment_id}", EDITORS if for_update else scopes.STAFF,
                          None if area_id is None else [area_id])
    return list_assignments(session, ids=[assignment_id])[0]


def update_assignment(session: Session, assignment_id: int, changes: dict, expected_version: int | None = None) -> dict:
    """Change dates or duties (ending a post = setting end_date); person, area and role are
    fixed: a different post is a new assignment, so history stays true."""
    current = get_assignment(session, assignment_id, for_update=True)
    check_version("assignment", assignment_id, current=current["version"], expected=expected_version)
    problems: list[Problem] = []
    values = {k: v for k, v in changes.items() if k in ("start_date", "end_date", "duties")}
    for key in ("start_date", "end_date"):
        if key in values:
            values[key] = _as_date(values[key], key, 0, problems)
    start = values.get("start_date", current["start_date"])
    end = values.get("end_date", current["end_date"])
    if start is None:
        problems.append(Problem("start_date is required", field="start_date"))
    elif end is not None and end < start:
        problems.append(Problem(f"end_date {end} is before start_date {start}", field="end_date"))
    if problems:
        raise GeogridError(f"assignment {assignment_id} was not changed", problems=problems)
    if values:
        update_versioned(session, "assignment", assignment_id, values,
                          "the new dates overlap another assignment of the same person, role and area")
        audit.record(session, "update", "assignment", assignment_id, current, get_assignment(session, assignment_id))
    return get_assignment(session, assignment_id)


def delete_assignment(session: Session, assignment_id: int, expected_version: int | None = None) -> None:
    """Remove an assignment entered by mistake. To end a post, set its end_date instead."""
    current = get_assignment(session, assignment_id, for_update=True)
    check_version("assignment", assignment_id, current=current["version"], expected=expected_version)
    session.execute(text("DELETE FROM assignment WHERE id = :id"), {"id": assignment_id})
    audit.record(session, "delete", "assignment", assignment_id, current, None)


def responsible_persons(session: Session, area_ids: Sequence[int], day: dt.date, lang: str = "zh",
                        *, public_only: bool = True, published: bool = True) -> dict[int, list[dict]]:
    """The persons holding a post in each area on ``day``, by area id: for the public, the
    view ``public_post`` (published areas, published fields only: 公示); ``published=False``:
    the published fields of posts in any area (staff looking at drafts); everything for
    staff views and routing (``public_only=False``)."""
    if not area_ids:
        return {}
    label = "name_en" if lang == "en" else "name_zh"
    person = "public_person" if public_only else "person"
    source = "public_post s" if public_only and published else (
        f"(SELECT a.*, p.name, p.phone, p.photo_url FROM assignment a JOIN {person} p ON p.id = a.person_id) s")
    rows = session.execute(text(f"""
        SELECT s.area_id, s.role_key, r.{label} AS role_name, r.rank, r.responsible, s.duties, s.start_date,
               s.person_id, s.name, s.phone, s.photo_url
        FROM {source} JOIN role r ON r.key = s.role_key
        WHERE s.area_id = ANY(:ids) AND s.period @> CAST(:day AS date)
        ORDER BY s.area_id, r.rank, s.person_id
    """), {"ids": list(area_ids), "day": day}).mappings()
    out: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        shown = {k: r[k] for k in ("name", "phone", "photo_url") if r[k]} if public_only else {
            "person_id": r["person_id"], "name": r["name"], "phone": r["phone"], "photo_url": r["photo_url"],
            "responsible": r["responsible"]}
        out[r["area_id"]].append({"role": r["role_key"], "role_name": r["role_name"], "duties": r["duties"],
                                  "since": r["start_date"], **shown})
    return out
