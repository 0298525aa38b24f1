"""Vector tiles (Mapbox Vector Tile 2.1) of the published layers, cut by PostGIS.

A tile of a layer holds the current generation's areas of that layer (``published_area``,
``upper_inf(valid)``) with their public attributes only (code, name, level, parent); the
feature id is the code when it is a number. At zooms up to 14 the boundaries come from
the coverage-simplified copy of the zoom's band (``geom_z8`` ... ``geom_z14``, see
:func:`geogrid.publication.generations.simplify_for_tiles`): each band is one coverage, so
neighbours share their simplified edges and no gap opens at any zoom. Deeper zooms read
the boundaries themselves.

Tiles are cached in ``tile_cache`` (shared by every process; empty tiles too, as zero
bytes). A publication deletes the cached tiles whose envelope touches what it changed,
and a tile is written to the cache only while no publication of its layer runs (a shared
advisory lock against :func:`~geogrid.publication.generations.publish`'s exclusive one),
so a tile cut from the generation a publication is replacing is never cached after it.

>>> tile_bounds(0, 0, 0)  # doctest: +ELLIPSIS
(-180.0, -85.05112877980..., 180.0, 85.05112877980...)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from geogrid.core.errors import GeogridError, Problem
from geogrid.publication import generations

MAX_ZOOM = 22
EXTENT = 4096  # tile coordinates per side
BUFFER = 64  # tile coordinates drawn beyond each side, so strokes do not stop at the edge
MARGIN = BUFFER / EXTENT  # the buffer as a share of the tile (ST_TileEnvelope's margin)
_ENVELOPE = f"ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => {MARGIN}), 4326)"  # with the margin, in WGS84
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
TILE_MATRIX_SET = "WebMercatorQuad"
TILE_MATRIX_SET_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
WEB_MERCATOR = "http://www.opengis.net/def/crs/EPSG/0/3857"
# OGC API - Tiles conformance classes these tiles meet (for the OGC landing's /conformance).
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
]
VECTOR_TILES_REL = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"

# The public fields of a feature, with their descriptions (TileJSON, OGC layers).
FIELDS = {
    "code": ("区划或网格编码", "Code of the area or grid"),
    "name": ("名称", "Name"),
    "level": ("层级（county、town、village、grid ……）", "Level (county, town, village, grid, ...)"),
    "parent": ("上级区划或网格的编码", "Code of the parent area"),
}




def min_zoom(session: Session, layer: str) -> int:
    """The layer's first zoom with features (``published_layer.min_zoom``, set by each
    publication: :func:`geogrid.publication.generations.min_zoom`); lower tiles are empty."""
    z = session.execute(text("SELECT min_zoom FROM published_layer WHERE layer_key = :layer"),
                        {"layer": layer}).scalar_one_or_none()
    return generations.GRID_MIN_ZOOM if z is None else int(z)


def check_tile(z: int, x: int, y: int, names: tuple[str, str, str] = ("z", "x", "y")) -> None:
    """Refuse (400) a tile outside the WebMercatorQuad pyramid, naming the coordinate as
    the request did (``names``: OGC API says tileMatrix, tileCol, tileRow)."""
    if not 0 <= z <= MAX_ZOOM:
        raise GeogridError(f"{names[0]} {z} is outside 0..{MAX_ZOOM}", status=400,
                           problems=[Problem(f"outside 0..{MAX_ZOOM}", field=names[0])])
    last = 2 ** z - 1
    for name, value in ((names[1], x), (names[2], y)):
        if not 0 <= value <= last:
            raise GeogridError(f"tile {name}={value} is outside 0..{last} at zoom {z}", status=400,
                               problems=[Problem(f"outside 0..{last} at zoom {z}", field=name)])


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile's lon/lat bounds (west, south, east, north)."""
    n = 2 ** z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def tile_at(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The (x, y) of the tile holding a lon/lat point at zoom ``z``."""
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def etag_of(data: bytes) -> str:
    """The tile's entity tag: a hash of its bytes (the same as the cache's ``md5(mvt)``)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _geometry_column(z: int) -> str:
    b = generations.band(z)
    return "pa.geom" if b is None else f"coalesce(pa.geom_z{int(b)}, pa.geom)"


