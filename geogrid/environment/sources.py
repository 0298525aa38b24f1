"""Pollution sources (环境监管档案), each placed on its environment grid; creating, reading,
listing, editing and deleting them within the caller's scope. Patrols are in
:mod:`geogrid.environment.patrols`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.areas import lookup
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.jsonenc import dumps
from geogrid.core.settings import Settings
from geogrid.core.versioning import check_version
from geogrid.db.schema import ADMIN_LAYER

KINDS = {
    "enterprise": ("排污企业", "Polluting enterprise"),
    "outfall": ("入河排污口", "River outfall"),
    "chimney": ("烟囱/废气排放口", "Chimney"),
    "livestock_farm": ("畜禽养殖场", "Livestock farm"),
    "construction_site": ("建筑工地", "Construction site"),
    "catering": ("餐饮店", "Catering"),
    "mine": ("矿山", "Mine"),
    "hazardous_chemicals": ("危化品/尾矿库", "Hazardous chemicals or tailings"),
    "other": ("其他", "Other"),
}
RISK = ("low", "medium", "high")
ENVIRONMENT = "environment"
FIELDS = ("name", "kind", "pollutants", "permit_no", "key_supervision", "risk_level", "address", "notes", "public")

# A source's place, for scope: its environment grid, else the finest administrative area
# holding it (a source outside every environment grid still belongs to a town).
PLACE = """coalesce(s.grid_id, (
    SELECT a.id FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid) JOIN level lv ON lv.key = a.level_key
    WHERE a.layer_key = 'admin' AND a.retired_at IS NULL AND ST_Covers(b.geom, s.geom)
    ORDER BY lv.rank DESC, a.code LIMIT 1))"""
SELECT = f"""
    SELECT s.id, s.name, s.kind, s.pollutants, s.permit_no, s.key_supervision, s.risk_level, s.address, s.notes, s.public,
           ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, g.code AS grid, g.name AS grid_name, s.version, s.created_at,
           (SELECT max(p.at) FROM patrol p WHERE p.sources @> to_jsonb(s.id)) AS last_visit, {PLACE} AS place_id
    FROM pollution_source s LEFT JOIN area g ON g.id = s.grid_id
"""
EDITORS = ("inspector", "planner")


def _place(session: Session, lon: float, lat: float) -> tuple[int | None, int | None]:
    """(environment grid, place) of a point: the finest environment grid holding it (the
    primary, as in GET /api/locate), and as its place that grid, else the finest
    administrative area holding it; (None, None) outside the jurisdiction."""
    found = [r for r in lookup.locate(session, lon, lat, at=None, day=dt.datetime.now(dt.UTC).date(), internal=True)
             if r["primary"]]
    grids = [r["id"] for r in found if r["layer"] == ENVIRONMENT]
    admin = [r["id"] for r in found if r["layer"] == ADMIN_LAYER]
    if grids:
        return grids[-1], grids[-1]
    return None, (admin[-1] if admin else None)


def _require_place(session: Session, lon: float, lat: float, action: str) -> int | None:
    """The environment grid of a new or moved source, after checking that its place lies in
    the caller's scope; a point outside the jurisdiction is refused."""
    grid_id, place_id = _place(session, lon, lat)
    if place_id is None:
        raise GeogridError(f"point {lon:.7f}, {lat:.7f} is outside the jurisdiction: no area contains it",
                           problems=[Problem("outside the jurisdiction", field="location", location=(lon, lat))])
    scopes.require_scope(session, EDITORS, [place_id], strict=False, action=action)
    return grid_id


def _row(session: Session, source_id: int, *, for_update: bool = False) -> dict | None:
    row = session.execute(text(SELECT + " WHERE s.id = :id" + (" FOR UPDATE OF s" if for_update else "")),
                          {"id": source_id}).mappings().first()
    return None if row is None else dict(row)


def shown(row: dict) -> dict:
    """A source row as callers see it (without the internal ``place_id``)."""
    return {k: v for k, v in row.items() if k != "place_id"}


def _reached(session: Session, source_id: int, roles, *, for_update: bool = False) -> dict:
    """The source, once the caller's scope over its place is checked (unknown and out of
    scope answer alike)."""
    row = _row(session, source_id, for_update=for_update)
    scopes.require_object(session, f"pollution source {source_id}", roles,
                          None if row is None else [row["place_id"]])
    return row


def _check(data: dict, settings: Settings, partial: bool = False) -> list[Problem]:
    problems = []
    if not partial or "name" in data:
        if not (data.get("name") or "").strip():
            problems.append(Problem("name is required", field="name"))
    if (not partial or "kind" in data) and data.get("kind") not in KINDS:
        problems.append(Problem(f"unknown kind {data.get('kind')!r}; known: {', '.join(KINDS)}", field="kind"))
    if "risk_level" in data and data["risk_level"] not in RISK:
        problems.append(Problem(f"risk_level must be one of {', '.join(RISK)}", field="risk_level"))
    for flag in ("key_supervision", "public"):
        if flag in data and data[flag] is None and partial:
            problems.append(Problem(f"{flag} must be true or false, not null", field=flag))
    if not partial or "lon" in data or "lat" in data:
        lon, lat = data.get("lon"), data.get("lat")
        x0, y0, x1, y1 = settings.extent
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lon, lat)) \
                or not (x0 <= lon <= x1 and y0 <= lat <= y1):
            problems.append(Problem(f"lon/lat must be WGS84 degrees inside {settings.extent}", field="location"))
    return problems


