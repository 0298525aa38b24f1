"""The impact of a boundary edit, before or after it is saved: areas of every grid touched,
the gaps and overlaps it creates or removes in the region it touches, households and
population moved, and the open incidents whose grid would change.

The editing operations (:mod:`geogrid.editing.operations`) write their changes in the
transaction first (a dry run rolls them back afterwards), so "after" is read from PostGIS
like "before": areas are PostGIS' spheroidal ``area_m2`` and nothing is computed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.core.settings import Settings
from geogrid.coverage.checks import options_from, shape_of
from geogrid.geo.coverage import GAP, local_projection, project
from geogrid.geo.topology import problem_diff
from geogrid.incidents.states import CENTRE, TERMINAL

TEXTS = {
    "gap": {"zh": "产生 {area} 平方米的空白，与 {codes} 相邻", "en": "creates a gap of {area} m² next to {codes}"},
    "overlap": {"zh": "产生 {area} 平方米的重叠，涉及 {codes}", "en": "creates an overlap of {area} m² between {codes}"},
    "area": {"zh": "网格 {code} 面积变化 {pct}%", "en": "grid {code} changes area by {pct} %"},
    "estimate": {"zh": "迁移的户数和人口按面积比例估算", "en": "households and population moved are estimated by area share"},
    "incidents": {"zh": "未结案件保持原派遣路线，不随边界调整改派",
                  "en": "open incidents keep their current route: redrawing grids does not move them"},
    "none": {"zh": "无", "en": "none"},
}


def say(key: str, lang: str, **values) -> str:
    """A message of this module in ``lang`` (zh by default, en)."""
    return TEXTS[key]["en" if lang == "en" else "zh"].format(**values)


@dataclass
class Grid:
    """One current grid as the impact sees it."""

    id: int
    code: str
    name: str
    version: int
    parent_id: int | None
    households: int | None
    population: int | None
    area_m2: float
    geom: shapely.Geometry


def grids_in(session: Session, layer: str, region: shapely.Geometry, levels: Sequence[str]) -> dict[str, Grid]:
    """The current grids of ``layer`` and ``levels`` whose boundary intersects ``region``
    (lon/lat), by code."""
    rows = session.execute(text("""
        SELECT a.id, a.code, a.name, a.version, a.parent_id, a.households, a.population, b.area_m2,
               ST_AsBinary(b.geom) AS wkb
        FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
        WHERE a.layer_key = :layer AND a.level_key = ANY(:levels) AND a.retired_at IS NULL
          AND ST_Intersects(b.geom, ST_SetSRID(ST_GeomFromWKB(:region), 4326))
        ORDER BY a.code
    """), {"layer": layer, "levels": list(levels), "region": shapely.to_wkb(region)}).all()
    return {r.code: Grid(r.id, r.code, r.name, r.version, r.parent_id, r.households, r.population, float(r.area_m2),
                         shape_of(r.wkb)) for r in rows}


def _land(session: Session, parent_ids: list[int]) -> tuple[shapely.Geometry | None, shapely.Geometry | None]:
    """The union of the parents' current boundaries, and of their exemptions."""
    row = session.execute(text("""
        SELECT (SELECT ST_AsBinary(ST_Union(geom)) FROM boundary WHERE area_id = ANY(:ids) AND upper_inf(valid)),
               (SELECT ST_AsBinary(ST_Union(geom)) FROM exemption WHERE area_id = ANY(:ids))
    """), {"ids": parent_ids}).one()
    return (shape_of(row[0]) if row[0] else None), (shape_of(row[1]) if row[1] else None)


def _incidents(session: Session, layer: str, region: shapely.Geometry, after: dict[str, Grid]) -> list[dict]:
    """Open incidents of ``layer``'s categories in ``region`` (in the caller's scope) whose
    grid after the edit would not be the one they are routed to now."""
    where, params = scopes.scope_filter(session, CENTRE, "coalesce(i.grid_id, i.authority_id)")
    rows = session.execute(text(f"""
        SELECT i.id, i.receipt, i.state, g.code AS grid, ST_X(i.geom) AS x, ST_Y(i.geom) AS y
        FROM incident i JOIN category c ON c.key = i.category_key LEFT JOIN area g ON g.id = i.grid_id
        WHERE c.layer_key = :layer AND i.state <> ALL(:terminal)
          AND ST_Intersects(i.geom, ST_SetSRID(ST_GeomFromWKB(:region), 4326)) AND {where}
        ORDER BY i.id
    """), {**params, "layer": layer, "terminal": list(TERMINAL), "region": shapely.to_wkb(region)}).all()
    if not rows:
        return []
    codes = sorted(after)
    geoms = np.asarray([after[c].geom for c in codes], dtype=object)
    out = []
    for r in rows:
        point = shapely.Point(r.x, r.y)
        # The routing rule of the lookup: the grid whose interior holds the point, else the lowest code.
        inside = [c for c, g in zip(codes, geoms) if g.contains(point)]
        covering = inside or [c for c, g in zip(codes, geoms) if g.covers(point)]
        grid_after = covering[0] if covering else None
        if grid_after != r.grid:
            out.append({"id": r.id, "number": r.receipt, "state": r.state, "grid": r.grid, "grid_after": grid_after})
    return out


