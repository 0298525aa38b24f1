"""Bulk import from files and export to files."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, File, Query, UploadFile
from fastapi.responses import FileResponse

from api.deps import PLANNER, FilterDep, SessionDep, SettingsDep
from api.schemas.areas import FileImportReport
from geogrid.access import scopes
from geogrid.areas import importing, lookup
from geogrid.core.timeutil import as_instant
from geogrid.io import files

router = APIRouter(prefix="/api", tags=["files"])


@router.post("/import", status_code=201, dependencies=PLANNER, response_model=FileImportReport,
             summary="Import areas or grids from GeoJSON, GeoPackage or zipped Shapefile (all or nothing)")
def import_file(
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=".geojson/.json, .gpkg or a .zip holding a Shapefile")],
    layer: Annotated[str | None, Query(description="Layer of every feature (default: the file's column, else admin)")] = None,
    level: Annotated[str | None, Query(description="Level of every feature (default: the file's level column)")] = None,
    parent: Annotated[str | None, Query(description="Parent code for features that name none")] = None,
    crs: Annotated[str | None, Query(description="CRS of a file that declares none, e.g. EPSG:4490")] = None,
    source_layer: Annotated[str | None, Query(description="Layer inside a multi-layer file")] = None,
    code_field: Annotated[str | None, Query()] = None,
    name_field: Annotated[str | None, Query()] = None,
    parent_field: Annotated[str | None, Query()] = None,
    repair: Annotated[bool, Query(description="Mend invalid polygons instead of rejecting them")] = False,
    dry_run: Annotated[bool, Query(description="Validate only; write nothing")] = False,
    max_spill: Annotated[float | None, Query(ge=0, le=1, description="Share of a feature's area allowed "
                                             "outside its parent (default: the service setting)")] = None,
    valid_from: Annotated[dt.datetime | None, Query(description="Boundaries in force since (initial loads)")] = None,
) -> dict:
    name = files.upload_name(file.filename, "upload.geojson")
    path = files.save_upload(file.file, Path(name).suffix.lower(), settings.max_body_bytes)
    try:
        fields = {k: v for k, v in (("code", code_field), ("name", name_field), ("parent", parent_field)) if v}
        read = files.read_features(path, layer=source_layer, crs=crs, fields=fields, name=name)
    finally:
        files.remove(path)
    report = importing.import_areas(session, read.records, read.geoms, settings,
                                overrides={"layer": layer, "level": level}, defaults={"parent": parent},
                                repair=repair, dry_run=dry_run, note=f"import {name}",
                                max_spill_ratio=max_spill, valid_from=as_instant(valid_from, settings))
    session.commit()
    return {**report.as_dict(), "source_crs": read.source_crs, "source_layer": read.layer}


@router.get("/export", summary="Export areas as GeoJSON, GeoPackage or zipped Shapefile",
            response_class=FileResponse)
def export_file(session: SessionDep, f: FilterDep, background: BackgroundTasks,
                format: Annotated[Literal["geojson", "gpkg", "shp"], Query()] = "geojson") -> FileResponse:
    f.published = not scopes.is_staff(session)  # the public exports what was published
    frame = lookup.frame(session, f, with_notes=False)
    out = Path(tempfile.mkdtemp()) / f"geogrid{files.FORMATS[format]}"
    files.write_features(frame, format, out)
    background.add_task(files.remove, out.parent)
    return FileResponse(out, media_type=files.MEDIA_TYPES[format], filename=out.name)
