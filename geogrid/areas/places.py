"""Place search for "find my grid" (MapIt style, public): a resident types a village or
community name (新街 → 新街社区), a grid's name, the first digits of a code, or an address,
and gets the grids and villages to zoom to.

What an answer may reveal is what the public map shows: the published areas' codes,
names, parents and extents (the view ``public_area``: the current published generation). Addresses come from the household register (``building`` and the
households with a point of their own) and only at door-plate level: village, street,
number and a building's name. Never a unit or room, a household's head, phone, kind or
point: an address answers with the grid that holds it and that grid's extent.

Substring matches use pg_trgm's GIN indexes (migration 0012). A query too short to hold a
trigram (one or two characters) reads the names of the town or county (a few thousand
rows) and no address: it would match most of a county's addresses. A broad address query
ranks its first ``SCAN`` matches within the area only, so that it costs about as much as a
narrow one (figures in the module's report: tens of milliseconds on 250,000 addresses).
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.areas.lookup import AreaFilter, check_filter
from geogrid.core.errors import GeogridError, Problem, not_found
from geogrid.db.schema import ADMIN_LAYER

MAX_QUERY = 50  # characters: an address is shorter; more is a paste gone wrong
MAX_LIMIT = 20
SCAN = 2000  # addresses a query ranks at most (see _addresses)
# Addresses from the third character on: a trigram index serves those; one or two characters
# ("12", "新街") would match most of a county's addresses (and villages and grids answer them).
MIN_ADDRESS = 3
KINDS = ("village", "grid", "address")  # the order of equally good matches
# The indexed expressions (migration 0012 writes the same text: an expression index serves
# only queries that repeat the expression).
BUILDING_ADDRESS = ("(coalesce(village, '') || coalesce(street, '') || coalesce(number, '') || ' ' "
                    "|| coalesce(name, ''))")
HOUSEHOLD_ADDRESS = "(coalesce(village, '') || coalesce(street, '') || coalesce(number, ''))"
_SPACE = re.compile(r"\s+")


def _like(value: str) -> str:
    """``value`` as a literal inside a LIKE pattern (backslash is LIKE's escape)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _bbox(row) -> list[float]:
    return [round(float(row.x0), 7), round(float(row.y0), 7), round(float(row.x1), 7), round(float(row.y1), 7)]


def check_query(q: str | None, limit: int) -> str:
    """The query stripped, or a 422 naming what is wrong with it (empty, too long, a bad limit)."""
    q = (q or "").strip()
    if not q:
        raise GeogridError("q is empty: type a village or grid name, a code or an address",
                           problems=[Problem("empty", field="query.q")])
    if len(q) > MAX_QUERY:
        raise GeogridError(f"q is {len(q)} characters long; at most {MAX_QUERY}",
                           problems=[Problem(f"longer than {MAX_QUERY} characters", field="query.q")])
    if not 1 <= limit <= MAX_LIMIT:
        raise GeogridError(f"limit {limit} is outside 1..{MAX_LIMIT}",
                           problems=[Problem(f"outside 1..{MAX_LIMIT}", field="query.limit")])
    return q


def check_area(session: Session, area: str, layer: str) -> None:
    """``area`` must be a current administrative area (a town, a county) and ``layer`` a net
    of grids: a 422 or 404 naming the parameter otherwise."""
    if not area or not area.isdigit():
        raise GeogridError(f"area {area!r} is not a code (digits only)",
                           problems=[Problem("not a code", field="query.area")])
    check_filter(session, AreaFilter(layer=layer))
    if layer == ADMIN_LAYER:
        raise GeogridError(f"layer {layer!r} holds administrative areas, not grids: give a net of grids",
                           problems=[Problem("not a net of grids", field="query.layer")])
    row = session.execute(text("SELECT layer_key FROM public_area WHERE code = :area"), {"area": area}).first()
    if row is None:
        raise not_found(f"area {area}")
    if row.layer_key != ADMIN_LAYER:
        raise GeogridError(f"area {area} is a grid: give the code of a town or county",
                           problems=[Problem("a grid, not a town or county", field="query.area")])


def search(session: Session, q: str, *, area: str, layer: str = "comprehensive", limit: int = 10) -> list[dict]:
    """Grids, villages (administrative areas below ``area``) and addresses matching ``q``,
    within ``area``, current only, best first: an exact match, then a prefix, then a
    substring; villages before grids before addresses; shorter names first.

    Each result: ``kind`` (grid, village or address), ``label`` (the text to show),
    ``code`` and ``name`` of the grid or village (for an address: the grid holding it, and
    the address), ``grid_code``/``grid_name`` (grids and addresses) and ``bbox`` [minx,
    miny, maxx, maxy] of the grid or village. Public: nothing here is private (see the
    module's docstring), so no scope is checked; anyone may ask.
    """
    q = check_query(q, limit)
    check_area(session, area, layer)
    digits = q.isascii() and q.isdigit()
    found = _areas(session, q, area, layer, limit, digits) + _addresses(session, q, area, layer, limit)
    found.sort(key=lambda r: (r["_rank"], KINDS.index(r["kind"]), len(r["label"]), r["code"]))
    return [{k: v for k, v in r.items() if k != "_rank"} for r in found[:limit]]


def _areas(session: Session, q: str, area: str, layer: str, limit: int, digits: bool) -> list[dict]:
    rows = session.execute(text(f"""
        SELECT a.code, a.name, a.layer_key = '{ADMIN_LAYER}' AS admin, p.name AS parent_name,
               CASE WHEN a.code = :q OR lower(a.name) = lower(:q) THEN 0
                    WHEN a.code LIKE :prefix OR a.name ILIKE :prefix THEN 1 ELSE 2 END AS rank,
               ST_XMin(a.geom) AS x0, ST_YMin(a.geom) AS y0, ST_XMax(a.geom) AS x1, ST_YMax(a.geom) AS y1
        FROM public_area a
        LEFT JOIN public_area p ON p.code = a.parent_code
        WHERE a.code LIKE :within AND a.code <> :area
          AND a.layer_key IN (:layer, '{ADMIN_LAYER}')
          AND (a.name ILIKE :contains {"OR a.code LIKE :prefix" if digits else ""})
        ORDER BY rank, a.layer_key <> '{ADMIN_LAYER}', length(a.name), a.code
        LIMIT :limit
    """), {"q": q, "prefix": _like(q) + "%", "contains": "%" + _like(q) + "%", "within": _like(area) + "%",
           "area": area, "layer": layer, "limit": limit}).all()
    out = []
    for r in rows:
        label = f"{r.name} · {r.parent_name}" if r.parent_name else r.name
        out.append({"kind": "village" if r.admin else "grid", "label": f"{r.code} {label}" if digits else label,
                    "code": r.code, "name": r.name, "grid_code": None if r.admin else r.code,
                    "grid_name": None if r.admin else r.name, "bbox": _bbox(r), "_rank": r.rank})
    return out


def _addresses(session: Session, q: str, area: str, layer: str, limit: int) -> list[dict]:
    # Addresses are written without spaces ("杨家村31组1236号"); so is the query.
    q = _SPACE.sub("", q)
    if len(q) < MIN_ADDRESS:
        return []
    # The planner's cost estimates for substring matches are high enough to start the JIT
    # compiler, which takes longer (about a second) than the query itself.
    session.execute(text("SET LOCAL jit = off"))
    contains, prefix = "%" + _like(q) + "%", _like(q) + "%"
    rows = session.execute(text(f"""
        WITH scope AS MATERIALIZED (  -- once, not joined with every address by the planner
            SELECT geom FROM public_area WHERE code = :area
        ), matched AS (
            -- A broad query ("村") matches most of a county: ranking reads the first :scan
            -- matches only, so that it costs no more than a narrow one.
            SELECT v.* FROM (
                SELECT village, street, number, name, geom FROM building WHERE {BUILDING_ADDRESS} ILIKE :contains
                UNION ALL
                SELECT village, street, number, NULL, geom FROM household
                WHERE building_id IS NULL AND retired_at IS NULL AND {HOUSEHOLD_ADDRESS} ILIKE :contains
            ) v, scope
            WHERE ST_Covers(scope.geom, v.geom)
            LIMIT :scan
        ), found AS (
            SELECT m.*, CASE WHEN coalesce(street, '') || coalesce(number, '') = :q OR name = :q THEN 0
                             WHEN coalesce(village, '') || coalesce(street, '') || coalesce(number, '') ILIKE :prefix
                                  OR coalesce(street, '') ILIKE :prefix OR name ILIKE :prefix THEN 1 ELSE 2 END AS rank
            FROM matched m
            ORDER BY rank, length(coalesce(street, '') || coalesce(number, '')), street, number
            LIMIT :candidates
        )
        SELECT f.village, f.street, f.number, f.name, f.rank, g.code, g.name AS grid_name,
               ST_XMin(g.geom) AS x0, ST_YMin(g.geom) AS y0, ST_XMax(g.geom) AS x1, ST_YMax(g.geom) AS y1
        FROM found f
        JOIN LATERAL (
            -- The grid holding the point, as /api/locate's primary: the finest level, the
            -- one whose interior holds it, else the lowest code.
            SELECT a.code, a.name, a.geom
            FROM public_area a JOIN level lv ON lv.key = a.level_key
            WHERE a.layer_key = :layer AND a.code LIKE :within AND ST_Covers(a.geom, f.geom)
            ORDER BY lv.rank DESC, NOT ST_Contains(a.geom, f.geom), a.code
            LIMIT 1
        ) g ON true
        ORDER BY f.rank
    """), {"q": q, "prefix": prefix, "contains": contains, "area": area, "layer": layer,
           "within": _like(area) + "%", "candidates": limit * 4, "scan": SCAN}).all()
    out, seen = [], set()
    for r in rows:
        address = door_plate(r.village, r.street, r.number, r.name)
        if (address, r.code) in seen:
            continue
        seen.add((address, r.code))
        out.append({"kind": "address", "label": f"{address} · {r.grid_name}", "code": r.code, "name": address,
                    "grid_code": r.code, "grid_name": r.grid_name, "bbox": _bbox(r), "_rank": r.rank})
    return out


def door_plate(village: str | None, street: str | None, number: str | None, name: str | None) -> str:
    """An address as a resident writes it: street and number, the village first unless the
    street already names it, a building's name after unless it repeats the number.

    >>> door_plate("杨家村", "杨家村31组", "1236号", "杨家村1236号")
    '杨家村31组1236号'
    >>> door_plate("新街社区", "建设路", "12号", "阳光小区3幢")
    '新街社区建设路12号 阳光小区3幢'
    """
    address = (street or "") + (number or "")
    if village and village not in address:
        address = village + address
    if name and name not in address and not (number and number in name):
        address = f"{address} {name}".strip()
    return address
