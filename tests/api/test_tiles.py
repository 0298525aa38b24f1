"""Vector tiles of the published layers (GET /tiles/{layer}/{z}/{x}/{y}.mvt, TileJSON, OGC
API - Tiles), decoded with mapbox_vector_tile and checked against PostGIS: a tile holds
exactly the published grids of its layer around it, with their public fields only and
their published boundaries; empty tiles are 204; ETag/304; bad coordinates 400, a layer
that is not published 404; the cache in ``tile_cache`` is written once and reused, and a
publication replaces the tiles it touches and keeps the others; and the simplified copies
of lower zooms open no gap between neighbours at any zoom.

Besides the shared ``world`` (rectangular grids), a third town of wiggly grids: four rows
of cells laid like bricks (T-junctions), whose inner edges are noisy polylines shared by
both neighbours, one grid with a hole and the grid filling it as one part of a
MultiPolygon, so that simplification has something to do at every band.
"""

from __future__ import annotations

import math

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from conftest import COUNTY, SINCE, TOWN, W1
from fastapi.testclient import TestClient
from sqlalchemy import text

from geogrid.areas import importing, versions
from geogrid.db import engine as db
from geogrid.publication import generations, tiles

WTOWN, WVILLAGE = "339901102", "339901102001"  # the wiggly town
WX0, WY0, CELL, N = 120.15, 30.05, 0.01, 4
MVT = "application/vnd.mapbox-vector-tile"
PUBLIC_FIELDS = {"code", "name", "level", "parent"}


def wiggly_grids(seed: int = 13) -> dict[str, shapely.Geometry]:
    """code -> boundary of the wiggly town's 18 grids: four rows laid like bricks (odd rows
    shifted half a cell, so neighbours meet at T-junctions, where simplifying each grid on
    its own would open gaps), every inner edge a noisy polyline shared by both neighbours,
    cell 006 with a hole that grid 004's second part fills; the union is the town's box."""
    rng = np.random.default_rng(seed)
    m = 40
    s = np.linspace(0, 1, m + 1)
    taper = np.sin(np.pi * s)  # noise vanishes at the nodes: edges meet only there
    y_at = [WY0 + j * CELL for j in range(N + 1)]
    x0, x1 = WX0, WX0 + N * CELL
    breaks = [sorted({x0, x1, *(WX0 + (k + 0.5 * (j % 2)) * CELL for k in range(1, N) if j % 2 == 0),
                      *(WX0 + (k + 0.5) * CELL for k in range(N) if j % 2 == 1)}) for j in range(N)]

    def wiggle(a, b, straight):
        (ax, ay), (bx, by) = a, b
        length = math.hypot(bx - ax, by - ay)
        off = 0 * s if straight else 0.08 * length * rng.uniform(-1, 1, m + 1) * taper
        nx, ny = -(by - ay) / length, (bx - ax) / length
        pts = list(zip(ax + s * (bx - ax) + off * nx, ay + s * (by - ay) + off * ny))
        return [a, *pts[1:-1], b]  # the nodes exactly, so that neighbours share them

    horizontal = {}  # level j -> {(xa, xb): points west to east}
    for j in range(N + 1):
        xs = sorted(set(breaks[j - 1] if j > 0 else []) | set(breaks[j] if j < N else []))
        horizontal[j] = {(a, b): wiggle((a, y_at[j]), (b, y_at[j]), j in (0, N)) for a, b in zip(xs, xs[1:])}
    vertical = {(j, x): wiggle((x, y_at[j]), (x, y_at[j + 1]), x in (x0, x1)) for j in range(N) for x in breaks[j]}

    def run(j, a, b):  # the line at level j from a to b (a < b), through its nodes
        pts = [p for (u, v), line in sorted(horizontal[j].items()) if a <= u and v <= b for p in line[:-1]]
        return [*pts, (b, y_at[j])]

    cx, cy = WX0 + CELL, WY0 + 1.5 * CELL  # the middle of cell 006 (row 1, second cell)
    enclave = shapely.segmentize(shapely.box(cx - 0.002, cy - 0.002, cx + 0.002, cy + 0.002), 0.0002)
    cells = []
    for j in range(N):
        for a, b in zip(breaks[j], breaks[j][1:]):
            ring = run(j, a, b) + vertical[(j, b)][1:] + run(j + 1, a, b)[::-1][1:] + vertical[(j, a)][::-1][1:]
            cells.append(ring)
    out = {}
    for k, ring in enumerate(cells, start=1):
        code = f"{WVILLAGE}{k:03d}"
        if k == 6:
            out[code] = shapely.Polygon(ring, [enclave.exterior.coords[::-1]])
        elif k == 4:
            out[code] = shapely.MultiPolygon([shapely.Polygon(ring), enclave])
        else:
            out[code] = shapely.Polygon(ring)
    assert len(out) == 18 and all(g.is_valid for g in out.values()) and shapely.coverage_is_valid(list(out.values()))
    assert abs(shapely.union_all(list(out.values())).area - (N * CELL) ** 2) < 1e-12
    assert shapely.Point(cx, cy).within(enclave) and enclave.within(shapely.Polygon(cells[5]))
    return out


