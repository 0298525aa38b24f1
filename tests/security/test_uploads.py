"""Uploaded files are opened only as their declared format (issue 9, class 1).

A corpus of files in every GDAL format geogrid does not accept (VRT, CSV, GML, KML, XLSX,
ODS, SQLite, FlatGeobuf, GPX, GeoJSONSeq, DXF) and of accepted formats under the wrong
extension goes through the real ``POST /api/import`` under each accepted extension, and
through ``POST /api/incidents/import``: each is a 4xx naming the upload, nothing of the
local files the payloads point at appears in the answer, no server path leaks, and a
local HTTP listener the payloads point at receives no request. Valid files of the three
formats still import. The corpus is written with GDAL (pyogrio) or by hand.
"""

from __future__ import annotations

import http.server
import io
import json
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import uuid
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import collection, feature, square

TOWN = "339901100"
EXTENSIONS = (".geojson", ".json", ".gpkg", ".zip")
SECRET = f"GEOGRID-SECRET-{uuid.uuid4().hex}"
PASSWD_MARK = "root:x:0:0"


# --------------------------------------------------------------------------- a listener


class Listener:
    """A local HTTP server that counts the requests it gets (the payloads point at it)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                outer.paths.append(self.path)
                body = b"name,WKT\nfetched,\"POLYGON((120 30,120.01 30,120.01 30.01,120 30))\"\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def listener():
    server = Listener()
    yield server
    server.server.shutdown()


@pytest.fixture
def no_fetch(listener):
    """The listener; the test fails if anything requested it meanwhile."""
    before = len(listener.paths)
    yield listener
    assert listener.paths[before:] == [], f"the service fetched {listener.paths[before:]}"


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "secret.csv"
    path.write_text(f"name,WKT\n{SECRET},\"POLYGON((120 30,120.01 30,120.01 30.01,120 30))\"\n")
    return path


# --------------------------------------------------------------------------- the corpus


def lonlat_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": ["村"]}, geometry=[shapely.box(120.001, 30.001, 120.009, 30.009)], crs="EPSG:4326")


def written(tmp: Path, driver: str, suffix: str, frame=None, **options) -> bytes:
    out = tmp / f"{uuid.uuid4().hex}{suffix}"
    pyogrio.write_dataframe(lonlat_frame() if frame is None else frame, out, driver=driver, **options)
    return out.read_bytes()


def table() -> pd.DataFrame:
    """Spreadsheets hold no geometry: a WKT column, as people write them."""
    return pd.DataFrame({"name": ["村"], "WKT": [shapely.box(120.001, 30.001, 120.009, 30.009).wkt]})


def zipped(members: dict[str, bytes], *, symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def shapefile_parts(tmp: Path) -> dict[str, bytes]:
    folder = tmp / uuid.uuid4().hex
    folder.mkdir()
    pyogrio.write_dataframe(lonlat_frame(), folder / "villages.shp", encoding="UTF-8")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def hostile_gpkg(tmp: Path, secret: Path) -> bytes:
    """A real GeoPackage with an extra layer that is an SQLite virtual table over a local file."""
    path = tmp / f"{uuid.uuid4().hex}.gpkg"
    pyogrio.write_dataframe(lonlat_frame(), path, layer="villages", driver="GPKG")
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA writable_schema=ON")
        con.execute("INSERT INTO sqlite_master(type, name, tbl_name, rootpage, sql) VALUES "
                    "('table', 'leak', 'leak', 0, ?)", (f"CREATE VIRTUAL TABLE leak USING VirtualOGR('{secret}')",))
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO gpkg_contents(table_name, data_type, identifier) VALUES ('leak', 'attributes', 'leak')")
    return path.read_bytes()


def other_formats(tmp: Path, url: str, secret: Path) -> dict[str, bytes]:
    """Files in GDAL formats that are none of the three accepted ones."""
    vrt = ('<OGRVRTDataSource><OGRVRTLayer name="leak"><SrcDataSource>{src}</SrcDataSource>'
           '<SrcLayer>{layer}</SrcLayer><GeometryField encoding="WKT" field="WKT"/></OGRVRTLayer></OGRVRTDataSource>')
    return {
        "vrt-local-file": vrt.format(src=f"CSV:{secret}", layer=secret.stem).encode(),
        "vrt-etc-passwd": vrt.format(src="CSV:/etc/passwd", layer="passwd").encode(),
        "vrt-http": vrt.format(src=f"/vsicurl/{url}/vrt.csv", layer="vrt").encode(),
        "vrt-plain-url": vrt.format(src=f"CSV:/vsicurl/{url}/vrt-plain.csv", layer="vrt-plain").encode(),
        "csv": written(tmp, "CSV", ".csv", layer_options={"GEOMETRY": "AS_WKT"}),
        "gml-xlink": f"""<?xml version="1.0" encoding="utf-8"?>
