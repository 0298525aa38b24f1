"""Coverage runs: check a parent (or a subtree) with :mod:`geogrid.coverage.checks`, store
the run, list, read and compare stored runs, and the problems a map shows.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.areas.versions import get_area_row
from geogrid.core.errors import GeogridError
from geogrid.core.jsonenc import dumps
from geogrid.core.settings import Settings
from geogrid.core.timeutil import local_today
from geogrid.coverage.checks import (
    check_parent,
    options_from,
    parents_in_subtree,
    problems_geojson,
)
from geogrid.db.schema import ADMIN_LAYER
from geogrid.geo.coverage import CoverageOptions


def _may_check(session: Session, code: str) -> None:
    scopes.require_scope(session, scopes.STAFF, [get_area_row(session, code).id], strict=False, action="check")


def run(session: Session, code: str, layer: str, options: CoverageOptions, *, subtree: bool,
        today: dt.date, store: bool = True) -> dict:
    """Check one parent (or every parent in its subtree) on the jurisdiction's ``today``
    (see :func:`geogrid.core.timeutil.local_today`), store the run, return it."""
    _may_check(session, code)
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
        """), {"actor": scopes.actor(session), "code": code, "layer": layer, "subtree": subtree,
               "options": dumps(asdict(options)), "summary": dumps(summary), "problems": dumps(collection),
               "seconds": seconds}).scalar_one()
    return out


_RUN_AREA = "(SELECT a.id FROM area a WHERE a.code = r.area_code)"


def list_runs(session: Session, *, area: str | None, layer: str | None, limit: int, offset: int) -> list[dict]:
    """Stored runs of areas in the caller's scope, newest first."""
    scopes.require_role(session, *scopes.STAFF)
    scope, params = scopes.scope_filter(session, scopes.STAFF, _RUN_AREA)
    rows = session.execute(text(f"""
        SELECT id, at, actor, area_code, layer, subtree, seconds, summary->'counts' AS counts,
               summary->'coverage_pct' AS coverage_pct
        FROM coverage_run r WHERE (CAST(:area AS text) IS NULL OR area_code = :area)
          AND (CAST(:layer AS text) IS NULL OR layer = :layer) AND {scope}
        ORDER BY id DESC LIMIT :limit OFFSET :offset
    """), {**params, "area": area, "layer": layer, "limit": limit, "offset": offset}).mappings()
    return [dict(r) for r in rows]


def reached(session: Session, table: str, what: str, row_id: int, roles, *, for_update: bool = False) -> dict:
    """A stored run or proposal, once the caller's scope over its area is checked (unknown
    and out-of-scope ones answer alike)."""
    row = session.execute(text(f"SELECT r.*, {_RUN_AREA} AS area_id FROM {table} r WHERE r.id = :id"
                               + (" FOR UPDATE OF r" if for_update else "")), {"id": row_id}).mappings().first()
    scopes.require_object(session, f"{what} {row_id}", roles, None if row is None else [row["area_id"]])
    return {k: v for k, v in row.items() if k != "area_id"}


def latest_run(session: Session, area: str, layer: str) -> dict | None:
    """The newest stored run for exactly this area and layer, if any."""
    run_id = session.execute(text("SELECT max(id) FROM coverage_run WHERE area_code = :a AND layer = :l"),
                             {"a": area, "l": layer}).scalar()
    return get_run(session, run_id) if run_id else None


def get_run(session: Session, run_id: int) -> dict:
    """A stored coverage run, once the caller's staff scope over its area is checked (unknown and
    out-of-scope ids answer alike)."""
    return reached(session, "coverage_run", "coverage run", run_id, scopes.STAFF)


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


# Everything a subtree check reads, by the time it last changed: the areas of the layer and
# their administrative parents (created, edited, retired; their assignments and exemptions,
# stamped by the triggers of migration 0006) and every boundary version (written, in
# force, closed). A time after the run and not in the future means the run is out of date.
_CURRENT_RUN = """
    WITH RECURSIVE sub(id) AS (
        SELECT CAST(:root AS integer)
        UNION ALL
        SELECT a.id FROM area a JOIN sub ON a.parent_id = sub.id WHERE a.layer_key IN (:layer, :admin)
    ),
    changed(t) AS (
        SELECT unnest(ARRAY[a.created_at, a.updated_at, a.retired_at, a.related_changed_at])
        FROM area a JOIN sub ON a.id = sub.id
        UNION ALL
        SELECT unnest(ARRAY[b.created_at, lower(b.valid), upper(b.valid)])
        FROM boundary b JOIN sub ON b.area_id = sub.id
    ),
    latest AS (
        SELECT r.id, r.at FROM coverage_run r
        WHERE r.area_code = :code AND r.layer = :layer AND r.subtree AND r.options = CAST(:options AS jsonb)
        ORDER BY r.at DESC, r.id DESC LIMIT 1
    )
    SELECT l.id FROM latest l
    WHERE (l.at AT TIME ZONE :tz)::date = :today
      AND NOT EXISTS (SELECT 1 FROM changed c WHERE c.t > l.at AND c.t <= now())
"""


def current_run_id(session: Session, code: str, layer: str, options: CoverageOptions, settings: Settings) -> int | None:
    """The id of the newest stored subtree run of ``code`` in ``layer`` that is still
    current, else None: made with these options, today (who is on duty and which posts end
    soon depend on the day), and nothing in the subtree changed after it (one query).

    Not seen: a person's posts outside the subtree (the "overloaded person" count) and a
    write whose transaction began before the run's and committed after it."""
    root = get_area_row(session, code)
    return session.execute(text(_CURRENT_RUN), {
        "root": root.id, "code": code, "layer": layer, "admin": ADMIN_LAYER, "options": dumps(asdict(options)),
        "tz": settings.timezone, "today": local_today(settings)}).scalar()


def current(session: Session, code: str, layer: str, settings: Settings) -> dict:
    """The coverage problems of ``code``'s subtree in ``layer`` as they are now: the newest
    stored run while it is current (``fresh`` false), else a new check of the subtree,
    stored (``fresh`` true). The caller's scope is checked first, as for any run."""
    _may_check(session, code)
    options = options_from(settings)
    run_id = current_run_id(session, code, layer, options, settings)
    if run_id is None:
        out = run(session, code, layer, options, subtree=True, today=local_today(settings))
        # The stored time, which the next call answers with and compares changes against.
        at = session.execute(text("SELECT at FROM coverage_run WHERE id = :id"), {"id": out["id"]}).scalar_one()
        return {**out, "at": at.isoformat(), "fresh": True}
    stored = get_run(session, run_id)
    return {"summary": stored["summary"], "problems": stored["problems"], "seconds": stored["seconds"],
            "options": stored["options"], "at": stored["at"].isoformat(), "id": stored["id"], "fresh": False}


def problems_to_show(session: Session, code: str, layer: str, settings: Settings) -> list[dict]:
    """The coverage problems a map shows for ``code``'s children in ``layer``: those of the
    latest stored run, or (nothing stored yet) of a fresh check of the subtree that is not
    stored, since nobody asked for a run. GeoJSON features."""
    stored = latest_run(session, code, layer)
    if stored is not None:
        return stored["problems"]["features"]
    fresh = run(session, code, layer, options_from(settings), subtree=True, store=False, today=local_today(settings))
    return fresh["problems"]["features"]
