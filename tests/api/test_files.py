"""Import and export through real files (GeoJSON, GeoPackage, zipped Shapefile) written
with geopandas/pyogrio, and the command line on a bad file.

The ``town`` fixture holds town 339901100 (120.00-120.04 E, 30.00-30.04 N) and its
villages 339901100001 (west half) and 339901100002 (east half); the villages imported
here are the town's four quarters, so new codes start at 339901100003.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import collection, feature, square
from pyproj import Geod

TOWN = "339901100"
CLI = Path(sys.prefix) / "bin" / "geogrid"

# The town's quarters, deliberately not in reading order.
QUARTERS = {
    "东南村": shapely.box(120.02, 30.00, 120.04, 30.02),
    "西北村": shapely.box(120.00, 30.02, 120.02, 30.04),
    "西南村": shapely.box(120.00, 30.00, 120.02, 30.02),
    "东北村": shapely.box(120.02, 30.02, 120.04, 30.04),
}
# Reading order: north to south, west to east, after the town's existing 001 and 002.
EXPECTED_CODES = {"西北村": TOWN + "003", "东北村": TOWN + "004", "西南村": TOWN + "005", "东南村": TOWN + "006"}


# --------------------------------------------------------------------------- helpers


def quarters(crs="EPSG:4326", **columns) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame({"name": list(QUARTERS), **columns}, geometry=list(QUARTERS.values()), crs="EPSG:4326")
    return frame.to_crs(crs)


def upload(client, path: Path, **params):
    return client.post("/api/import", params=params, files={"file": (path.name, path.read_bytes())})


def stored(client) -> int:
    r = client.get("/api/areas", params={"limit": 1})
    assert r.status_code == 200, r.text
    return r.json()["numberMatched"]


def villages(client) -> dict[str, dict]:
    """The town's villages as stored, by code: {"name", "geometry", "area_m2"}."""
    r = client.get("/api/areas", params={"parent": TOWN, "level": "village"})
    assert r.status_code == 200, r.text
    return {f["properties"]["code"]: {"name": f["properties"]["name"], "area_m2": f["properties"]["area_m2"],
                                      "geometry": shapely.geometry.shape(f["geometry"])}
            for f in r.json()["features"]}


def write_shapefile_zip(frame: gpd.GeoDataFrame, out: Path, *, with_prj: bool = True) -> Path:
    folder = out.with_suffix("")
    folder.mkdir()
    pyogrio.write_dataframe(frame, folder / "villages.shp", encoding="UTF-8")
    with zipfile.ZipFile(out, "w") as zf:
        for part in sorted(folder.iterdir()):
            if with_prj or part.suffix != ".prj":
                zf.write(part, part.name)
    return out


def geodesic_area(geometry) -> float:
    return abs(Geod(ellps="WGS84").geometry_area_perimeter(geometry)[0])


def same_shape(a, b, tolerance: float) -> bool:
    return shapely.equals_exact(shapely.normalize(shapely.multipolygons(shapely.get_parts(a))),
                                shapely.normalize(shapely.multipolygons(shapely.get_parts(b))), tolerance)


# --------------------------------------------------------------------------- GeoJSON


def test_geojson_round_trip_generates_codes_in_reading_order_and_keeps_shapes(client, town, tmp_path):
    path = tmp_path / "villages.geojson"
    pyogrio.write_dataframe(quarters(), path, driver="GeoJSON")

    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["imported"] == 4 and report["source_crs"] == "EPSG:4326"
    assert report["generated_codes"] == [{"index": i, "code": EXPECTED_CODES[name]} for i, name in enumerate(QUARTERS)]

    export = client.get("/api/export", params={"format": "geojson", "parent": TOWN, "level": "village"})
    assert export.status_code == 200, export.text
    (tmp_path / "export.geojson").write_bytes(export.content)
    exported = pyogrio.read_dataframe(tmp_path / "export.geojson").set_index("code")
    assert set(exported.index) == {TOWN + "001", TOWN + "002", *EXPECTED_CODES.values()}
    for name, original in QUARTERS.items():
        row = exported.loc[EXPECTED_CODES[name]]
        assert row["name"] == name and row["level"] == "village" and row["parent"] == TOWN
        assert same_shape(row.geometry, original, 1e-7)
        assert row["area_m2"] == pytest.approx(geodesic_area(original), rel=1e-6)


