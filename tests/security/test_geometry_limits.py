"""Limits on incoming geometry (issue 9, class 6), through the API.

Vertex limits per feature (422 naming the feature, its count and the limit) and per
request (413 naming the total and the limit) on every entry point that takes a boundary:
POST /api/areas and /api/grids (Feature and FeatureCollection), PATCH, file imports
(GeoJSON, GeoPackage, zipped Shapefile) and exemptions. An unclosed ring is refused with
the ring, the polygon and both end points; altitude is dropped with a warning, not
silently. The small limits come from a service built on the same database with its own
Settings, as an operator would configure it.
"""

from __future__ import annotations

import json
import math
import time
import zipfile

import geopandas as gpd
import pyogrio
import pytest
import shapely
from conftest import collection, feature, square
from fastapi.testclient import TestClient

TOWN = "339901100"
WEST = "339901100001"  # the west village (120.00-120.02 E, 30.00-30.04 N)
PER_FEATURE = 50
PER_REQUEST = 120


def ring(n: int, cx: float = 120.005, cy: float = 30.005, r: float = 0.003) -> list[list[float]]:
    """A closed ring of ``n`` positions (``n - 1`` distinct vertices) around (cx, cy)."""
    pts = [[round(cx + r * math.cos(2 * math.pi * k / (n - 1)), 9), round(cy + r * math.sin(2 * math.pi * k / (n - 1)), 9)]
           for k in range(n - 1)]
    return pts + [pts[0]]


def polygon(n: int, **kw) -> dict:
    return {"type": "Polygon", "coordinates": [ring(n, **kw)]}


def grid(geometry: dict, **properties) -> dict:
    return feature(geometry, **{"name": "网格", "parent": WEST, **properties})


def stored(client) -> int:
    r = client.get("/api/areas", params={"limit": 1})
    assert r.status_code == 200, r.text
    return r.json()["numberMatched"]


def only_problem(body: dict) -> dict:
    assert len(body["problems"]) == 1, body
    return body["problems"][0]


@pytest.fixture
def small(settings, client, town):
    """The service with limits of 50 vertices a feature and 120 a request, same database
    and credentials as ``client`` (the town is loaded with the default limits)."""
    from api.app import create_app
    from geogrid.core.settings import Settings

    limited = Settings(database_url=settings.database_url, max_vertices_per_feature=PER_FEATURE,
                       max_vertices_per_request=PER_REQUEST)
    auth = {k: v for k, v in client.headers.items() if k.lower() == "authorization"}
    with TestClient(create_app(limited), raise_server_exceptions=False, headers=auth) as c:
        yield c


# --------------------------------------------------------------------------- per feature


def test_feature_at_the_limit_is_accepted_and_one_more_vertex_is_422(small):
    r = small.post("/api/grids", json=grid(polygon(PER_FEATURE)))
    assert r.status_code == 201, r.text
    before = stored(small)
    r = small.post("/api/grids", json=grid(polygon(PER_FEATURE + 1, cx=120.012)))
    assert r.status_code == 422, r.text
    problem = only_problem(r.json())
    assert problem["field"] == "geometry" and problem["index"] == 0
    assert f"{PER_FEATURE + 1} vertices" in problem["message"] and f"limit of {PER_FEATURE}" in problem["message"]
    assert "max_vertices_per_feature" in problem["message"]
    assert stored(small) == before


def test_collection_names_the_oversized_feature_and_stores_nothing(small):
    before = stored(small)
    r = small.post("/api/grids", json=collection(grid(polygon(10)), grid(polygon(PER_FEATURE + 5, cx=120.012)),
                                                 grid(polygon(10, cx=120.016))))
    assert r.status_code == 422, r.text
    problem = only_problem(r.json())
    assert problem["index"] == 1 and f"{PER_FEATURE + 5} vertices" in problem["message"]
    assert stored(small) == before


