"""Reading and writing boundary files: GeoJSON, GeoPackage and zipped Shapefile (pyogrio).

Reading gives plain records plus lon/lat geometries, whatever CRS the file declares; the
records then go through :func:`geogrid.areas.importing.import_areas` like any other input.

A GeoJSON file without a ``crs`` member is WGS84 lon/lat (RFC 7946). A GeoPackage layer
or a Shapefile without a CRS is refused unless the caller declares one: guessing a CRS
is how boundaries end up hundreds of metres off.

Uploads are hostile until proven otherwise. GDAL picks a driver by content, and several
of its drivers read other files or fetch URLs on the file's say-so (VRT, GML xlinks,
SQLite virtual tables, CSV/KML/... pointing anywhere), so a file is opened only by the
driver of its declared format, after its magic bytes say it is that format:

- GeoJSON (.geojson, .json) never reaches GDAL: it is parsed as JSON and converted with
  shapely (:func:`geogrid.geo.geometry.parse_geojson_geometries`), the same code as the API's
  bodies, so no driver can claim it and the vertex limits apply before anything is built.
- GeoPackage (.gpkg): the SQLite header and a GeoPackage ``application_id``, then opened
  as ``GPKG:<path>``. The prefix is GDAL's strongest restriction that pyogrio can pass
  (pyogrio has no ``allowed_drivers``, and ``GDAL_SKIP`` only acts when drivers are
  registered, before we could set it): every other driver sees a name that is no file.
- Zipped Shapefile (.zip): the zip is checked (no path traversal, no nested archives,
  only shapefile parts, bounded sizes against zip bombs, no encryption), the parts are
  extracted by us under fixed names into a private directory, and each ``.shp`` (Shapefile
  magic number checked) is opened directly: no ``/vsizip/``, no name chosen by the upload.

GDAL's network and external access is off for the whole process (:data:`GDAL_LOCKDOWN`,
set and read back before every read): geogrid never needs GDAL to go online. Messages
name the user's file, never a server path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
from pyproj import CRS
from pyproj.exceptions import CRSError

from geogrid.core.errors import GeogridError
from geogrid.geo.geometry import parse_geojson_geometries

FORMATS = {"geojson": ".geojson", "gpkg": ".gpkg", "shp": ".zip"}
MEDIA_TYPES = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3", "shp": "application/zip"}

# Column names seen in published boundary files, tried when no mapping is given.
ALIASES = {
    "code": ("code", "adcode", "CODE", "grid_code", "gridcode", "网格编码", "编码"),
    "name": ("name", "NAME", "grid_name", "网格名称", "名称"),
    "parent": ("parent", "parent_code", "PARENT"),
}


@dataclass
class ReadResult:
    records: list[dict]
    geoms: list
    source_crs: str
    layer: str | None


# Process-wide GDAL settings (GDAL config options are global, and geogrid never needs GDAL
# to read anything but the local file it was given):
GDAL_LOCKDOWN = {
    # /vsicurl/ and every network file system built on it (/vsis3/, /vsigs/, ...) open
    # only this one name, which is no URL: every URL is refused before any request.
    "CPL_VSIL_CURL_ALLOWED_FILENAME": "/nonexistent/geogrid-gdal-is-offline",
    # Direct HTTP fetches (http:// data sources, GML xlink resolution, schemas) go to a
    # proxy that is never there (the discard port), and fail at once. GDAL has no switch
    # for this; curl still honours a NO_PROXY environment variable, so the service must
    # run without one. The uploads never reach a driver that fetches anyway (see above).
    "GDAL_HTTP_PROXY": "127.0.0.1:9",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_ALLOW_REMOTE_RESOURCE_TO_ACCESS_LOCAL_FILE": "NO",
    # SQLite/GeoPackage: no virtual tables over other files, no extensions.
    "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",
    "OGR_SQLITE_LOAD_EXTENSIONS": "",
    "GML_SKIP_RESOLVE_ELEMS": "ALL",
    "GML_DOWNLOAD_WFS_SCHEMA": "NO",
    "GDAL_VRT_ENABLE_PYTHON": "NO",
    "CPL_ALLOW_VSISTDIN": "NO",
}

GPKG_APPLICATION_IDS = (b"GPKG", b"GP10", b"GP11")
SHAPEFILE_MAGIC = b"\x00\x00\x27\x0a"
DBF_VERSIONS = {0x02, 0x03, 0x04, 0x05, 0x30, 0x31, 0x32, 0x43, 0x63, 0x7B, 0x83, 0x8B, 0x8E, 0xB3, 0xCB, 0xE5, 0xF5, 0xFB}
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")  # extracted
SHAPEFILE_EXTRAS = (".sbn", ".sbx", ".qix", ".fbn", ".fbx", ".ain", ".aih", ".atx", ".ixs", ".mxs", ".shp.xml",
                    ".qmd")  # indexes and metadata desktop GIS leaves beside: allowed, never extracted
MAX_ZIP_MEMBERS = 500
MAX_UNZIPPED_BYTES = 1 << 30  # all extracted parts together
MAX_TEXT_PART_BYTES = 64 * 1024  # .prj, .cpg
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh")


def lock_down_gdal() -> None:
    """Apply :data:`GDAL_LOCKDOWN` and check that GDAL took every option (a typo or an
    unsupported option would leave a door open silently)."""
    pyogrio.set_gdal_config_options(GDAL_LOCKDOWN)
    # pyogrio reads numbers back as int and "" back as "" or None: compare as text.
    got = {k: pyogrio.get_gdal_config_option(k) for k in GDAL_LOCKDOWN}
    wrong = {k: got[k] for k, v in GDAL_LOCKDOWN.items() if str(got[k] if got[k] is not None else "") != v}
    if wrong:
        raise RuntimeError(f"GDAL did not take the upload lockdown options: {wrong}")


def _format_of(path: Path, label: str) -> str:
    suffix = Path(label).suffix.lower() or path.suffix.lower()
    if suffix in (".geojson", ".json"):
        return "geojson"
    if suffix == ".gpkg":
        return "gpkg"
    if suffix == ".zip":
        return "shp"
    if suffix == ".shp":
        raise GeogridError(f"{label}: a Shapefile is several files: upload it as a .zip holding the .shp, "
                           ".shx, .dbf and .prj")
    raise GeogridError(f"{label}: unsupported file type {suffix!r}; use .geojson, .json, .gpkg or a zipped Shapefile (.zip)")


def _crs_name(crs) -> str:
    if crs is None:
        return "none"
    c = CRS.from_user_input(crs)
    auth = c.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else c.name


def _load_geojson(path: Path, label: str) -> dict:
    """The file as a GeoJSON FeatureCollection or Feature, or a 422 naming the file."""
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise GeogridError(f"{label}: not valid JSON (truncated or corrupt?): {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") not in ("FeatureCollection", "Feature"):
        raise GeogridError(f"{label}: not a GeoJSON FeatureCollection or Feature")
    if doc["type"] == "FeatureCollection" and not isinstance(doc.get("features"), list):
        raise GeogridError(f"{label}: a FeatureCollection needs a 'features' list")
    return doc


def _features_of(doc: dict) -> list:
    return [doc] if doc["type"] == "Feature" else doc["features"]


def _geojson_crs_members(doc: dict, label: str) -> set[str]:
    """Legacy GeoJSON (2008) put ``crs`` on the collection or on single features; only
    one CRS per file makes sense, so a file whose features disagree must be refused."""
    found = set()
    members = [doc.get("crs")] + [f.get("crs") for f in _features_of(doc) if isinstance(f, dict) and f is not doc]
    for member in members:
        if member is None:
            continue
        if not isinstance(member, dict) or not isinstance(member.get("properties", {}), dict):
            raise GeogridError(f"{label}: malformed 'crs' member {json.dumps(member)[:80]}: "
                               "RFC 7946 GeoJSON has none (WGS84); legacy files use "
                               '{"type": "name", "properties": {"name": "EPSG:..."}}')
        found.add(json.dumps(member.get("properties", member), sort_keys=True))
    return found


def _geojson_crs(doc: dict, label: str) -> CRS | None:
    """The CRS a legacy ``crs`` member names (``name`` or ``EPSG`` type); a ``link`` (a URL
    or a file) is refused: geogrid never fetches what a file points at."""
    members = _geojson_crs_members(doc, label)
    if len(members) > 1:
        raise GeogridError(f"{label}: mixed CRS: features declare different 'crs' members; "
                           "reproject them to one CRS first")
    if not members:
        return None
    props = json.loads(members.pop())
    named = props.get("name") if "name" in props else (f"EPSG:{props['code']}" if "code" in props else None)
    if not isinstance(named, str) or re.search(r"[/\\]|://", named.replace("urn:ogc:def:crs:", "")):
        raise GeogridError(f"{label}: unsupported 'crs' member {json.dumps(props)[:80]}: name the CRS, "
                           'e.g. {"type": "name", "properties": {"name": "EPSG:4490"}}')
    try:
        found = CRS.from_user_input(named)
    except CRSError:
        raise GeogridError(f"{label}: unknown CRS {named[:80]!r} in the 'crs' member") from None
    # GeoJSON positions are lon, lat whatever the axis order of the named CRS (as in GDAL):
    # CRS84 and EPSG:4326 are the same thing here.
    wgs84 = CRS.from_epsg(4326)
    return wgs84 if found.equals(wgs84, ignore_axis_order=True) else found


def _read_geojson(path: Path, label: str, layer: str | None) -> tuple[gpd.GeoDataFrame, str]:
    doc = _load_geojson(path, label)
    crs = _geojson_crs(doc, label)
    name = doc.get("name") if isinstance(doc.get("name"), str) and doc.get("name") else Path(label).stem
    if layer is not None and layer != name:
        raise GeogridError(f"{label}: no layer {layer!r}; layers: {name}")
    features = _features_of(doc)
    if not features:
        raise GeogridError(f"{label}: the file has no features")
    bad = [i for i, f in enumerate(features) if not isinstance(f, dict)
           or not isinstance(f.get("properties") or {}, dict)]
    if bad:
        raise GeogridError(f"{label}: feature {bad[0]} is not a GeoJSON Feature with a 'properties' object")
    geoms = parse_geojson_geometries([f.get("geometry") for f in features], label=label)
    data = pd.DataFrame.from_records([f.get("properties") or {} for f in features], index=range(len(features)))
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, index=data.index), crs=crs), name


def _check_gpkg(path: Path, label: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(100)
    if not head.startswith(b"SQLite format 3\x00") or len(head) < 100:
        raise GeogridError(f"{label}: cannot read as gpkg: not a GeoPackage (no SQLite header; truncated or "
                           "corrupt, or another format named .gpkg?)")
    if head[68:72] not in GPKG_APPLICATION_IDS:
        raise GeogridError(f"{label}: cannot read as gpkg: an SQLite database that is not a GeoPackage "
                           "(its application_id is not GPKG)")


def _unsafe_member(name: str) -> str | None:
    """Why a zip member name cannot be extracted, or None."""
    parts = name.split("/")
    if "\\" in name or "\x00" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute or non-portable path"
    if ".." in parts:
        return "a path that climbs out of the archive ('..')"
    return None


def _member_kind(name: str) -> str:
    lower = name.lower()
    for ext in SHAPEFILE_EXTRAS:
        if lower.endswith(ext):
            return ext
    return os.path.splitext(lower)[1]


def _extract_shapefiles(path: Path, label: str, into: Path) -> dict[str, Path]:
    """Check a zipped Shapefile and extract its parts into ``into`` under fixed names;
    returns {layer name: path of its .shp}. Nothing in the archive chooses a path here."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04":
        raise GeogridError(f"{label}: cannot read as shp: not a zip archive (truncated or corrupt, or another "
                           "format named .zip?)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise GeogridError(f"{label}: cannot read as shp: broken zip archive ({exc})") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise GeogridError(f"{label}: {len(members)} files in the archive, more than {MAX_ZIP_MEMBERS}")
        groups: dict[str, dict[str, zipfile.ZipInfo]] = {}
        stems: dict[str, str] = {}
        declared = 0
        for m in members:
            why = _unsafe_member(m.filename)
            if why:
                raise GeogridError(f"{label}: refused: member {m.filename[:100]!r} has {why}")
            if m.flag_bits & 0x1:
                raise GeogridError(f"{label}: refused: member {m.filename[:100]!r} is encrypted")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise GeogridError(f"{label}: refused: member {m.filename[:100]!r} is a symbolic link")
            base = m.filename.rsplit("/", 1)[-1]
            kind = _member_kind(base)
            if kind in SHAPEFILE_EXTRAS or base.startswith("._") or m.filename.startswith("__MACOSX/"):
                continue
            if kind not in SHAPEFILE_PARTS:
                nested = kind in (".zip", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2", ".xz", ".kmz")
                raise GeogridError(f"{label}: refused: {'nested archive' if nested else 'unexpected file'} "
                                   f"{m.filename[:100]!r}; a zipped Shapefile holds only .shp, .shx, .dbf, .prj "
                                   "and .cpg files (and spatial indexes)")
            stem = base[: -len(kind)]
            key = stem.lower()
            if kind in groups.setdefault(key, {}):
                raise GeogridError(f"{label}: refused: two {kind} files named {stem!r} in the archive")
            groups[key][kind] = m
            if kind == ".shp":
                stems[key] = stem
            declared += m.file_size
        if declared > MAX_UNZIPPED_BYTES:
            raise GeogridError(f"{label}: refused: {declared:,} bytes once unzipped, more than the "
                               f"{MAX_UNZIPPED_BYTES:,} byte limit", status=413)
        if not stems:
            raise GeogridError(f"{label}: cannot read as shp: no .shp file in the archive")
        layers: dict[str, Path] = {}
        budget = MAX_UNZIPPED_BYTES
        for n, key in enumerate(sorted(stems, key=lambda k: stems[k])):
            parts = groups[key]
            missing = [ext for ext in (".shx", ".dbf") if ext not in parts]
            if missing:
                raise GeogridError(f"{label}: {stems[key]}.shp needs {' and '.join(stems[key] + e for e in missing)} "
                                   "in the archive")
            for kind, m in parts.items():
                target = into / f"layer{n}{kind}"
                budget = _extract_member(zf, m, target, budget, label)
                _check_part(target, kind, m.filename, label)
            layers[stems[key]] = into / f"layer{n}.shp"
    return layers


def _extract_member(zf: zipfile.ZipFile, m: zipfile.ZipInfo, target: Path, budget: int, label: str) -> int:
    """Copy one member, counting the bytes really inflated (a header can lie about them)."""
    limit = min(budget, m.file_size)
    written = 0
    try:
        with zf.open(m) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise GeogridError(f"{label}: refused: member {m.filename[:100]!r} inflates beyond its declared "
                                       f"size or the {MAX_UNZIPPED_BYTES:,} byte limit", status=413)
                dst.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as exc:
        raise GeogridError(f"{label}: cannot read as shp: member {m.filename[:100]!r} is broken ({exc})") from None
    return budget - written


def _check_part(target: Path, kind: str, name: str, label: str) -> None:
    with open(target, "rb") as fh:
        head = fh.read(MAX_TEXT_PART_BYTES + 1)
    if any(head.startswith(magic) for magic in ARCHIVE_MAGIC):
        raise GeogridError(f"{label}: refused: {name[:100]!r} is a nested archive")
    if kind in (".shp", ".shx") and not head.startswith(SHAPEFILE_MAGIC):
        raise GeogridError(f"{label}: cannot read as shp: {name[:100]!r} is not a Shapefile {kind} (wrong magic "
                           "number; truncated or another format?)")
    if kind == ".dbf" and (not head or head[0] not in DBF_VERSIONS):
        raise GeogridError(f"{label}: cannot read as shp: {name[:100]!r} is not a dBase table")
    if kind in (".prj", ".cpg"):
        if len(head) > MAX_TEXT_PART_BYTES or b"\x00" in head:
            raise GeogridError(f"{label}: refused: {name[:100]!r} is not a short text file")
        try:
            head.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise GeogridError(f"{label}: refused: {name[:100]!r} is not text") from None


def _scrub(message: str, label: str, *paths: str) -> str:
    """GDAL's message with every server path replaced by the user's file name."""
    for p in sorted({p for p in paths if p}, key=len, reverse=True):
        message = message.replace(p, label)
    message = re.sub(re.escape(tempfile.gettempdir().rstrip("/")) + r"/[^\s'\"),;]*", label, message)
    return message[:500]


@contextlib.contextmanager
def _private_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="geogrid-read-"))  # mode 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_features(path: Path, *, layer: str | None = None, crs: str | None = None,
                  fields: dict[str, str] | None = None, name: str | None = None) -> ReadResult:
    """Read a boundary file into records and EPSG:4326 geometries.

    ``fields`` maps geogrid's property names (code, name, parent, level, layer, households,
    population, land_use, notes) to the file's column names; ``"-"`` ignores that property
    (e.g. a parent column that points outside the database). ``crs`` declares the CRS of a
    file that has none. ``name`` is how messages call the file (an upload's own name); its
    extension is the declared format, and the only one the file is opened as.
    """
    path = Path(path)
    label = name or path.name
    fmt = _format_of(path, label)
    if not path.is_file():
        raise GeogridError(f"{label}: no such file")
    with _private_dir() as private:
        if fmt == "geojson":
            frame, layer_name = _read_geojson(path, label, layer)
        else:
            frame, layer_name = _read_with_gdal(path, fmt, label, layer, private)
    if len(frame) == 0:
        raise GeogridError(f"{label}: the file has no features" + (f" (layer {layer_name})" if layer_name else ""))

    declared = None
    if crs:
        try:
            declared = CRS.from_user_input(crs)
        except CRSError as exc:
            raise GeogridError(f"unknown CRS {crs!r}: {exc}") from None
    if frame.crs is None:
        if declared is None and fmt != "geojson":
            raise GeogridError(f"{label}: the file has no CRS (a Shapefile without .prj?); "
                               "declare it, e.g. crs=EPSG:4490 or crs=EPSG:4549")
        frame = frame.set_crs(declared or "EPSG:4326")
    elif declared is not None and not CRS.from_user_input(frame.crs).equals(declared, ignore_axis_order=True):
        raise GeogridError(f"{label}: the file declares {_crs_name(frame.crs)} but crs={crs} was given")
    source_crs = _crs_name(frame.crs)
    if source_crs != "EPSG:4326":
        try:
            frame = frame.to_crs(4326)
        except Exception as exc:
            raise GeogridError(f"{label}: cannot reproject from {source_crs}: {exc}") from None

    mapping = dict(fields or {})
    for ours, candidates in ALIASES.items():
        mapping.setdefault(ours, next((c for c in candidates if c in frame.columns), ours))
    missing = [src for ours, src in (fields or {}).items() if src != "-" and src not in frame.columns]
    if missing:
        raise GeogridError(f"{label}: no column {', '.join(missing)}; columns: {', '.join(map(str, frame.columns))}")
    wanted = ("code", "name", "level", "layer", "parent", "households", "population", "land_use", "notes")
    columns = {ours: mapping.get(ours, ours) for ours in wanted}
    data = frame.drop(columns="geometry")
    records = [
        {ours: row.get(src) for ours, src in columns.items() if src in data.columns}
        for row in data.to_dict("records")
    ]
    return ReadResult(records, list(frame.geometry.array), source_crs, layer_name)