<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml"
  xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://ogr.maptools.org/ {url}/schema.xsd">
  <gml:featureMember><ogr:v fid="v.0"><ogr:geometryProperty xlink:href="{url}/gml.xml#g"/>
  <ogr:name>x</ogr:name></ogr:v></gml:featureMember>
</ogr:FeatureCollection>""".encode(),
        "gml": written(tmp, "GML", ".gml"),
        "kml-network-link": f"""<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document>
<NetworkLink><Link><href>{url}/kml.kml</href></Link></NetworkLink>
<Placemark><name>x</name><Polygon><outerBoundaryIs><LinearRing><coordinates>
120.001,30.001 120.009,30.001 120.009,30.009 120.001,30.001</coordinates></LinearRing></outerBoundaryIs></Polygon>
</Placemark></Document></kml>""".encode(),
        "kml": written(tmp, "KML", ".kml"),
        "xlsx": written(tmp, "XLSX", ".xlsx", table()),
        "ods": written(tmp, "ODS", ".ods", table()),
        "sqlite": written(tmp, "SQLite", ".sqlite"),
        "flatgeobuf": written(tmp, "FlatGeobuf", ".fgb"),
        "gpx": gpd.GeoDataFrame({"name": ["p"]}, geometry=[shapely.Point(120.001, 30.001)], crs="EPSG:4326")
        .pipe(lambda f: (pyogrio.write_dataframe(f, tmp / "p.gpx", driver="GPX", layer="waypoints"),
                         (tmp / "p.gpx").read_bytes())[1]),
        "geojsonseq": written(tmp, "GeoJSONSeq", ".geojsonl", pd.concat([lonlat_frame()] * 2)),
        "dxf": written(tmp, "DXF", ".dxf", lonlat_frame()[["geometry"]]),
        "geojson-http-url": json.dumps(f"{url}/string.geojson").encode(),
    }


def mislabelled(tmp: Path) -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """Accepted formats under an extension that is not theirs: payload, extensions to try."""
    gj = json.dumps(collection(feature(square(120.001, 30.001, 0.008), name="村"))).encode()
    return {
        "geojson-content": (gj, (".gpkg", ".zip")),
        "gpkg-content": (written(tmp, "GPKG", ".gpkg"), (".geojson", ".json", ".zip")),
        "zipped-shapefile": (zipped(shapefile_parts(tmp)), (".geojson", ".json", ".gpkg")),
        "bare-shp": (shapefile_parts(tmp)["villages.shp"], (".zip", ".gpkg", ".geojson")),
    }


def hostile_zips(tmp: Path, url: str, secret: Path) -> dict[str, bytes]:
    parts = shapefile_parts(tmp)
    vrt = f'<OGRVRTDataSource><OGRVRTLayer name="v"><SrcDataSource>CSV:{secret}</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>'
    return {
        "zip-holding-vrt": zipped({"villages.vrt": vrt.encode()}),
        "zip-vrt-named-shp": zipped({**parts, "villages.shp": vrt.encode()}),
        "zip-vrt-named-prj": zipped({**parts, "villages.prj": f"{url}/prj".encode() + b"\x00"}),
        "zip-dotdot": zipped({f"../../{k}": v for k, v in parts.items()}),
        "zip-absolute": zipped({f"/srv/{k}": v for k, v in parts.items()}),
        "zip-backslash": zipped({f"..\\..\\{k}": v for k, v in parts.items()}),
        "zip-nested-zip": zipped({**parts, "more.zip": zipped(parts)}),
        "zip-nested-as-dbf": zipped({**parts, "villages.dbf": zipped(parts)}),
        "zip-symlink": zipped({**parts, "villages.prj": b"/etc/passwd"}, symlinks=("villages.prj",)),
        "zip-csv-inside": zipped({"villages.csv": secret.read_bytes()}),
        "zip-gpkg-inside": zipped({"villages.gpkg": written(tmp, "GPKG", ".gpkg")}),
        "zip-without-shx": zipped({k: v for k, v in parts.items() if not k.endswith(".shx")}),
        "zip-empty": zipped({}),
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, listener, secret_file):
    tmp = tmp_path_factory.mktemp("corpus")
    return {
        "other": other_formats(tmp, listener.url, secret_file),
        "mislabelled": mislabelled(tmp),
        "zips": hostile_zips(tmp, listener.url, secret_file),
        "gpkg-virtual-table": hostile_gpkg(tmp, secret_file),
    }


# --------------------------------------------------------------------------- helpers


def stored(client) -> int:
    r = client.get("/api/areas", params={"limit": 1})
    assert r.status_code == 200, r.text
    return r.json()["numberMatched"]


def refused(response, name: str) -> dict:
    """A 4xx naming the upload, with nothing read from elsewhere and no server path."""
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
    text = response.text
    assert SECRET not in text and PASSWD_MARK not in text, (name, text)
    assert tempfile.gettempdir() + "/" not in text and "/vsi" not in text, (name, text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and name in detail, (name, detail)
    return response.json()


def upload(client, name: str, data: bytes, **params):
    return client.post("/api/import", params={"level": "village", "parent": TOWN, **params},
                       files={"file": (name, data)})


# --------------------------------------------------------------------------- the corpus is hostile


def test_the_corpus_is_hostile_when_gdal_opens_it_by_content(corpus, listener, secret_file, tmp_path):
    """Plain GDAL (another process, no lockdown) reads the secret and fetches the URL, so
    the refusals below are the service's doing, not harmless files."""
    vrt_local = tmp_path / "a.gpkg"
    vrt_local.write_bytes(corpus["other"]["vrt-local-file"])
    vrt_http = tmp_path / "b.gpkg"
    vrt_http.write_bytes(corpus["other"]["vrt-http"])
    before = len(listener.paths)
    script = ("import sys, pyogrio\nfor p in sys.argv[1:]:\n"
              "    try: print(pyogrio.read_dataframe(p).to_csv())\n    except Exception as e: print('error', e)\n")
    done = subprocess.run([sys.executable, "-c", script, str(vrt_local), str(vrt_http)],
                          capture_output=True, text=True, timeout=60)
    assert SECRET in done.stdout, done.stdout + done.stderr
    assert len(listener.paths) > before, "the VRT did not reach the listener"
    del listener.paths[before:]


