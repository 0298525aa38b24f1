"""Patrols of environment grids: who walked which grid when and which sources they
visited, and which grids and key sources are behind their patrol frequency.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.settings import Settings
from geogrid.environment.sources import ENVIRONMENT, PLACE, SELECT, shown

# --------------------------------------------------------------------------- patrols


PATROLLERS = ("grid_worker", "inspector")


def record_patrol(session: Session, data: dict, settings: Settings) -> dict:
    """A patrol check-in on an environment grid: where, when, which sources were visited.
    The grid must be in the caller's scope, and every source named must be one they may
    see that lies in that grid."""
    p = scopes.require_role(session, *PATROLLERS)
    grid = session.execute(text("SELECT id, code, layer_key FROM area WHERE code = :c AND retired_at IS NULL"),
                           {"c": data.get("grid")}).first()
    if grid is not None:
        scopes.require_scope(session, PATROLLERS, [grid.id], strict=False, action="patrol")
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
        scope, params = scopes.scope_filter(session, PATROLLERS, PLACE)
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
    """), {"a": grid.id, "actor": scopes.actor(session) if p else "cli", "at": at, "lon": lon, "lat": lat,
           "sources": json.dumps(sources), "notes": data.get("notes")}).scalar_one()
    audit.record(session, "create", "patrol", patrol_id, after={"grid": grid.code, "at": at, "sources": sources})
    return {"id": patrol_id, "grid": grid.code, "at": at, "sources": sources}


def patrols_behind(session: Session, settings: Settings, *, area: str | None = None,
                   now: dt.datetime | None = None) -> dict:
    """Environment grids whose last patrol is older than their level's frequency, and key
    pollution sources not visited within ``key_source_days``, in the caller's scope."""
    scopes.require_role(session, *scopes.STAFF)
    now = now or dt.datetime.now(dt.UTC)
    in_scope, scope_params = scopes.scope_filter(session, scopes.STAFF, "a.id")
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
    source_scope, scope_params = scopes.scope_filter(session, scopes.STAFF, PLACE)
    sources = session.execute(text(f"""
        SELECT * FROM ({SELECT} WHERE s.key_supervision AND (CAST(:prefix AS text) IS NULL OR g.code LIKE :prefix)
                       AND {source_scope}) q
        WHERE last_visit IS NULL OR last_visit < :cutoff ORDER BY last_visit NULLS FIRST, id
    """), {**scope_params, "prefix": area + "%" if area else None,
           "cutoff": now - dt.timedelta(days=settings.key_source_days)}).mappings().all()
    return {"grids": behind, "key_sources": [shown(dict(s)) for s in sources], "checked_at": now}
