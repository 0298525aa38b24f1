"""Generations of what the public sees (MapIt's generations, 公示发布).

A planner publishes a layer within an area's subtree (or one grid): the current areas
there, with their public attributes and boundaries, are copied into ``published_area``
as the new generation; areas changed since the last publication replace their old copy,
areas retired since are withdrawn, unchanged ones keep their row. The public sees the
published copy until the next publication, whatever planners edit meanwhile, and
``valid @> t`` says what the public saw at ``t``.

Each publication also simplifies the published boundaries for vector tiles, as one
coverage per layer and level (``shapely.coverage_simplify``: every shared edge is
simplified once, so neighbours never open gaps at any zoom), and deletes the cached
tiles that touch what changed.

>>> publish(session, "339901100", layer="comprehensive", note="2026年11月网格调整")  # doctest: +SKIP
{'id': 3, 'layer': 'comprehensive', 'area': '339901100', 'added': 0, 'changed': 2, 'withdrawn': 1, ...}
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.areas.reference import layers
from geogrid.areas.versions import get_area_row
from geogrid.core.errors import GeogridError, Problem, not_found
from geogrid.db.schema import ADMIN_LAYER, TILE_BANDS

PUBLISHERS = ("planner",)
GRID_MIN_ZOOM = 8  # grids are a few pixels further out: grid layers start here at the earliest
AREAS_PER_TILE = 500  # a tile holding more is too heavy to cut on demand and to draw
SEED_MAX_ZOOM = 10  # a publication cuts the tiles up to here it changed (few, but the slowest)


def tolerance(zoom: int) -> float:
    """Half a screen pixel (of a 256-pixel tile) at ``zoom``, in degrees: what a boundary
    may lose at that zoom without anyone seeing it."""
    return 360.0 / 2 ** zoom / 256 / 2


def band(zoom: int) -> int | None:
    """The simplified copy a tile at ``zoom`` reads (``geom_zN``), None for the boundary itself."""
    return next((b for b in TILE_BANDS if zoom <= b), None)


def published_from(at: dt.datetime | None = None) -> str:
    """SQL for the published areas as alias ``pa``: the current generation, or the one the
    public saw at ``:at``. Every public read of areas starts here."""
    if at is None:
        return "published_area pa"
    return "(SELECT * FROM published_area WHERE valid @> CAST(:at AS timestamptz)) pa"


# --------------------------------------------------------------------------- publishing

_SUBTREE = """
    WITH RECURSIVE sub(id, depth) AS (
        SELECT CAST(:root AS integer), 0
        UNION ALL SELECT a.id, sub.depth + 1 FROM area a JOIN sub ON a.parent_id = sub.id WHERE sub.depth < 64
    )"""

_CURRENT = """
    cur AS (
        SELECT a.id AS area_id, b.id AS boundary_id, b.version, a.code, a.name, a.level_key, a.layer_key,
               p.code AS parent_code, b.area_m2, b.geom
        FROM sub JOIN area a ON a.id = sub.id
        JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
        LEFT JOIN area p ON p.id = a.parent_id
        WHERE a.layer_key = :layer AND a.retired_at IS NULL
    )"""


def _target(session: Session, area: str, layer: str | None):
    """The root area and the layer of a publication, once the caller may publish there."""
    root = get_area_row(session, area)
    layer = layer or (root.layer_key if root.layer_key != ADMIN_LAYER else None)
    if layer is None:
        raise GeogridError(f"{area} is an administrative area: name the layer to publish",
                           problems=[Problem("required for an administrative area", field="layer")])
    if layer not in layers(session):
        raise GeogridError(f"unknown layer {layer!r}", problems=[Problem(f"unknown layer {layer!r}", field="layer")])
    if root.layer_key not in (ADMIN_LAYER, layer):
        raise GeogridError(f"{area} is a grid of layer {root.layer_key}, not {layer}",
                           problems=[Problem("not in this layer", field="layer")])
    scopes.require_scope(session, PUBLISHERS, [root.id], strict=False, action="publish")
    return root, layer


def _diff(session: Session, root_id: int, layer: str) -> list:
    """Per area of the subtree, current or published: added, changed, withdrawn or unchanged."""
    return session.execute(text(f"""{_SUBTREE}, {_CURRENT},
        old AS (SELECT pa.id, pa.area_id, pa.boundary_id, pa.code, pa.name, pa.level_key, pa.parent_code
                FROM published_area pa WHERE upper_inf(pa.valid) AND pa.layer_key = :layer
                  AND pa.area_id IN (SELECT id FROM sub))
        SELECT CASE WHEN o.id IS NULL THEN 'added' WHEN c.area_id IS NULL THEN 'withdrawn'
                    WHEN (o.boundary_id, o.code, o.name, o.level_key, o.parent_code)
                         IS DISTINCT FROM (c.boundary_id, c.code, c.name, c.level_key, c.parent_code) THEN 'changed'
                    ELSE 'unchanged' END AS kind, o.id AS old_id, coalesce(c.area_id, o.area_id) AS area_id,
               coalesce(c.code, o.code) AS code
        FROM cur c FULL JOIN old o ON o.area_id = c.area_id ORDER BY 4
    """), {"root": root_id, "layer": layer}).all()


def pending(session: Session, area: str, *, layer: str | None = None) -> dict:
    """What :func:`publish` would change now: codes added, changed and withdrawn (planners)."""
    root, layer = _target(session, area, layer)
    diff = _diff(session, root.id, layer)
    return {"area": area, "layer": layer, **{k: [r.code for r in diff if r.kind == k]
                                            for k in ("added", "changed", "withdrawn")},
            "unchanged": sum(r.kind == "unchanged" for r in diff)}


def publish(session: Session, area: str, *, layer: str | None = None, note: str | None = None) -> dict:
    """Publish ``layer``'s current areas within ``area``'s subtree (``area`` itself when it
    is in the layer): a grid's code alone publishes that grid. Planners of the area only;
    publications of a layer run one at a time (a transaction-scoped advisory lock)."""
    root, layer = _target(session, area, layer)
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('geogrid.publish:' || :layer))"), {"layer": layer})
    # The clock after the lock, not the transaction's start (now()): a publication that
    # waited for another one must not start its generation before that one's.
    pub_id, now = session.execute(text(
        "INSERT INTO publication (layer_key, root_id, published_by, note, published_at) "
        "VALUES (:layer, :root, :by, :note, clock_timestamp()) RETURNING id, published_at"), {"layer": layer, "root": root.id, "by": scopes.actor(session), "note": note}).one()
    params = {"root": root.id, "layer": layer, "now": now, "pub": pub_id}
    diff = _diff(session, root.id, layer)
    counts = {k: 0 for k in ("added", "changed", "withdrawn", "unchanged")}
    for r in diff:
        counts[r.kind] += 1
    closed = [r.old_id for r in diff if r.kind in ("changed", "withdrawn")]
    fresh = [r.area_id for r in diff if r.kind in ("added", "changed")]
    if closed:
        session.execute(text("UPDATE published_area SET valid = tstzrange(lower(valid), :now) WHERE id = ANY(:ids)"),
                        {"now": now, "ids": closed})
    if fresh:
        session.execute(text(f"""{_SUBTREE}, {_CURRENT}
            INSERT INTO published_area (publication_id, area_id, boundary_id, version, code, name, level_key,
                                        layer_key, parent_code, area_m2, geom, valid)
            SELECT :pub, area_id, boundary_id, version, code, name, level_key, layer_key, parent_code, area_m2, geom,
                   tstzrange(:now, NULL)
            FROM cur WHERE area_id = ANY(:fresh)"""), {**params, "fresh": fresh})
    session.execute(text("UPDATE publication SET added = :added, changed = :changed, withdrawn = :withdrawn, "
                         "unchanged = :unchanged WHERE id = :pub"), {**counts, "pub": pub_id})
    if closed or fresh:
        touched = session.execute(text(
            "SELECT DISTINCT level_key FROM published_area WHERE id = ANY(:closed) OR publication_id = :pub"),
            {"closed": closed, "pub": pub_id}).scalars().all()
        for level in touched:
            simplify_for_tiles(session, layer, level)
        session.execute(text("""
            DELETE FROM tile_cache t WHERE t.layer_key = :layer AND EXISTS (
                SELECT 1 FROM published_area pa WHERE (pa.id = ANY(:closed) OR pa.publication_id = :pub)
                  AND pa.geom && t.env)"""), {"layer": layer, "closed": closed, "pub": pub_id})
    _summarise(session, layer)
    if closed or fresh:
        _seed(session, layer, closed, pub_id)
    out = get_publication(session, pub_id)
    audit.record(session, "publish", "publication", pub_id, None, out)
    return out


def simplify_for_tiles(session: Session, layer: str, level: str) -> int:
    """Recompute the tile copies (``geom_zN``) of the current published areas of one layer
    and level, simplified together as one coverage; rows whose copies did not change are
    not rewritten. Returns how many rows were rewritten."""
    rows = session.execute(text(
        "SELECT id, ST_AsBinary(geom) AS g, " + ", ".join(f"ST_AsBinary(geom_z{b}) AS z{b}" for b in TILE_BANDS)
        + " FROM published_area WHERE upper_inf(valid) AND layer_key = :layer AND level_key = :level ORDER BY id"),
        {"layer": layer, "level": level}).all()
    if not rows:
        return 0
    geoms = shapely.from_wkb([bytes(r.g) for r in rows])
    if not shapely.coverage_is_valid(geoms):
        # Neighbours whose shared edges do not have the same vertices (a T-junction, a
        # digitising slip) would be simplified apart: node them first (the copies are for
        # display; the published boundaries stay as they are).
        geoms = shapely.coverage_clean(geoms)
    new, dirty = {}, np.zeros(len(rows), dtype=bool)
    for b in TILE_BANDS:
        try:
            simple = shapely.coverage_simplify(geoms, tolerance(b))
        except shapely.errors.GEOSException:  # cleaning failed to make a coverage: each on its own
            simple = shapely.simplify(geoms, tolerance(b), preserve_topology=True)
        simple = np.where(shapely.is_empty(simple) | ~shapely.is_valid(simple), shapely.make_valid(simple), simple)
        stored = shapely.from_wkb([None if getattr(r, f"z{b}") is None else bytes(getattr(r, f"z{b}")) for r in rows])
        dirty |= ~shapely.equals_exact(simple, stored, tolerance=0) | shapely.is_missing(stored)
        new[b] = shapely.to_wkb(simple)
    idx = np.flatnonzero(dirty)
    if len(idx):
        session.execute(text(
            "UPDATE published_area SET " + ", ".join(f"geom_z{b} = ST_GeomFromWKB(:z{b}, 4326)" for b in TILE_BANDS)
            + " WHERE id = :id"),
            [{"id": rows[i].id, **{f"z{b}": new[b][i] for b in TILE_BANDS}} for i in idx])
    return len(idx)


# --------------------------------------------------------------------------- reading

_PUBLICATION = """
    SELECT pu.id, pu.layer_key AS layer, r.code AS area, r.name AS area_name, pu.published_at, pu.published_by,
           pu.note, pu.added, pu.changed, pu.withdrawn, pu.unchanged
    FROM publication pu LEFT JOIN area r ON r.id = pu.root_id"""


def get_publication(session: Session, publication_id: int) -> dict:
    """One publication (who published is shown to staff only, by the API)."""
    row = session.execute(text(_PUBLICATION + " WHERE pu.id = :id"), {"id": publication_id}).mappings().first()
    if row is None:
        raise not_found(f"publication {publication_id}")
    return dict(row)


def list_publications(session: Session, *, layer: str | None = None, area: str | None = None,
                      limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    """Publications, newest first; ``area``: those of that area's subtree or above it."""
    where, params = ["TRUE"], {"limit": limit, "offset": offset}
    if layer:
        where.append("pu.layer_key = :layer")
        params["layer"] = layer
    if area:
        where.append("(r.code LIKE :prefix OR :area LIKE r.code || '%')")
        params.update(area=area, prefix=area.replace("%", "").replace("_", "") + "%")
    cond = " AND ".join(where)
    total = session.execute(text(f"SELECT count(*) FROM publication pu LEFT JOIN area r ON r.id = pu.root_id "
                                 f"WHERE {cond}"), params).scalar_one()
    rows = session.execute(text(f"{_PUBLICATION} WHERE {cond} ORDER BY pu.id DESC LIMIT :limit OFFSET :offset"),
                           params).mappings().all()
    return [dict(r) for r in rows], total