# --------------------------------------------------------------------------- /api/import


@pytest.mark.parametrize("kind", ["vrt-local-file", "vrt-etc-passwd", "vrt-http", "vrt-plain-url", "csv", "gml-xlink",
                                  "gml", "kml-network-link", "kml", "xlsx", "ods", "sqlite", "flatgeobuf", "gpx",
                                  "geojsonseq", "dxf", "geojson-http-url"])
def test_other_gdal_formats_are_refused_under_every_accepted_extension(client, town, corpus, no_fetch, kind):
    before = stored(client)
    for ext in EXTENSIONS:
        name = f"hostile-{kind}{ext}"
        refused(upload(client, name, corpus["other"][kind]), name)
    assert stored(client) == before


@pytest.mark.parametrize("kind", ["geojson-content", "gpkg-content", "zipped-shapefile", "bare-shp"])
def test_accepted_formats_under_another_extension_are_refused(client, town, corpus, no_fetch, kind):
    data, extensions = corpus["mislabelled"][kind]
    before = stored(client)
    for ext in extensions:
        name = f"mislabelled-{kind}{ext}"
        body = refused(upload(client, name, data), name)
        assert "cannot read" in body["detail"] or "not valid JSON" in body["detail"], body
    assert stored(client) == before


@pytest.mark.parametrize("kind", ["zip-holding-vrt", "zip-vrt-named-shp", "zip-vrt-named-prj", "zip-dotdot",
                                  "zip-absolute", "zip-backslash", "zip-nested-zip", "zip-nested-as-dbf", "zip-symlink",
                                  "zip-csv-inside", "zip-gpkg-inside", "zip-without-shx", "zip-empty"])
def test_hostile_zips_are_refused(client, town, corpus, no_fetch, kind):
    before = stored(client)
    name = f"{kind}.zip"
    refused(upload(client, name, corpus["zips"][kind]), name)
    assert stored(client) == before


def test_zip_that_inflates_beyond_the_limit_is_413(client, town, tmp_path, no_fetch, monkeypatch):
    from geogrid.io import files

    monkeypatch.setattr(files, "MAX_UNZIPPED_BYTES", 1_000_000)  # the real limit is 1 GiB: same code, less disk
    parts = shapefile_parts(tmp_path)
    parts["villages.dbf"] = parts["villages.dbf"] + b"\x00" * 5_000_000
    data = zipped(parts)
    assert len(data) < 100_000
    before = stored(client)
    body = refused(upload(client, "bomb.zip", data), "bomb.zip")
    assert "1,000,000 byte limit" in body["detail"]
    assert stored(client) == before


def test_geopackage_with_a_virtual_table_over_a_local_file_reads_nothing_of_it(client, town, corpus, no_fetch):
    data = corpus["gpkg-virtual-table"]
    assert data[68:72] == b"GPKG"  # passes the magic check: GDAL's own lockdown is what holds here
    before = stored(client)
    refused(upload(client, "virtual.gpkg", data), "virtual.gpkg")
    refused(upload(client, "virtual.gpkg", data, source_layer="leak"), "virtual.gpkg")
    assert stored(client) == before


