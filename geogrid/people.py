"""Persons, roles and assignments (who is responsible for which grid, and since when).

An assignment links a person to an area in a role over a date range; ending an
assignment sets its end date and keeps the row, so "who was responsible for this grid on
the day of the incident" stays answerable. One person may hold posts in several grids and
one grid has several people (一格多员、一人多职).

All SQL touching ``person``, ``role`` and ``assignment`` lives in this module.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geogrid import access
from geogrid.errors import GeogridError, Problem, conflict

PERSON_FIELDS = ("ref", "name", "phone", "photo_url", "name_public", "phone_public", "photo_public", "notes")
ASSIGNMENT_FIELDS = ("role", "start_date", "end_date", "duties")


def roles(session: Session) -> dict[str, dict]:
    rows = session.execute(text("SELECT key, rank, name_zh, name_en, responsible FROM role ORDER BY rank, key"))
    return {r.key: r._asdict() for r in rows}


def add_role(session: Session, key: str, name_zh: str, name_en: str, rank: int = 100, responsible: bool = True) -> dict:
    access.require_role(session, "admin")
    if key in roles(session):
        raise conflict(f"role {key!r} exists already")
    session.execute(text("INSERT INTO role (key, rank, name_zh, name_en, responsible) VALUES (:k, :r, :zh, :en, :resp)"),
                    dict(k=key, r=rank, zh=name_zh, en=name_en, resp=responsible))
    access.record(session, "create", "role", key, after=roles(session)[key])
    return roles(session)[key]


# --------------------------------------------------------------------------- persons

_PERSON_COLUMNS = "id, ref, name, phone, photo_url, name_public, phone_public, photo_public, notes, version, created_at"


def public_fields(person: dict) -> dict:
    """Only what a person allowed to be published (公示); never notes."""
    out = {}
    if person.get("name_public"):
        out["name"] = person["name"]
    if person.get("phone_public") and person.get("phone"):
        out["phone"] = person["phone"]
    if person.get("photo_public") and person.get("photo_url"):
        out["photo_url"] = person["photo_url"]
    return out


def create_persons(session: Session, records: Sequence[dict]) -> list[dict]:
    """Insert persons, all or nothing; a duplicate ``ref`` is a 409."""
    access.require_role(session, "planner")
    problems = [Problem("name is required", field="name", index=i) for i, r in enumerate(records) if not r.get("name")]
    if problems:
        raise GeogridError("persons rejected; nothing was stored", problems=problems)
    refs = [r["ref"] for r in records if r.get("ref")]
    if len(refs) != len(set(refs)):
        raise conflict("duplicate ref in the request")
    taken = session.execute(text("SELECT ref FROM person WHERE ref = ANY(:refs)"), {"refs": refs}).scalars().all()
    if taken:
        raise conflict(f"a person with ref {', '.join(taken[:5])} exists already")
    out = []
    for r in records:
        values = {k: r.get(k) for k in PERSON_FIELDS}
        for flag, default in (("name_public", True), ("phone_public", False), ("photo_public", False)):
            values[flag] = default if values[flag] is None else bool(values[flag])
        row = session.execute(text(
            f"INSERT INTO person (ref, name, phone, photo_url, name_public, phone_public, photo_public, notes) "
            f"VALUES (:ref, :name, :phone, :photo_url, :name_public, :phone_public, :photo_public, :notes) "
            f"RETURNING {_PERSON_COLUMNS}"), values).mappings().one()
        out.append(dict(row))
    access.record_many(session, "create", "person", [(p["id"], None, p) for p in out])
    return out


EDITORS = ("planner",)


def _visibility(session: Session) -> tuple[str, str, dict]:
    """SQL conditions on ``person p``: who the caller may see (a post, held or past, in
    their scope) and edit (the same for planners, and persons with no post yet, whom any
    planner may appoint)."""
    staff, params = access.scope_filter(session, access.STAFF, "s.area_id", "staff_roots")
    planner, more = access.scope_filter(session, EDITORS, "s.area_id", "planner_roots")
    p = access.principal_of(session)
    params.update(more, may_plan=p is None or p.has_role(*EDITORS))
    editable = (f"(EXISTS (SELECT 1 FROM assignment s WHERE s.person_id = p.id AND {planner}) "
                "OR (:may_plan AND NOT EXISTS (SELECT 1 FROM assignment s WHERE s.person_id = p.id)))")
    visible = f"(EXISTS (SELECT 1 FROM assignment s WHERE s.person_id = p.id AND {staff}) OR {editable})"
    return visible, editable, params


_COLUMNS = tuple(c.strip() for c in _PERSON_COLUMNS.split(","))


def _shown(row) -> dict:
    """A person as the caller may see them: notes and unpublished phones only for those who
    may edit the person (planners in scope); other staff see what the public would, and names."""
    out = {k: row[k] for k in _COLUMNS}
    if not row["editable"]:
        out["notes"] = None
        if not out["phone_public"]:
            out["phone"] = None
    return out


def _person(session: Session, person_id: int, *, for_update: bool = False):
    visible, editable, params = _visibility(session)
    return session.execute(text(f"SELECT {_PERSON_COLUMNS}, {visible} AS visible, {editable} AS editable "
                                "FROM person p WHERE p.id = :id" + (" FOR UPDATE OF p" if for_update else "")),
                           {**params, "id": person_id}).mappings().first()


def get_person(session: Session, person_id: int) -> dict:
    row = _person(session, person_id)
    access.require_object(session, f"person {person_id}", access.STAFF, None if row is None else [],
                          reachable=bool(row and row["visible"]))
    return _shown(row)


def _editable_person(session: Session, person_id: int) -> dict:
    """The person, locked, once the caller is known to be a planner who may edit them."""
    row = _person(session, person_id, for_update=True)
    access.require_object(session, f"person {person_id}", EDITORS, None if row is None else [],
                          reachable=bool(row and row["editable"]))
    return _shown(row)


def list_persons(session: Session, *, q: str | None, area: str | None, limit: int, offset: int) -> tuple[list[dict], int]:
    """Persons the caller may see (see :func:`_visibility`), private fields as in :func:`_shown`."""
    access.require_role(session, *access.STAFF)
    visible, editable, params = _visibility(session)
    where = [visible]
    params.update(limit=limit, offset=offset)
    if q:
        # Unpublished phones are searchable only by those who may see them.
        where.append(f"(p.name ILIKE :q OR p.ref ILIKE :q OR (p.phone LIKE :q AND (p.phone_public OR {editable})))")
        params["q"] = f"%{q}%"
    if area:
        where.append("EXISTS (SELECT 1 FROM assignment s JOIN area a ON a.id = s.area_id "
                     "WHERE s.person_id = p.id AND a.code = :area)")
        params["area"] = area
    cond = " AND ".join(where)
    total = session.execute(text(f"SELECT count(*) FROM person p WHERE {cond}"), params).scalar_one()
    rows = session.execute(text(f"SELECT {_PERSON_COLUMNS}, {editable} AS editable FROM person p WHERE {cond} "
                                "ORDER BY id LIMIT :limit OFFSET :offset"), params).mappings().all()
    return [_shown(r) for r in rows], total


def _check_expected(kind: str, key, current: int, expected: int | None) -> None:
    if expected is not None and expected != current:
        raise GeogridError(f"{kind} {key} is at version {current}, not {expected}: reload it and apply your change again",
                           status=412, extra={"current_version": current})


def update_person(session: Session, person_id: int, changes: dict, expected_version: int | None = None) -> dict:
    current = _editable_person(session, person_id)
    _check_expected("person", person_id, current["version"], expected_version)
    changes = {k: v for k, v in changes.items() if k in PERSON_FIELDS}
    if "name" in changes and not changes["name"]:
        raise GeogridError("name cannot be empty", problems=[Problem("name cannot be empty", field="name")])
    if changes:
        _update_versioned(session, "person", person_id, changes,
                          f"a person with ref {changes.get('ref')} exists already")
        access.record(session, "update", "person", person_id, current, get_person(session, person_id))
    return get_person(session, person_id)


def _update_versioned(session: Session, table: str, row_id: int, values: dict, on_conflict: str) -> None:
    """Set ``values`` and bump the row's version; a constraint violation is a 409."""
    sets = ", ".join(f"{k} = :{k}" for k in values)
    try:
        with session.begin_nested():
            session.execute(text(f"UPDATE {table} SET {sets}, version = version + 1 WHERE id = :id"),
                            {**values, "id": row_id})
    except IntegrityError:
        raise conflict(on_conflict) from None