def test_geojson_with_features_in_different_legacy_crs_is_mixed_crs(client, town, tmp_path):
    def with_crs(f, epsg):
        return {**f, "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}}

    path = tmp_path / "mixed.geojson"
    path.write_text(json.dumps(collection(with_crs(feature(square(120.001, 30.001), name="甲"), 4326),
                                          with_crs(feature(square(120.011, 30.001), name="乙"), 4490))))
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert "mixed CRS" in r.json()["detail"]
    assert stored(client) == before


@pytest.mark.parametrize("crs_member", ["EPSG:4326", ["EPSG", 4326], 4326])
def test_geojson_with_a_malformed_crs_member_is_422(client, town, tmp_path, crs_member):
    path = tmp_path / "odd-crs.geojson"
    path.write_text(json.dumps({**collection(feature(square(120.001, 30.001), name="甲")), "crs": crs_member}))
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("odd-crs.geojson:") and "crs" in r.json()["detail"]
    assert stored(client) == before


def test_deeply_nested_json_file_is_422(client, town, tmp_path):
    path = tmp_path / "nested.geojson"
    path.write_text("[" * 100_000)
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("nested.geojson:")
    assert stored(client) == before


# --------------------------------------------------------------------------- GeoPackage


@pytest.mark.parametrize("crs", ["EPSG:4549", "EPSG:32651"], ids=["cgcs2000-gk-120e", "utm-51n"])
def test_projected_geopackage_is_reprojected_onto_the_original_lon_lat(client, town, tmp_path, crs):
    path = tmp_path / "villages.gpkg"
    projected = quarters(crs)
    assert abs(projected.total_bounds[0]) > 1000  # really metres, not degrees
    pyogrio.write_dataframe(projected, path, layer="villages", driver="GPKG")

    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 201, r.text
    assert r.json()["source_crs"] == crs and r.json()["source_layer"] == "villages"
    stored_villages = villages(client)
    for name, original in QUARTERS.items():
        village = stored_villages[EXPECTED_CODES[name]]
        assert village["name"] == name
        assert shapely.hausdorff_distance(village["geometry"], original) < 1e-6


def test_geopackage_with_layers_in_different_crs_needs_a_source_layer(client, town, tmp_path):
    path = tmp_path / "two-layers.gpkg"
    frame = quarters()
    pyogrio.write_dataframe(frame.iloc[:2], path, layer="lonlat", driver="GPKG")
    pyogrio.write_dataframe(frame.iloc[2:].to_crs("EPSG:4549"), path, layer="gauss_kruger", driver="GPKG")
    before = stored(client)

    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert "mixed CRS" in r.json()["detail"]
    assert "lonlat: EPSG:4326" in r.json()["detail"] and "gauss_kruger: EPSG:4549" in r.json()["detail"]
    assert stored(client) == before

    r = upload(client, path, level="village", parent=TOWN, source_layer="gauss_kruger")
    assert r.status_code == 201, r.text
    assert r.json()["imported"] == 2 and r.json()["source_crs"] == "EPSG:4549"
    assert {v["name"] for v in villages(client).values()} == {"西村", "东村", *list(QUARTERS)[2:]}


def test_unknown_source_layer_lists_the_layers(client, town, tmp_path):
    path = tmp_path / "villages.gpkg"
    pyogrio.write_dataframe(quarters(), path, layer="villages", driver="GPKG")
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN, source_layer="towns")
    assert r.status_code == 422, r.text
    assert "no layer 'towns'" in r.json()["detail"] and "villages" in r.json()["detail"]
    assert stored(client) == before


@pytest.mark.parametrize("fmt", ["gpkg", "shp"])
def test_file_with_several_layers_names_the_source_layer_parameter(client, town, tmp_path, fmt):
    frame = quarters()
    if fmt == "gpkg":
        path = tmp_path / "two.gpkg"
        pyogrio.write_dataframe(frame.iloc[:2], path, layer="north", driver="GPKG")
        pyogrio.write_dataframe(frame.iloc[2:], path, layer="south", driver="GPKG")
    else:
        folder = tmp_path / "two"
        folder.mkdir()
        pyogrio.write_dataframe(frame.iloc[:2], folder / "north.shp", encoding="UTF-8")
        pyogrio.write_dataframe(frame.iloc[2:], folder / "south.shp", encoding="UTF-8")
        path = tmp_path / "two.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for part in folder.iterdir():
                zf.write(part, part.name)
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert "north" in r.json()["detail"] and "south" in r.json()["detail"]
    assert "source_layer" in r.json()["detail"], "the API parameter is source_layer, not layer"
    assert stored(client) == before


