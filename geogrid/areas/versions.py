"""Versioned edits of existing areas: attribute and boundary updates and retirement.
"""

from __future__ import annotations

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.areas.importing import (
    INSERT_BOUNDARY,
    count_or_problem,
    spill_over,
    text_or_none,
)
from geogrid.core.errors import GeogridError, Problem, conflict, not_found
from geogrid.core.settings import Settings
from geogrid.core.timeutil import local_today
from geogrid.core.versioning import check_version
from geogrid.db.schema import ADMIN_LAYER
from geogrid.geo.codes import code_problem
from geogrid.geo.geometry import check_polygons
from geogrid.people.households import rederive_after_boundary_write

EDITABLE_FIELDS = ("name", "households", "population", "land_use", "notes", "parent")


# --------------------------------------------------------------------------- edits


def get_area_row(session: Session, code: str, *, for_update: bool = False):
    """An area's row with its level's rank and code length (``for_update``: locked); 404 when
    unknown. No scope check: areas are public."""
    row = session.execute(
        text("SELECT a.*, l.rank, l.code_length FROM area a JOIN level l ON l.key = a.level_key WHERE a.code = :code"
             + (" FOR UPDATE OF a" if for_update else "")),
        {"code": code},
    ).first()
    if row is None:
        raise not_found(f"area {code}")
    return row


def update_area(
    session: Session,
    code: str,
    settings: Settings,
    *,
    changes: dict | None = None,
    geometry: shapely.Geometry | None = None,
    repair: bool = False,
    note: str | None = None,
    expected_version: int | None = None,
) -> dict:
    """Change attributes and/or the boundary. A new boundary becomes a new version; the
    old one is kept with its validity period closed now."""
    row, before = _open_for_edit(session, code, expected_version)
    changes = {k: v for k, v in (changes or {}).items() if k in EDITABLE_FIELDS}
    problems: list[Problem] = []
    for key in ("households", "population"):
        if key in changes:
            changes[key] = count_or_problem(changes[key], key, 0, code, problems)
    if "name" in changes and not text_or_none(changes["name"]):
        problems.append(Problem("name cannot be empty", field="name", code=code))
    new_parent = _new_parent(session, row, changes.pop("parent", None), problems) if "parent" in changes else None
    result = {"repaired": False, "warnings": []}
    if geometry is not None:
        checked = check_polygons([geometry], extent=settings.extent, repair=repair, codes=[code],
                                 max_vertices=settings.max_vertices_per_feature,
                                 max_total_vertices=settings.max_vertices_per_request)
        for p in checked.problems + checked.warnings:
            p.index = None
        problems += checked.problems
    if problems:
        raise GeogridError(f"area {code} was not changed", problems=problems)
    if changes:
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        session.execute(text(f"UPDATE area SET {sets} WHERE id = :id"), {**changes, "id": row.id})
    if new_parent is not None:
        with session.begin_nested() as savepoint:
            session.execute(text("UPDATE area SET parent_id = :p WHERE id = :id"), {"p": new_parent.id, "id": row.id})
            rejected = [s for s in spill_over(session, [row.id], settings) if s["rejected"]]
            if rejected:
                savepoint.rollback()
                raise GeogridError(f"area {code} was not changed", problems=[
                    Problem(s["message"], field="parent", code=s["code"], location=s["location"]) for s in rejected])
        changes["parent"] = new_parent.code
    if geometry is not None:
        with session.begin_nested() as savepoint:
            session.execute(text("UPDATE boundary SET valid = tstzrange(lower(valid), now()) "
                                 "WHERE area_id = :id AND upper_inf(valid)"), {"id": row.id})
            session.execute(INSERT_BOUNDARY, {
                "area_id": row.id,
                "version": session.execute(text("SELECT coalesce(max(version), 0) + 1 FROM boundary WHERE area_id = :id"),
                                           {"id": row.id}).scalar_one(),
                "wkb": shapely.to_wkb(checked.geoms[0]), "note": note, "valid_from": None,
            })
            # The edited area against its parent, and its children against it.
            children = session.execute(text("SELECT id FROM area WHERE parent_id = :id AND retired_at IS NULL"),
                                       {"id": row.id}).scalars().all()
            spill = spill_over(session, [row.id, *children], settings)
            if any(s["rejected"] for s in spill):
                savepoint.rollback()
                raise GeogridError(f"area {code} was not changed", problems=[
                    Problem(s["message"], field="geometry", code=s["code"], location=s["location"])
                    for s in spill if s["rejected"]])
            rederive_after_boundary_write(session, [row.id])
        result["repaired"] = bool(checked.repaired)
        result["warnings"] = [w.as_dict() for w in checked.warnings] + [
            Problem(s["message"], field="geometry", code=s["code"], location=s["location"]).as_dict() for s in spill]
    if changes or geometry is not None:
        session.execute(text("UPDATE area SET version = version + 1, updated_at = now() WHERE id = :id"), {"id": row.id})
        audit.record(session, "update", "area", code, before, {**_audit_state(session, row.id), "note": note})
    return result


