"""Coverage checks of one parent's children: gaps, overlaps and slivers from the engine,
plus responsibility (every grid has its people) and size outliers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.areas.versions import get_area_row
from geogrid.core.settings import Settings
from geogrid.db.schema import ADMIN_LAYER
from geogrid.geo.coverage import CoverageOptions, check_coverage

LEADER_ROLES = ("grid_leader",)
WORKER_ROLES = ("grid_worker_fulltime", "grid_worker_parttime")


def options_from(settings: Settings, **overrides) -> CoverageOptions:
    """Coverage check options from the settings, with the ``overrides`` that are not None."""
    base = CoverageOptions(
        sliver_width_m=settings.sliver_width_m,
        households=tuple(settings.households_range),
        population=tuple(settings.population_range),
        expiring_within_days=settings.expiring_within_days,
        max_grids_per_person=settings.max_grids_per_person,
    )
    return CoverageOptions(**{**asdict(base), **{k: v for k, v in overrides.items() if v is not None}})


def shape_of(wkb) -> shapely.Geometry:
    """A geometry from PostGIS's ``ST_AsBinary``."""
    return shapely.from_wkb(bytes(wkb))


def children(session: Session, parent_id: int, layer: str) -> list:
    """The current children of area ``parent_id`` in ``layer``, with their boundaries (WKB)."""
    return session.execute(text("""
        SELECT a.id, a.code, a.name, a.households, a.population, a.version, b.area_m2, ST_AsBinary(b.geom) AS wkb
        FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
        WHERE a.parent_id = :p AND a.layer_key = :layer AND a.retired_at IS NULL
        ORDER BY a.code
    """), {"p": parent_id, "layer": layer}).all()


def _exempt_union(session: Session, area_id: int) -> shapely.Geometry | None:
    wkb = session.execute(text("SELECT ST_AsBinary(ST_Union(geom)) FROM exemption WHERE area_id = :a"),
                          {"a": area_id}).scalar()
    return shape_of(wkb) if wkb else None


def current_boundary(session: Session, area_id: int) -> shapely.Geometry:
    """The current boundary of area ``area_id``."""
    return shape_of(session.execute(text("SELECT ST_AsBinary(geom) FROM boundary WHERE area_id = :a AND upper_inf(valid)"),
                                 {"a": area_id}).scalar_one())


def check_parent(session: Session, code: str, layer: str, options: CoverageOptions, *, today: dt.date) -> dict:
    """Every problem of ``layer``'s children of one parent area: geometry (gaps, overlaps,
    spill-over, invalid), responsibility and size."""
    parent = get_area_row(session, code)
    kids = children(session, parent.id, layer)
    geom = current_boundary(session, parent.id)
    result = check_coverage(geom, [shape_of(k.wkb) for k in kids], [k.code for k in kids],
                            exempt=_exempt_union(session, parent.id), options=options)
    problems = result.problems
    by_code = {k.code: k for k in kids}
    if layer != ADMIN_LAYER:
        problems += _responsibility(session, kids, options, today)
    problems += _size_outliers(kids, options, register_sizes(session, parent.id, kids))
    for p in problems:
        p.setdefault("parent", code)
        if p.get("geometry") is None and len(p.get("codes", [])) == 1 and p["kind"] != "invalid":
            kid = by_code.get(p["codes"][0])
            p["geometry"] = shape_of(kid.wkb) if kid is not None else None
    summary = {"parent": code, "parent_name": parent.name, "layer": layer, **result.summary}
    for p in problems[len(result.problems):]:
        summary["counts"][p["kind"]] = summary["counts"].get(p["kind"], 0) + 1
    return {"summary": summary, "problems": problems}


def _responsibility(session: Session, kids, options: CoverageOptions, today: dt.date) -> list[dict]:
    if not kids:
        return []
    ids = [k.id for k in kids]
    rows = session.execute(text("""
        SELECT s.area_id, s.role_key, s.end_date, s.person_id
        FROM assignment s WHERE s.area_id = ANY(:ids) AND s.period @> CAST(:today AS date)
    """), {"ids": ids, "today": today}).all()
    active: dict[int, list] = {}
    for r in rows:
        active.setdefault(r.area_id, []).append(r)
    out = []
    horizon = today + dt.timedelta(days=options.expiring_within_days)
    for k in kids:
        posts = active.get(k.id, [])
        missing = [name for name, roles in (("grid_leader", LEADER_ROLES), ("grid_worker", WORKER_ROLES))
                   if not any(p.role_key in roles for p in posts)]
        if missing:
            out.append({"kind": "no_responsible", "codes": [k.code], "missing": missing, "area_m2": None,
                        "point": None})
        # Judged per post, like no_responsible: the only worker leaving soon is news even
        # when the leader stays.
        leaving, ends = [], []
        for name, roles in (("grid_leader", LEADER_ROLES), ("grid_worker", WORKER_ROLES)):
            held = [p for p in posts if p.role_key in roles]
            if held and all(p.end_date is not None and p.end_date <= horizon for p in held):
                leaving.append(name)
                ends.append(max(p.end_date for p in held))
        if leaving:
            out.append({"kind": "expiring", "codes": [k.code], "roles": leaving, "area_m2": None, "point": None,
                        "ends": max(ends).isoformat()})
    overloaded = session.execute(text("""
        SELECT p.id, p.name, count(DISTINCT s.area_id) AS grids, array_agg(DISTINCT a.code) AS codes
        FROM assignment s JOIN person p ON p.id = s.person_id JOIN area a ON a.id = s.area_id
        WHERE s.period @> CAST(:today AS date) AND s.role_key = ANY(:roles)
          AND s.person_id IN (SELECT person_id FROM assignment WHERE area_id = ANY(:ids))
          AND a.retired_at IS NULL AND a.layer_key <> :admin
        GROUP BY p.id HAVING count(DISTINCT s.area_id) > :most
    """), {"today": today, "roles": list(WORKER_ROLES), "ids": ids, "most": options.max_grids_per_person,
           "admin": ADMIN_LAYER}).all()
    for r in overloaded:
        out.append({"kind": "overloaded_person", "codes": sorted(r.codes), "person_id": r.id, "person": r.name,
                    "grids": r.grids, "area_m2": None, "point": None, "geometry": None})
    return out