def _read_with_gdal(path: Path, fmt: str, label: str, layer: str | None, private: Path) -> tuple[gpd.GeoDataFrame, str]:
    """A GeoPackage or zipped Shapefile through GDAL, by its own driver only (see the module)."""
    lock_down_gdal()
    if fmt == "gpkg":
        _check_gpkg(path, label)
        staged = private / "upload.gpkg"
        staged.symlink_to(path.resolve())  # a fixed name: "GPKG:<name>" must hold no ':' of the caller's
        try:
            available = [str(n) for n, _ in pyogrio.list_layers(f"GPKG:{staged}")]
        except Exception as exc:
            raise GeogridError(f"{label}: cannot read as gpkg (truncated or corrupt?): "
                               f"{_scrub(str(exc), label, f'GPKG:{staged}', str(staged), str(path), str(path.resolve()))}") from None
        sources = {n: f"GPKG:{staged}" for n in available}
    else:
        shapefiles = _extract_shapefiles(path, label, private)
        available = list(shapefiles)
        sources = {n: str(p) for n, p in shapefiles.items()}
    scrub_paths = [*sources.values(), str(private), str(path), str(path.resolve())]

    def gdal(what, *args, **kwargs):
        try:
            return what(*args, **kwargs)
        except Exception as exc:
            raise GeogridError(f"{label}: cannot read as {fmt} (truncated or corrupt?): "
                               f"{_scrub(str(exc), label, *scrub_paths)}") from None

    if not available:
        raise GeogridError(f"{label}: no layers found")
    if layer is None and len(available) > 1:
        crss = {n: _crs_name(gdal(pyogrio.read_info, sources[n], layer=n if fmt == "gpkg" else None).get("crs"))
                for n in available}
        if len(set(crss.values())) > 1:
            detail = ", ".join(f"{k}: {v}" for k, v in crss.items())
            raise GeogridError(f"{label}: mixed CRS across layers ({detail}); import one layer at a time")
        raise GeogridError(f"{label} has {len(available)} layers ({', '.join(available)}): "
                           "choose one with source_layer= (--source-layer on the command line)")
    if layer is not None and layer not in available:
        raise GeogridError(f"{label}: no layer {layer!r}; layers: {', '.join(available)}")
    chosen = layer or available[0]
    frame = gdal(pyogrio.read_dataframe, sources[chosen], layer=chosen if fmt == "gpkg" else None)
    if not isinstance(frame, gpd.GeoDataFrame) or "geometry" not in frame.columns:
        raise GeogridError(f"{label}: no geometry column" + (f" in layer {layer!r}" if layer else ""))
    return frame, chosen


