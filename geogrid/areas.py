"""Areas and grids: the one write path (import), boundary versions, listing and point lookup.

Every way an area enters the database (``POST /api/grids`` with one feature, a bulk
upload, ``geogrid import FILE``, the demo) goes through :func:`import_areas`, which is
all-or-nothing: either every feature is valid and written, or nothing is written and the
report says which features were rejected and why.

All SQL touching ``area`` and ``boundary`` lives in this module.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid import access
from geogrid import codes as codelib
from geogrid.errors import GeogridError, Problem, conflict, not_found
from geogrid.geometry import check_polygons
from geogrid.models import ADMIN_LAYER
from geogrid.settings import Settings

AREA_FIELDS = ("code", "name", "level", "layer", "parent", "households", "population", "land_use", "notes")
# Column sizes of table area: a file is checked against them like an API request is.
TEXT_LIMITS = {"name": 200, "land_use": 64, "notes": 10_000, "code": 32, "parent": 32, "level": 32, "layer": 32}
MAX_COUNT = 10_000_000
EDITABLE_FIELDS = ("name", "households", "population", "land_use", "notes")


# --------------------------------------------------------------------------- time


def as_instant(at: dt.date | dt.datetime | None, settings: Settings) -> dt.datetime | None:
    """The instant a query looks at: a datetime as is, a date as the end of that day
    in the service's time zone (so that an edit made during day D counts on day D)."""
    if at is None or isinstance(at, dt.datetime):
        if isinstance(at, dt.datetime) and at.tzinfo is None:
            return at.replace(tzinfo=ZoneInfo(settings.timezone))
        return at
    return dt.datetime.combine(at, dt.time.max, tzinfo=ZoneInfo(settings.timezone))


def local_today(settings: Settings) -> dt.date:
    """Today in the jurisdiction's time zone (not the server's)."""
    return dt.datetime.now(ZoneInfo(settings.timezone)).date()


def _valid_clause(at: dt.datetime | None) -> str:
    # upper_inf() lets PostGIS use the partial index of current boundaries.
    return "upper_inf(b.valid)" if at is None else "b.valid @> CAST(:at AS timestamptz)"


# --------------------------------------------------------------------------- reference data


def levels(session: Session) -> dict[str, dict]:
    rows = session.execute(text("SELECT key, rank, code_length, name_zh, name_en FROM level ORDER BY rank"))
    return {r.key: r._asdict() for r in rows}


def layers(session: Session) -> dict[str, dict]:
    rows = session.execute(text("SELECT key, name_zh, name_en, description FROM layer ORDER BY key"))
    return {r.key: r._asdict() for r in rows}


def add_level(session: Session, key: str, rank: int, code_length: int, name_zh: str, name_en: str) -> dict:
    access.require_role(session, "admin")
    if key in levels(session):
        raise conflict(f"level {key!r} exists already")
    if any(lv["rank"] == rank for lv in levels(session).values()):
        raise conflict(f"a level with rank {rank} exists already")
    session.execute(
        text("INSERT INTO level (key, rank, code_length, name_zh, name_en) VALUES (:k, :r, :c, :zh, :en)"),
        dict(k=key, r=rank, c=code_length, zh=name_zh, en=name_en),
    )
    access.record(session, "create", "level", key, after=levels(session)[key])
    return levels(session)[key]


def add_layer(session: Session, key: str, name_zh: str, name_en: str, description: str | None = None) -> dict:
    access.require_role(session, "admin")
    if key in layers(session):
        raise conflict(f"layer {key!r} exists already")
    session.execute(
        text("INSERT INTO layer (key, name_zh, name_en, description) VALUES (:k, :zh, :en, :d)"),
        dict(k=key, zh=name_zh, en=name_en, d=description),
    )
    access.record(session, "create", "layer", key, after=layers(session)[key])
    return layers(session)[key]


def update_layer(session: Session, key: str, changes: dict) -> dict:
    access.require_role(session, "admin")
    before = layers(session).get(key)
    if before is None:
        raise not_found(f"layer {key}")
    changes = {k: v for k, v in changes.items() if k in ("name_zh", "name_en", "description")}
    if changes:
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        session.execute(text(f"UPDATE layer SET {sets} WHERE key = :key"), {**changes, "key": key})
        access.record(session, "update", "layer", key, before, layers(session)[key])
    return layers(session)[key]


