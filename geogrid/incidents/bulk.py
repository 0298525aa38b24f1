"""Bulk import of historical incidents, routed by the grids valid when each occurred.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.areas import lookup
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.settings import Settings
from geogrid.incidents import steps
from geogrid.incidents.categories import categories
from geogrid.incidents.intake import idempotency_scope, route, snapshot, validate
from geogrid.incidents.records import incident_values, insert_incidents, new_receipt
from geogrid.incidents.states import CENTRE, STATES, STEP_IN, calendar
from geogrid.people import assignments

# --------------------------------------------------------------------------- bulk import


def import_incidents(session: Session, records: list[dict], settings: Settings, *, progress=None) -> dict:
    """Take in historical incidents, all or nothing. Points are routed in bulk with a
    :class:`geogrid.geo.routing.PointRouter` per category net (the boundaries in force when
    each incident happened); blind spots fall back to :func:`route`. ``progress(n)`` is
    called as records are done. Returns counts; raises 422 listing every rejected row."""
    from geogrid.geo.routing import PointRouter

    scopes.require_role(session, *CENTRE)
    if not records:
        raise GeogridError("no incidents to import")
    now = dt.datetime.now(dt.UTC)
    known = categories(session)  # once, not once a row
    cleaned, problems = [], []
    keys = set()
    for i, data in enumerate(records):
        clean, found = validate(session, data, settings, now, known)
        if clean["point"] is None and not any(p.field == "location" for p in found):
            # Routed in bulk by point: requests tied to a household or an area come one by one.
            found.append(Problem("an imported incident needs lon and lat", field="location"))
        for p in found:
            p.index, p.unit = i, "row"
        problems += found
        clean["state"] = data.get("state") or "closed"
        if clean["state"] not in STATES:
            problems.append(Problem(f"unknown state {clean['state']!r}; states: {', '.join(STATES)}", field="state",
                                    index=i, unit="row"))
        key = clean["idempotency_key"]
        clean["key_scope"] = idempotency_scope(session, clean["channel"]) if key else None
        if key and (clean["key_scope"], key) in keys:
            problems.append(Problem(f"idempotency key {key!r} repeats in the file", field="idempotency_key", index=i,
                                    unit="row"))
        keys.add((clean["key_scope"], key))
        cleaned.append(clean)
    taken = {tuple(r) for r in session.execute(text(
        "SELECT idempotency_scope, idempotency_key FROM incident WHERE idempotency_key = ANY(:k) "
        "AND idempotency_scope = ANY(:s)"),
        {"k": [k for _, k in keys if k], "s": sorted({s for s, k in keys if k})})}
    for i, c in enumerate(cleaned):
        if (c["key_scope"], c["idempotency_key"]) in taken:
            problems.append(Problem(f"idempotency key {c['idempotency_key']!r} was imported before",
                                    field="idempotency_key", index=i, unit="row"))
    if problems:
        raise GeogridError(f"{len({p.index for p in problems})} of {len(records)} rows rejected; nothing was imported",
                           problems=problems)
    tz = ZoneInfo(settings.timezone)
    routes: list[dict | None] = [None] * len(cleaned)
    by_layer: dict[str, list[int]] = {}
    for i, c in enumerate(cleaned):
        by_layer.setdefault(c["category"]["layer_key"], []).append(i)
    for layer, members in by_layer.items():
        for instant, group in _by_generation(session, layer, [cleaned[i]["occurred_at"] for i in members], members):
            rows = _finest_grids(session, layer, instant)
            if not rows:
                continue
            router = PointRouter([r.code for r in rows], shapely.from_wkb([bytes(r.wkb) for r in rows]))
            xy = np.array([cleaned[i]["point"] for i in group])
            hit = router.route(xy[:, 0], xy[:, 1])
            ids = {r.code: r.id for r in rows}
            for i, h in zip(group, hit):
                if h >= 0:
                    code = router.codes[h]
                    routes[i] = {"kind": "grid", "grid_id": ids[code], "authority_id": ids[code], "nearest_grid": None,
                                 "grid": {"code": code}, "authority": {"code": code}}
    done = 0
    by_day: dict[dt.date, list[int]] = {}
    for i, c in enumerate(cleaned):
        day = c["occurred_at"].astimezone(tz).date()
        if routes[i] is None:
            try:
                routes[i] = route(session, *c["point"], c["category"], at=c["occurred_at"], day=day)
            except GeogridError as exc:
                problems.append(Problem(exc.message, field="location", index=i, location=c["point"], unit="row"))
        else:
            by_day.setdefault(day, []).append(i)
        done += 1
        if progress and done % 1000 == 0:
            progress(1000)
    for day, members in by_day.items():  # one query a day for the persons in post, not one a row
        posts = assignments.responsible_persons(session, sorted({routes[i]["grid_id"] for i in members}), day,
                                           public_only=False)
        for i in members:
            routes[i]["responsible"] = snapshot(posts.get(routes[i]["grid_id"], []))
    # Every row must land in the importer's jurisdiction: a history is not written into another town.
    outside = scopes.outside_scope(session, CENTRE, {a for w in routes if w for a in (w["grid_id"], w["authority_id"])})
    foreign = [Problem(f"routed to {where['authority']['code']}, outside your scope", field="location", index=i,
                       location=cleaned[i]["point"], unit="row")
               for i, where in enumerate(routes)
               if where and where["authority_id"] in outside and (where["grid_id"] is None or where["grid_id"] in outside)]
    if foreign:
        raise GeogridError(f"{len(foreign)} of {len(records)} rows lie outside your scope; nothing was imported",
                           status=403, problems=foreign)
    if problems:
        raise GeogridError(f"{len(problems)} of {len(records)} rows rejected; nothing was imported", problems=problems)
    params = []
    work = calendar(settings)
    for c, where in zip(cleaned, routes):
        step = STEP_IN.get(c["state"])
        due = work.add(c["occurred_at"], *c["category"]["time_limits"][step]) if step else None
        params.append(incident_values(c, where, receipt=new_receipt(c["occurred_at"], tz), reported_at=c["occurred_at"],
                                      key_scope=c["key_scope"], state=c["state"], due=due))
    insert_incidents(session, params)
    ids = session.execute(text("""
        INSERT INTO incident_event (incident_id, actor, action, to_state, note)
        SELECT id, :actor, 'import', state, 'historical import' FROM incident WHERE receipt = ANY(:receipts)
        RETURNING incident_id
    """), {"actor": scopes.actor(session), "receipts": [p["receipt"] for p in params]}).scalars().all()
    steps.open_imported(session, list(ids), settings.timezone)
    if progress:
        progress(done % 1000)
    counts: dict[str, int] = {}
    for where in routes:
        counts[where["kind"]] = counts.get(where["kind"], 0) + 1
    return {"imported": len(params), "by_route": counts}


def _by_generation(session: Session, layer: str, instants: list[dt.datetime], members: list[int]):
    """Group records by the boundary generation in force when they happened: the
    instants at which any boundary of the layer changed cut time into generations."""
    cuts = sorted(session.execute(text("""
        SELECT DISTINCT t FROM (SELECT lower(b.valid) AS t FROM boundary b JOIN area a ON a.id = b.area_id
                                WHERE a.layer_key = :layer
                                UNION SELECT upper(b.valid) FROM boundary b JOIN area a ON a.id = b.area_id
                                WHERE a.layer_key = :layer AND NOT upper_inf(b.valid)) q WHERE t IS NOT NULL
    """), {"layer": layer}).scalars().all())
    groups: dict[int, list[int]] = {}
    sample: dict[int, dt.datetime] = {}
    for i, when in zip(members, instants):
        generation = int(np.searchsorted(np.array(cuts, dtype=object), when, side="right")) if cuts else 0
        groups.setdefault(generation, []).append(i)
        sample.setdefault(generation, when)
    for generation, group in groups.items():
        yield (sample[generation] if generation < len(cuts) else None), group


def _finest_grids(session: Session, layer: str, at: dt.datetime | None) -> list:
    """The grids of the finest level present in ``layer`` at ``at`` (None: now)."""
    return session.execute(text(f"""
        WITH g AS (
            SELECT a.id, a.code, lv.rank, ST_AsBinary(b.geom) AS wkb
            FROM area a JOIN boundary b ON b.area_id = a.id JOIN level lv ON lv.key = a.level_key
            WHERE a.layer_key = :layer AND {lookup.valid_clause(at)}
              AND NOT EXISTS (SELECT 1 FROM area c WHERE c.parent_id = a.id AND c.layer_key = :layer
                              AND c.retired_at IS NULL)
        )
        SELECT id, code, wkb FROM g
    """), {"layer": layer, "at": at}).all()