INCIDENT_COLUMNS = ("category", "lon", "lat", "crs", "description", "channel", "occurred_at", "media_urls",
                    "idempotency_key", "state")


def read_incident_rows(path: Path, *, name: str | None = None) -> list[dict]:
    """Historical incidents from a CSV with lon and lat columns (UTF-8, with or without
    BOM) or a GeoJSON file of points; returns plain records for incidents.import_incidents.
    Read in Python only (no GDAL), each by its declared format: a CSV must be UTF-8 text."""
    import csv

    path = Path(path)
    label = name or path.name
    suffix = Path(label).suffix.lower() or path.suffix.lower()
    if suffix == ".csv":
        data = path.read_bytes()
        if b"\x00" in data[:65536] or any(data.startswith(magic) for magic in (*ARCHIVE_MAGIC, b"SQLite format 3")):
            raise GeogridError(f"{label}: not a UTF-8 CSV file: binary content")
        try:
            rows = list(csv.DictReader(data.decode("utf-8-sig").splitlines()))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise GeogridError(f"{label}: not a UTF-8 CSV file: {exc}") from None
        if not rows:
            raise GeogridError(f"{label}: no rows")
        missing = [c for c in ("category", "lon", "lat", "description") if c not in rows[0]]
        if missing:
            raise GeogridError(f"{label}: missing columns {', '.join(missing)}; columns: {', '.join(map(str, rows[0]))}"[:500])
        out = []
        for row in rows:
            record = {k: (row.get(k) or None) for k in INCIDENT_COLUMNS}
            for k in ("lon", "lat"):
                try:
                    record[k] = float(record[k]) if record[k] is not None else None
                except ValueError:
                    pass  # left as text: the validation names the row
            record["media_urls"] = [u for u in (row.get("media_urls") or "").split() if u]
            out.append(record)
        return out
    if suffix in (".geojson", ".json"):
        doc = _load_geojson(path, label)
        _geojson_crs(doc, label)
        out = []
        for i, f in enumerate(_features_of(doc)):
            geom, props = (f.get("geometry"), f.get("properties")) if isinstance(f, dict) else (None, None)
            if not isinstance(f, dict) or not isinstance(geom or {}, dict) or not isinstance(props or {}, dict):
                raise GeogridError(f"{label}: feature {i} is not a GeoJSON Feature with a geometry and properties object")
            geom, props = geom or {}, props or {}
            coords = geom.get("coordinates") if geom.get("type") == "Point" else None
            lon, lat = (coords + [None, None])[:2] if isinstance(coords, list) else (None, None)
            out.append({**{k: props.get(k) for k in INCIDENT_COLUMNS}, "lon": lon, "lat": lat,
                        "media_urls": props.get("media_urls") or []})
        if not out:
            raise GeogridError(f"{label}: the file has no features")
        return out
    raise GeogridError(f"{label}: unsupported file type {suffix!r}; use .csv (lon, lat columns) or .geojson")


