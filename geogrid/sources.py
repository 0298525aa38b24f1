"""Pollution sources (环境监管档案) on their environment grid, and patrols of environment
grids: who walked which grid when, which sources they visited, which grids and key
sources are behind their patrol frequency.

All SQL touching pollution sources and patrols lives here.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid import access, areas
from geogrid.errors import GeogridError, Problem
from geogrid.models import ADMIN_LAYER
from geogrid.settings import Settings

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
FIELDS = ("name", "kind", "pollutants", "permit_no", "key_supervision", "risk_level", "address", "notes")

# A source's place, for scope: its environment grid, else the finest administrative area
# holding it (a source outside every environment grid still belongs to a town).
_PLACE = """coalesce(s.grid_id, (
    SELECT a.id FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid) JOIN level lv ON lv.key = a.level_key
    WHERE a.layer_key = 'admin' AND a.retired_at IS NULL AND ST_Covers(b.geom, s.geom)
    ORDER BY lv.rank DESC, a.code LIMIT 1))"""
_SELECT = f"""
    SELECT s.id, s.name, s.kind, s.pollutants, s.permit_no, s.key_supervision, s.risk_level, s.address, s.notes,
           ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, g.code AS grid, g.name AS grid_name, s.version, s.created_at,
           (SELECT max(p.at) FROM patrol p WHERE p.sources @> to_jsonb(s.id)) AS last_visit, {_PLACE} AS place_id
    FROM pollution_source s LEFT JOIN area g ON g.id = s.grid_id
"""
EDITORS = ("inspector", "planner")


def _place(session: Session, lon: float, lat: float) -> tuple[int | None, int | None]:
    """(environment grid, place) of a point: the finest environment grid holding it (the
    primary, as in GET /api/locate), and as its place that grid, else the finest
    administrative area holding it; (None, None) outside the jurisdiction."""
    found = [r for r in areas.locate(session, lon, lat, at=None, day=dt.datetime.now(dt.UTC).date(), internal=True)
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
    access.require_scope(session, EDITORS, [place_id], strict=False, action=action)
    return grid_id


def _row(session: Session, source_id: int, *, for_update: bool = False) -> dict | None:
    row = session.execute(text(_SELECT + " WHERE s.id = :id" + (" FOR UPDATE OF s" if for_update else "")),
                          {"id": source_id}).mappings().first()
    return None if row is None else dict(row)


def _shown(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "place_id"}


def _reached(session: Session, source_id: int, roles, *, for_update: bool = False) -> dict:
    """The source, once the caller's scope over its place is checked (unknown and out of
    scope answer alike)."""
    row = _row(session, source_id, for_update=for_update)
    access.require_object(session, f"pollution source {source_id}", roles,
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
    if not partial or "lon" in data or "lat" in data:
        lon, lat = data.get("lon"), data.get("lat")
        x0, y0, x1, y1 = settings.extent
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lon, lat)) \
                or not (x0 <= lon <= x1 and y0 <= lat <= y1):
            problems.append(Problem(f"lon/lat must be WGS84 degrees inside {settings.extent}", field="location"))
    return problems


def create_source(session: Session, data: dict, settings: Settings) -> dict:
    access.require_role(session, *EDITORS)
    problems = _check(data, settings)
    if problems:
        raise GeogridError("pollution source rejected; nothing was stored", problems=problems)
    grid_id = _require_place(session, data["lon"], data["lat"], "add a pollution source in")
    values = {k: data.get(k) for k in FIELDS}
    values["pollutants"] = json.dumps(values["pollutants"] or [], ensure_ascii=False)
    values["key_supervision"] = bool(values["key_supervision"])
    values["risk_level"] = values["risk_level"] or "low"
    source_id = session.execute(text("""
        INSERT INTO pollution_source (name, kind, pollutants, permit_no, key_supervision, risk_level, address, notes,
                                      geom, grid_id)
        VALUES (:name, :kind, CAST(:pollutants AS jsonb), :permit_no, :key_supervision, :risk_level, :address, :notes,
                ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :grid) RETURNING id
    """), {**values, "lon": data["lon"], "lat": data["lat"], "grid": grid_id}).scalar_one()
    out = get_source(session, source_id)
    access.record(session, "create", "pollution_source", source_id, after=out)
    return out


def get_source(session: Session, source_id: int) -> dict:
    return _shown(_reached(session, source_id, access.STAFF))


def list_sources(session: Session, *, area: str | None = None, key_only: bool = False, kind: str | None = None,
                 limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    """Sources in the caller's scope (their place in it), filtered."""
    access.require_role(session, *access.STAFF)
    scope, params = access.scope_filter(session, access.STAFF, _PLACE)
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
    rows = session.execute(text(f"{_SELECT} WHERE {cond} ORDER BY s.id LIMIT :limit OFFSET :offset"), params)
    return [_shown(dict(r)) for r in rows.mappings()], total