def test_multipolygon_counts_every_part_and_hole(small):
    outer = ring(20, r=0.004)
    hole = ring(20, r=0.001)
    geometry = {"type": "MultiPolygon", "coordinates": [[outer, hole], [ring(20, cx=120.013)]]}  # 60 in all
    before = stored(small)
    r = small.post("/api/grids", json=grid(geometry))
    assert r.status_code == 422, r.text
    assert "60 vertices" in only_problem(r.json())["message"]
    assert stored(small) == before


def test_boundary_edit_over_the_limit_changes_nothing(small):
    history = small.get(f"/api/areas/{WEST}/history").json()["features"]
    r = small.patch(f"/api/areas/{WEST}", json={"geometry": polygon(PER_FEATURE * 3, cx=120.01, cy=30.02, r=0.009)})
    assert r.status_code == 422, r.text
    message = only_problem(r.json())["message"]
    assert f"{PER_FEATURE * 3} vertices" in message and f"limit of {PER_FEATURE}" in message
    assert small.get(f"/api/areas/{WEST}/history").json()["features"] == history


def test_exemption_over_the_limit_is_refused(small):
    r = small.post("/api/exemptions", json={"area": WEST, "kind": "lake", "name": "大湖",
                                            "geometry": polygon(PER_FEATURE + 10)})
    assert r.status_code == 422, r.text
    assert f"{PER_FEATURE + 10} vertices" in only_problem(r.json())["message"]
    assert small.get("/api/exemptions", params={"area": WEST}).json()["features"] == []


# --------------------------------------------------------------------------- per request


def test_request_over_the_limit_is_413_naming_total_and_limit(small):
    features = [grid(polygon(45, cx=120.004 + 0.005 * k)) for k in range(3)]  # 135 > 120, each under 50
    before = stored(small)
    r = small.post("/api/grids", json=collection(*features))
    assert r.status_code == 413, r.text
    body = r.json()
    assert "135 vertices" in body["detail"] and f"limit of {PER_REQUEST}" in body["detail"]
    assert "max_vertices_per_request" in body["detail"]
    assert stored(small) == before
    r = small.post("/api/grids", json=collection(*features[:2]))  # 90: fine
    assert r.status_code == 201, r.text
    assert stored(small) == before + 2