def _seed(session: Session, layer: str, closed: list[int], pub_id: int) -> None:
    """Cut the low-zoom tiles around what changed now, so that no visitor waits for them:
    they hold the most areas each, and a publication just deleted them."""
    from geogrid.publication import tiles  # tiles reads generations: imported here, not at the top

    box = session.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM published_area "
        "WHERE id = ANY(:closed) OR publication_id = :pub) s"), {"closed": closed, "pub": pub_id}).one()
    if box[0] is not None:
        tiles.seed(session, layer, (box[0], box[1], box[2], box[3]), max_zoom=SEED_MAX_ZOOM)


def min_zoom(layer: str, areas: int, extent: tuple[float, float, float, float]) -> int:
    """The first zoom whose tiles hold a layer's areas: administrative areas from 0; a net
    of grids from :data:`GRID_MIN_ZOOM`, or deeper for a big one, from where a tile holds
    :data:`AREAS_PER_TILE` grids or fewer on average (below, a grid is a few pixels: a
    province's 50,000 grids at zoom 8 would be thousands a tile, megabytes a screen).

    >>> min_zoom("comprehensive", 330, (120.27, 30.17, 120.33, 30.23))
    8
    >>> min_zoom("comprehensive", 50_000, (118.5, 27.3, 122.7, 31.0))
    10
    """
    if layer == ADMIN_LAYER:
        return 0
    x0, y0, x1, y1 = extent
    for z in range(GRID_MIN_ZOOM, 15):
        side = 360.0 / 2 ** z  # a tile's width in degrees; its height is about the same here
        tiles = (int((x1 - x0) / side) + 1) * (int((y1 - y0) / side) + 1)
        if areas / tiles <= AREAS_PER_TILE:
            return z
    return 15