def delete_person(session: Session, person_id: int, expected_version: int | None = None) -> None:
    """Delete a person who never held a post; one with a history is kept (end their posts instead)."""
    current = _editable_person(session, person_id)
    _check_expected("person", person_id, current["version"], expected_version)
    held = session.execute(text("SELECT count(*) FROM assignment WHERE person_id = :id"), {"id": person_id}).scalar_one()
    if held:
        raise conflict(f"person {person_id} has {held} assignments in the history: end them instead of deleting the person")
    session.execute(text("DELETE FROM person WHERE id = :id"), {"id": person_id})
    access.record(session, "delete", "person", person_id, current, None)


# --------------------------------------------------------------------------- assignments

_ASSIGNMENT_SELECT = """
    SELECT s.id, s.person_id, p.ref AS person_ref, p.name AS person_name, a.code AS area, s.role_key AS role,
           s.start_date, s.end_date, s.duties, s.version, s.created_at
    FROM assignment s JOIN person p ON p.id = s.person_id JOIN area a ON a.id = s.area_id
"""


def _resolve_person(session: Session, value) -> int | None:
    """A person the caller may appoint, by id or ref; None for unknown and out-of-scope alike."""
    _, editable, params = _visibility(session)
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
    access.require_role(session, "planner")
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
    access.require_scope(session, ("planner",), sorted({r["area_id"] for r in rows}), strict=False)
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
    access.record_many(session, "create", "assignment", [(a["id"], None, a) for a in created])
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
    access.require_role(session, *access.STAFF)
    scope, params = access.scope_filter(session, access.STAFF, "s.area_id")
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
    access.require_object(session, f"assignment {assignment_id}", EDITORS if for_update else access.STAFF,
                          None if area_id is None else [area_id])
    return list_assignments(session, ids=[assignment_id])[0]