def test_messages_name_the_upload_never_a_folder_the_client_sent(client, town, corpus, no_fetch):
    r = upload(client, "../../etc/secret-plans.gpkg", corpus["other"]["vrt-local-file"])
    body = refused(r, "secret-plans.gpkg")
    assert body["detail"].startswith("secret-plans.gpkg:") and "../" not in body["detail"]


# --------------------------------------------------------------------------- GDAL itself is offline


def test_gdal_network_access_is_off_after_an_upload(client, town, corpus, no_fetch):
    from geogrid.io import files

    refused(upload(client, "x.gpkg", corpus["other"]["sqlite"]), "x.gpkg")
    for option, value in files.GDAL_LOCKDOWN.items():
        got = pyogrio.get_gdal_config_option(option)
        assert str(got if got is not None else "") == value, option
    for source in (f"/vsicurl/{no_fetch.url}/direct.geojson", f"GeoJSON:{no_fetch.url}/direct.geojson",
                   f"CSV:/vsicurl/{no_fetch.url}/direct.csv"):
        with pytest.raises(Exception):
            pyogrio.read_dataframe(source)


# --------------------------------------------------------------------------- valid files still import


def test_valid_files_of_each_accepted_format_import(client, town, tmp_path, no_fetch):
    frame = gpd.GeoDataFrame({"name": ["甲", "乙", "丙"]}, crs="EPSG:4326", geometry=[
        shapely.box(120.001, 30.001, 120.004, 30.004), shapely.box(120.005, 30.001, 120.008, 30.004),
        shapely.box(120.009, 30.001, 120.012, 30.004)])
    gj = tmp_path / "v.geojson"
    pyogrio.write_dataframe(frame.iloc[[0]], gj, driver="GeoJSON")
    gp = tmp_path / "v.gpkg"
    pyogrio.write_dataframe(frame.iloc[[1]], gp, driver="GPKG", layer="villages")
    folder = tmp_path / "shp"
    folder.mkdir()
    pyogrio.write_dataframe(frame.iloc[[2]], folder / "村界.shp", encoding="UTF-8")
    # As desktop GIS zips them: in a folder, with a spatial index and metadata beside.
    members = {f"导出/{p.name}": p.read_bytes() for p in folder.iterdir()}
    members.update({"导出/村界.sbn": b"\x00" * 10, "导出/村界.shp.xml": b"<metadata/>"})
    before = stored(client)
    for name, data in (("甲.geojson", gj.read_bytes()), ("乙.json", gj.read_bytes().replace("甲".encode(), "丁".encode())),
                       ("乙.gpkg", gp.read_bytes()), ("丙.zip", zipped(members))):
        r = client.post("/api/import", params={"level": "village", "parent": TOWN, "layer": "admin"},
                        files={"file": (name, data)})
        assert r.status_code == 201, (name, r.text)
        assert r.json()["imported"] == 1, r.text
    assert stored(client) == before + 4
    names = {f["properties"]["name"] for f in client.get("/api/areas", params={"parent": TOWN}).json()["features"]}
    assert {"甲", "丁", "乙", "丙"} <= names


# --------------------------------------------------------------------------- /api/incidents/import


@pytest.mark.parametrize("kind", ["vrt-local-file", "xlsx", "ods", "sqlite", "flatgeobuf", "gml-xlink", "dxf"])
def test_incident_import_checks_the_declared_format(client, corpus, no_fetch, kind):
    data = corpus["other"][kind]
    for ext in (".csv", ".geojson", ".json"):
        name = f"history-{kind}{ext}"
        r = client.post("/api/incidents/import", files={"file": (name, data)})
        refused(r, name)


@pytest.mark.parametrize("kind", ["gpkg-content", "zipped-shapefile"])
def test_incident_import_refuses_binary_files_named_csv(client, corpus, no_fetch, kind):
    data, _ = corpus["mislabelled"][kind]
    for ext in (".csv", ".geojson"):
        name = f"history-{kind}{ext}"
        body = refused(client.post("/api/incidents/import", files={"file": (name, data)}), name)
        assert "not a UTF-8 CSV" in body["detail"] or "not valid JSON" in body["detail"], body


def test_incident_import_refuses_a_geojson_whose_features_are_not_objects(client, no_fetch):
    doc = {"type": "FeatureCollection", "features": [1, [2]]}
    body = refused(client.post("/api/incidents/import", files={"file": ("odd.geojson", json.dumps(doc))}), "odd.geojson")
    assert "feature 0" in body["detail"]
