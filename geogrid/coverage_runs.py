"""Coverage checks on the stored grids: load a parent and its children from PostGIS, run
:mod:`geogrid.coverage`, add the responsibility and size checks, store the run; repair
proposals and their confirmed application; exemption masks.

All SQL of the coverage work lives here.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid import access
from geogrid.areas import check_version, get_area_row, retire_area, update_area
from geogrid.coverage import CoverageOptions, check_coverage, local_projection, propose_clean
from geogrid.errors import GeogridError, conflict
from geogrid.geometry import check_polygons
from geogrid.models import ADMIN_LAYER
from geogrid.settings import Settings

LEADER_ROLES = ("grid_leader",)
WORKER_ROLES = ("grid_worker_fulltime", "grid_worker_parttime")


def options_from(settings: Settings, **overrides) -> CoverageOptions:
    base = CoverageOptions(
        sliver_width_m=settings.sliver_width_m,
        households=tuple(settings.households_range),
        population=tuple(settings.population_range),
        expiring_within_days=settings.expiring_within_days,
        max_grids_per_person=settings.max_grids_per_person,
    )
    return CoverageOptions(**{**asdict(base), **{k: v for k, v in overrides.items() if v is not None}})


def _geom(wkb) -> shapely.Geometry:
    return shapely.from_wkb(bytes(wkb))


def _children(session: Session, parent_id: int, layer: str) -> list:
    return session.execute(text("""
        SELECT a.id, a.code, a.name, a.households, a.population, a.version, b.area_m2, ST_AsBinary(b.geom) AS wkb
        FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
        WHERE a.parent_id = :p AND a.layer_key = :layer AND a.retired_at IS NULL
        ORDER BY a.code
    """), {"p": parent_id, "layer": layer}).all()


def _exempt_union(session: Session, area_id: int) -> shapely.Geometry | None:
    wkb = session.execute(text("SELECT ST_AsBinary(ST_Union(geom)) FROM exemption WHERE area_id = :a"),
                          {"a": area_id}).scalar()
    return _geom(wkb) if wkb else None


def _current_boundary(session: Session, area_id: int) -> shapely.Geometry:
    return _geom(session.execute(text("SELECT ST_AsBinary(geom) FROM boundary WHERE area_id = :a AND upper_inf(valid)"),
                                 {"a": area_id}).scalar_one())


def check_parent(session: Session, code: str, layer: str, options: CoverageOptions, *, today: dt.date) -> dict:
    """Every problem of ``layer``'s children of one parent area: geometry (gaps, overlaps,
    spill-over, invalid), responsibility and size."""
    parent = get_area_row(session, code)
    kids = _children(session, parent.id, layer)
    geom = _current_boundary(session, parent.id)
    result = check_coverage(geom, [_geom(k.wkb) for k in kids], [k.code for k in kids],
                            exempt=_exempt_union(session, parent.id), options=options)
    problems = result.problems
    by_code = {k.code: k for k in kids}
    if layer != ADMIN_LAYER:
        problems += _responsibility(session, kids, options, today)
    problems += _size_outliers(kids, options)
    for p in problems:
        p.setdefault("parent", code)
        if p.get("geometry") is None and len(p.get("codes", [])) == 1 and p["kind"] != "invalid":
            kid = by_code.get(p["codes"][0])
            p["geometry"] = _geom(kid.wkb) if kid is not None else None
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


def _size_outliers(kids, options: CoverageOptions) -> list[dict]:
    out = []
    for k in kids:
        for field_, (low, high) in (("households", options.households), ("population", options.population)):
            value = getattr(k, field_)
            if value is not None and not low <= value <= high:
                out.append({"kind": "size_outlier", "codes": [k.code], "field": field_, "value": value,
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


def run(session: Session, code: str, layer: str, options: CoverageOptions, *, subtree: bool,
        today: dt.date, store: bool = True) -> dict:
    """Check one parent (or every parent in its subtree) on the jurisdiction's ``today``
    (see :func:`geogrid.areas.local_today`), store the run, return it."""
    access.require_scope(session, access.STAFF, [get_area_row(session, code).id], strict=False, action="check")
    if layer not in {r for r in session.execute(text("SELECT key FROM layer")).scalars()}:
        raise GeogridError(f"unknown layer {layer!r}")
    started = time.perf_counter()
    parents = parents_in_subtree(session, code, layer) if subtree else [code]
    results = [check_parent(session, p, layer, options, today=today) for p in parents]
    summaries = sorted((r["summary"] for r in results), key=lambda s: (s["coverage_pct"], -sum(s["counts"].values())))
    problems, seen_people = [], set()
    for p in (p for r in results for p in r["problems"]):
        if p["kind"] == "overloaded_person":  # found from every parent the person works in: once is enough
            if p["person_id"] in seen_people:
                continue
            seen_people.add(p["person_id"])
        problems.append(p)
    totals: dict[str, int] = {}
    for p in problems:
        totals[p["kind"]] = totals.get(p["kind"], 0) + 1
    parent_m2 = sum(s["parent_area_m2"] - s["exempt_area_m2"] for s in summaries)
    covered_m2 = sum(min(s["covered_area_m2"], s["parent_area_m2"] - s["exempt_area_m2"]) for s in summaries)
    summary = {
        "area": code, "layer": layer, "subtree": subtree, "parents_checked": len(summaries),
        "grids": sum(s["grids"] for s in summaries),
        "coverage_pct": round(100.0 * covered_m2 / parent_m2, 4) if parent_m2 else 100.0,
        "counts": totals, "problems": len(problems), "parents": summaries,
    }
    seconds = round(time.perf_counter() - started, 3)
    collection = problems_geojson(problems)
    out = {"summary": summary, "problems": collection, "seconds": seconds,
           "options": asdict(options), "at": dt.datetime.now(dt.UTC).isoformat()}
    if store:
        out["id"] = session.execute(text("""
            INSERT INTO coverage_run (actor, area_code, layer, subtree, options, summary, problems, seconds)
            VALUES (:actor, :code, :layer, :subtree, CAST(:options AS jsonb), CAST(:summary AS jsonb),
                    CAST(:problems AS jsonb), :seconds) RETURNING id
        """), {"actor": access.actor(session), "code": code, "layer": layer, "subtree": subtree,
               "options": _dumps(asdict(options)), "summary": _dumps(summary), "problems": _dumps(collection),
               "seconds": seconds}).scalar_one()
    return out


def problems_geojson(problems: list[dict]) -> dict:
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


def _dumps(obj) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, default=_jsonable)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


_RUN_AREA = "(SELECT a.id FROM area a WHERE a.code = r.area_code)"


def list_runs(session: Session, *, area: str | None, layer: str | None, limit: int, offset: int) -> list[dict]:
    """Stored runs of areas in the caller's scope, newest first."""
    access.require_role(session, *access.STAFF)
    scope, params = access.scope_filter(session, access.STAFF, _RUN_AREA)
    rows = session.execute(text(f"""
        SELECT id, at, actor, area_code, layer, subtree, seconds, summary->'counts' AS counts,
               summary->'coverage_pct' AS coverage_pct
        FROM coverage_run r WHERE (CAST(:area AS text) IS NULL OR area_code = :area)
          AND (CAST(:layer AS text) IS NULL OR layer = :layer) AND {scope}
        ORDER BY id DESC LIMIT :limit OFFSET :offset
    """), {**params, "area": area, "layer": layer, "limit": limit, "offset": offset}).mappings()
    return [dict(r) for r in rows]