def register_sizes(session: Session, parent_id: int, kids) -> dict[int, dict] | None:
    """Households and population of each child from the household register, when the register
    has households in the parent's grids (else None: the typed numbers stand)."""
    from geogrid.people.households import register_counts, registered_parents

    if not kids or parent_id not in registered_parents(session, [parent_id]):
        return None
    counts = register_counts(session, [k.id for k in kids])
    return {k.id: {"households": counts.get(k.id, {}).get("households", 0),
                   "population": counts.get(k.id, {}).get("residents", 0)} for k in kids}


def _size_outliers(kids, options: CoverageOptions, register: dict[int, dict] | None = None) -> list[dict]:
    out = []
    for k in kids:
        for field_, (low, high) in (("households", options.households), ("population", options.population)):
            value = register[k.id][field_] if register is not None else getattr(k, field_)
            if value is not None and not low <= value <= high:
                out.append({"kind": "size_outlier", "codes": [k.code], "field": field_, "value": value,
                            "source": "register" if register is not None else "typed",
                            "expected": [low, high], "area_m2": None, "point": None})
    areas = np.array([k.area_m2 for k in kids], dtype=float)
    if len(areas) >= 5:
        logs = np.log(np.maximum(areas, 1.0))
        # A regular layout has almost no spread: a floor of 0.1 (about 10 % in area) keeps
        # a slightly larger grid from scoring as an outlier.
        mad = max(float(np.median(np.abs(logs - np.median(logs)))), 0.1)
        z = 0.6745 * (logs - np.median(logs)) / mad
        for k, score in zip(kids, z):
            if abs(score) > options.area_outlier_z:
                out.append({"kind": "area_outlier", "codes": [k.code], "area_m2": round(k.area_m2, 1),
                            "z": round(float(score), 2), "median_m2": round(float(np.exp(np.median(logs))), 1),
                            "point": None})
    return out


def parents_in_subtree(session: Session, code: str, layer: str) -> list[str]:
    """Every area in ``code``'s subtree (itself included) that has children in ``layer``,
    and every administrative leaf whose siblings have some: a village left without any
    grid while its neighbours are gridded is a blind spot, not a village to skip."""
    root = get_area_row(session, code)
    return session.execute(text("""
        WITH RECURSIVE sub(id) AS (
            SELECT CAST(:root AS integer) UNION ALL SELECT a.id FROM area a JOIN sub ON a.parent_id = sub.id
        ),
        gridded AS (
            SELECT p.id FROM sub JOIN area p ON p.id = sub.id
            WHERE EXISTS (SELECT 1 FROM area c WHERE c.parent_id = p.id AND c.layer_key = :layer
                          AND c.retired_at IS NULL)
        )
        SELECT p.code FROM area p WHERE p.id IN (SELECT id FROM gridded)
        UNION
        SELECT leaf.code FROM sub JOIN area leaf ON leaf.id = sub.id
        WHERE :layer <> :admin AND leaf.layer_key = :admin AND leaf.retired_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM area c WHERE c.parent_id = leaf.id AND c.layer_key = :admin
                          AND c.retired_at IS NULL)
          AND EXISTS (SELECT 1 FROM area s WHERE s.parent_id = leaf.parent_id AND s.id IN (SELECT id FROM gridded))
        ORDER BY 1
    """), {"root": root.id, "layer": layer, "admin": ADMIN_LAYER}).scalars().all()


def problems_geojson(problems: list[dict]) -> dict:
    """Coverage problems as a GeoJSON FeatureCollection (geometry, else the problem's point;
    polygons oriented counter-clockwise), numbered in order."""
    features = []
    for i, p in enumerate(problems):
        geom = p.get("geometry")
        if geom is None and p.get("point"):
            geom = shapely.Point(p["point"])
        props = {k: v for k, v in p.items() if k != "geometry"}
        features.append({"type": "Feature", "id": i,
                         "geometry": shapely.geometry.mapping(shapely.orient_polygons(geom)) if geom is not None else None,
                         "properties": props})
    return {"type": "FeatureCollection", "features": features}