def _new_parent(session: Session, row, parent: str | None, problems: list[Problem]):
    """The row of an area's new parent, checked: it exists and is current, sits above the
    area's level, is in the caller's scope (the new place, as the old was by
    :func:`_open_for_edit`), and the area's code fits under it. None with a problem added."""
    from geogrid.areas.importing import code_base
    from geogrid.areas.reference import levels

    if not parent:
        problems.append(Problem("parent cannot be removed, only changed", field="parent", code=row.code))
        return None
    new = session.execute(text("SELECT a.id, a.code, a.layer_key, a.retired_at, l.rank FROM area a "
                               "JOIN level l ON l.key = a.level_key WHERE a.code = :c"), {"c": parent}).first()
    if new is None or new.retired_at is not None:
        problems.append(Problem(f"parent {parent} is {'retired' if new else 'unknown'}", field="parent", code=row.code))
        return None
    scopes.require_scope(session, ("planner",), [new.id], strict=False)
    if new.rank >= row.rank:
        problems.append(Problem(f"parent {parent} is not above level {row.level_key}", field="parent", code=row.code))
    if new.layer_key not in (row.layer_key, ADMIN_LAYER):
        problems.append(Problem(f"parent {parent} belongs to layer {new.layer_key}", field="parent", code=row.code))
    if new.id == row.id or session.execute(text(
            "WITH RECURSIVE up(id) AS (SELECT CAST(:p AS integer) UNION SELECT a.parent_id FROM area a JOIN up ON a.id = up.id "
            "WHERE a.parent_id IS NOT NULL) SELECT bool_or(id = :me) FROM up"), {"p": new.id, "me": row.id}).scalar():
        problems.append(Problem(f"parent {parent} lies inside {row.code}", field="parent", code=row.code))
    why = code_problem(row.code, row.code_length, code_base(session, parent, levels(session)))
    if why:
        problems.append(Problem(why, field="parent", code=row.code))
    return new


def _open_for_edit(session: Session, code: str, expected_version: int | None):
    """Lock an area for a change: in the caller's scope, not retired, at the expected
    version; returns the row and its state before, for the audit log."""
    row = get_area_row(session, code, for_update=True)
    scopes.require_scope(session, ("planner",), [row.id], strict=True)
    if row.retired_at is not None:
        raise conflict(f"area {code} is retired")
    check_version("area", row.code, current=row.version, expected=expected_version)
    return row, _audit_state(session, row.id)


def _audit_state(session: Session, area_id: int) -> dict:
    """What the audit log keeps of an area: attributes and boundary version (the boundary
    itself stays in its versions)."""
    row = session.execute(text("""
        SELECT a.code, a.name, a.level_key AS level, a.layer_key AS layer, p.code AS parent, a.households,
               a.population, a.land_use, a.notes, a.version, a.retired_at,
               (SELECT max(version) FROM boundary WHERE area_id = a.id) AS boundary_version
        FROM area a LEFT JOIN area p ON p.id = a.parent_id WHERE a.id = :id
    """), {"id": area_id}).mappings().one()
    return dict(row)


def retire_area(session: Session, code: str, settings: Settings, *, expected_version: int | None = None) -> None:
    """Retire an area: its boundary's validity ends now, its code stays reserved, its
    history stays queryable, its current posts end today (the jurisdiction's day, not the
    database server's). Refused while it has active children."""
    row, before = _open_for_edit(session, code, expected_version)
    children = session.execute(
        text("SELECT code FROM area WHERE parent_id = :id AND retired_at IS NULL ORDER BY code LIMIT 5"), {"id": row.id}
    ).scalars().all()
    if children:
        raise conflict(f"area {code} still has active children ({', '.join(children)}...): retire or move them first")
    session.execute(text("UPDATE boundary SET valid = tstzrange(lower(valid), now()) WHERE area_id = :id AND upper_inf(valid)"),
                    {"id": row.id})
    rederive_after_boundary_write(session, [row.id])
    session.execute(text("UPDATE assignment SET end_date = :today WHERE area_id = :id "
                         "AND (end_date IS NULL OR end_date > :today) AND start_date <= :today"),
                    {"id": row.id, "today": local_today(settings)})
    session.execute(text("UPDATE area SET retired_at = now(), version = version + 1, updated_at = now() WHERE id = :id"),
                    {"id": row.id})
    audit.record(session, "retire", "area", code, before, _audit_state(session, row.id))
