"""The one write path for new areas: validation, code generation, insertion and the
spill-over rule (every way an area enters the database goes through :func:`import_areas`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.areas.reference import layers, levels
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.settings import Settings
from geogrid.db.schema import ADMIN_LAYER
from geogrid.geo import codes as codelib
from geogrid.geo.geometry import check_polygons
from geogrid.people.households import rederive_after_boundary_write

AREA_FIELDS = ("code", "name", "level", "layer", "parent", "households", "population", "land_use", "notes")
# Column sizes of table area: a file is checked against them like an API request is.
TEXT_LIMITS = {"name": 200, "land_use": 64, "notes": 10_000, "code": 32, "parent": 32, "level": 32, "layer": 32}
MAX_COUNT = 10_000_000


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
    skipped: list[dict] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def text_or_none(value) -> str | None:
    """A cell of an imported file as text (codes from numeric columns without '.0'), or None when empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # codes read from numeric columns: 330102.0 -> "330102"
    if isinstance(value, dict):  # nested parent objects such as {"adcode": 330100}
        value = next(iter(value.values()), None)
        return text_or_none(value)
    value = str(value).strip()
    return value or None


def count_or_problem(value, name: str, i: int, code: str | None, problems: list[Problem]) -> int | None:
    """A non-negative whole count from a cell, None when empty; a problem added for anything else."""
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


# A child and its parent are the same place when their outlines differ by less than this
# share of the larger one (published levels are simplified separately).
SAME_PLACE_SHARE = 0.01
OWN_CHILD_REASON = ("a city without districts (不设区的地级市) listed as its own only child: skipped, the city "
                    "governs its towns directly")


def import_areas(session: Session, records: Sequence[dict], geoms: Sequence[shapely.Geometry | None],
                 settings: Settings, *, defaults: dict | None = None, overrides: dict | None = None,
                 **options) -> ImportReport:
    """Validate and insert areas, all or nothing (:func:`_import`, whose options these are).

    Published national data lists each city without districts (东莞 441900, 中山 442000,
    嘉峪关 620200, 儋州 460400) once more as its own only child, with the same code at the
    district level. Such a feature (same code as its parent, or as a feature above it in the
    batch, and the same outline) is left out and reported in ``skipped``, so that the city
    governs its towns directly; indexes in the report and in errors stay those of the file.
    """
    records, geoms = list(records), list(geoms)
    own = _own_only_children(session, records, geoms, defaults, overrides)
    if not own:
        return _import(session, records, geoms, settings, defaults=defaults, overrides=overrides, **options)
    kept = [i for i in range(len(records)) if i not in own]
    try:
        report = _import(session, [records[i] for i in kept], [geoms[i] for i in kept], settings,
                         defaults=defaults, overrides=overrides, **options)
    except GeogridError as exc:
        for p in exc.problems:
            p.index = kept[p.index] if p.index is not None else None
        raise
    for entry in (*report.generated_codes, *report.repaired):
        entry["index"] = kept[entry["index"]]
    report.skipped = [{"index": i, "code": code, "reason": OWN_CHILD_REASON} for i, code in sorted(own.items())]
    return report


def _own_only_children(session: Session, records: list[dict], geoms: list, defaults: dict | None,
                       overrides: dict | None) -> dict[int, str]:
    """Features that repeat their parent (or a feature above them in the batch) as its own
    only child: same code, same outline. Index -> code."""
    merged = [{**{k: v for k, v in (defaults or {}).items() if v is not None},
               **{k: v for k, v in rec.items() if text_or_none(v) is not None},
               **{k: v for k, v in (overrides or {}).items() if v is not None}} for rec in records]
    code = [text_or_none(r.get("code")) for r in merged]
    rank = {k: v["rank"] for k, v in levels(session).items()}
    level_rank = [rank.get(text_or_none(r.get("level")), -1) for r in merged]
    by_code: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(code):
        if c:
            by_code[c].append(i)
    above = {i: j for same in by_code.values() if len(same) > 1 for i in same for j in same
             if -1 < level_rank[j] < level_rank[i]}
    own: dict[int, str] = {}
    for i, c in enumerate(code):
        if c is None or geoms[i] is None or not (i in above or text_or_none(merged[i].get("parent")) == c):
            continue
        if i in above:
            outline = geoms[above[i]]
        else:
            wkb = session.execute(text("SELECT ST_AsBinary(b.geom) FROM area a JOIN boundary b ON b.area_id = a.id "
                                       "AND upper_inf(b.valid) WHERE a.code = :c"), {"c": c}).scalar()
            outline = shapely.from_wkb(bytes(wkb)) if wkb is not None else None
        if outline is None:
            continue
        mine, theirs = shapely.make_valid(geoms[i]), shapely.make_valid(outline)
        if shapely.area(shapely.symmetric_difference(mine, theirs)) <= SAME_PLACE_SHARE * max(mine.area, theirs.area):
            own[i] = c
    return own