def delete_layer(session: Session, key: str) -> None:
    """Remove a thematic net that holds no areas (retired ones included: history stays)."""
    access.require_role(session, "admin")
    before = layers(session).get(key)
    if before is None:
        raise not_found(f"layer {key}")
    used = session.execute(text("SELECT count(*) FROM area WHERE layer_key = :k"), {"k": key}).scalar_one()
    if key == ADMIN_LAYER or used:
        raise conflict(f"layer {key} holds {used} areas and cannot be deleted" if used else "the admin layer is required")
    session.execute(text("DELETE FROM layer WHERE key = :k"), {"k": key})
    access.record(session, "delete", "layer", key, before, None)


# --------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    """What an import did (or, for a dry run, would do)."""

    imported: int = 0
    by_level: dict[str, int] = field(default_factory=dict)
    codes: list[str] = field(default_factory=list)
    generated_codes: list[dict] = field(default_factory=list)
    repaired: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _text_or_none(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # codes read from numeric columns: 330102.0 -> "330102"
    if isinstance(value, dict):  # nested parent objects such as {"adcode": 330100}
        value = next(iter(value.values()), None)
        return _text_or_none(value)
    value = str(value).strip()
    return value or None


def _count_or_problem(value, name: str, i: int, code: str | None, problems: list[Problem]) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append(Problem(f"{name} must be a whole number, got {value!r}", field=name, index=i, code=code))
        return None
    if not number.is_integer() or not 0 <= number <= MAX_COUNT:
        problems.append(Problem(f"{name} must be a whole number from 0 to {MAX_COUNT:,}, got {value!r}",
                                field=name, index=i, code=code))
        return None
    return int(number)


def import_areas(
    session: Session,
    records: Sequence[dict],
    geoms: Sequence[shapely.Geometry | None],
    settings: Settings,
    *,
    defaults: dict | None = None,
    overrides: dict | None = None,
    repair: bool = False,
    dry_run: bool = False,
    note: str | None = None,
    max_spill_ratio: float | None = None,
    valid_from: dt.datetime | None = None,
) -> ImportReport:
    """Validate and insert areas, all or nothing.

    ``records`` hold the properties of each feature (see ``AREA_FIELDS``); ``defaults``
    fill in what a record leaves out and ``overrides`` replace what it says (a file is
    usually one level of one net: ``overrides={"level": "county"}``). Codes left out are
    generated under the parent in reading order. A feature's parent may be another
    feature of the same batch. Raises :class:`GeogridError` (422) listing every rejected
    feature; nothing is written then. ``max_spill_ratio`` overrides the setting of that
    name for this import (real data digitised level by level may need more).
    ``valid_from`` backdates the boundaries (an initial load of boundaries in force for
    years), so that historical incidents can be routed; default now.
    """
    n = len(records)
    if n == 0:
        raise GeogridError("no features to import")
    lv, ly = levels(session), layers(session)
    problems: list[Problem] = []
    rows: list[dict] = []
    defaults = {"layer": ADMIN_LAYER, **{k: v for k, v in (defaults or {}).items() if v is not None}}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for i, rec in enumerate(records):
        row = {k: _text_or_none(rec.get(k)) for k in ("code", "name", "level", "layer", "parent", "land_use", "notes")}
        for key, value in defaults.items():
            row[key] = row[key] or value
        row.update(overrides)
        code = row["code"]
        for key in ("households", "population"):
            row[key] = _count_or_problem(rec.get(key), key, i, code, problems)
        if not row["name"]:
            problems.append(Problem("name is required", field="name", index=i, code=code))
        for key, most in TEXT_LIMITS.items():
            if row[key] is not None and len(row[key]) > most:
                problems.append(Problem(f"{key} is longer than {most} characters", field=key, index=i, code=code[:40] if code else None))
                row[key] = row[key][:most]
        if row["level"] not in lv:
            problems.append(Problem(f"unknown level {row['level']!r}; known: {', '.join(lv)}", field="level", index=i, code=code))
        if row["layer"] not in ly:
            problems.append(Problem(f"unknown layer {row['layer']!r}; known: {', '.join(ly)}", field="layer", index=i, code=code))
        rows.append(row)

    checked = check_polygons(geoms, extent=settings.extent, repair=repair, codes=[r["code"] for r in rows],
                             max_vertices=settings.max_vertices_per_feature,
                             max_total_vertices=settings.max_vertices_per_request)
    problems += checked.problems

    # Parents: in the database or in this batch.
    batch_by_code: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row["code"]:
            if row["code"] in batch_by_code:
                problems.append(Problem(f"duplicate code {row['code']} (also feature {batch_by_code[row['code']]})",
                                        field="code", index=i, code=row["code"]))
            else:
                batch_by_code[row["code"]] = i
    wanted = sorted({r["parent"] for r in rows if r["parent"]} | set(batch_by_code))
    known = {
        r.code: r
        for r in session.execute(
            text("SELECT a.id, a.code, a.level_key, a.layer_key, a.retired_at, l.rank, l.code_length "
                 "FROM area a JOIN level l ON l.key = a.level_key WHERE a.code = ANY(:codes)"),
            {"codes": wanted},
        )
    }
    for i, row in enumerate(rows):
        if row["code"] and row["code"] in known:
            problems.append(Problem(f"duplicate code {row['code']}: an area with this code exists already "
                                    "(codes are never reused)", field="code", index=i, code=row["code"]))
        if row["level"] not in lv or row["layer"] not in ly:
            continue
        rank, length = lv[row["level"]]["rank"], lv[row["level"]]["code_length"]
        p = row["parent"]
        if p:
            if p in known:
                p_rank, p_layer, retired = known[p].rank, known[p].layer_key, known[p].retired_at
            elif p in batch_by_code:
                prow = rows[batch_by_code[p]]
                p_rank, p_layer, retired = lv.get(prow["level"], {}).get("rank"), prow["layer"], None
            else:
                problems.append(Problem(f"unknown parent {p}", field="parent", index=i, code=row["code"]))
                continue
            if retired is not None:
                problems.append(Problem(f"parent {p} is retired", field="parent", index=i, code=row["code"]))
            if p_rank is not None and p_rank >= rank:
                problems.append(Problem(f"parent {p} is not above level {row['level']}", field="parent", index=i, code=row["code"]))
            if p_layer not in (row["layer"], ADMIN_LAYER):
                problems.append(Problem(f"parent {p} belongs to layer {p_layer}, not {row['layer']} or {ADMIN_LAYER}",
                                        field="parent", index=i, code=row["code"]))
        if row["code"]:
            why = codelib.code_problem(row["code"], length, p)
            if why:
                problems.append(Problem(why, field="code", index=i, code=row["code"]))
    generated = _generate_missing_codes(session, rows, checked.geoms, lv, problems)
    if problems:
        _reject(problems, n)

    report = ImportReport(dry_run=dry_run)
    report.generated_codes = generated
    report.repaired = [{"index": i, "code": rows[i]["code"]} for i in checked.repaired]
    with session.begin_nested() as savepoint:
        if valid_from is not None and valid_from > dt.datetime.now(dt.UTC):
            savepoint.rollback()
            _reject([Problem("valid_from is in the future", field="valid_from")], n)
        ids = _insert(session, rows, checked.geoms, lv, note, valid_from)
        access.require_scope(session, ("planner",), list(ids.values()), strict=True)
        spill = spill_over(session, list(ids.values()), settings, max_spill_ratio)
        rejected = [s for s in spill if s["rejected"]]
        if rejected:
            savepoint.rollback()
            index = {r["code"]: i for i, r in enumerate(rows)}
            _reject([Problem(s["message"], field="geometry", index=index.get(s["code"]), code=s["code"],
                             location=s["location"]) for s in rejected], n)
        report.warnings = [w.as_dict() for w in checked.warnings] + [
            Problem(s["message"], field="geometry", code=s["code"], location=s["location"]).as_dict() for s in spill
        ]
        report.imported = n
        report.codes = [r["code"] for r in rows]
        counts: dict[str, int] = defaultdict(int)
        for r in rows:
            counts[r["level"]] += 1
        report.by_level = dict(counts)
        access.record_many(session, "create", "area", [
            (r["code"], None, {**{k: r[k] for k in AREA_FIELDS}, "boundary_version": 1, "note": note}) for r in rows])
        if dry_run:
            savepoint.rollback()
    return report


def _reject(problems: list[Problem], n: int) -> None:
    bad = {p.index for p in problems if p.index is not None}
    raise GeogridError(
        f"{len(bad) or len(problems)} of {n} features rejected; nothing was imported",
        problems=sorted(problems, key=lambda p: (p.index is None, p.index or 0)),
    )


def _generate_missing_codes(session, rows, geoms, lv, problems) -> list[dict]:
    """Number code-less features under their parent: rows north to south, west to east."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row["code"] is None:
            if row["parent"] is None:
                problems.append(Problem("code is required for an area without a parent", field="code", index=i))
            elif row["level"] in lv and geoms[i] is not None:
                groups[(row["parent"], row["level"])].append(i)
    generated = []
    for (parent_code, level_key), members in groups.items():
        length = lv[level_key]["code_length"]
        taken = list(session.execute(
            text("SELECT code FROM area WHERE code LIKE :prefix AND length(code) = :n"),
            {"prefix": parent_code + "%", "n": length},
        ).scalars())
        taken += [r["code"] for r in rows if r["code"] and r["code"].startswith(parent_code)]
        pts = shapely.point_on_surface(np.asarray([geoms[i] for i in members], dtype=object))
        x, y = shapely.get_x(pts), shapely.get_y(pts)
        heights = np.array([geoms[i].bounds[3] - geoms[i].bounds[1] for i in members])
        order = codelib.reading_order(x, y, float(np.median(heights)))
        try:
            new = codelib.next_codes(parent_code, length, taken, len(members))
        except ValueError as exc:
            problems.extend(Problem(str(exc), field="code", index=members[k]) for k in order)
            continue
        for code, k in zip(new, order):
            rows[members[k]]["code"] = code
            generated.append({"index": members[k], "code": code})
    generated.sort(key=lambda g: g["index"])
    return generated


_INSERT_AREA = text("""
    INSERT INTO area (code, name, level_key, layer_key, households, population, land_use, notes)
    VALUES (:code, :name, :level, :layer, :households, :population, :land_use, :notes)
""")
_INSERT_BOUNDARY = text("""
    INSERT INTO boundary (area_id, version, geom, note, valid)
    VALUES (:area_id, :version, ST_SetSRID(ST_GeomFromWKB(:wkb), 4326), :note,
            tstzrange(coalesce(CAST(:valid_from AS timestamptz), now()), NULL))
""")


def _insert(session: Session, rows, geoms, lv, note, valid_from=None) -> dict[str, int]:
    # Parents before children, so an area's parent row exists when the batch links them.
    order = sorted(range(len(rows)), key=lambda i: lv[rows[i]["level"]]["rank"])
    params = [{k: rows[i][k] for k in ("code", "name", "level", "layer", "households", "population", "land_use", "notes")}
              for i in order]
    session.execute(_INSERT_AREA, params)
    ids = dict(session.execute(text("SELECT code, id FROM area WHERE code = ANY(:codes)"),
                               {"codes": [p["code"] for p in params]}).all())
    wkb = shapely.to_wkb(np.asarray([geoms[i] for i in order], dtype=object))
    session.execute(_INSERT_BOUNDARY, [
        {"area_id": ids[rows[i]["code"]], "version": 1, "wkb": wkb[j], "note": note, "valid_from": valid_from}
        for j, i in enumerate(order)
    ])
    links = [(rows[i]["code"], rows[i]["parent"]) for i in order if rows[i]["parent"]]
    if links:
        session.execute(
            text("""
                UPDATE area c SET parent_id = p.id
                FROM unnest(CAST(:codes AS text[]), CAST(:parents AS text[])) AS l(code, parent)
                JOIN area p ON p.code = l.parent
                WHERE c.code = l.code
            """),
            {"codes": [c for c, _ in links], "parents": [p for _, p in links]},
        )
    return ids


def spill_over(session: Session, area_ids: list[int], settings: Settings,
               max_ratio: float | None = None) -> list[dict]:
    """Parts of the given areas' current boundaries outside their parent's.

    A share above ``settings.max_spill_ratio`` of the area is ``rejected``; below, the
    spill-over is a warning for the coverage check (real data has thin slivers).
    """
    if not area_ids:
        return []
    limit = settings.max_spill_ratio if max_ratio is None else max_ratio
    rows = session.execute(text("""
        SELECT c.code, p.code AS parent, b.area_m2, ST_Area(x.d::geography) AS out_m2,
               ST_X(ST_PointOnSurface(x.d)) AS x, ST_Y(ST_PointOnSurface(x.d)) AS y
        FROM area c
        JOIN area p ON p.id = c.parent_id
        JOIN boundary b ON b.area_id = c.id AND upper_inf(b.valid)
        JOIN boundary pb ON pb.area_id = p.id AND upper_inf(pb.valid)
        CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Difference(b.geom, pb.geom), 3) AS d) x
        WHERE c.id = ANY(:ids) AND NOT ST_CoveredBy(b.geom, pb.geom)
    """), {"ids": area_ids})
    out = []
    for r in rows:
        if not r.out_m2 or r.out_m2 < 0.01:
            continue
        ratio = r.out_m2 / r.area_m2 if r.area_m2 else 1.0
        rejected = ratio > limit
        out.append({
            "code": r.code, "parent": r.parent, "outside_m2": round(r.out_m2, 2), "ratio": ratio,
            "rejected": rejected,
            "location": (round(r.x, 7), round(r.y, 7)) if r.x is not None else None,
            "message": (f"{r.out_m2:,.1f} m² ({ratio:.2%}) lies outside parent {r.parent}"
                        + (f" (more than the {limit:.2%} allowed)" if rejected else "")),
        })
    return out


# --------------------------------------------------------------------------- edits


def get_area_row(session: Session, code: str, *, for_update: bool = False):
    row = session.execute(
        text("SELECT a.*, l.rank, l.code_length FROM area a JOIN level l ON l.key = a.level_key WHERE a.code = :code"
             + (" FOR UPDATE OF a" if for_update else "")),
        {"code": code},
    ).first()
    if row is None:
        raise not_found(f"area {code}")
    return row


def check_version(row, expected: int | None) -> None:
    """Optimistic concurrency: a write that names a stale version gets 412, never a lost update."""
    if expected is not None and expected != row.version:
        raise GeogridError(
            f"area {row.code} is at version {row.version}, not {expected}: reload it and apply your change again",
            status=412, extra={"current_version": row.version},
        )


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
            changes[key] = _count_or_problem(changes[key], key, 0, code, problems)
    if "name" in changes and not _text_or_none(changes["name"]):
        problems.append(Problem("name cannot be empty", field="name", code=code))
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
    if geometry is not None:
        with session.begin_nested() as savepoint:
            session.execute(text("UPDATE boundary SET valid = tstzrange(lower(valid), now()) "
                                 "WHERE area_id = :id AND upper_inf(valid)"), {"id": row.id})
            session.execute(_INSERT_BOUNDARY, {
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
        result["repaired"] = bool(checked.repaired)
        result["warnings"] = [w.as_dict() for w in checked.warnings] + [
            Problem(s["message"], field="geometry", code=s["code"], location=s["location"]).as_dict() for s in spill]
    if changes or geometry is not None:
        session.execute(text("UPDATE area SET version = version + 1, updated_at = now() WHERE id = :id"), {"id": row.id})
        access.record(session, "update", "area", code, before, {**_audit_state(session, row.id), "note": note})
    return result


def _open_for_edit(session: Session, code: str, expected_version: int | None):
    """Lock an area for a change: in the caller's scope, not retired, at the expected
    version; returns the row and its state before, for the audit log."""
    row = get_area_row(session, code, for_update=True)
    access.require_scope(session, ("planner",), [row.id], strict=True)
    if row.retired_at is not None:
        raise conflict(f"area {code} is retired")
    check_version(row, expected_version)
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


def retire_area(session: Session, code: str, *, expected_version: int | None = None) -> None:
    """Retire an area: its boundary's validity ends now, its code stays reserved, its
    history stays queryable. Refused while it has active children."""
    row, before = _open_for_edit(session, code, expected_version)
    children = session.execute(
        text("SELECT code FROM area WHERE parent_id = :id AND retired_at IS NULL ORDER BY code LIMIT 5"), {"id": row.id}
    ).scalars().all()
    if children:
        raise conflict(f"area {code} still has active children ({', '.join(children)}...): retire or move them first")
    session.execute(text("UPDATE boundary SET valid = tstzrange(lower(valid), now()) WHERE area_id = :id AND upper_inf(valid)"),
                    {"id": row.id})
    session.execute(text("UPDATE assignment SET end_date = current_date WHERE area_id = :id "
                         "AND (end_date IS NULL OR end_date > current_date) AND start_date <= current_date"),
                    {"id": row.id})
    session.execute(text("UPDATE area SET retired_at = now(), version = version + 1, updated_at = now() WHERE id = :id"),
                    {"id": row.id})
    access.record(session, "retire", "area", code, before, _audit_state(session, row.id))


# --------------------------------------------------------------------------- reading


@dataclass
class AreaFilter:
    layer: str | None = None
    level: str | None = None
    parent: str | None = None
    code_prefix: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    grids_only: bool = False
    include_retired: bool = False
    at: dt.datetime | None = None


def _where(f: AreaFilter) -> tuple[str, dict]:
    clauses = [_valid_clause(f.at)] if not (f.include_retired and f.at is None) else [
        "b.id = (SELECT max(id) FROM boundary WHERE area_id = a.id)"]
    params: dict = {"at": f.at}
    if f.layer:
        clauses.append("a.layer_key = :layer")
        params["layer"] = f.layer
    if f.grids_only:
        clauses.append(f"a.layer_key <> '{ADMIN_LAYER}'")
    if f.level:
        clauses.append("a.level_key = :level")
        params["level"] = f.level
    if f.parent:
        clauses.append("p.code = :parent")
        params["parent"] = f.parent
    if f.code_prefix:
        clauses.append("a.code LIKE :prefix")
        params["prefix"] = f.code_prefix.replace("%", "").replace("_", "") + "%"
    if f.bbox:
        clauses.append("b.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326) "
                       "AND ST_Intersects(b.geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))")
        params.update(zip(("x0", "y0", "x1", "y1"), f.bbox))
    return " AND ".join(clauses), params


def _label(lang: str) -> str:
    return "name_en" if lang == "en" else "name_zh"


_AREA_FROM = """
    FROM area a
    JOIN boundary b ON b.area_id = a.id
    JOIN level lv ON lv.key = a.level_key
    JOIN layer ly ON ly.key = a.layer_key
    LEFT JOIN area p ON p.id = a.parent_id