def _reached(session: Session, table: str, what: str, row_id: int, roles, *, for_update: bool = False) -> dict:
    """A stored run or proposal, once the caller's scope over its area is checked (unknown
    and out-of-scope ones answer alike)."""
    row = session.execute(text(f"SELECT r.*, {_RUN_AREA} AS area_id FROM {table} r WHERE r.id = :id"
                               + (" FOR UPDATE OF r" if for_update else "")), {"id": row_id}).mappings().first()
    access.require_object(session, f"{what} {row_id}", roles, None if row is None else [row["area_id"]])
    return {k: v for k, v in row.items() if k != "area_id"}


def latest_run(session: Session, area: str, layer: str) -> dict | None:
    """The newest stored run for exactly this area and layer, if any."""
    run_id = session.execute(text("SELECT max(id) FROM coverage_run WHERE area_code = :a AND layer = :l"),
                             {"a": area, "l": layer}).scalar()
    return get_run(session, run_id) if run_id else None


def get_run(session: Session, run_id: int) -> dict:
    return _reached(session, "coverage_run", "coverage run", run_id, access.STAFF)


def compare_runs(session: Session, old_id: int, new_id: int) -> dict:
    """What changed between two runs of the same area and layer: counts per kind, and
    problems that appeared or went away (matched by kind and grid codes)."""
    old, new = get_run(session, old_id), get_run(session, new_id)
    if (old["area_code"], old["layer"]) != (new["area_code"], new["layer"]):
        raise GeogridError(f"runs {old_id} and {new_id} checked different areas or layers")

    def keys(run):
        return {(f["properties"]["kind"], tuple(f["properties"].get("codes", []))) for f in run["problems"]["features"]}

    before, after = keys(old), keys(new)
    kinds = set(old["summary"]["counts"]) | set(new["summary"]["counts"])
    return {
        "old": old_id, "new": new_id, "area": new["area_code"], "layer": new["layer"],
        "coverage_pct": {"old": old["summary"]["coverage_pct"], "new": new["summary"]["coverage_pct"]},
        "counts": {k: {"old": old["summary"]["counts"].get(k, 0), "new": new["summary"]["counts"].get(k, 0)}
                   for k in sorted(kinds)},
        "appeared": [{"kind": k, "codes": list(c)} for k, c in sorted(after - before)],
        "resolved": [{"kind": k, "codes": list(c)} for k, c in sorted(before - after)],
    }


