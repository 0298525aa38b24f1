"""Exemption masks: parts of a parent that need no grid (water, military land...).
"""

from __future__ import annotations

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.areas.versions import get_area_row
from geogrid.core.errors import GeogridError
from geogrid.core.settings import Settings
from geogrid.geo.geometry import check_polygons

# --------------------------------------------------------------------------- exemptions


def add_exemption(session: Session, code: str, geom: shapely.Geometry, settings: Settings, *, kind: str,
                  name: str | None, note: str | None) -> dict:
    """Register a legitimate void (lake, military land, exclave) inside an area."""
    area = get_area_row(session, code)
    scopes.require_scope(session, ("planner",), [area.id], strict=False)
    checked = check_polygons([geom], extent=settings.extent, max_vertices=settings.max_vertices_per_feature,
                             max_total_vertices=settings.max_vertices_per_request)
    if checked.problems:
        raise GeogridError("exemption rejected", problems=checked.problems)
    exemption_id = session.execute(text("""
        INSERT INTO exemption (area_id, kind, name, geom, note)
        VALUES (:a, :kind, :name, ST_SetSRID(ST_GeomFromWKB(:wkb), 4326), :note) RETURNING id
    """), {"a": area.id, "kind": kind, "name": name, "wkb": shapely.to_wkb(checked.geoms[0]), "note": note}).scalar_one()
    audit.record(session, "create", "exemption", exemption_id, after={"area": code, "kind": kind, "name": name})
    return {"id": exemption_id, "area": code, "kind": kind, "name": name}


def list_exemptions(session: Session, code: str) -> dict:
    """The exemptions of an area, if it lies in the caller's scope (a list: empty otherwise)."""
    scopes.require_role(session, *scopes.STAFF)
    scope, params = scopes.scope_filter(session, scopes.STAFF, "a.id")
    rows = session.execute(text(f"""
        SELECT e.id, e.kind, e.name, e.note, ST_AsGeoJSON(ST_ForcePolygonCCW(e.geom), 7) AS geom,
               ST_Area(e.geom::geography) AS area_m2
        FROM exemption e JOIN area a ON a.id = e.area_id WHERE a.code = :c AND {scope} ORDER BY e.id
    """), {**params, "c": code}).mappings()
    import json

    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r["id"], "geometry": json.loads(r["geom"]),
         "properties": {"id": r["id"], "area": code, "kind": r["kind"], "name": r["name"],
                        "area_m2": round(r["area_m2"], 1)}} for r in rows]}


def delete_exemption(session: Session, exemption_id: int) -> None:
    """Delete an exemption zone; the caller needs a planner grant covering its area (unknown and
    out-of-scope ids answer alike)."""
    row = session.execute(text("SELECT area_id, kind, name FROM exemption WHERE id = :id FOR UPDATE"),
                          {"id": exemption_id}).first()
    scopes.require_object(session, f"exemption {exemption_id}", ("planner",), None if row is None else [row.area_id])
    session.execute(text("DELETE FROM exemption WHERE id = :id"), {"id": exemption_id})
    audit.record(session, "delete", "exemption", exemption_id, before={"kind": row.kind, "name": row.name})