def write_features(frame: gpd.GeoDataFrame, fmt: str, out: Path, *, layer: str = "areas") -> Path:
    """Write areas as GeoJSON (RFC 7946), GeoPackage or a zipped Shapefile (UTF-8)."""
    if fmt not in FORMATS:
        raise GeogridError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    try:
        _write(frame, fmt, out, layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.FeatureError, OSError) as exc:
        raise GeogridError(f"cannot write {out}: {str(exc).splitlines()[0][:300]}") from None
    return out


def stream_features(frame: gpd.GeoDataFrame, stream) -> None:
    """Write areas as GeoJSON to a binary ``stream`` (standard output): GDAL writes a
    file, which is then copied, since its GeoJSON driver cannot write to a pipe."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "areas.geojson"
        write_features(frame, "geojson", path)
        with path.open("rb") as f:
            shutil.copyfileobj(f, stream)
        stream.flush()


def _write(frame: gpd.GeoDataFrame, fmt: str, out: Path, layer: str) -> None:
    if fmt == "geojson":
        pyogrio.write_dataframe(frame, out, driver="GeoJSON", layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": 7})
    elif fmt == "gpkg":
        pyogrio.write_dataframe(frame, out, driver="GPKG", layer=layer)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            shp = Path(tmp) / f"{layer}.shp"
            pyogrio.write_dataframe(frame, shp, driver="ESRI Shapefile", encoding="UTF-8")
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
                for part in sorted(Path(tmp).iterdir()):
                    zf.write(part, part.name)


def upload_name(filename: str | None, default: str) -> str:
    """How messages call an upload: the base name the client gave (no folders, no control
    characters, bounded), or ``default``."""
    base = re.split(r"[/\\]", filename or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip()[:200]
    return base or default


def save_upload(stream, suffix: str, limit: int) -> Path:
    """Copy an uploaded file into a private temporary directory (mode 0700) under a fixed
    name, refusing more than ``limit`` bytes (413). :func:`remove` deletes the directory."""
    folder = Path(tempfile.mkdtemp(prefix="geogrid-upload-"))
    target = folder / ("upload" + (suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix or "") else ""))
    size = 0
    with open(target, "wb") as out:
        while chunk := stream.read(1 << 20):
            size += len(chunk)
            if size > limit:
                out.close()
                remove(target)
                raise GeogridError(f"upload larger than the {limit:,} byte limit", status=413)
            out.write(chunk)
    return target


def remove(path: Path) -> None:
    """Delete a saved upload (its private directory) or an export's directory."""
    path = Path(path)
    if path.parent.name.startswith("geogrid-upload-"):
        path = path.parent
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
