"""Repair proposals (coverage cleaning) and their confirmed application.
"""

from __future__ import annotations

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.areas.versions import get_area_row, retire_area, update_area
from geogrid.core.errors import GeogridError, conflict
from geogrid.core.jsonenc import dumps
from geogrid.core.settings import Settings
from geogrid.core.versioning import check_version
from geogrid.coverage.checks import children, current_boundary, shape_of
from geogrid.coverage.runs import reached
from geogrid.geo.coverage import local_projection, project, propose_clean
from geogrid.geo.geometry import check_polygons

# --------------------------------------------------------------------------- repair


def propose_repair(session: Session, code: str, layer: str, *, gap_width_m: float, merge_strategy: str,
                   snapping_distance_m: float = -1) -> dict:
    """Propose cleaned boundaries for the children of ``code`` in ``layer`` (GEOS coverage
    cleaning), store the proposal, and say per grid what would change. Nothing changes
    until :func:`apply_repair` is called with the proposal's id."""
    scopes.require_role(session, "planner")
    parent = get_area_row(session, code)
    scopes.require_scope(session, ("planner",), [parent.id], strict=False)
    kids = children(session, parent.id, layer)
    if not kids:
        raise GeogridError(f"{code} has no children in layer {layer}")
    old = np.asarray([shape_of(k.wkb) for k in kids], dtype=object)
    try:
        new = propose_clean(current_boundary(session, parent.id), old, gap_width_m=gap_width_m,
                            merge_strategy=merge_strategy, snapping_distance_m=snapping_distance_m)
    except shapely.errors.GEOSException as exc:
        raise GeogridError(f"coverage cleaning failed: {exc}") from None
    fwd, _ = local_projection(current_boundary(session, parent.id))
    old_m, new_m = project(fwd, old), project(fwd, new)
    tree = shapely.STRtree(new_m)
    features, changed = [], 0
    for i, k in enumerate(kids):
        swallowed = new[i] is None or new[i].is_empty  # wholly inside another grid: it would be retired
        same = not swallowed and shapely.equals_exact(shapely.normalize(old[i]), shapely.normalize(_multi(new[i])),
                                                      tolerance=0)
        gained = shapely.difference(new_m[i], old_m[i])
        lost = shapely.difference(old_m[i], new_m[i])
        to_whom = []
        if not lost.is_empty and lost.area >= 0.01:
            for j in tree.query(lost, predicate="intersects"):
                moved = shapely.intersection(lost, new_m[j]).area if j != i else 0.0
                if moved >= 0.01:
                    to_whom.append({"code": kids[j].code, "area_m2": round(moved, 2)})
        changed += 0 if same else 1
        features.append({"type": "Feature", "id": k.code,
                         "geometry": None if swallowed else shapely.geometry.mapping(shapely.orient_polygons(_multi(new[i]))),
                         "properties": {"code": k.code, "name": k.name, "changed": not same, "version": k.version,
                                        "retire": swallowed,
                                        "area_before_m2": round(old_m[i].area, 2), "area_after_m2": round(new_m[i].area, 2),
                                        "gained_m2": round(gained.area, 2), "lost_m2": round(lost.area, 2),
                                        "lost_to": to_whom}})
    params = {"gap_width_m": gap_width_m, "merge_strategy": merge_strategy, "snapping_distance_m": snapping_distance_m}
    proposal = {"type": "FeatureCollection", "features": features}
    proposal_id = session.execute(text("""
        INSERT INTO repair_proposal (actor, area_code, layer, params, base_versions, proposal)
        VALUES (:actor, :code, :layer, CAST(:params AS jsonb), CAST(:base AS jsonb), CAST(:proposal AS jsonb))
        RETURNING id
    """), {"actor": scopes.actor(session), "code": code, "layer": layer, "params": dumps(params),
           "base": dumps({k.code: k.version for k in kids}), "proposal": dumps(proposal)}).scalar_one()
    audit.record(session, "create", "repair_proposal", proposal_id,
                  after={"area": code, "layer": layer, "params": params, "changed": changed})
    return {"id": proposal_id, "area": code, "layer": layer, "params": params, "grids": len(kids),
            "changed": changed, "proposal": proposal}


def _multi(g: shapely.Geometry) -> shapely.Geometry:
    return shapely.multipolygons([g]) if g.geom_type == "Polygon" else g


def get_proposal(session: Session, proposal_id: int) -> dict:
    """A stored repair proposal, once the caller's staff scope over its area is checked (unknown
    and out-of-scope ids answer alike)."""
    return reached(session, "repair_proposal", "repair proposal", proposal_id, scopes.STAFF)


def apply_repair(session: Session, proposal_id: int, settings: Settings, *, confirm: bool) -> dict:
    """Write a stored proposal as new boundary versions, all or nothing, if no grid it
    touches has changed since it was made (else 409: propose again)."""
    if not confirm:
        raise GeogridError("applying a repair rewrites boundaries: repeat with confirm=true to do it")
    row = reached(session, "repair_proposal", "repair proposal", proposal_id, ("planner",), for_update=True)
    if row["applied_at"] is not None:
        raise conflict(f"repair proposal {proposal_id} was applied at {row['applied_at']}")
    changed = [f for f in row["proposal"]["features"] if f["properties"]["changed"]]
    note = f"coverage repair proposal {proposal_id}"
    parent = get_area_row(session, row["area_code"])
    now_codes = {k.code for k in children(session, parent.id, row["layer"])}
    if now_codes != set(row["base_versions"]):
        raise conflict(f"the grids under {row['area_code']} changed since proposal {proposal_id} was made "
                       "(grids added or retired): propose again")
    for f in changed:
        current = get_area_row(session, f["id"])
        try:
            check_version("area", current.code, current=current.version, expected=row["base_versions"][f["id"]])
        except GeogridError:
            raise conflict(f"grid {f['id']} changed since proposal {proposal_id} was made: propose again") from None
    # Grids may only give land to each other once all of them are rewritten, so the spill
    # check of each edit runs against the parent, which does not change here.
    for f in [f for f in changed if f["properties"].get("retire")]:
        retire_area(session, f["id"], settings)
    for f in [f for f in changed if not f["properties"].get("retire")]:
        geom = shapely.geometry.shape(f["geometry"])
        checked = check_polygons([geom], extent=settings.extent)
        if checked.problems:
            raise GeogridError(f"proposal {proposal_id} has an unusable boundary for {f['id']}", problems=checked.problems)
        update_area(session, f["id"], settings, geometry=geom, note=note)
    session.execute(text("UPDATE repair_proposal SET applied_at = now(), applied_by = :who WHERE id = :id"),
                    {"who": scopes.actor(session), "id": proposal_id})
    audit.record(session, "apply", "repair_proposal", proposal_id, after={"changed": [f["id"] for f in changed]})
    return {"id": proposal_id, "applied": [f["id"] for f in changed]}
