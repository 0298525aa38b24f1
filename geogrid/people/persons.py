"""Persons: their contact details with per-field public flags (公示), listing within the
caller's scope, versioned edits, and deletion of persons who never held a post.

Posts (assignments) and roles are in :mod:`geogrid.people.assignments`: one person may
hold posts in several grids and one grid has several people (一格多员、一人多职).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import GeogridError, Problem, conflict
from geogrid.core.versioning import check_version

PERSON_FIELDS = ("ref", "name", "phone", "photo_url", "name_public", "phone_public", "photo_public", "notes")


# --------------------------------------------------------------------------- persons

_PERSON_COLUMNS = "id, ref, name, phone, photo_url, name_public, phone_public, photo_public, notes, version, created_at"


def create_persons(session: Session, records: Sequence[dict]) -> list[dict]:
    """Insert persons, all or nothing; a duplicate ``ref`` is a 409."""
    scopes.require_role(session, "planner")
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
    audit.record_many(session, "create", "person", [(p["id"], None, p) for p in out])
    return out


EDITORS = ("planner",)


def visibility(session: Session) -> tuple[str, str, dict]:
    """SQL conditions on ``person p``: who the caller may see (a post, held or past, in
    their scope) and edit (the same for planners, and persons with no post yet, whom any
    planner may appoint)."""
    staff, params = scopes.scope_filter(session, scopes.STAFF, "s.area_id", "staff_roots")
    planner, more = scopes.scope_filter(session, EDITORS, "s.area_id", "planner_roots")
    p = scopes.principal_of(session)
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
    visible, editable, params = visibility(session)
    return session.execute(text(f"SELECT {_PERSON_COLUMNS}, {visible} AS visible, {editable} AS editable "
                                "FROM person p WHERE p.id = :id" + (" FOR UPDATE OF p" if for_update else "")),
                           {**params, "id": person_id}).mappings().first()


def get_person(session: Session, person_id: int) -> dict:
    """A person the caller may see (see :func:`visibility`), private fields as in :func:`_shown`;
    unknown and hidden persons answer alike."""
    row = _person(session, person_id)
    scopes.require_object(session, f"person {person_id}", scopes.STAFF, None if row is None else [],
                          reachable=bool(row and row["visible"]))
    return _shown(row)


def _editable_person(session: Session, person_id: int) -> dict:
    """The person, locked, once the caller is known to be a planner who may edit them."""
    row = _person(session, person_id, for_update=True)
    scopes.require_object(session, f"person {person_id}", EDITORS, None if row is None else [],
                          reachable=bool(row and row["editable"]))
    return _shown(row)


def list_persons(session: Session, *, q: str | None, area: str | None, limit: int, offset: int) -> tuple[list[dict], int]:
    """Persons the caller may see (see :func:`visibility`), private fields as in :func:`_shown`."""
    scopes.require_role(session, *scopes.STAFF)
    visible, editable, params = visibility(session)
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


def update_person(session: Session, person_id: int, changes: dict, expected_version: int | None = None) -> dict:
    """Change a person's fields (planners who may edit them; 412 on a version mismatch, 409 for
    a ref taken). Returns the person as it is now."""
    current = _editable_person(session, person_id)
    check_version("person", person_id, current=current["version"], expected=expected_version)
    changes = {k: v for k, v in changes.items() if k in PERSON_FIELDS}
    if "name" in changes and not changes["name"]:
        raise GeogridError("name cannot be empty", problems=[Problem("name cannot be empty", field="name")])
    if changes:
        update_versioned(session, "person", person_id, changes,
                          f"a person with ref {changes.get('ref')} exists already")
        audit.record(session, "update", "person", person_id, current, get_person(session, person_id))
    return get_person(session, person_id)


def update_versioned(session: Session, table: str, row_id: int, values: dict, on_conflict: str) -> None:
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
    check_version("person", person_id, current=current["version"], expected=expected_version)
    held = session.execute(text("SELECT count(*) FROM assignment WHERE person_id = :id"), {"id": person_id}).scalar_one()
    if held:
        raise conflict(f"person {person_id} has {held} assignments in the history: end them instead of deleting the person")
    session.execute(text("DELETE FROM person WHERE id = :id"), {"id": person_id})
    audit.record(session, "delete", "person", person_id, current, None)