def _render_sql(z: int) -> str:
    """The tile as one bytea (``mvt``; empty: zero bytes) for :z, :x, :y, :layer."""
    return f"""
        SELECT coalesce((
            SELECT ST_AsMVT(f.*, CAST(:layer AS text), {EXTENT}, 'geom', 'fid')
            FROM (
                SELECT ST_AsMVTGeom(ST_Transform({_geometry_column(z)}, 3857), ST_TileEnvelope(:z, :x, :y),
                                    {EXTENT}, {BUFFER}, true) AS geom,
                       pa.code, pa.name, pa.level_key AS level, pa.parent_code AS parent,
                       CASE WHEN pa.code ~ '^[0-9]{{1,18}}$' THEN CAST(pa.code AS bigint) END AS fid
                FROM published_area pa
                WHERE upper_inf(pa.valid) AND pa.layer_key = :layer
                  AND pa.geom && {_ENVELOPE}
                ORDER BY pa.code
            ) f
            WHERE f.geom IS NOT NULL), ''::bytea) AS mvt"""


def render_tile(session: Session, layer: str, z: int, x: int, y: int) -> bytes:
    """Cut the tile from the current generation, without the cache (zero bytes: empty).
    The layer and the coordinates are not checked: see :func:`get_tile`."""
    return bytes(session.execute(text(_render_sql(z)), {"layer": layer, "z": z, "x": x, "y": y}).scalar_one())


@dataclass(frozen=True)
class Tile:
    """A tile's bytes (empty: ``b""``), entity tag, and whether the cache had it."""

    data: bytes
    etag: str
    cached: bool


def not_published(session: Session, layer: str, what: str = "layer") -> GeogridError:
    """The 404 for a layer with no published areas, naming those that have tiles."""
    keys = session.execute(text(
        "SELECT layer_key FROM published_layer ORDER BY 1")).scalars().all()
    return GeogridError(f"{what} {layer[:64]!r} has no tiles: it is not a published layer (tiles are served for "
                        f"{', '.join(keys) or 'none'})", status=404)


# The shared side of the lock a publication of the layer takes (generations.publish): a tile
# is cached only while no publication of its layer runs.
_PUBLISH_LOCK_SHARED = "pg_try_advisory_xact_lock_shared(hashtext('geogrid.publish:' || :layer))"


def get_tile(session: Session, layer: str, z: int, x: int, y: int, *, cache_on: Engine | None = None) -> Tile:
    """The tile from the cache, else cut and cached (the caller commits, which also ends
    the shared lock taken against publications). 400 for coordinates outside the
    pyramid, 404 for a layer that is not published; below the layer's min zoom: empty.

    ``cache_on``: the primary, when ``session`` reads a hot standby (read-only): a missing
    tile is cut there and cached through the primary (:func:`_cache_on_primary`)."""
    check_tile(z, x, y)
    # One round trip for a cached tile: is the layer published, the cached row, and (on the
    # primary, when there is none) the lock under which a fresh tile may be cached. On a
    # standby, the generation's marker (published_at: each publication of the layer sets a
    # later one) is read before the tile is cut, so the cut is of that generation or a newer
    # one; newer, the primary's check in _cache_on_primary fails and nothing is cached.
    locked = ("NULL" if cache_on is not None
              else f"CASE WHEN c.mvt IS NULL AND :z >= pl.min_zoom THEN {_PUBLISH_LOCK_SHARED} END")
    row = session.execute(text(f"""
        SELECT pl.min_zoom, pl.published_at, c.mvt, c.etag, {locked} AS locked
        FROM published_layer pl
        LEFT JOIN tile_cache c ON c.layer_key = :layer AND c.z = :z AND c.x = :x AND c.y = :y
        WHERE pl.layer_key = :layer"""), {"layer": layer, "z": z, "x": x, "y": y}).first()
    if row is None:
        raise not_published(session, layer)
    if z < row.min_zoom:
        return Tile(b"", etag_of(b""), False)
    if row.mvt is not None:
        return Tile(bytes(row.mvt), row.etag, True)
    if cache_on is not None:
        data = render_tile(session, layer, z, x, y)  # the costly part stays on the standby
        _cache_on_primary(cache_on, layer, z, x, y, data, row.published_at)
        return Tile(data, etag_of(data), False)
    if not row.locked:  # a publication of this layer is running: serve, do not cache
        data = render_tile(session, layer, z, x, y)
        return Tile(data, etag_of(data), False)
    # A cached tile lost in a crash is cut again: not worth waiting for the WAL flush (about
    # 10 ms a tile here). Only this transaction is asynchronous; the caller commits the tile alone.
    session.execute(text("SET LOCAL synchronous_commit = off"))
    data = _cut_and_cache(session, layer, z, x, y)
    return Tile(data, etag_of(data), False)