WIGGLY = wiggly_grids()


@pytest.fixture
def published(world, engine, settings, app):
    """The world and the wiggly town; admin published under the county, comprehensive under
    towns A (339901100) and wiggly (339901102), not under the micro town (339901101)."""
    box = shapely.box(WX0, WY0, WX0 + N * CELL, WY0 + N * CELL)
    records = [{"code": WTOWN, "name": "弯格镇", "level": "town", "layer": "admin", "parent": COUNTY},
               {"code": WVILLAGE, "name": "弯格村", "level": "village", "layer": "admin", "parent": WTOWN}]
    records += [{"code": c, "name": f"弯格{c[-2:]}", "level": "grid", "layer": "comprehensive", "parent": WVILLAGE}
                for c in WIGGLY]
    with db.transaction(engine) as session:
        importing.import_areas(session, records, [box, box, *WIGGLY.values()], settings, valid_from=SINCE)
        generations.publish(session, COUNTY, layer="admin")
        generations.publish(session, TOWN, layer="comprehensive")
        generations.publish(session, WTOWN, layer="comprehensive")
    with TestClient(app) as public:  # no token: tiles are public
        yield public


def get(public, layer, z, x, y, **kw):
    return public.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", **kw)


def decode(data: bytes, layer: str) -> list[dict]:
    """The features of ``layer`` in tile coordinates (0..4096, y down), as shapely geometries."""
    tile = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    assert set(tile) <= {layer}, tile.keys()
    feats = tile.get(layer, {"features": []})["features"]
    return [{**f, "shape": shapely.geometry.shape(f["geometry"])} for f in feats]


def expected(engine, layer, z, x, y) -> list:
    """Per published area of ``layer`` meeting the tile with its 64-unit buffer: code, name,
    level, parent, how many square tile units of it fall there, and that part in tile units."""
    with engine.connect() as conn:
        return conn.execute(text("""
            WITH e AS (SELECT ST_TileEnvelope(:z, :x, :y) AS t, ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096) AS b),
            p AS (SELECT pa.code, pa.name, pa.level_key, pa.parent_code,
                         ST_Intersection(ST_Transform(pa.geom, 3857), e.b) AS g, e.t
                  FROM published_area pa, e
                  WHERE upper_inf(pa.valid) AND pa.layer_key = :layer AND ST_Intersects(ST_Transform(pa.geom, 3857), e.b))
            SELECT code, name, level_key, parent_code,
                   ST_Area(g) / ((ST_XMax(t) - ST_XMin(t)) / 4096) ^ 2 AS units,
                   ST_AsBinary(ST_Affine(g, 4096 / (ST_XMax(t) - ST_XMin(t)), 0, 0, -4096 / (ST_YMax(t) - ST_YMin(t)),
                                         -ST_XMin(t) * 4096 / (ST_XMax(t) - ST_XMin(t)),
                                         ST_YMax(t) * 4096 / (ST_YMax(t) - ST_YMin(t)))) AS tile_geom
            FROM p"""), {"layer": layer, "z": z, "x": x, "y": y}).all()


