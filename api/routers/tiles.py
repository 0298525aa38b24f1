"""Vector tiles of the published layers (public): XYZ tiles with their TileJSON, and the
same tiles through OGC API - Tiles under the OGC collections (one WebMercatorQuad vector
tileset per published layer; row = y, column = x). Tiles are cut and cached by
:mod:`geogrid.publication.tiles`; here are only the HTTP rules: 204 for an empty tile,
ETag with ``If-None-Match`` → 304, and a short ``Cache-Control`` since a publication
changes tiles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import Response

from api.deps import Lang, ReadSessionDep, SettingsDep
from api.schemas.common import Open, Out
from geogrid.core.errors import GeogridError
from geogrid.db import replicas
from geogrid.publication import tiles

router = APIRouter(tags=["tiles"])

TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {tiles.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
          "description": "The tile (Mapbox Vector Tile 2.1)"},
    204: {"description": "An empty tile (nothing published there, or below the layer's minzoom)"},
    304: {"description": "Not modified (If-None-Match matched the tile's ETag)"},
    400: {"description": "Tile coordinates outside the pyramid"},
    404: {"description": "The layer is not published"},
}

Z = Annotated[int, Path(description=f"Zoom, 0 to {tiles.MAX_ZOOM}")]
X = Annotated[int, Path(description="Column, 0 to 2^z - 1 (west to east)")]
Y = Annotated[int, Path(description="Row, 0 to 2^z - 1 (north to south)")]
IfNoneMatch = Annotated[str | None, Header(description="ETags the client holds: 304 when one matches")]


class TileJSONLayer(Open):
    id: str
    description: str
    minzoom: int
    maxzoom: int
    fields: dict[str, str]


class TileJSON(Open):
    """TileJSON 3.0.0 (https://github.com/mapbox/tilejson-spec/tree/master/3.0.0)."""

    tilejson: str
    name: str
    description: str
    version: str
    scheme: str
    tiles: list[str]
    minzoom: int
    maxzoom: int
    bounds: list[float]
    center: list[float | int]
    vector_layers: list[TileJSONLayer]


class OgcLink(Open):
    rel: str
    type: str
    href: str


class TileSetItem(Open):
    title: str
    dataType: str
    crs: str
    tileMatrixSetURI: str
    links: list[OgcLink]


class TileSets(Out):
    """OGC API - Tiles: the tilesets list of a collection."""

    links: list[OgcLink]
    tilesets: list[TileSetItem]


class TileSet(Open):
    """OGC API - Tiles: tileset metadata (its ``item`` link is the tile URL template)."""

    title: str
    dataType: str
    crs: str
    tileMatrixSetURI: str
    links: list[OgcLink]
    layers: list[Open]


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    held = [t.strip().removeprefix("W/").strip('"') for t in if_none_match.split(",")]
    return "*" in held or etag in held


def tile_response(session, settings, layer: str, z: int, x: int, y: int, if_none_match: str | None) -> Response:
    # On a standby a missing tile is cut there and cached through the primary (tiles.get_tile).
    found = tiles.get_tile(session, layer, z, x, y, cache_on=replicas.primary_for(session))
    session.commit()  # keeps a freshly cut tile in the cache (and ends the lock against publications)
    headers = {"ETag": f'"{found.etag}"', "Cache-Control": f"public, max-age={settings.tile_max_age_s}",
               "X-Tile-Cache": "hit" if found.cached else "miss"}
    if _matches(if_none_match, found.etag):
        return Response(status_code=304, headers=headers)
    if not found.data:
        return Response(status_code=204, headers=headers)
    return Response(found.data, media_type=tiles.MEDIA_TYPE, headers=headers)


@router.get("/tiles/{layer}.json", response_model=TileJSON, summary="TileJSON of a published layer's vector tiles")
def tilejson(request: Request, response: Response, session: ReadSessionDep, settings: SettingsDep, layer: str,
             lang: Lang = "zh") -> dict:
    row = tiles.published_layer(session, layer)
    response.headers["Cache-Control"] = f"public, max-age={settings.tile_max_age_s}"
    return tiles.tilejson(row, f"{str(request.base_url).rstrip('/')}/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt", lang)


@router.get("/tiles/{layer}/{z}/{x}/{y}.mvt", response_class=Response, responses=TILE_RESPONSES,
            summary="A vector tile of a published layer (public fields only; XYZ scheme)")
def xyz_tile(session: ReadSessionDep, settings: SettingsDep, layer: str, z: Z, x: X, y: Y,
             if_none_match: IfNoneMatch = None) -> Response:
    return tile_response(session, settings, layer, z, x, y, if_none_match)


# --------------------------------------------------------------------------- OGC API - Tiles


def _collection_url(request: Request, collection_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/ogc/collections/{collection_id}"


def _tile_matrix_set(tile_matrix_set_id: str) -> None:
    if tile_matrix_set_id != tiles.TILE_MATRIX_SET:
        raise GeogridError(f"tile matrix set {tile_matrix_set_id!r} not found: the tiles are in "
                           f"{tiles.TILE_MATRIX_SET} only", status=404)


@router.get("/ogc/collections/{collection_id}/tiles", response_model=TileSets,
            summary="OGC API - Tiles: the vector tilesets of a published layer's collection")
def ogc_tilesets(request: Request, session: ReadSessionDep, collection_id: str, lang: Lang = "zh") -> dict:
    row = tiles.published_layer(session, collection_id, "collection")
    return tiles.ogc_tilesets(row, _collection_url(request, collection_id), lang)


@router.get("/ogc/collections/{collection_id}/tiles/{tile_matrix_set_id}", response_model=TileSet,
            summary="OGC API - Tiles: the tileset metadata (WebMercatorQuad) with the tile URL template")
def ogc_tileset(request: Request, session: ReadSessionDep, collection_id: str, tile_matrix_set_id: str,
                lang: Lang = "zh") -> dict:
    _tile_matrix_set(tile_matrix_set_id)
    row = tiles.published_layer(session, collection_id, "collection")
    return tiles.ogc_tileset(row, _collection_url(request, collection_id), lang)


@router.get("/ogc/collections/{collection_id}/tiles/{tile_matrix_set_id}/{tile_matrix}/{tile_row}/{tile_col}",
            response_class=Response, responses=TILE_RESPONSES,
            summary="OGC API - Tiles: a vector tile (tileMatrix = zoom, tileRow = y, tileCol = x)")
def ogc_tile(session: ReadSessionDep, settings: SettingsDep, collection_id: str, tile_matrix_set_id: str,
             tile_matrix: Z, tile_row: Y, tile_col: X, if_none_match: IfNoneMatch = None) -> Response:
    _tile_matrix_set(tile_matrix_set_id)
    tiles.check_tile(tile_matrix, tile_col, tile_row, names=("tileMatrix", "tileCol", "tileRow"))
    return tile_response(session, settings, collection_id, tile_matrix, tile_col, tile_row, if_none_match)