def _moved(before: dict[str, Grid], after: dict[str, Grid], codes: list[str], key: str, fwd) -> int | None:
    """People in the land that left each grid, by area share (None if no grid carries ``key``)."""
    total, any_count = 0.0, False
    for code in codes:
        b = before.get(code)
        if b is None or getattr(b, key) is None:
            continue
        any_count = True
        old = project(fwd, b.geom)
        new = project(fwd, after[code].geom) if code in after else shapely.Polygon()
        if old.area > 0:
            total += getattr(b, key) * shapely.difference(old, new).area / old.area
    return int(round(total)) if any_count else None


def impact(session: Session, settings: Settings, *, layer: str, levels: Sequence[str], region: shapely.Geometry,
           before: dict[str, Grid], touched: dict[str, str], dry_run: bool, lang: str = "zh") -> dict:
    """The ``impact`` member of an edit's answer. ``before``: :func:`grids_in` of ``region``
    read before the edit was written; ``touched``: code -> status (changed, new, retired,
    unchanged) of every grid the edit touched; ``levels``: theirs (problems are sought
    among the grids of these levels). Call it after the edit is written (and before a
    dry run rolls it back): the state after is read here."""
    after = grids_in(session, layer, region, levels)
    fwd, _ = local_projection(region)
    grids = []
    reasons: list[str] = []
    share = settings.edit_confirm_area_share
    for code, status in touched.items():
        b, a = before.get(code), after.get(code)
        base = b if b is not None else a
        assert base is not None
        a_before = round(b.area_m2, 1) if b is not None else None
        a_after = round(a.area_m2, 1) if a is not None else None
        pct = round(100.0 * (a_after - a_before) / a_before, 2) if a_before and a_after is not None and status == "changed" else None
        # The version to send with the real run: the current one (a dry run wrote nothing).
        version = (b.version if (dry_run and b is not None) else (a or b).version)  # type: ignore[union-attr]
        grids.append({"code": code, "name": base.name, "version": version, "status": status,
                      "area_before_m2": a_before, "area_after_m2": a_after, "area_change_pct": pct,
                      "households_before": b.households if b else None, "households_after": a.households if a else None,
                      "population_before": b.population if b else None, "population_after": a.population if a else None})
        if pct is not None and abs(pct) > 100.0 * share:
            reasons.append(say("area", lang, code=code, pct=f"{pct:+.1f}"))

    created: list[dict] = []
    removed: list[dict] = []
    parent_ids = sorted({g.parent_id for g in (*before.values(), *after.values())
                         if g.code in touched and g.parent_id is not None})
    reshaped = any(s != "unchanged" for s in touched.values())
    land, exempt = _land(session, parent_ids) if parent_ids and reshaped else (None, None)
    if land is not None:
        area = shapely.intersection(land, region)
        if not area.is_empty:
            b_codes, a_codes = sorted(before), sorted(after)
            new, old = problem_diff(area, [before[c].geom for c in b_codes], b_codes, [after[c].geom for c in a_codes],
                                    a_codes, exempt=exempt, options=options_from(settings))
            created, removed = [_problem(p) for p in new], [_problem(p) for p in old]
    for p in created:
        codes = "、".join(p["codes"]) if lang != "en" else ", ".join(p["codes"])
        reasons.insert(0, say(p["kind"], lang, area=f"{p['area_m2']:.1f}", codes=codes or say("none", lang)))

    moved_codes = [c for c, s in touched.items() if s in ("changed", "retired")]
    households = _moved(before, after, moved_codes, "households", fwd)
    population = _moved(before, after, moved_codes, "population", fwd)
    incidents = _incidents(session, layer, region, after)
    notes = []
    if households is not None or population is not None:
        notes.append(say("estimate", lang))
    if incidents:
        notes.append(say("incidents", lang))
    return {"grids": grids, "created": created, "removed": removed, "households_moved": households,
            "population_moved": population, "incidents": incidents, "notes": notes,
            "needs_confirmation": bool(reasons), "reasons": reasons}


def _problem(p: dict) -> dict:
    """A gap or overlap of the coverage engine as the impact lists it."""
    return {"kind": p["kind"], "area_m2": p["area_m2"], "codes": p["codes"], "width_m": p.get("width_m"),
            **({"width_class": p["width_class"]} if p["kind"] == GAP and "width_class" in p else {}),
            "geometry": shapely.geometry.mapping(p["geometry"])}