def cache_rows(engine, layer=None) -> dict:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT layer_key, z, x, y, created_at, length(mvt) AS size, etag FROM tile_cache "
                                 "WHERE CAST(:layer AS text) IS NULL OR layer_key = :layer"), {"layer": layer}).all()
    return {(r.layer_key, r.z, r.x, r.y): r for r in rows}


# --------------------------------------------------------------------------- what a tile holds


@pytest.mark.parametrize("layer,lon,lat,z", [
    ("comprehensive", 120.01, 30.02, 12),   # all of town A in one tile
    ("comprehensive", 120.0101, 30.0201, 15),  # where W1..W4 meet
    ("comprehensive", WX0 + CELL, WY0 + CELL, 14),  # where wiggly grids and the enclave meet
    ("comprehensive", WX0 + CELL, WY0 + 1.5 * CELL, 17),  # the enclave and its hole
    ("admin", 120.05, 30.05, 9),
])
def test_a_tile_holds_exactly_the_published_areas_around_it_with_public_fields(published, engine, layer, lon, lat, z):
    x, y = tiles.tile_at(lon, lat, z)
    r = get(published, layer, z, x, y)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MVT
    feats = decode(r.content, layer)
    want = {row.code: row for row in expected(engine, layer, z, x, y)}
    got = {f["properties"]["code"]: f for f in feats}
    assert len(got) == len(feats), "one feature per area"
    # Every area with a real share of the tile is there; none that does not meet it at all.
    assert {c for c, row in want.items() if row.units >= 4} <= set(got) <= set(want)
    for code, f in got.items():
        row = want[code]
        assert set(f["properties"]) <= PUBLIC_FIELDS, f["properties"]
        assert f["properties"]["name"] == row.name and f["properties"]["level"] == row.level_key
        assert f["properties"].get("parent") == row.parent_code
        assert f["id"] == int(code)


def test_deep_tiles_draw_the_published_boundaries(published, engine):
    """At zoom 15 and deeper the boundaries themselves: each decoded polygon is the published
    one cut to the buffered tile, up to the 1/4096 grid of the tile."""
    for lon, lat, z in [(WX0 + CELL, WY0 + CELL, 15), (WX0 + CELL, WY0 + 1.5 * CELL, 17), (120.0101, 30.0201, 16)]:
        x, y = tiles.tile_at(lon, lat, z)
        feats = {f["properties"]["code"]: f["shape"] for f in decode(get(published, "comprehensive", z, x, y).content,
                                                                      "comprehensive")}
        assert feats
        for row in expected(engine, "comprehensive", z, x, y):
            if row.code not in feats:
                assert row.units < 4
                continue
            want = shapely.from_wkb(bytes(row.tile_geom))
            diff = shapely.symmetric_difference(feats[row.code], want).area
            assert diff <= want.length * 0.75 + 4, (row.code, z, diff, want.length)


def test_the_enclave_fills_the_hole_of_its_neighbour(published):
    """A grid with a hole and the MultiPolygon part filling it arrive as such."""
    z = 13  # the whole enclave in one tile
    x, y = tiles.tile_at(WX0 + CELL, WY0 + 1.5 * CELL, z)
    feats = {f["properties"]["code"]: f["shape"] for f in decode(get(published, "comprehensive", z, x, y).content,
                                                                  "comprehensive")}
    holed, multi = feats[f"{WVILLAGE}006"], feats[f"{WVILLAGE}004"]  # cell (1, 1); cell (3, 0) + the enclave
    assert holed.geom_type == "Polygon" and len(holed.interiors) == 1
    hole = shapely.Polygon(holed.interiors[0])
    inside = shapely.intersection(multi, hole)
    assert hole.area > 1000 and inside.area == pytest.approx(hole.area, abs=4)
    assert not any(p.interiors for p in shapely.get_parts(shapely.union_all([holed, multi])))  # filled