def create_source(session: Session, data: dict, settings: Settings) -> dict:
    """Store a pollution source (inspectors and planners, at a place in their scope); all
    problems with ``data`` are reported at once and nothing is stored. Returns the source."""
    scopes.require_role(session, *EDITORS)
    problems = _check(data, settings)
    if problems:
        raise GeogridError("pollution source rejected; nothing was stored", problems=problems)
    grid_id = _require_place(session, data["lon"], data["lat"], "add a pollution source in")
    values = {k: data.get(k) for k in FIELDS}
    values["pollutants"] = dumps(values["pollutants"] or [])
    values["key_supervision"] = bool(values["key_supervision"])
    values["risk_level"] = values["risk_level"] or "low"
    values["public"] = bool(values["public"])
    source_id = session.execute(text("""
        INSERT INTO pollution_source (name, kind, pollutants, permit_no, key_supervision, risk_level, address, notes,
                                      public, geom, grid_id)
        VALUES (:name, :kind, CAST(:pollutants AS jsonb), :permit_no, :key_supervision, :risk_level, :address, :notes,
                :public, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :grid) RETURNING id
    """), {**values, "lon": data["lon"], "lat": data["lat"], "grid": grid_id}).scalar_one()
    out = get_source(session, source_id)
    audit.record(session, "create", "pollution_source", source_id, after=out)
    return out


def get_source(session: Session, source_id: int) -> dict:
    """A pollution source, once the caller's staff scope over its place is checked (unknown and
    out-of-scope ids answer alike)."""
    return shown(_reached(session, source_id, scopes.STAFF))


def list_sources(session: Session, *, area: str | None = None, key_only: bool = False, kind: str | None = None,
                 limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    """Sources in the caller's scope (their place in it), filtered."""
    scopes.require_role(session, *scopes.STAFF)
    scope, params = scopes.scope_filter(session, scopes.STAFF, PLACE)
    where = [scope]
    params.update(limit=limit, offset=offset)
    if area:
        where.append("g.code LIKE :prefix")
        params["prefix"] = area + "%"
    if key_only:
        where.append("s.key_supervision")
    if kind:
        where.append("s.kind = :kind")
        params["kind"] = kind
    cond = " AND ".join(where)
    total = session.execute(text(f"SELECT count(*) FROM pollution_source s LEFT JOIN area g ON g.id = s.grid_id "
                                 f"WHERE {cond}"), params).scalar_one()
    rows = session.execute(text(f"{SELECT} WHERE {cond} ORDER BY s.id LIMIT :limit OFFSET :offset"), params)
    return [shown(dict(r)) for r in rows.mappings()], total


def update_source(session: Session, source_id: int, changes: dict, settings: Settings,
                  expected_version: int | None = None) -> dict:
    """Edit a source: the old place and, when it moves, the new place must be in scope."""
    before = shown(_reached(session, source_id, EDITORS, for_update=True))
    check_version("pollution source", source_id, current=before["version"], expected=expected_version)
    problems = _check(changes, settings, partial=True)
    if problems:
        raise GeogridError(f"pollution source {source_id} was not changed", problems=problems)
    values = {k: v for k, v in changes.items() if k in FIELDS}
    if "pollutants" in values:
        values["pollutants"] = dumps(values["pollutants"] or [])
    sets = [f"{k} = CAST(:{k} AS jsonb)" if k == "pollutants" else f"{k} = :{k}" for k in values]
    if "lon" in changes or "lat" in changes:
        lon, lat = changes.get("lon", before["lon"]), changes.get("lat", before["lat"])
        sets += ["geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)", "grid_id = :grid"]
        values.update(lon=lon, lat=lat, grid=_require_place(session, lon, lat, "move a pollution source into"))
    if sets:
        session.execute(text(f"UPDATE pollution_source SET {', '.join(sets)}, version = version + 1 WHERE id = :id"),
                        {**values, "id": source_id})
        audit.record(session, "update", "pollution_source", source_id, before, get_source(session, source_id))
    return get_source(session, source_id)


def delete_source(session: Session, source_id: int) -> None:
    """Delete a pollution source (inspectors and planners whose scope holds its place; unknown
    and out-of-scope ids answer alike)."""
    before = shown(_reached(session, source_id, EDITORS, for_update=True))
    session.execute(text("DELETE FROM pollution_source WHERE id = :id"), {"id": source_id})
    audit.record(session, "delete", "pollution_source", source_id, before, None)