def update_assignment(session: Session, assignment_id: int, changes: dict, expected_version: int | None = None) -> dict:
    """Change dates or duties (ending a post = setting end_date); person, area and role are
    fixed: a different post is a new assignment, so history stays true."""
    current = get_assignment(session, assignment_id, for_update=True)
    _check_expected("assignment", assignment_id, current["version"], expected_version)
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
        _update_versioned(session, "assignment", assignment_id, values,
                          "the new dates overlap another assignment of the same person, role and area")
        access.record(session, "update", "assignment", assignment_id, current, get_assignment(session, assignment_id))
    return get_assignment(session, assignment_id)


def delete_assignment(session: Session, assignment_id: int, expected_version: int | None = None) -> None:
    """Remove an assignment entered by mistake. To end a post, set its end_date instead."""
    current = get_assignment(session, assignment_id, for_update=True)
    _check_expected("assignment", assignment_id, current["version"], expected_version)
    session.execute(text("DELETE FROM assignment WHERE id = :id"), {"id": assignment_id})
    access.record(session, "delete", "assignment", assignment_id, current, None)


def responsible_persons(session: Session, area_ids: Sequence[int], day: dt.date, lang: str = "zh",
                        *, public_only: bool = True) -> dict[int, list[dict]]:
    """The persons holding a post in each area on ``day``, by area id: public fields only
    (公示), or everything for staff views (``public_only=False``)."""
    if not area_ids:
        return {}
    label = "name_en" if lang == "en" else "name_zh"
    rows = session.execute(text(f"""
        SELECT s.area_id, s.role_key, r.{label} AS role_name, r.rank, r.responsible, s.duties, s.start_date,
               s.end_date, p.id AS person_id, p.name, p.phone, p.photo_url, p.name_public, p.phone_public,
               p.photo_public
        FROM assignment s JOIN person p ON p.id = s.person_id JOIN role r ON r.key = s.role_key
        WHERE s.area_id = ANY(:ids) AND s.period @> CAST(:day AS date)
        ORDER BY s.area_id, r.rank, p.id
    """), {"ids": list(area_ids), "day": day}).mappings()
    out: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        shown = public_fields(r) if public_only else {
            "person_id": r["person_id"], "name": r["name"], "phone": r["phone"], "photo_url": r["photo_url"],
            "responsible": r["responsible"]}
        out[r["area_id"]].append({"role": r["role_key"], "role_name": r["role_name"], "duties": r["duties"],
                                  "since": r["start_date"], **shown})
    return out