def _summarise(session: Session, layer: str) -> None:
    """Refresh ``published_layer``'s row of ``layer`` (gone when nothing is published)."""
    session.execute(text("DELETE FROM published_layer WHERE layer_key = :layer"), {"layer": layer})
    row = session.execute(text("""
        SELECT count(*) AS areas, ST_XMin(ST_Extent(pa.geom)) AS x0, ST_YMin(ST_Extent(pa.geom)) AS y0,
               ST_XMax(ST_Extent(pa.geom)) AS x1, ST_YMax(ST_Extent(pa.geom)) AS y1
        FROM published_area pa WHERE upper_inf(pa.valid) AND pa.layer_key = :layer"""), {"layer": layer}).one()
    if not row.areas:
        return
    session.execute(text("""
        INSERT INTO published_layer (layer_key, areas, x0, y0, x1, y1, min_zoom, published_at, first_published_at)
        VALUES (CAST(:layer AS varchar), :areas, :x0, :y0, :x1, :y1, :z,
                (SELECT max(published_at) FROM publication WHERE layer_key = :layer),
                (SELECT min(published_at) FROM publication WHERE layer_key = :layer))"""),
        {"layer": layer, **row._asdict(), "z": min_zoom(layer, row.areas, (row.x0, row.y0, row.x1, row.y1))})


def published_layers(session: Session) -> list[dict]:
    """The layers with a current published generation, with their extent and size: the
    collections of OGC API and the tile layers (one small table, refreshed by publish)."""
    rows = session.execute(text("""
        SELECT pl.layer_key AS key, ly.name_zh, ly.name_en, pl.areas, pl.x0, pl.y0, pl.x1, pl.y1, pl.min_zoom,
               pl.published_at, pl.first_published_at
        FROM published_layer pl JOIN layer ly ON ly.key = pl.layer_key
        ORDER BY pl.layer_key = 'admin' DESC, pl.layer_key""")).mappings().all()
    return [dict(r) for r in rows]
