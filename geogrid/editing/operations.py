"""Planner editing operations on grids: reshape (with shared vertices moved in the
neighbours), move shared vertices, split, merge.

Each is one transaction, all or nothing: every grid it touches is locked, in the caller's
scope (neighbours reached by a move included) and at the expected version before anything
is written; boundaries change through :func:`geogrid.areas.versions.update_area` (a new
version each), new grids enter through :func:`geogrid.areas.importing.import_areas` (codes,
validation, spill-over) and old ones leave through :func:`geogrid.areas.versions.retire_area`.
A dry run does all of it in a savepoint, computes the impact, and rolls back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.areas import importing, lookup, versions
from geogrid.core.errors import GeogridError, Problem, conflict, not_found
from geogrid.core.settings import Settings
from geogrid.core.timeutil import local_today
from geogrid.core.versioning import check_version
from geogrid.coverage.checks import shape_of
from geogrid.db.schema import ADMIN_LAYER
from geogrid.editing.impact import grids_in, impact
from geogrid.geo import topology
from geogrid.geo.coverage import local_projection, metres_to_degrees, project
from geogrid.people import assignments

MESSAGES = {
    "missing": {"zh": "此次编辑涉及多个网格，请为每个网格提供版本号（versions 或 If-Match）：{codes}",
                "en": "this edit touches several grids: send the version of each (versions or If-Match): {codes}"},
    "no_vertex": {"zh": "第 {i} 个移动的起点 {point} 处没有网格的顶点或边",
                  "en": "move {i}: no grid has a vertex or edge at {point}"},
    "not_cut": {"zh": "分割线必须从一边到另一边穿过网格 {code}", "en": "the line must cross grid {code} from edge to edge"},
    "parts": {"zh": "分割得到 {n} 块，parts 给了 {m} 项", "en": "the line cuts {n} pieces but parts has {m} items"},
    "assign_to": {"zh": "assign_to 必须在 0 到 {last} 之间", "en": "assign_to must be from 0 to {last}"},
    "not_adjacent": {"zh": "网格 {code} 与其他网格不相邻", "en": "grid {code} is not adjacent to the others"},
    "same_group": {"zh": "合并的网格必须属于同一图层和同一上级：{code} 不同",
                   "en": "merged grids must share layer and parent: {code} differs"},
    "two": {"zh": "至少需要两个不同的网格才能合并", "en": "a merge needs two or more different grids"},
    "not_grid": {"zh": "{code} 是行政区域，不是网格", "en": "{code} is an administrative area, not a grid"},
}


def msg(key: str, lang: str, **values) -> str:
    """A message of the editing operations in ``lang`` (zh by default, en)."""
    return MESSAGES[key]["en" if lang == "en" else "zh"].format(**values)


# --------------------------------------------------------------------------- locking and versions


def lock_grids(session: Session, codes: Sequence[str], *, lang: str = "zh", grids_only: bool = True) -> dict:
    """Lock the areas ``codes`` for an edit (in id order, so concurrent edits cannot
    deadlock) after checking that every one is in the caller's planner scope; 404 for an
    unknown code (areas are public), 409 for a retired one. Returns rows by code."""
    rows = {r.code: r for r in session.execute(text(
        "SELECT a.*, l.rank, l.code_length, p.code AS parent_code FROM area a JOIN level l ON l.key = a.level_key "
        "LEFT JOIN area p ON p.id = a.parent_id WHERE a.code = ANY(:codes) ORDER BY a.id FOR UPDATE OF a"),
        {"codes": list(codes)})}
    for code in codes:
        if code not in rows:
            raise not_found(f"area {code}")
    scopes.require_scope(session, ("planner",), [rows[c].id for c in codes], strict=True)
    for code in codes:
        if rows[code].retired_at is not None:
            raise conflict(f"area {code} is retired")
        if grids_only and rows[code].layer_key == ADMIN_LAYER:
            raise GeogridError(msg("not_grid", lang, code=code), status=404)
    return rows


def expect_versions(rows: dict, expected: dict[str, int | None], *, required: bool, lang: str) -> None:
    """412 for a stale expected version (naming the grid); then, when ``required`` (a real
    run of an edit touching several grids), 428 listing every grid touched whose version
    was not sent, with the current versions of all of them."""
    for code, row in rows.items():
        check_version("area", code, current=row.version, expected=expected.get(code))
    missing = [c for c in rows if expected.get(c) is None]
    if required and missing:
        raise GeogridError(msg("missing", lang, codes=", ".join(missing)), status=428,
                           extra={"grids": [{"code": c, "version": r.version} for c, r in rows.items()]})


def _near(session: Session, layer: str, points: list[tuple[float, float]], tolerance: float,
          exclude: Sequence[int]) -> list:
    """The current grids of ``layer`` within ``tolerance`` degrees of any of ``points``
    (but ``exclude``), locked, with their boundaries."""
    return session.execute(text("""
        SELECT a.id, a.code, a.version, ST_AsBinary(b.geom) AS wkb
        FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
        WHERE a.layer_key = :layer AND a.retired_at IS NULL AND a.id <> ALL(:exclude)
          AND ST_DWithin(b.geom, ST_SetSRID(ST_GeomFromWKB(:pts), 4326), :tol)
        ORDER BY a.id FOR UPDATE OF a
    """), {"layer": layer, "exclude": list(exclude), "tol": tolerance,
           "pts": shapely.to_wkb(shapely.MultiPoint(points))}).all()


def _current(session: Session, area_id: int) -> shapely.Geometry:
    return shape_of(session.execute(text("SELECT ST_AsBinary(geom) FROM boundary WHERE area_id = :a AND upper_inf(valid)"),
                                    {"a": area_id}).scalar_one())


def _tolerance(settings: Settings, moves: Sequence[topology.Move]) -> float:
    return metres_to_degrees(settings.shared_vertex_tolerance_m, shapely.Point(moves[0][0]))


def _moved_neighbours(session: Session, settings: Settings, layer: str, moves: Sequence[topology.Move],
                      exclude: Sequence[int]) -> tuple[dict[str, shapely.Geometry], dict[str, shapely.Geometry], list[int]]:
    """The grids a list of moves reaches: code -> boundary before and after, and the
    indices of the moves that reached none."""
    tol = _tolerance(settings, moves)
    rows = _near(session, layer, [m[0] for m in moves], tol, exclude)
    geoms = [shape_of(r.wkb) for r in rows]
    moved, changed, missed = topology.move_vertices(geoms, moves, tol)
    before = {rows[i].code: geoms[i] for i in np.flatnonzero(changed)}
    after = {rows[i].code: moved[i] for i in np.flatnonzero(changed)}
    return before, after, missed


def _run(session: Session, dry_run: bool, work):
    """Run ``work()`` in a savepoint, rolled back for a dry run; returns its result."""
    with session.begin_nested() as savepoint:
        result = work()
        if dry_run:
            savepoint.rollback()
    return result


# --------------------------------------------------------------------------- reshape and moves


def reshape(session: Session, code: str, settings: Settings, *, geometry: shapely.Geometry | None = None,
            changes: dict | None = None, moves: Sequence[topology.Move] = (), expected: dict[str, int | None] | None = None,
            note: str | None = None, repair: bool = False, dry_run: bool = False, lang: str = "zh",
            grids_only: bool = True) -> dict:
    """Change a grid's attributes and/or boundary (``geometry``, holes kept); each of
    ``moves`` (from, to) also moves the vertex it names in every other grid of the layer
    that has it there (or an edge through it), so neighbours stay edge-matched. Without a
    ``geometry``, the moves apply to the grid itself too. ``expected``: code -> version.

    Returns ``{"feature", "changed" (neighbours moved), "impact", "repaired", "warnings"}``."""
    expected = dict(expected or {})
    target = lock_grids(session, [code], lang=lang, grids_only=grids_only)[code]
    before_geom = _current(session, target.id)
    before_n: dict[str, shapely.Geometry] = {}
    after_n: dict[str, shapely.Geometry] = {}
    if moves:
        before_n, after_n, _ = _moved_neighbours(session, settings, target.layer_key, moves, [target.id])
        if geometry is None:
            moved, changed, _ = topology.move_vertices([before_geom], moves, _tolerance(settings, moves))
            geometry = moved[0] if changed[0] else None
    rows = {code: target}
    if after_n:
        rows.update(lock_grids(session, sorted(after_n), lang=lang, grids_only=grids_only))
    expect_versions(rows, expected, required=bool(after_n) and not dry_run, lang=lang)

    touched_geoms = [before_geom, *before_n.values(), *after_n.values()] + ([geometry] if geometry is not None else [])
    # Only the region to look at: an invalid boundary is refused (or mended) by update_area.
    region = shapely.union_all(shapely.make_valid(np.asarray(touched_geoms, dtype=object)))
    levels = sorted({target.level_key, *(r.level_key for r in rows.values())})
    before = grids_in(session, target.layer_key, region, levels)

    def work() -> dict:
        result = versions.update_area(session, code, settings, changes=changes, geometry=geometry, repair=repair,
                                      note=note, expected_version=expected.get(code))
        for other in sorted(after_n):
            versions.update_area(session, other, settings, geometry=after_n[other], note=note,
                                 expected_version=expected.get(other))
        touched = {code: "changed" if geometry is not None else "unchanged", **{c: "changed" for c in sorted(after_n)}}
        feature = lookup.get_area(session, code, lang=lang)
        return {"feature": feature, "changed": sorted(after_n), "repaired": result["repaired"],
                "warnings": result["warnings"],
                "impact": impact(session, settings, layer=target.layer_key, levels=levels, region=region, before=before,
                                 touched=touched, dry_run=dry_run, lang=lang)}

    return _run(session, dry_run, work)


def move_shared_vertices(session: Session, settings: Settings, layer: str, moves: Sequence[topology.Move], *,
                         expected: dict[str, int | None] | None = None, note: str | None = None,
                         dry_run: bool = False, lang: str = "zh") -> dict:
    """Move vertices shared by the grids of ``layer``: each of ``moves`` (from, to) moves
    the vertex at ``from`` in every grid that has it (or an edge through it). 422 when a
    ``from`` is on no grid. Returns ``{"changed", "impact"}``."""
    scopes.require_role(session, "planner")
    expected = dict(expected or {})
    before_n, after_n, missed = _moved_neighbours(session, settings, layer, moves, [])
    if missed:
        raise GeogridError(msg("no_vertex", lang, i=missed[0], point=list(moves[missed[0]][0])), problems=[
            Problem(msg("no_vertex", lang, i=k, point=list(moves[k][0])), field=f"moves[{k}].from",
                    location=moves[k][0]) for k in missed])
    rows = lock_grids(session, sorted(after_n), lang=lang)
    expect_versions(rows, expected, required=len(rows) > 1 and not dry_run, lang=lang)
    region = shapely.union_all([*before_n.values(), *after_n.values()])
    levels = sorted({r.level_key for r in rows.values()})
    before = grids_in(session, layer, region, levels)

    def work() -> dict:
        for code in sorted(after_n):
            versions.update_area(session, code, settings, geometry=after_n[code], note=note,
                                 expected_version=expected.get(code))
        return {"changed": sorted(after_n),
                "impact": impact(session, settings, layer=layer, levels=levels, region=region, before=before,
                                 touched={c: "changed" for c in sorted(after_n)}, dry_run=dry_run, lang=lang)}

    return _run(session, dry_run, work)


# --------------------------------------------------------------------------- split and merge


def _shares(total: int | None, weights: Sequence[float]) -> list[int | None]:
    """``total`` split in proportion to ``weights`` into whole numbers summing to it
    (largest remainder)."""
    if total is None:
        return [None] * len(weights)
    w = np.asarray(weights, dtype=float)
    exact = total * w / w.sum() if w.sum() > 0 else np.full(len(w), total / len(w))
    out = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - out), kind="stable")[: total - int(out.sum())]:
        out[k] += 1
    return [int(v) for v in out]


def _current_assignments(session: Session, area_ids: Sequence[int], today: dt.date) -> list:
    return session.execute(text("""
        SELECT person_id, role_key, end_date, duties FROM assignment
        WHERE area_id = ANY(:ids) AND start_date <= :today AND (end_date IS NULL OR end_date >= :today)
        ORDER BY area_id, id
    """), {"ids": list(area_ids), "today": today}).all()


def _hand_over(session: Session, posts: list, code: str, today: dt.date) -> None:
    """Appoint the holders of ``posts`` (current assignments of retired grids) to grid
    ``code`` from ``today`` (the jurisdiction's day), once per person and role."""
    seen, records = set(), []
    for p in posts:
        if (p.person_id, p.role_key) in seen:
            continue
        seen.add((p.person_id, p.role_key))
        end = p.end_date if p.end_date is not None and p.end_date > today else None
        records.append({"person": p.person_id, "area": code, "role": p.role_key, "start_date": today,
                        "end_date": end, "duties": p.duties})
    if records:
        assignments.create_assignments(session, records)


def _features(session: Session, codes: Sequence[str], lang: str) -> list[dict]:
    return [lookup.get_area(session, c, lang=lang) for c in codes]


def split(session: Session, code: str, settings: Settings, line: shapely.Geometry, *,
          parts: Sequence[dict] | None = None, assign_to: int = 0, expected: dict[str, int | None] | None = None,
          note: str | None = None, dry_run: bool = False, lang: str = "zh") -> dict:
    """Split grid ``code`` by ``line`` into new grids (same parent, level and layer; codes
    generated; names, households and population from ``parts`` or derived); the old grid
    is retired and its current posts go to the piece ``assign_to``.
    Returns ``{"created": [features], "retired": [code], "impact"}``."""
    expected = dict(expected or {})
    row = lock_grids(session, [code], lang=lang)[code]
    check_version("area", code, current=row.version, expected=expected.get(code))
    geom = _current(session, row.id)
    try:
        pieces = topology.split_polygon(geom, line)
    except topology.NotCut:
        raise GeogridError(msg("not_cut", lang, code=code), problems=[
            Problem(msg("not_cut", lang, code=code), field="line", code=code)]) from None
    n = len(pieces)
    if parts and len(parts) != n:
        raise GeogridError(msg("parts", lang, n=n, m=len(parts)), problems=[
            Problem(msg("parts", lang, n=n, m=len(parts)), field="parts", code=code)], extra={"pieces": n})
    if not 0 <= assign_to < n:
        raise GeogridError(msg("assign_to", lang, last=n - 1), problems=[
            Problem(msg("assign_to", lang, last=n - 1), field="assign_to", code=code)])
    parts = list(parts or [{} for _ in pieces])
    fwd, _ = local_projection(geom)
    weights = [project(fwd, p).area for p in pieces]
    derived = {k: _shares(getattr(row, k), weights) for k in ("households", "population")}
    records = [{"name": parts[i].get("name") or f"{row.name}（{i + 1}）", "level": row.level_key,
                "layer": row.layer_key, "parent": row.parent_code, "land_use": row.land_use,
                **{k: parts[i].get(k) if parts[i].get(k) is not None else derived[k][i]
                   for k in ("households", "population")}}
               for i in range(n)]
    # Where the line crosses an edge shared with a neighbour, the pieces get a vertex the
    # neighbour lacks: it gets it too (a move onto itself), so the layer stays edge-matched.
    points = topology.crossings(geom, line)
    after_n: dict[str, shapely.Geometry] = {}
    if points:
        _, after_n, _ = _moved_neighbours(session, settings, row.layer_key, [(p, p) for p in points], [row.id])
    neighbours = lock_grids(session, sorted(after_n), lang=lang) if after_n else {}
    expect_versions({code: row, **neighbours}, expected, required=not dry_run, lang=lang)
    region = shapely.union_all([geom, *after_n.values()])
    before = grids_in(session, row.layer_key, region, [row.level_key])

    def work() -> dict:
        today = local_today(settings)
        posts = _current_assignments(session, [row.id], today)
        report = importing.import_areas(session, records, pieces, settings, note=note)
        versions.retire_area(session, code, settings)
        _hand_over(session, posts, report.codes[assign_to], today)
        for other in sorted(after_n):
            versions.update_area(session, other, settings, geometry=after_n[other], note=note,
                                 expected_version=expected.get(other))
        touched = {code: "retired", **{c: "new" for c in report.codes}, **{c: "changed" for c in sorted(after_n)}}
        return {"created": _features(session, report.codes, lang), "retired": [code],
                "impact": impact(session, settings, layer=row.layer_key, levels=[row.level_key], region=region, before=before,
                                 touched=touched, dry_run=dry_run, lang=lang)}

    return _run(session, dry_run, work)


def merge(session: Session, codes: Sequence[str], settings: Settings, *, name: str | None = None,
          expected: dict[str, int | None] | None = None, note: str | None = None, dry_run: bool = False,
          lang: str = "zh") -> dict:
    """Merge adjacent grids of one layer and parent into one new grid (code generated,
    households and population summed, posts moved once per person and role); the old
    ones are retired. Returns ``{"created": [feature], "retired": [codes], "impact"}``."""
    codes = list(dict.fromkeys(codes))
    if len(codes) < 2:
        raise GeogridError(msg("two", lang), problems=[Problem(msg("two", lang), field="codes")])
    expected = dict(expected or {})
    rows = lock_grids(session, codes, lang=lang)
    first = rows[codes[0]]
    for c in codes[1:]:
        if (rows[c].layer_key, rows[c].parent_id, rows[c].level_key) != (first.layer_key, first.parent_id, first.level_key):
            raise GeogridError(msg("same_group", lang, code=c), problems=[
                Problem(msg("same_group", lang, code=c), field="codes", code=c)])
    expect_versions(rows, expected, required=not dry_run, lang=lang)
    geoms = [_current(session, rows[c].id) for c in codes]
    try:
        union = topology.merge_polygons(geoms)
    except topology.NotAdjacent as exc:
        stray = codes[exc.index]
        raise GeogridError(msg("not_adjacent", lang, code=stray), problems=[
            Problem(msg("not_adjacent", lang, code=stray), field="codes", code=stray)]) from None

    def total(key: str) -> int | None:
        values = [getattr(rows[c], key) for c in codes if getattr(rows[c], key) is not None]
        return sum(values) if values else None

    record = {"name": name or first.name, "level": first.level_key, "layer": first.layer_key,
              "parent": first.parent_code, "land_use": first.land_use,
              "households": total("households"), "population": total("population")}
    before = grids_in(session, first.layer_key, union, [first.level_key])

    def work() -> dict:
        today = local_today(settings)
        posts = _current_assignments(session, [rows[c].id for c in codes], today)
        report = importing.import_areas(session, [record], [union], settings, note=note)
        for c in codes:
            versions.retire_area(session, c, settings)
        _hand_over(session, posts, report.codes[0], today)
        touched = {**{c: "retired" for c in codes}, report.codes[0]: "new"}
        return {"created": _features(session, report.codes, lang), "retired": codes,
                "impact": impact(session, settings, layer=first.layer_key, levels=[first.level_key], region=union,
                                 before=before,
                                 touched=touched, dry_run=dry_run, lang=lang)}

    return _run(session, dry_run, work)