def update_source(session: Session, source_id: int, changes: dict, settings: Settings,
                  expected_version: int | None = None) -> dict:
    """Edit a source: the old place and, when it moves, the new place must be in scope."""
    before = _shown(_reached(session, source_id, EDITORS, for_update=True))
    if expected_version is not None and expected_version != before["version"]:
        raise GeogridError(f"pollution source {source_id} is at version {before['version']}, not {expected_version}",
                           status=412, extra={"current_version": before["version"]})
    problems = _check(changes, settings, partial=True)
    if problems:
        raise GeogridError(f"pollution source {source_id} was not changed", problems=problems)
    values = {k: v for k, v in changes.items() if k in FIELDS}
    if "pollutants" in values:
        values["pollutants"] = json.dumps(values["pollutants"] or [], ensure_ascii=False)
    sets = [f"{k} = CAST(:{k} AS jsonb)" if k == "pollutants" else f"{k} = :{k}" for k in values]
    if "lon" in changes or "lat" in changes:
        lon, lat = changes.get("lon", before["lon"]), changes.get("lat", before["lat"])
        sets += ["geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)", "grid_id = :grid"]
        values.update(lon=lon, lat=lat, grid=_require_place(session, lon, lat, "move a pollution source into"))
    if sets:
        session.execute(text(f"UPDATE pollution_source SET {', '.join(sets)}, version = version + 1 WHERE id = :id"),
                        {**values, "id": source_id})
        access.record(session, "update", "pollution_source", source_id, before, get_source(session, source_id))
    return get_source(session, source_id)


def delete_source(session: Session, source_id: int) -> None:
    before = _shown(_reached(session, source_id, EDITORS, for_update=True))
    session.execute(text("DELETE FROM pollution_source WHERE id = :id"), {"id": source_id})
    access.record(session, "delete", "pollution_source", source_id, before, None)


# --------------------------------------------------------------------------- patrols


PATROLLERS = ("grid_worker", "inspector")