def test_file_over_the_request_limit_is_413(small, tmp_path):
    frame = gpd.GeoDataFrame({"name": ["甲", "乙", "丙"]}, crs="EPSG:4326",
                             geometry=[shapely.geometry.shape(polygon(45, cx=120.004 + 0.005 * k)) for k in range(3)])
    before = stored(small)
    for name, driver in (("many.gpkg", "GPKG"), ("many.geojson", "GeoJSON")):
        path = tmp_path / name
        pyogrio.write_dataframe(frame, path, driver=driver)
        r = small.post("/api/import", params={"layer": "comprehensive", "level": "grid", "parent": WEST},
                       files={"file": (name, path.read_bytes())})
        assert r.status_code == 413, (name, r.text)
        assert "135 vertices" in r.json()["detail"] and f"limit of {PER_REQUEST}" in r.json()["detail"]
    assert stored(small) == before


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp"])
def test_file_with_an_oversized_feature_names_it(small, tmp_path, fmt):
    frame = gpd.GeoDataFrame({"name": ["甲", "乙"]}, crs="EPSG:4326",
                             geometry=[shapely.geometry.shape(polygon(10)),
                                       shapely.geometry.shape(polygon(PER_FEATURE + 20, cx=120.012))])
    if fmt == "shp":
        folder = tmp_path / "shp"
        folder.mkdir()
        pyogrio.write_dataframe(frame, folder / "grids.shp", encoding="UTF-8")
        path = tmp_path / "grids.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for part in folder.iterdir():
                zf.write(part, part.name)
    else:
        path = tmp_path / f"grids.{fmt}"
        pyogrio.write_dataframe(frame, path, driver={"geojson": "GeoJSON", "gpkg": "GPKG"}[fmt])
    before = stored(small)
    r = small.post("/api/import", params={"layer": "comprehensive", "level": "grid", "parent": WEST},
                   files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 422, r.text
    problem = only_problem(r.json())
    assert problem["index"] == 1 and f"{PER_FEATURE + 20} vertices" in problem["message"]
    assert stored(small) == before


def test_a_million_vertex_polygon_is_refused_quickly_with_the_default_limits(client, town):
    """The issue's case: 1,000,000 vertices, default limits (200,000 a feature)."""
    body = json.dumps(grid(polygon(1_000_000, r=0.004)))
    started = time.perf_counter()
    r = client.post("/api/grids", content=body, headers={"content-type": "application/json"})
    elapsed = time.perf_counter() - started
    assert r.status_code == 422, r.text[:500]
    message = only_problem(r.json())["message"]
    assert "1,000,000 vertices" in message and "limit of 200,000" in message
    print(f"1,000,000-vertex polygon ({len(body) / 1e6:.1f} MB) refused in {elapsed:.2f} s")
    assert elapsed < 20


# --------------------------------------------------------------------------- rings and altitude


def test_unclosed_exterior_ring_is_refused_with_both_end_points(small):
    open_ring = ring(8)[:-1]
    before = stored(small)
    r = small.post("/api/grids", json=grid({"type": "Polygon", "coordinates": [open_ring]}))
    assert r.status_code == 422, r.text
    message = only_problem(r.json())["message"]
    first, last = open_ring[0], open_ring[-1]
    assert "exterior ring is not closed" in message
    assert f"first point [{first[0]}, {first[1]}]" in message and f"last point [{last[0]}, {last[1]}]" in message
    assert stored(small) == before


def test_unclosed_hole_names_the_ring_and_the_polygon(small):
    geometry = {"type": "MultiPolygon", "coordinates": [
        [ring(8, cx=120.004)],
        [ring(8, cx=120.012, r=0.004), ring(8, cx=120.012, r=0.001)[:-1]],
    ]}
    r = small.post("/api/grids", json=grid(geometry))
    assert r.status_code == 422, r.text
    assert "ring 1 (hole 1) of polygon 1 is not closed" in only_problem(r.json())["message"]


def test_unclosed_ring_in_an_edit_and_in_a_geojson_file(small, tmp_path):
    open_polygon = {"type": "Polygon", "coordinates": [ring(8)[:-1]]}
    r = small.patch(f"/api/areas/{WEST}", json={"geometry": open_polygon})
    assert r.status_code == 422, r.text
    assert "exterior ring is not closed" in only_problem(r.json())["message"]
    path = tmp_path / "open.geojson"
    path.write_text(json.dumps(collection(grid(square(120.004, 30.004, 0.002)), grid(open_polygon))))
    before = stored(small)
    r = small.post("/api/import", params={"layer": "comprehensive", "level": "grid", "parent": WEST},
                   files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("open.geojson:")
    problem = only_problem(r.json())
    assert problem["index"] == 1 and "exterior ring is not closed" in problem["message"]
    assert stored(small) == before


def test_altitude_is_dropped_with_a_warning_not_silently(small, tmp_path):
    ring3d = [[x, y, 12.5] for x, y in ring(8)]
    r = small.post("/api/grids", json=grid({"type": "Polygon", "coordinates": [ring3d]}))
    assert r.status_code == 201, r.text
    [warning] = r.json()["warnings"]
    assert "altitude (Z) dropped" in warning["message"] and warning["index"] == 0
    stored_geometry = shapely.geometry.shape(small.get(f"/api/grids/{r.json()['codes'][0]}").json()["geometry"])
    assert not stored_geometry.has_z
    # The same from a GeoPackage holding PolygonZ.
    frame = gpd.GeoDataFrame({"name": ["高程网格"]}, crs="EPSG:4326",
                             geometry=[shapely.Polygon([(x, y, 7.0) for x, y in ring(8, cx=120.012)])])
    path = tmp_path / "z.gpkg"
    pyogrio.write_dataframe(frame, path, driver="GPKG")
    r = small.post("/api/import", params={"layer": "comprehensive", "level": "grid", "parent": WEST},
                   files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text
    assert any("altitude (Z) dropped" in w["message"] for w in r.json()["warnings"]), r.json()