"""


def _feature_sql(lang: str, with_notes: bool) -> str:
    label = _label(lang)
    notes = ", 'notes', a.notes" if with_notes else ""
    return f"""
        json_build_object(
            'type', 'Feature', 'id', a.code,
            'geometry', ST_AsGeoJSON(ST_ForcePolygonCCW(b.geom), 7)::json,
            'properties', json_build_object(
                'code', a.code, 'name', a.name, 'level', a.level_key, 'level_name', lv.{label},
                'layer', a.layer_key, 'layer_name', ly.{label}, 'parent', p.code,
                'households', a.households, 'population', a.population, 'land_use', a.land_use,
                'area_m2', round(b.area_m2::numeric, 1), 'boundary_version', b.version,
                'valid_from', lower(b.valid), 'valid_to', upper(b.valid),
                'version', a.version, 'retired_at', a.retired_at{notes}
            )
        )"""


def check_filter(session: Session, f: AreaFilter) -> None:
    """A typo in a level or layer is an error, not an empty answer."""
    for value, known, what in ((f.level, levels, "level"), (f.layer, layers, "layer")):
        if value is not None:
            keys = known(session)
            if value not in keys:
                raise GeogridError(f"unknown {what} {value!r}; known: {', '.join(keys)}",
                                   problems=[Problem(f"unknown {what} {value!r}", field=what)])


def list_areas(session: Session, f: AreaFilter, *, limit: int, offset: int, lang: str = "zh") -> tuple[list[dict], int]:
    """One page of areas as GeoJSON features (built by PostGIS) and the total matched."""
    check_filter(session, f)
    where, params = _where(f)
    total = session.execute(text(f"SELECT count(*) {_AREA_FROM} WHERE {where}"), params).scalar_one()
    features = session.execute(
        text(f"SELECT {_feature_sql(lang, False)} {_AREA_FROM} WHERE {where} "
             "ORDER BY lv.rank, a.code LIMIT :limit OFFSET :offset"),
        {**params, "limit": limit, "offset": offset},
    ).scalars().all()
    return features, total


def get_area(session: Session, code: str, *, at: dt.datetime | None = None, lang: str = "zh") -> dict:
    f = AreaFilter(at=at, include_retired=True)
    where, params = _where(f)
    feature = session.execute(
        text(f"SELECT {_feature_sql(lang, False)} {_AREA_FROM} WHERE {where} AND a.code = :code"),
        {**params, "code": code},
    ).scalar_one_or_none()
    if feature is None:
        raise not_found(f"area {code}" + (f" at {at.isoformat()}" if at else ""))
    return feature


def boundary_history(session: Session, code: str) -> list[dict]:
    """Every boundary version of an area, newest first, as GeoJSON features."""
    get_area_row(session, code)
    return session.execute(text("""
        SELECT json_build_object(
            'type', 'Feature', 'id', a.code || '@' || b.version,
            'geometry', ST_AsGeoJSON(ST_ForcePolygonCCW(b.geom), 7)::json,
            'properties', json_build_object('code', a.code, 'boundary_version', b.version,
                'valid_from', lower(b.valid), 'valid_to', upper(b.valid),
                'area_m2', round(b.area_m2::numeric, 1), 'note', b.note))
        FROM boundary b JOIN area a ON a.id = b.area_id
        WHERE a.code = :code ORDER BY b.version DESC
    """), {"code": code}).scalars().all()


def frame(session: Session, f: AreaFilter, *, with_notes: bool = True, with_ids: bool = False):
    """Areas as a GeoDataFrame (EPSG:4326), for exports."""
    import geopandas as gpd

    check_filter(session, f)
    where, params = _where(f)
    rows = session.execute(text(f"""
        SELECT {"a.id AS area_id," if with_ids else ""} a.code, a.name, a.level_key AS level, a.layer_key AS layer, p.code AS parent,
               a.households, a.population, a.land_use, {"a.notes," if with_notes else ""}
               round(b.area_m2::numeric, 1)::float AS area_m2, b.version AS bversion,
               ST_AsBinary(b.geom) AS wkb
        {_AREA_FROM} WHERE {where} ORDER BY lv.rank, a.code
    """), params).mappings().all()
    df = pd.DataFrame([{k: v for k, v in r.items() if k != "wkb"} for r in rows])
    geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else []
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"), crs="EPSG:4326")


# --------------------------------------------------------------------------- point lookup


def locate(session: Session, lon: float, lat: float, *, at: dt.datetime | None, day: dt.date, lang: str = "zh",
           internal: bool = False) -> list[dict]:
    """Every area (all layers, all levels) whose boundary covers the point at ``at``.

    A point on a shared boundary is covered by every area that shares it: all are
    returned with ``on_boundary`` true, and per layer and level exactly one is
    ``primary``: an area whose interior holds the point if there is one, else the one
    with the lowest code (codes run west to east, north to south, so ties go to the
    north-western grid). Routing uses the primary. ``internal`` adds the areas' ids and
    the persons' unpublished fields, for routing; never for a public answer.
    """
    label = _label(lang)
    rows = session.execute(text(f"""
        WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g)
        SELECT a.id, a.code, a.name, a.level_key, lv.{label} AS level_name, lv.rank,
               a.layer_key, ly.{label} AS layer_name, p.code AS parent, b.version AS boundary_version,
               NOT ST_Contains(b.geom, pt.g) AS on_boundary
        FROM pt, boundary b
        JOIN area a ON a.id = b.area_id
        JOIN level lv ON lv.key = a.level_key
        JOIN layer ly ON ly.key = a.layer_key
        LEFT JOIN area p ON p.id = a.parent_id
        WHERE {_valid_clause(at)} AND ST_Covers(b.geom, pt.g)
        ORDER BY a.layer_key = '{ADMIN_LAYER}' DESC, a.layer_key, lv.rank, on_boundary, a.code
    """), {"lon": lon, "lat": lat, "at": at}).mappings().all()
    from geogrid.people import responsible_persons

    persons = responsible_persons(session, [r["id"] for r in rows], day, lang=lang, public_only=not internal)
    out, seen = [], set()
    for r in rows:
        group = (r["layer_key"], r["level_key"])
        out.append({
            "code": r["code"], "name": r["name"], "level": r["level_key"], "level_name": r["level_name"],
            "layer": r["layer_key"], "layer_name": r["layer_name"], "parent": r["parent"],
            "boundary_version": r["boundary_version"], "on_boundary": r["on_boundary"],
            "primary": group not in seen, "persons": persons.get(r["id"], []),
            **({"id": r["id"]} if internal else {}),
        })
        seen.add(group)
    return out


def current_geometries(session: Session, codes: Sequence[str]) -> dict[str, shapely.Geometry]:
    rows = session.execute(
        text("SELECT a.code, ST_AsBinary(b.geom) AS wkb FROM area a JOIN boundary b ON b.area_id = a.id "
             "AND upper_inf(b.valid) WHERE a.code = ANY(:codes)"), {"codes": list(codes)})
    return {r.code: shapely.from_wkb(bytes(r.wkb)) for r in rows}


def feature_collection(features: list[dict], **members) -> dict:
    return {"type": "FeatureCollection", **members, "features": features}


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)