def _cache_on_primary(primary: Engine, layer: str, z: int, x: int, y: int, data: bytes, published_at) -> bool:
    """Cache a tile cut on a standby, on the primary, only if the primary still publishes
    the generation the standby cut it from (no publication of the layer has committed since
    the standby's snapshot: same ``published_at``) and none is running (the shared lock, as
    :func:`get_tile` takes it); else the tile is served and not cached. A primary that cannot
    be reached (failover) costs the cache entry, not the answer. True when cached."""
    try:
        with primary.begin() as conn:
            # A cached tile lost in a crash is cut again: no waiting for the WAL flush.
            locked = conn.execute(text(f"SELECT set_config('synchronous_commit', 'off', true), {_PUBLISH_LOCK_SHARED}"),
                                  {"layer": layer}).one()[1]
            if not locked:
                return False
            # A later statement than the lock: it sees what the last publication committed.
            return conn.execute(text(f"""
                INSERT INTO tile_cache (layer_key, z, x, y, env, mvt, etag)
                SELECT l.layer_key, :z, :x, :y, {_ENVELOPE}, CAST(:mvt AS bytea), md5(CAST(:mvt AS bytea))
                FROM published_layer l WHERE l.layer_key = CAST(:layer AS text) AND l.published_at = :seen
                ON CONFLICT (layer_key, z, x, y) DO NOTHING"""),
                {"layer": layer, "z": z, "x": x, "y": y, "mvt": data, "seen": published_at}).rowcount == 1
    except OperationalError:
        return False


def _cut_and_cache(session: Session, layer: str, z: int, x: int, y: int) -> bytes:
    # Cut and cached in one statement (a later statement than the lock: it reads what the
    # last publication committed). Another process may have cached it meanwhile: same bytes.
    return bytes(session.execute(text(f"""
        WITH t AS ({_render_sql(z)}),
        ins AS (
            INSERT INTO tile_cache (layer_key, z, x, y, env, mvt, etag)
            SELECT :layer, :z, :x, :y, {_ENVELOPE}, t.mvt, md5(t.mvt)
            FROM t
            ON CONFLICT (layer_key, z, x, y) DO NOTHING)
        SELECT mvt FROM t"""), {"layer": layer, "z": z, "x": x, "y": y}).scalar_one())


def seed(session: Session, layer: str, bbox: tuple[float, float, float, float], *, max_zoom: int) -> int:
    """Cut and cache the tiles of ``layer`` over ``bbox`` from its min zoom to ``max_zoom``
    that the cache lacks (a publication calls it, holding the layer's lock). Returns how
    many were cut."""
    cut = 0
    for z in range(min_zoom(session, layer), max_zoom + 1):
        (xa, ya), (xb, yb) = tile_at(bbox[0], bbox[3], z), tile_at(bbox[2], bbox[1], z)
        cached = set(session.execute(text(
            "SELECT x, y FROM tile_cache WHERE layer_key = :layer AND z = :z AND x BETWEEN :xa AND :xb "
            "AND y BETWEEN :ya AND :yb"), {"layer": layer, "z": z, "xa": xa, "xb": xb, "ya": ya, "yb": yb}).all())
        for x in range(xa, xb + 1):
            for y in range(ya, yb + 1):
                if (x, y) not in cached:
                    _cut_and_cache(session, layer, z, x, y)
                    cut += 1
    return cut


def tile(session: Session, layer: str, z: int, x: int, y: int) -> bytes | None:
    """The tile's bytes through the cache, None when empty (see :func:`get_tile`)."""
    return get_tile(session, layer, z, x, y).data or None


# --------------------------------------------------------------------------- documents


def published_layer(session: Session, layer: str, what: str = "layer") -> dict:
    """The published layer (``generations.published_layers``' row), else 404 naming it as ``what``."""
    for row in generations.published_layers(session):
        if row["key"] == layer:
            return row
    raise not_published(session, layer, what)


def _title(row: dict, lang: str) -> str:
    return (row["name_en"] if lang == "en" else row["name_zh"]) or row["key"]