def _import(
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
        row = {k: text_or_none(rec.get(k)) for k in ("code", "name", "level", "layer", "parent", "land_use", "notes")}
        for key, value in defaults.items():
            row[key] = row[key] or value
        row.update(overrides)
        code = row["code"]
        for key in ("households", "population"):
            row[key] = count_or_problem(rec.get(key), key, i, code, problems)
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
            why = codelib.code_problem(row["code"], length, code_base(session, p, lv, rows, batch_by_code))
            if why:
                problems.append(Problem(why, field="code", index=i, code=row["code"]))
    generated = _generate_missing_codes(session, rows, checked.geoms, lv, problems, batch_by_code)
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
        scopes.require_scope(session, ("planner",), list(ids.values()), strict=True)
        spill = spill_over(session, list(ids.values()), settings, max_spill_ratio)
        rejected = [s for s in spill if s["rejected"]]
        if rejected:
            savepoint.rollback()
            index = {r["code"]: i for i, r in enumerate(rows)}
            _reject([Problem(s["message"], field="geometry", index=index.get(s["code"]), code=s["code"],
                             location=s["location"]) for s in rejected], n, hint=spill_hint(spill))
        # Households in new grids now lie in them (after the spill check: a refused import writes nothing).
        rederive_after_boundary_write(session, list(ids.values()))
        report.warnings = [w.as_dict() for w in checked.warnings] + [
            Problem(s["message"], field="geometry", code=s["code"], location=s["location"]).as_dict() for s in spill
        ]
        report.imported = n
        report.codes = [r["code"] for r in rows]
        counts: dict[str, int] = defaultdict(int)
        for r in rows:
            counts[r["level"]] += 1
        report.by_level = dict(counts)
        audit.record_many(session, "create", "area", [
            (r["code"], None, {**{k: r[k] for k in AREA_FIELDS}, "boundary_version": 1, "note": note}) for r in rows])
        if dry_run:
            savepoint.rollback()
    return report


def spill_hint(spill: list[dict]) -> str:
    """How to proceed when features spill beyond their parents: the largest share found and
    the option that allows it (outlines simplified level by level spill by a few percent)."""
    worst = max(spill, key=lambda s: s["ratio"])
    allow = math.ceil(worst["ratio"] * 1000) / 1000
    return (f"the largest share outside a parent is {worst['ratio']:.2%} ({worst['code']} outside {worst['parent']}); "
            f"if the outlines were simplified separately, allow it with max_spill={allow:g} (API) or "
            f"--max-spill {allow:g} (CLI), or set GEOGRID_MAX_SPILL_RATIO")


def _reject(problems: list[Problem], n: int, hint: str = "") -> None:
    bad = {p.index for p in problems if p.index is not None}
    raise GeogridError(
        f"{len(bad) or len(problems)} of {n} features rejected; nothing was imported" + (f": {hint}" if hint else ""),
        problems=sorted(problems, key=lambda p: (p.index is None, p.index or 0)),
    )


def code_base(session: Session, parent: str | None, lv: dict, rows: Sequence[dict] = (),
              batch_by_code: dict[str, int] | None = None) -> str | None:
    """The code a child of ``parent`` starts with: the parent's, or, when the parent's level
    does not prefix its children's codes (a national root, a 工作区), the nearest such
    ancestor's; None when there is none. ``rows``/``batch_by_code``: parents in the batch."""
    batch_by_code = batch_by_code or {}
    for _ in range(len(lv) + 1):  # an ancestor chain is never longer than the levels
        if parent is None:
            return None
        if parent in batch_by_code:
            level, grandparent = rows[batch_by_code[parent]]["level"], rows[batch_by_code[parent]]["parent"]
        else:
            found = session.execute(text("SELECT a.level_key, p.code FROM area a LEFT JOIN area p ON p.id = a.parent_id "
                                         "WHERE a.code = :c"), {"c": parent}).first()
            if found is None:
                return parent
            level, grandparent = found
        if lv.get(level, {}).get("prefixes_children", True):
            return parent
        parent = grandparent
    return None


def _generate_missing_codes(session, rows, geoms, lv, problems, batch_by_code) -> list[dict]:
    """Number code-less features under their parent (or the ancestor whose code they
    continue): rows north to south, west to east."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row["code"] is None:
            if row["parent"] is None:
                problems.append(Problem("code is required for an area without a parent", field="code", index=i))
            elif row["level"] in lv and geoms[i] is not None:
                groups[(row["parent"], row["level"])].append(i)
    generated = []
    for (parent, level_key), members in groups.items():
        parent_code = code_base(session, parent, lv, rows, batch_by_code)
        if parent_code is None:
            problems.extend(Problem(f"no code can be generated under {parent}: give one", field="code", index=k)
                            for k in members)
            continue
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
INSERT_BOUNDARY = text("""
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
    session.execute(INSERT_BOUNDARY, [
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