# --------------------------------------------------------------------------- HTTP rules


def test_empty_tiles_are_204_and_so_is_below_the_min_zoom(published, engine):
    # Over the micro town: its grids are not published, the admin areas are.
    x, y = tiles.tile_at(120.115, 30.015, 15)
    r = get(published, "comprehensive", 15, x, y)
    assert r.status_code == 204 and r.content == b""
    assert r.headers["cache-control"].startswith("public, max-age=")
    assert cache_rows(engine)[("comprehensive", 15, x, y)].size == 0  # cached empty: not cut again
    assert get(published, "comprehensive", 15, x, y).headers["x-tile-cache"] == "hit"
    assert get(published, "admin", 15, x, y).status_code == 200
    # Grid layers start at zoom 8; the admin layer at 0.
    for z in (0, 5, 7):
        x, y = tiles.tile_at(120.01, 30.02, z)
        assert get(published, "comprehensive", z, x, y).status_code == 204
        assert get(published, "admin", z, x, y).status_code == 200
    assert get(published, "comprehensive", 8, *tiles.tile_at(120.01, 30.02, 8)).status_code == 200


def test_unknown_and_unpublished_layers_are_404_bad_coordinates_400(published):
    for layer in ("nope", "environment"):  # environment has areas, none published
        r = get(published, layer, 12, *tiles.tile_at(120.01, 30.02, 12))
        assert r.status_code == 404 and layer in r.json()["detail"] and "not a published layer" in r.json()["detail"]
        assert published.get(f"/tiles/{layer}.json").status_code == 404
        assert published.get(f"/ogc/collections/{layer}/tiles").status_code == 404
    for z, x, y, field in [(23, 0, 0, "z"), (-1, 0, 0, "z"), (2, 4, 0, "x"), (2, 0, 4, "y"), (0, 0, -1, "y"),
                           (10, 1024, 3, "x")]:
        r = get(published, "comprehensive", z, x, y)
        assert r.status_code == 400, (z, x, y, r.text)
        assert r.json()["problems"][0]["field"] == field
    r = published.get("/ogc/collections/comprehensive/tiles/WebMercatorQuad/3/8/0")  # row 8 of 0..7
    assert r.status_code == 400 and r.json()["problems"][0]["field"] == "tileRow"
    assert get(published, "comprehensive", "a", 0, 0).status_code == 422