def _center(row: dict) -> list[float]:
    """The extent's centre and a zoom at which the extent fills a 256-pixel tile or so."""
    width = max(row["x1"] - row["x0"], row["y1"] - row["y0"], 1e-9)
    zoom = max(row["min_zoom"], min(MAX_ZOOM, int(math.log2(360 / width))))
    return [round((row["x0"] + row["x1"]) / 2, 7), round((row["y0"] + row["y1"]) / 2, 7), zoom]


def fields(lang: str) -> dict[str, str]:
    """The features' public fields and their descriptions in ``lang``."""
    return {k: (en if lang == "en" else zh) for k, (zh, en) in FIELDS.items()}


def tilejson(row: dict, tiles_url: str, lang: str = "zh") -> dict:
    """TileJSON 3.0.0 of a published layer (``row``: :func:`published_layer`);
    ``tiles_url``: the absolute template ending in ``{z}/{x}/{y}.mvt``."""
    title = _title(row, lang)
    described = ("{n}: {a} published areas, public fields only".format(n=title, a=row["areas"]) if lang == "en"
                 else "{n}：已公示 {a} 个区域，仅含公开字段".format(n=title, a=row["areas"]))
    return {
        "tilejson": "3.0.0",
        "name": title,
        "description": described,
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [tiles_url],
        "minzoom": row["min_zoom"],
        "maxzoom": MAX_ZOOM,
        "bounds": [row["x0"], row["y0"], row["x1"], row["y1"]],
        "center": _center(row),
        "vector_layers": [{"id": row["key"], "description": described, "minzoom": row["min_zoom"],
                           "maxzoom": MAX_ZOOM, "fields": fields(lang)}],
    }


def _ogc_layer(row: dict, lang: str) -> dict:
    return {
        "id": row["key"], "title": _title(row, lang), "dataType": "vector", "geometryDimension": 2,
        "minTileMatrix": str(row["min_zoom"]), "maxTileMatrix": str(MAX_ZOOM),
        "boundingBox": {"lowerLeft": [row["x0"], row["y0"]], "upperRight": [row["x1"], row["y1"]],
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
        "propertiesSchema": {"type": "object", "required": ["code", "name", "level"], "properties": {
            k: {"type": "string", "description": d} for k, d in fields(lang).items()}},
    }


def ogc_tilesets(row: dict, collection_url: str, lang: str = "zh") -> dict:
    """OGC API - Tiles: the tilesets of a collection (one vector tileset, WebMercatorQuad);
    ``collection_url``: the collection's absolute URL (``.../ogc/collections/{id}``)."""
    tileset = f"{collection_url}/tiles/{TILE_MATRIX_SET}"
    return {
        "links": [{"rel": "self", "type": "application/json", "href": f"{collection_url}/tiles"},
                  {"rel": "collection", "type": "application/json", "href": collection_url}],
        "tilesets": [{
            "title": _title(row, lang), "dataType": "vector", "crs": WEB_MERCATOR,
            "tileMatrixSetURI": TILE_MATRIX_SET_URI,
            "links": [{"rel": "self", "type": "application/json", "href": tileset},
                      {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", "type": "application/json",
                       "href": TILE_MATRIX_SET_URI}],
        }],
    }


def ogc_tileset(row: dict, collection_url: str, lang: str = "zh") -> dict:
    """OGC API - Tiles: the tileset metadata of a collection's vector tiles, with the
    templated ``item`` link ``.../{tileMatrix}/{tileRow}/{tileCol}`` (row: y, col: x)."""
    tileset = f"{collection_url}/tiles/{TILE_MATRIX_SET}"
    return {
        "title": _title(row, lang), "dataType": "vector", "crs": WEB_MERCATOR,
        "tileMatrixSetURI": TILE_MATRIX_SET_URI,
        "minTileMatrix": str(row["min_zoom"]), "maxTileMatrix": str(MAX_ZOOM),
        "boundingBox": {"lowerLeft": [row["x0"], row["y0"]], "upperRight": [row["x1"], row["y1"]],
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
        "centerPoint": {"coordinates": _center(row)[:2], "tileMatrix": str(_center(row)[2]),
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
        "links": [
            {"rel": "self", "type": "application/json", "href": tileset},
            {"rel": "collection", "type": "application/json", "href": collection_url},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", "type": "application/json",
             "href": TILE_MATRIX_SET_URI},
            {"rel": "item", "type": MEDIA_TYPE, "templated": True,
             "href": f"{tileset}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"},
        ],
        "layers": [_ogc_layer(row, lang)],
    }
