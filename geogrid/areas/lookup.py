"""Reading areas and grids: listing with filters, one area (now or at an instant), its
boundary history, data frames for maps and exports, and the point lookup (``locate``)
that incidents are routed by.

Writes are elsewhere in :mod:`geogrid.areas`: every new area goes through
:func:`geogrid.areas.importing.import_areas` (all or nothing), edits and retirement
through :mod:`geogrid.areas.versions`, levels and layers through
:mod:`geogrid.areas.reference`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.areas.reference import layers, levels
from geogrid.areas.versions import get_area_row
from geogrid.core.errors import GeogridError, Problem, not_found
from geogrid.db.schema import ADMIN_LAYER


def valid_clause(at: dt.datetime | None) -> str:
    """SQL condition on boundary ``b``: valid at ``:at``, or current when ``at`` is None."""
    # upper_inf() lets PostGIS use the partial index of current boundaries.
    return "upper_inf(b.valid)" if at is None else "b.valid @> CAST(:at AS timestamptz)"


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
    published: bool = False  # what the public sees: the published generation (at ``at``)


def _where(f: AreaFilter) -> tuple[str, dict]:
    # A published generation holds no retired areas: publication withdraws them.
    clauses = [valid_clause(f.at)] if f.published or not (f.include_retired and f.at is None) else [
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
# The same names over a published generation (``b`` = published_area): the area ``a`` and
# its parent ``p`` as published, with nothing the publication does not copy (notes, counts).
_PUBLISHED_FROM = """
    FROM published_area b
    JOIN LATERAL (SELECT b.area_id AS id, b.code, b.name, b.level_key, b.layer_key, CAST(NULL AS integer) AS households,
                         CAST(NULL AS integer) AS population, CAST(NULL AS text) AS land_use, b.version,
                         CAST(NULL AS timestamptz) AS retired_at, CAST(NULL AS text) AS notes) a ON true
    JOIN level lv ON lv.key = a.level_key
    JOIN layer ly ON ly.key = a.layer_key
    LEFT JOIN LATERAL (SELECT b.parent_code AS code) p ON true
"""


def area_from(published: bool) -> str:
    """FROM clause naming the area ``a``, its boundary ``b``, level ``lv``, layer ``ly`` and
    parent ``p``: current areas for staff, or the published generation for the public."""
    return _PUBLISHED_FROM if published else _AREA_FROM


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
    total = session.execute(text(f"SELECT count(*) {area_from(f.published)} WHERE {where}"), params).scalar_one()
    features = session.execute(
        text(f"SELECT {_feature_sql(lang, False)} {area_from(f.published)} WHERE {where} "
             "ORDER BY lv.rank, a.code LIMIT :limit OFFSET :offset"),
        {**params, "limit": limit, "offset": offset},
    ).scalars().all()
    return features, total


def get_area(session: Session, code: str, *, at: dt.datetime | None = None, lang: str = "zh",
             published: bool = False) -> dict:
    """One area as a GeoJSON feature, current or at ``at`` (retired areas included; or as
    ``published``); 404 when there is no such area or it had no boundary then."""
    f = AreaFilter(at=at, include_retired=True, published=published)
    where, params = _where(f)
    feature = session.execute(
        text(f"SELECT {_feature_sql(lang, False)} {area_from(published)} WHERE {where} AND a.code = :code"),
        {**params, "code": code},
    ).scalar_one_or_none()
    if feature is None:
        raise not_found(f"area {code}" + (f" at {at.isoformat()}" if at else ""))
    return feature


def boundary_history(session: Session, code: str, *, published: bool = False) -> list[dict]:
    """Every boundary version of an area, newest first, as GeoJSON features; ``published``:
    every generation the public saw instead (404 when it was never published)."""
    if published:
        rows = session.execute(text("""
            SELECT json_build_object(
                'type', 'Feature', 'id', b.code || '@' || b.version,
                'geometry', ST_AsGeoJSON(ST_ForcePolygonCCW(b.geom), 7)::json,
                'properties', json_build_object('code', b.code, 'boundary_version', b.version,
                    'valid_from', lower(b.valid), 'valid_to', upper(b.valid),
                    'area_m2', round(b.area_m2::numeric, 1), 'note', NULL))
            FROM published_area b WHERE b.code = :code AND NOT isempty(b.valid) ORDER BY lower(b.valid) DESC
        """), {"code": code}).scalars().all()
        if not rows:
            raise not_found(f"area {code}")
        return rows
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
        {area_from(f.published)} WHERE {where} ORDER BY lv.rank, a.code
    """), params).mappings().all()
    df = pd.DataFrame([{k: v for k, v in r.items() if k != "wkb"} for r in rows])
    geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else []
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"), crs="EPSG:4326")


# --------------------------------------------------------------------------- point lookup


def locate(session: Session, lon: float, lat: float, *, at: dt.datetime | None, day: dt.date, lang: str = "zh",
           internal: bool = False, published: bool = False) -> list[dict]:
    """Every area (all layers, all levels) whose boundary covers the point at ``at``.

    A point on a shared boundary is covered by every area that shares it: all are
    returned with ``on_boundary`` true, and per layer and level exactly one is
    ``primary``: an area whose interior holds the point if there is one, else the one
    with the lowest code (codes run west to east, north to south, so ties go to the
    north-western grid). Routing uses the primary. ``internal`` adds the areas' ids and
    the persons' unpublished fields, for routing; never for a public answer, which is
    ``published``: the generation the public saw at ``at``.
    """
    label = _label(lang)
    rows = session.execute(text(f"""
        WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g)
        SELECT a.id, a.code, a.name, a.level_key, lv.{label} AS level_name, lv.rank,
               a.layer_key, ly.{label} AS layer_name, p.code AS parent, b.version AS boundary_version,
               NOT ST_Contains(b.geom, pt.g) AS on_boundary
        {area_from(published)} CROSS JOIN pt
        WHERE {valid_clause(at)} AND ST_Covers(b.geom, pt.g)
        ORDER BY a.layer_key = '{ADMIN_LAYER}' DESC, a.layer_key, lv.rank, on_boundary, a.code
    """), {"lon": lon, "lat": lat, "at": at}).mappings().all()
    from geogrid.people.assignments import responsible_persons

    persons = responsible_persons(session, [r["id"] for r in rows], day, lang=lang, public_only=not internal,
                                  published=published)
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
    """The current boundaries of the areas with these codes, by code (unknown and retired codes
    are left out)."""
    rows = session.execute(
        text("SELECT a.code, ST_AsBinary(b.geom) AS wkb FROM area a JOIN boundary b ON b.area_id = a.id "
             "AND upper_inf(b.valid) WHERE a.code = ANY(:codes)"), {"codes": list(codes)})
    return {r.code: shapely.from_wkb(bytes(r.wkb)) for r in rows}


def feature_collection(features: list[dict], **members) -> dict:
    """A GeoJSON FeatureCollection of ``features``, with ``members`` (e.g. a total) before them."""
    return {"type": "FeatureCollection", **members, "features": features}


def area_ids(session: Session, codes: list[str]) -> dict[str, int]:
    """Ids of the areas with these codes (unknown codes are left out)."""
    return dict(session.execute(text("SELECT code, id FROM area WHERE code = ANY(:c)"), {"c": codes}).all())