# --------------------------------------------------------------------------- repair


def propose_repair(session: Session, code: str, layer: str, *, gap_width_m: float, merge_strategy: str,
                   snapping_distance_m: float = -1) -> dict:
    """Propose cleaned boundaries for the children of ``code`` in ``layer`` (GEOS coverage
    cleaning), store the proposal, and say per grid what would change. Nothing changes
    until :func:`apply_repair` is called with the proposal's id."""
    access.require_role(session, "planner")
    parent = get_area_row(session, code)
    access.require_scope(session, ("planner",), [parent.id], strict=False)
    kids = _children(session, parent.id, layer)
    if not kids:
        raise GeogridError(f"{code} has no children in layer {layer}")
    old = np.asarray([_geom(k.wkb) for k in kids], dtype=object)
    try:
        new = propose_clean(_current_boundary(session, parent.id), old, gap_width_m=gap_width_m,
                            merge_strategy=merge_strategy, snapping_distance_m=snapping_distance_m)
    except shapely.errors.GEOSException as exc:
        raise GeogridError(f"coverage cleaning failed: {exc}") from None
    fwd, _ = local_projection(_current_boundary(session, parent.id))
    from geogrid.coverage import _apply

    old_m, new_m = _apply(fwd, old), _apply(fwd, new)
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
    """), {"actor": access.actor(session), "code": code, "layer": layer, "params": _dumps(params),
           "base": _dumps({k.code: k.version for k in kids}), "proposal": _dumps(proposal)}).scalar_one()
    access.record(session, "create", "repair_proposal", proposal_id,
                  after={"area": code, "layer": layer, "params": params, "changed": changed})
    return {"id": proposal_id, "area": code, "layer": layer, "params": params, "grids": len(kids),
            "changed": changed, "proposal": proposal}


def _multi(g: shapely.Geometry) -> shapely.Geometry:
    return shapely.multipolygons([g]) if g.geom_type == "Polygon" else g


def get_proposal(session: Session, proposal_id: int) -> dict:
    return _reached(session, "repair_proposal", "repair proposal", proposal_id, access.STAFF)


def apply_repair(session: Session, proposal_id: int, settings: Settings, *, confirm: bool) -> dict:
    """Write a stored proposal as new boundary versions, all or nothing, if no grid it
    touches has changed since it was made (else 409: propose again)."""
    if not confirm:
        raise GeogridError("applying a repair rewrites boundaries: repeat with confirm=true to do it")
    row = _reached(session, "repair_proposal", "repair proposal", proposal_id, ("planner",), for_update=True)
    if row["applied_at"] is not None:
        raise conflict(f"repair proposal {proposal_id} was applied at {row['applied_at']}")
    changed = [f for f in row["proposal"]["features"] if f["properties"]["changed"]]
    note = f"coverage repair proposal {proposal_id}"
    parent = get_area_row(session, row["area_code"])
    now_codes = {k.code for k in _children(session, parent.id, row["layer"])}
    if now_codes != set(row["base_versions"]):
        raise conflict(f"the grids under {row['area_code']} changed since proposal {proposal_id} was made "
                       "(grids added or retired): propose again")
    for f in changed:
        current = get_area_row(session, f["id"])
        try:
            check_version(current, row["base_versions"][f["id"]])
        except GeogridError:
            raise conflict(f"grid {f['id']} changed since proposal {proposal_id} was made: propose again") from None
    # Grids may only give land to each other once all of them are rewritten, so the spill
    # check of each edit runs against the parent, which does not change here.
    for f in [f for f in changed if f["properties"].get("retire")]:
        retire_area(session, f["id"])
    for f in [f for f in changed if not f["properties"].get("retire")]:
        geom = shapely.geometry.shape(f["geometry"])
        checked = check_polygons([geom], extent=settings.extent)
        if checked.problems:
            raise GeogridError(f"proposal {proposal_id} has an unusable boundary for {f['id']}", problems=checked.problems)
        update_area(session, f["id"], settings, geometry=geom, note=note)
    session.execute(text("UPDATE repair_proposal SET applied_at = now(), applied_by = :who WHERE id = :id"),
                    {"who": access.actor(session), "id": proposal_id})
    access.record(session, "apply", "repair_proposal", proposal_id, after={"changed": [f["id"] for f in changed]})
    return {"id": proposal_id, "applied": [f["id"] for f in changed]}


# --------------------------------------------------------------------------- exemptions


def add_exemption(session: Session, code: str, geom: shapely.Geometry, settings: Settings, *, kind: str,
                  name: str | None, note: str | None) -> dict:
    """Register a legitimate void (lake, military land, exclave) inside an area."""
    area = get_area_row(session, code)
    access.require_scope(session, ("planner",), [area.id], strict=False)
    checked = check_polygons([geom], extent=settings.extent, max_vertices=settings.max_vertices_per_feature,
                             max_total_vertices=settings.max_vertices_per_request)
    if checked.problems:
        raise GeogridError("exemption rejected", problems=checked.problems)
    exemption_id = session.execute(text("""
        INSERT INTO exemption (area_id, kind, name, geom, note)
        VALUES (:a, :kind, :name, ST_SetSRID(ST_GeomFromWKB(:wkb), 4326), :note) RETURNING id
    """), {"a": area.id, "kind": kind, "name": name, "wkb": shapely.to_wkb(checked.geoms[0]), "note": note}).scalar_one()
    access.record(session, "create", "exemption", exemption_id, after={"area": code, "kind": kind, "name": name})
    return {"id": exemption_id, "area": code, "kind": kind, "name": name}


def list_exemptions(session: Session, code: str) -> dict:
    """The exemptions of an area, if it lies in the caller's scope (a list: empty otherwise)."""
    access.require_role(session, *access.STAFF)
    scope, params = access.scope_filter(session, access.STAFF, "a.id")
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
    row = session.execute(text("SELECT area_id, kind, name FROM exemption WHERE id = :id FOR UPDATE"),
                          {"id": exemption_id}).first()
    access.require_object(session, f"exemption {exemption_id}", ("planner",), None if row is None else [row.area_id])
    session.execute(text("DELETE FROM exemption WHERE id = :id"), {"id": exemption_id})
    access.record(session, "delete", "exemption", exemption_id, before={"kind": row.kind, "name": row.name})