def test_etag_cache_control_and_304(published):
    x, y = tiles.tile_at(120.01, 30.02, 14)
    r = get(published, "comprehensive", 14, x, y)
    etag = r.headers["etag"]
    assert etag.startswith('"') and len(etag) > 8
    assert r.headers["cache-control"] == "public, max-age=300"
    again = get(published, "comprehensive", 14, x, y, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert get(published, "comprehensive", 14, x, y, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    other = get(published, "comprehensive", 14, x, y, headers={"If-None-Match": '"other"'})
    assert other.status_code == 200 and other.content == r.content and other.headers["etag"] == etag
    # Another tile, other bytes, another tag.
    assert get(published, "comprehensive", 14, x + 1, y).headers["etag"] != etag


def test_the_cache_row_is_written_on_first_fetch_and_reused(published, engine):
    z = 13
    x, y = tiles.tile_at(120.01, 30.02, z)
    assert ("comprehensive", z, x, y) not in cache_rows(engine)
    first = get(published, "comprehensive", z, x, y)
    assert first.headers["x-tile-cache"] == "miss"
    row = cache_rows(engine)[("comprehensive", z, x, y)]
    assert row.size == len(first.content) and f'"{row.etag}"' == first.headers["etag"]
    second = get(published, "comprehensive", z, x, y)
    assert second.headers["x-tile-cache"] == "hit" and second.content == first.content
    assert cache_rows(engine)[("comprehensive", z, x, y)].created_at == row.created_at
    with engine.connect() as conn:  # the envelope kept for invalidation: the tile and its buffer, in 4326
        covers = conn.execute(text("""
            SELECT ST_Covers(env, ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326)) AND ST_SRID(env) = 4326
            FROM tile_cache WHERE layer_key = 'comprehensive' AND z = :z AND x = :x AND y = :y"""),
            {"z": z, "x": x, "y": y}).scalar_one()
    assert covers
    # Cut without the cache: the same bytes.
    with db.transaction(engine) as session:
        assert tiles.render_tile(session, "comprehensive", z, x, y) == first.content
        assert tiles.tile(session, "comprehensive", z, x, y) == first.content


def test_a_publication_replaces_the_tiles_it_touches_and_keeps_the_others(published, engine, settings):
    z = 15
    near = tiles.tile_at(120.005, 30.03, z)   # in W1
    far = tiles.tile_at(WX0 + CELL, WY0 + CELL, z)  # the wiggly town, 15 km away
    before = get(published, "comprehensive", z, *near)
    far_before = get(published, "comprehensive", z, *far)
    assert before.status_code == far_before.status_code == 200
    w1_before = {f["properties"]["code"]: f["shape"] for f in decode(before.content, "comprehensive")}[W1]
    far_row = cache_rows(engine)[("comprehensive", z, *far)]
    # A planner moves W1's southern edge north (a gap opens towards W3): not published yet.
    with db.transaction(engine) as session:
        versions.update_area(session, W1, settings, geometry=shapely.box(120.0, 30.025, 120.01, 30.04))
    unchanged = get(published, "comprehensive", z, *near)
    assert unchanged.content == before.content
    with db.transaction(engine) as session:  # not the cache: what is published did not change
        assert tiles.render_tile(session, "comprehensive", z, *near) == before.content
    with db.transaction(engine) as session:
        out = generations.publish(session, TOWN, layer="comprehensive")
    assert out["changed"] == 1
    rows = cache_rows(engine, "comprehensive")
    assert ("comprehensive", z, *near) not in rows
    assert rows[("comprehensive", z, *far)].created_at == far_row.created_at  # far away: kept
    after = get(published, "comprehensive", z, *near)
    assert after.headers["x-tile-cache"] == "miss" and after.content != before.content
    assert after.headers["etag"] != before.headers["etag"]
    w1_after = {f["properties"]["code"]: f["shape"] for f in decode(after.content, "comprehensive")}[W1]
    want = {row.code: shapely.from_wkb(bytes(row.tile_geom)) for row in expected(engine, "comprehensive", z, *near)}
    assert shapely.symmetric_difference(w1_after, want[W1]).area <= want[W1].length * 0.75 + 4
    assert w1_after.area < w1_before.area * 0.8  # the tile holds a quarter less of W1
    assert get(published, "comprehensive", z, *far).headers["x-tile-cache"] == "hit"


# --------------------------------------------------------------------------- no gaps at any zoom


@pytest.mark.parametrize("band", (8, 10, 12, 14))
def test_each_band_is_a_gapless_coverage(published, engine, band):
    """Per layer and level, the band's copies cover what the boundaries cover: no new hole,
    no lost part, no overlap, the same area up to the band's tolerance along the outline;
    and where the boundaries form a valid coverage (edge-matched: the wiggly town; the
    world's rectangles meet at T-junctions, which GEOS does not count as one), so do the
    copies."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"""
            SELECT code, layer_key, level_key, ST_AsBinary(geom) AS g, ST_AsBinary(geom_z{band}) AS s
            FROM published_area WHERE upper_inf(valid) ORDER BY layer_key, level_key, code""")).all()
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.layer_key, r.level_key), []).append(r)
    assert len(groups[("comprehensive", "grid")]) == 6 + 18 and len(groups[("admin", "town")]) == 3
    tol = 360.0 / 2 ** band / 256 / 2  # half a pixel at the band's zoom, degrees

    def holes(g):
        return sum(len(p.interiors) for p in shapely.get_parts(g))

    for key, group in groups.items():
        geoms = shapely.from_wkb([bytes(r.g) for r in group])
        simple = shapely.from_wkb([bytes(r.s) for r in group])
        assert shapely.is_valid(simple).all() and not shapely.is_empty(simple).any(), (key, band)
        whole, simplified = shapely.union_all(geoms), shapely.union_all(simple)
        assert abs(simplified.area - whole.area) <= whole.length * tol, (key, band)
        assert sum(g.area for g in simple) == pytest.approx(simplified.area, rel=1e-9), (key, band)  # no overlap
        assert holes(simplified) == holes(whole), (key, band)
        assert len(shapely.get_parts(simplified)) == len(shapely.get_parts(whole)), (key, band)
    wiggly = [r for r in groups[("comprehensive", "grid")] if r.code in WIGGLY]
    geoms = shapely.from_wkb([bytes(r.g) for r in wiggly])
    simple = shapely.from_wkb([bytes(r.s) for r in wiggly])
    assert shapely.coverage_is_valid(geoms)
    assert shapely.coverage_is_valid(simple, gap_width=tol * 4), band
    assert shapely.union_all(simple).equals(shapely.box(WX0, WY0, WX0 + N * CELL, WY0 + N * CELL))
    # Simplification did something at the coarse bands.
    if band <= 12:
        assert len(shapely.get_coordinates(simple)) < len(shapely.get_coordinates(geoms)) / 2


@pytest.mark.parametrize("z", range(8, 17))
def test_decoded_neighbours_share_their_edges_at_every_zoom(published, engine, z):
    """Where wiggly grids meet, the decoded polygons cover what the published grids cover in
    the tile: no hole in their union that the grids' union does not have, and no overlap."""
    x, y = tiles.tile_at(WX0 + 2 * CELL + 1e-6, WY0 + 2 * CELL + 1e-6, z)  # a T-junction in the middle
    feats = decode(get(published, "comprehensive", z, x, y).content, "comprehensive")
    assert len(feats) >= 3  # a T-junction of the bricks
    frame = shapely.box(0, 0, 4096, 4096)
    decoded = [shapely.intersection(f["shape"], frame) for f in feats]
    union = shapely.union_all(decoded)
    truth = shapely.union_all([shapely.intersection(shapely.from_wkb(bytes(r.tile_geom)), frame)
                               for r in expected(engine, "comprehensive", z, x, y)])

    def holes(g):  # of a square tile unit or more (the exact union has float-noise pinholes)
        return sum(shapely.Polygon(r).area >= 1 for p in shapely.get_parts(g) for r in p.interiors)

    assert holes(union) == holes(truth), (z, holes(union), holes(truth))
    # Gaps would make the union smaller than the sum; overlaps would make the sum bigger.
    assert sum(g.area for g in decoded) == pytest.approx(union.area, abs=2 + union.area * 1e-6)
    assert abs(union.area - truth.area) <= truth.length * 0.5 + 4
    # A gap reaching the outline is no hole but lengthens the union's boundary twice over.
    assert union.length == pytest.approx(truth.length, rel=0.02, abs=16)


# --------------------------------------------------------------------------- documents


def test_tilejson(published):
    doc = published.get("/tiles/comprehensive.json").json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == ["http://testserver/tiles/comprehensive/{z}/{x}/{y}.mvt"]
    assert doc["minzoom"] == 8 and doc["maxzoom"] == 22
    x0, y0, x1, y1 = doc["bounds"]
    assert x0 == pytest.approx(120.0) and y0 == pytest.approx(30.0)
    assert x1 == pytest.approx(WX0 + N * CELL) and y1 == pytest.approx(WY0 + N * CELL)
    assert x0 <= doc["center"][0] <= x1 and y0 <= doc["center"][1] <= y1 and 8 <= doc["center"][2] <= 22
    (layer,) = doc["vector_layers"]
    assert layer["id"] == "comprehensive" and set(layer["fields"]) == PUBLIC_FIELDS
    assert "网格" in doc["name"] and "编码" in layer["fields"]["code"]
    en = published.get("/tiles/comprehensive.json", params={"lang": "en"}).json()
    assert en["vector_layers"][0]["fields"]["code"] == "Code of the area or grid" and en["name"] != doc["name"]
    assert published.get("/tiles/admin.json").json()["minzoom"] == 0
    # The template answers.
    z = 14
    x, y = tiles.tile_at(120.01, 30.02, z)
    url = doc["tiles"][0].format(z=z, x=x, y=y).removeprefix("http://testserver")
    assert published.get(url).status_code == 200


def test_ogc_api_tiles(published):
    base = "/ogc/collections/comprehensive/tiles"
    sets = published.get(base).json()
    (ts,) = sets["tilesets"]
    assert ts["dataType"] == "vector"
    assert ts["tileMatrixSetURI"] == "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    meta_href = next(link["href"] for link in ts["links"] if link["rel"] == "self")
    assert meta_href == f"http://testserver{base}/WebMercatorQuad"
    meta = published.get(meta_href).json()
    assert meta["dataType"] == "vector" and meta["tileMatrixSetURI"] == ts["tileMatrixSetURI"]
    (item,) = [link for link in meta["links"] if link["rel"] == "item"]
    assert item["type"] == MVT and item["templated"] is True
    assert item["href"] == f"http://testserver{base}/WebMercatorQuad/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"
    assert meta["layers"][0]["id"] == "comprehensive"
    assert set(meta["layers"][0]["propertiesSchema"]["properties"]) == PUBLIC_FIELDS
    z = 15
    x, y = tiles.tile_at(120.0101, 30.0201, z)
    ogc = published.get(item["href"].format(tileMatrix=z, tileRow=y, tileCol=x).removeprefix("http://testserver"))
    xyz = get(published, "comprehensive", z, x, y)
    assert ogc.status_code == 200 and ogc.content == xyz.content and ogc.headers["etag"] == xyz.headers["etag"]
    assert ogc.headers["content-type"] == MVT
    assert published.get(f"{base}/WorldCRS84Quad").status_code == 404
    assert published.get(f"{base}/WorldCRS84Quad/{z}/{y}/{x}").status_code == 404
    assert published.get(base, params={"lang": "en"}).json()["tilesets"][0]["title"] != ts["title"]


def test_tile_coordinates_agree_with_postgis(engine):
    """tile_at (used to pick tiles above) against ST_TileEnvelope."""
    with engine.connect() as conn:
        for lon, lat, z in [(120.01, 30.02, 12), (WX0 + CELL, WY0 + CELL, 16), (-179.9, 85.0, 3), (0.0, 0.0, 0)]:
            x, y = tiles.tile_at(lon, lat, z)
            assert conn.execute(text("SELECT ST_Intersects(ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 3857), "
                                     "ST_TileEnvelope(:z, :x, :y))"),
                                {"lon": lon, "lat": lat, "z": z, "x": x, "y": y}).scalar_one()
    assert tiles.tile_bounds(1, 1, 0)[0] == 0 and math.isclose(tiles.tile_bounds(1, 1, 0)[3], 85.0511287798, rel_tol=1e-9)
