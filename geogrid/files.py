"""Reading and writing boundary files: GeoJSON, GeoPackage and zipped Shapefile (pyogrio).

Reading gives plain records plus lon/lat geometries, whatever CRS the file declares; the
records then go through :func:`geogrid.areas.import_areas` like any other input.

A GeoJSON file without a ``crs`` member is WGS84 lon/lat (RFC 7946). A GeoPackage layer
or a Shapefile without a CRS is refused unless the caller declares one: guessing a CRS
is how boundaries end up hundreds of metres off.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pyogrio
from pyproj import CRS
from pyproj.exceptions import CRSError

from geogrid.errors import GeogridError

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


def _format_of(path: Path, label: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        return "geojson"
    if suffix == ".gpkg":
        return "gpkg"
    if suffix in (".zip", ".shp"):
        return "shp"
    raise GeogridError(f"{label}: unsupported file type {suffix!r}; use .geojson, .json, .gpkg or a zipped Shapefile (.zip)")


def _crs_name(crs) -> str:
    if crs is None:
        return "none"
    c = CRS.from_user_input(crs)
    auth = c.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else c.name


def _geojson_crs_members(path: Path, label: str) -> set[str]:
    """Legacy GeoJSON (2008) put ``crs`` on the collection or on single features; GDAL
    honours only the first, so a file whose features disagree must be refused here."""
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise GeogridError(f"{label}: not valid JSON (truncated or corrupt?): {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") not in ("FeatureCollection", "Feature"):
        raise GeogridError(f"{label}: not a GeoJSON FeatureCollection or Feature")
    found = set()
    features = doc.get("features") if isinstance(doc.get("features"), list) else []
    for member in [doc.get("crs")] + [f.get("crs") for f in features if isinstance(f, dict)]:
        if member is None:
            continue
        if not isinstance(member, dict) or not isinstance(member.get("properties", {}), dict):
            raise GeogridError(f"{label}: malformed 'crs' member {json.dumps(member)[:80]}: "
                               "RFC 7946 GeoJSON has none (WGS84); legacy files use "
                               '{"type": "name", "properties": {"name": "EPSG:..."}}')
        found.add(json.dumps(member.get("properties", member), sort_keys=True))
    return found


def read_features(path: Path, *, layer: str | None = None, crs: str | None = None,
                  fields: dict[str, str] | None = None, name: str | None = None) -> ReadResult:
    """Read a boundary file into records and EPSG:4326 geometries.

    ``fields`` maps geogrid's property names (code, name, parent, level, layer, households,
    population, land_use, notes) to the file's column names; ``"-"`` ignores that property
    (e.g. a parent column that points outside the database). ``crs`` declares the CRS of a
    file that has none. ``name`` is how messages call the file (an upload's own name).
    """
    path = Path(path)
    label = name or path.name
    fmt = _format_of(path, label)
    source = f"/vsizip/{path}" if path.suffix.lower() == ".zip" else str(path)
    if fmt == "geojson" and len(_geojson_crs_members(path, label)) > 1:
        raise GeogridError(f"{label}: mixed CRS: features declare different 'crs' members; "
                           "reproject them to one CRS first")
    try:
        available = [str(name) for name, _ in pyogrio.list_layers(source)]
    except Exception as exc:
        raise GeogridError(f"{label}: cannot read as {fmt} (truncated or corrupt?): {exc}") from None
    if not available:
        raise GeogridError(f"{label}: no layers found")
    if layer is None and len(available) > 1:
        crss = {name: _crs_name(pyogrio.read_info(source, layer=name).get("crs")) for name in available}
        if len(set(crss.values())) > 1:
            detail = ", ".join(f"{k}: {v}" for k, v in crss.items())
            raise GeogridError(f"{label}: mixed CRS across layers ({detail}); import one layer at a time")
        raise GeogridError(f"{label} has {len(available)} layers ({', '.join(available)}): "
                           "choose one with source_layer= (--source-layer on the command line)")
    if layer is not None and layer not in available:
        raise GeogridError(f"{label}: no layer {layer!r}; layers: {', '.join(available)}")
    try:
        frame = pyogrio.read_dataframe(source, layer=layer or available[0])
    except Exception as exc:
        raise GeogridError(f"{label}: cannot read as {fmt} (truncated or corrupt?): {exc}") from None
    if not isinstance(frame, gpd.GeoDataFrame) or "geometry" not in frame.columns:
        raise GeogridError(f"{label}: no geometry column" + (f" in layer {layer!r}" if layer else ""))

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
    return ReadResult(records, list(frame.geometry.array), source_crs, layer or available[0])


INCIDENT_COLUMNS = ("category", "lon", "lat", "crs", "description", "channel", "occurred_at", "media_urls",
                    "idempotency_key", "state")


def read_incident_rows(path: Path, *, name: str | None = None) -> list[dict]:
    """Historical incidents from a CSV with lon and lat columns (UTF-8, with or without
    BOM) or a GeoJSON file of points; returns plain records for incidents.import_incidents."""
    import csv

    path = Path(path)
    label = name or path.name
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                rows = list(csv.DictReader(fh))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise GeogridError(f"{label}: not a UTF-8 CSV file: {exc}") from None
        if not rows:
            raise GeogridError(f"{label}: no rows")
        missing = [c for c in ("category", "lon", "lat", "description") if c not in rows[0]]
        if missing:
            raise GeogridError(f"{label}: missing columns {', '.join(missing)}; columns: {', '.join(rows[0])}")
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
        _geojson_crs_members(path, label)
        doc = json.loads(path.read_bytes())
        out = []
        for f in doc.get("features") or []:
            geom = (f or {}).get("geometry") or {}
            props = (f or {}).get("properties") or {}
            lon, lat = (geom.get("coordinates") or [None, None])[:2] if geom.get("type") == "Point" else (None, None)
            out.append({**{k: props.get(k) for k in INCIDENT_COLUMNS}, "lon": lon, "lat": lat,
                        "media_urls": props.get("media_urls") or []})
        if not out:
            raise GeogridError(f"{label}: no features")
        return out
    raise GeogridError(f"{label}: unsupported file type {suffix!r}; use .csv (lon, lat columns) or .geojson")


def write_features(frame: gpd.GeoDataFrame, fmt: str, out: Path, *, layer: str = "areas") -> Path:
    """Write areas as GeoJSON (RFC 7946), GeoPackage or a zipped Shapefile (UTF-8)."""
    if fmt not in FORMATS:
        raise GeogridError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
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
    return out


def save_upload(stream, suffix: str, limit: int) -> Path:
    """Copy an uploaded file to a temporary path, refusing more than ``limit`` bytes (413)."""
    tmp = tempfile.NamedTemporaryFile(delete=False, suffix=suffix)
    size = 0
    with tmp:
        while chunk := stream.read(1 << 20):
            size += len(chunk)
            if size > limit:
                Path(tmp.name).unlink(missing_ok=True)
                raise GeogridError(f"upload larger than the {limit:,} byte limit", status=413)
            tmp.write(chunk)
    return Path(tmp.name)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if Path(path).is_dir() else Path(path).unlink(missing_ok=True)