def record_patrol(session: Session, data: dict, settings: Settings) -> dict:
    """A patrol check-in on an environment grid: where, when, which sources were visited.
    The grid must be in the caller's scope, and every source named must be one they may
    see that lies in that grid."""
    p = access.require_role(session, *PATROLLERS)
    grid = session.execute(text("SELECT id, code, layer_key FROM area WHERE code = :c AND retired_at IS NULL"),
                           {"c": data.get("grid")}).first()
    if grid is not None:
        access.require_scope(session, PATROLLERS, [grid.id], strict=False, action="patrol")
    problems = []
    if grid is None:
        problems.append(Problem(f"unknown grid {data.get('grid')!r}", field="grid"))
    elif grid.layer_key != ENVIRONMENT:
        problems.append(Problem(f"{grid.code} is not an environment grid", field="grid"))
    at = data.get("at") or dt.datetime.now(dt.UTC)
    if isinstance(at, dt.datetime) and at.tzinfo is not None and at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
        problems.append(Problem("at is in the future", field="at"))
    sources = [int(s) for s in data.get("sources") or []]
    if sources and grid is not None:
        scope, params = access.scope_filter(session, PATROLLERS, _PLACE)
        # In the grid: filed under it (or a grid below it), or lying on its current boundary.
        known = set(session.execute(text(f"""
            SELECT s.id FROM pollution_source s
            WHERE s.id = ANY(:s) AND {scope}
              AND (EXISTS (WITH RECURSIVE up(id, depth) AS (
                           SELECT s.grid_id, 0 UNION ALL
                           SELECT a.parent_id, up.depth + 1 FROM area a JOIN up ON a.id = up.id
                           WHERE a.parent_id IS NOT NULL AND up.depth < 64)
                       SELECT 1 FROM up WHERE up.id = :grid)
                   OR EXISTS (SELECT 1 FROM boundary b WHERE b.area_id = :grid AND upper_inf(b.valid)
                              AND ST_Covers(b.geom, s.geom)))
        """), {**params, "s": sources, "grid": grid.id}).scalars())
        missing = sorted(set(sources) - known)
        if missing:
            # Unknown and out-of-scope sources answer alike: the ids are all the caller learns.
            problems.append(Problem(f"pollution sources {missing} are unknown, outside your scope or not in "
                                    f"grid {grid.code}", field="sources"))
    if problems:
        raise GeogridError("patrol rejected; nothing was stored", problems=problems)
    lon, lat = data.get("lon"), data.get("lat")
    patrol_id = session.execute(text("""
        INSERT INTO patrol (area_id, actor, at, geom, sources, notes)
        VALUES (:a, :actor, :at, CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL
                                      ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END,
                CAST(:sources AS jsonb), :notes) RETURNING id
    """), {"a": grid.id, "actor": access.actor(session) if p else "cli", "at": at, "lon": lon, "lat": lat,
           "sources": json.dumps(sources), "notes": data.get("notes")}).scalar_one()
    access.record(session, "create", "patrol", patrol_id, after={"grid": grid.code, "at": at, "sources": sources})
    return {"id": patrol_id, "grid": grid.code, "at": at, "sources": sources}


def patrols_behind(session: Session, settings: Settings, *, area: str | None = None,
                   now: dt.datetime | None = None) -> dict:
    """Environment grids whose last patrol is older than their level's frequency, and key
    pollution sources not visited within ``key_source_days``, in the caller's scope."""
    access.require_role(session, *access.STAFF)
    now = now or dt.datetime.now(dt.UTC)
    in_scope, scope_params = access.scope_filter(session, access.STAFF, "a.id")
    grids = session.execute(text(f"""
        SELECT a.code, a.name, a.level_key AS level, max(p.at) AS last_patrol
        FROM area a LEFT JOIN patrol p ON p.area_id = a.id
        WHERE a.layer_key = :env AND a.retired_at IS NULL AND (CAST(:prefix AS text) IS NULL OR a.code LIKE :prefix)
          AND {in_scope}
        GROUP BY a.id ORDER BY a.code
    """), {**scope_params, "env": ENVIRONMENT, "prefix": area + "%" if area else None}).mappings().all()
    behind = []
    for g in grids:
        days = settings.patrol_days_by_level.get(g["level"], 7)
        due = (g["last_patrol"] + dt.timedelta(days=days)) if g["last_patrol"] else None
        if due is None or due < now:
            behind.append({**g, "every_days": days, "due": due,
                           "days_overdue": None if due is None else (now - due).days})
    source_scope, scope_params = access.scope_filter(session, access.STAFF, _PLACE)
    sources = session.execute(text(f"""
        SELECT * FROM ({_SELECT} WHERE s.key_supervision AND (CAST(:prefix AS text) IS NULL OR g.code LIKE :prefix)
                       AND {source_scope}) q
        WHERE last_visit IS NULL OR last_visit < :cutoff ORDER BY last_visit NULLS FIRST, id
    """), {**scope_params, "prefix": area + "%" if area else None,
           "cutoff": now - dt.timedelta(days=settings.key_source_days)}).mappings().all()
    return {"grids": behind, "key_sources": [_shown(dict(s)) for s in sources], "checked_at": now}