def nonspatial_geopackage(tmp_path: Path) -> Path:
    """A GeoPackage holding only an attribute table (no geometry column)."""
    path = tmp_path / "table.gpkg"
    pyogrio.write_dataframe(pd.DataFrame({"name": list(QUARTERS)}), path, layer="names", driver="GPKG")
    return path


def test_geopackage_without_geometry_is_422(client, town, tmp_path):
    before = stored(client)
    r = upload(client, nonspatial_geopackage(tmp_path), level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("table.gpkg:") and "geometry" in r.json()["detail"]
    assert stored(client) == before


# --------------------------------------------------------------------------- Shapefile


def test_zipped_shapefile_keeps_chinese_names(client, town, tmp_path):
    codes = [EXPECTED_CODES[name] for name in QUARTERS]
    path = write_shapefile_zip(quarters(code=codes, households=[120, 80, 95, 40]), tmp_path / "villages.zip")

    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 201, r.text
    assert r.json()["generated_codes"] == [] and sorted(r.json()["codes"]) == sorted(codes)
    stored_villages = villages(client)
    assert {stored_villages[EXPECTED_CODES[name]]["name"] for name in QUARTERS} == set(QUARTERS)
    households = client.get(f"/api/areas/{EXPECTED_CODES['东南村']}").json()["properties"]["households"]
    assert households == 120


def test_zipped_shapefile_without_prj_needs_a_declared_crs(client, town, tmp_path):
    path = write_shapefile_zip(quarters(), tmp_path / "no-prj.zip", with_prj=False)
    assert not any(n.endswith(".prj") for n in zipfile.ZipFile(path).namelist())
    before = stored(client)

    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert "has no CRS" in r.json()["detail"] and "crs=" in r.json()["detail"]
    assert stored(client) == before

    r = upload(client, path, level="village", parent=TOWN, crs="EPSG:4326")
    assert r.status_code == 201, r.text
    assert r.json()["imported"] == 4 and r.json()["source_crs"] == "EPSG:4326"
    assert stored(client) == before + 4


def test_declared_crs_that_contradicts_the_file_is_refused(client, town, tmp_path):
    path = write_shapefile_zip(quarters(), tmp_path / "villages.zip")
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN, crs="EPSG:4549")
    assert r.status_code == 422, r.text
    assert "declares EPSG:4326 but crs=EPSG:4549" in r.json()["detail"]
    assert stored(client) == before


def test_unknown_declared_crs_is_refused(client, town, tmp_path):
    path = write_shapefile_zip(quarters(), tmp_path / "no-prj.zip", with_prj=False)
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN, crs="EPSG:99999")
    assert r.status_code == 422, r.text
    assert "unknown CRS 'EPSG:99999'" in r.json()["detail"]
    assert stored(client) == before


# --------------------------------------------------------------------------- broken files


def truncated(tmp_path: Path, suffix: str) -> Path:
    whole = tmp_path / f"whole{suffix}"
    driver = {".geojson": "GeoJSON", ".gpkg": "GPKG"}[suffix]
    pyogrio.write_dataframe(quarters(), whole, driver=driver)
    data = whole.read_bytes()
    cut = tmp_path / f"truncated{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    return cut


@pytest.mark.parametrize("suffix, named", [(".geojson", "not valid JSON"), (".gpkg", "cannot read as gpkg")])
def test_truncated_file_is_422_and_stores_nothing(client, town, tmp_path, suffix, named):
    before = stored(client)
    r = upload(client, truncated(tmp_path, suffix), level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert named in r.json()["detail"] and "truncated or corrupt" in r.json()["detail"]
    assert stored(client) == before


def test_text_file_is_an_unsupported_type(client, town, tmp_path):
    path = tmp_path / "villages.txt"
    path.write_text("西北村 120.0 30.02\n", encoding="utf-8")
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert "unsupported file type '.txt'" in r.json()["detail"]
    assert stored(client) == before


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".zip"])
def test_empty_file_is_422_and_stores_nothing(client, town, tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert "cannot read" in r.json()["detail"] or "not valid JSON" in r.json()["detail"]
    assert stored(client) == before


def test_file_with_no_features_is_422(client, town, tmp_path):
    path = tmp_path / "none.geojson"
    path.write_text(json.dumps(collection()))
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert "no features" in r.json()["detail"]
    assert stored(client) == before


def test_one_bad_feature_in_a_file_rejects_the_file(client, town, tmp_path):
    frame = quarters(households=[10, -5, 20, 30])
    path = tmp_path / "villages.gpkg"
    pyogrio.write_dataframe(frame, path, driver="GPKG")
    before = stored(client)
    r = upload(client, path, level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    [problem] = r.json()["problems"]
    assert problem["index"] == 1 and problem["field"] == "households" and "-5" in problem["message"]
    assert stored(client) == before


@pytest.mark.parametrize("field, value", [("households", 10**12), ("name", "村" * 300), ("land_use", "x" * 100)],
                         ids=["households", "name", "land_use"])
def test_out_of_bounds_value_in_a_file_names_feature_and_field(client, town, tmp_path, field, value):
    path = tmp_path / "villages.geojson"
    features = [feature(square(120.001 + 0.004 * k, 30.001, 0.003), name=f"网格{k}") for k in range(3)]
    features[2]["properties"][field] = value
    path.write_text(json.dumps(collection(*features), ensure_ascii=False), encoding="utf-8")
    before = stored(client)
    r = upload(client, path, layer="comprehensive", level="grid", parent=TOWN + "001")
    assert r.status_code == 422, r.text
    [problem] = r.json()["problems"]
    assert problem["index"] == 2 and problem["field"] == field
    assert stored(client) == before


def test_report_names_the_uploaded_geojson_as_source_layer(client, town, tmp_path):
    path = tmp_path / "villages.geojson"
    pyogrio.write_dataframe(quarters(), path, driver="GeoJSON")
    r = upload(client, path, level="village", parent=TOWN, dry_run="true")
    assert r.status_code == 201, r.text
    assert r.json()["source_layer"] == "villages"


def spilling_grid_file(tmp_path: Path) -> Path:
    """One grid sticking 0.5 % of its area out of the west village."""
    path = tmp_path / "grid.geojson"
    path.write_text(json.dumps(collection(feature(square(120.01005, 30.001), name="越界网格"))))
    return path


def test_small_spill_over_in_a_file_is_a_warning(client, town, tmp_path):
    r = upload(client, spilling_grid_file(tmp_path), layer="comprehensive", level="grid", parent=TOWN + "001")
    assert r.status_code == 201, r.text
    [warning] = r.json()["warnings"]
    assert f"outside parent {TOWN}001" in warning["message"] and "0.50%" in warning["message"]


def test_max_spill_tightens_the_parent_check(client, town, tmp_path):
    before = stored(client)
    r = upload(client, spilling_grid_file(tmp_path), layer="comprehensive", level="grid", parent=TOWN + "001",
               max_spill="0.001")
    assert r.status_code == 422, r.text
    assert f"outside parent {TOWN}001" in r.json()["problems"][0]["message"]
    assert stored(client) == before


def test_cli_max_spill_tightens_the_parent_check(settings, client, town, tmp_path):
    before = stored(client)
    done = run_cli(settings, "import", spilling_grid_file(tmp_path), "--layer", "comprehensive", "--level", "grid",
                   "--parent", TOWN + "001", "--max-spill", "0.001")
    assert done.returncode == 1, done
    assert done.stderr.startswith("error:") and f"outside parent {TOWN}001" in done.stderr
    assert stored(client) == before


def test_file_error_names_the_uploaded_file(client, town, tmp_path):
    r = upload(client, truncated(tmp_path, ".gpkg"), level="village", parent=TOWN)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("truncated.gpkg:"), r.json()["detail"]
    assert "/tmp" not in r.json()["detail"]


# --------------------------------------------------------------------------- export


@pytest.fixture
def with_grids(client, town):
    """The town plus two grids in the west village, one given clockwise, one with notes."""
    clockwise = shapely.geometry.mapping(shapely.box(120.001, 30.001, 120.006, 30.006, ccw=False))
    r = client.post("/api/grids", json=collection(
        feature(clockwise, name="顺时针网格", parent=TOWN + "001"),
        feature(square(120.008, 30.001, 0.005), name="有备注的网格", parent=TOWN + "001", notes="内部备注，不公开"),
    ))
    assert r.status_code == 201, r.text
    return stored(client)


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp"])
def test_export_is_readable_and_complete_without_notes(client, with_grids, tmp_path, fmt):
    r = client.get("/api/export", params={"format": fmt})
    assert r.status_code == 200, r.text
    path = tmp_path / {"geojson": "areas.geojson", "gpkg": "areas.gpkg", "shp": "areas.zip"}[fmt]
    path.write_bytes(r.content)
    frame = pyogrio.read_dataframe(f"/vsizip/{path}" if fmt == "shp" else path)
    assert len(frame) == with_grids
    assert "notes" not in frame.columns
    assert "内部备注，不公开" not in r.content.decode("utf-8", errors="ignore")
    assert {"西村", "东村", "顺时针网格", "有备注的网格"} <= set(frame["name"])
    assert frame.crs.to_epsg() == 4326
    assert frame.geometry.is_valid.all()


def test_exported_geojson_has_counter_clockwise_exteriors(client, with_grids, tmp_path):
    r = client.get("/api/export", params={"format": "geojson"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert "crs" not in doc  # RFC 7946: WGS84 lon/lat, no crs member
    exteriors = [shapely.geometry.shape(f["geometry"]) for f in doc["features"]]
    rings = [poly.exterior for geom in exteriors for poly in shapely.get_parts(geom)]
    assert len(rings) == with_grids
    assert all(shapely.is_ccw(ring) for ring in rings)
    assert all("notes" not in f["properties"] for f in doc["features"])


def test_export_of_unknown_format_is_422(client, town):
    r = client.get("/api/export", params={"format": "kml"})
    assert r.status_code == 422, r.text
    assert r.json()["problems"][0]["field"] == "query.format"


# --------------------------------------------------------------------------- command line


def run_cli(settings, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url}
    return subprocess.run([str(CLI), *map(str, args)], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("make, named", [
    (lambda tmp_path: truncated(tmp_path, ".geojson"), "truncated.geojson: not valid JSON"),
    (lambda tmp_path: truncated(tmp_path, ".gpkg"), "truncated.gpkg: cannot read"),
    (nonspatial_geopackage, "table.gpkg: no geometry column"),
], ids=["truncated-geojson", "truncated-gpkg", "gpkg-without-geometry"])
def test_cli_import_of_a_bad_file_fails_cleanly(settings, client, town, tmp_path, make, named):
    before = stored(client)
    done = run_cli(settings, "import", make(tmp_path), "--level", "village", "--parent", TOWN)
    assert done.returncode == 1, done
    assert done.stderr.startswith(f"error: {named}"), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert stored(client) == before


def test_cli_import_of_a_file_with_a_malformed_crs_member_fails_cleanly(settings, client, town, tmp_path):
    path = tmp_path / "odd-crs.geojson"
    path.write_text(json.dumps({**collection(feature(square(120.001, 30.001), name="甲")), "crs": "EPSG:4326"}))
    done = run_cli(settings, "import", path, "--level", "village", "--parent", TOWN)
    assert done.returncode == 1 and done.stderr.startswith("error: odd-crs.geojson:"), done.stderr
    assert "crs" in done.stderr and "Traceback" not in done.stdout + done.stderr


def test_cli_import_of_a_good_file_reports_generated_codes(settings, client, town, tmp_path):
    path = tmp_path / "villages.geojson"
    pyogrio.write_dataframe(quarters(), path, driver="GeoJSON")
    done = run_cli(settings, "import", path, "--level", "village", "--parent", TOWN)
    assert done.returncode == 0, done.stderr
    assert "imported 4 features from villages.geojson (EPSG:4326)" in done.stdout
    assert f"code generated: feature 1 -> {EXPECTED_CODES['西北村']}" in done.stdout
    assert {EXPECTED_CODES[name] for name in QUARTERS} <= set(villages(client))
