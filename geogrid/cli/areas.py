"""Areas in and out: ``geogrid import``, ``geogrid export`` and ``geogrid locate``.
"""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from geogrid.areas import lookup
from geogrid.cli.common import aware, ensure_database, run
from geogrid.core import jsonenc, timeutil
from geogrid.core.errors import GeogridError
from geogrid.core.settings import get_settings

app = typer.Typer()


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".geojson/.json, .gpkg or zipped Shapefile")],
    layer: Annotated[Optional[str], typer.Option(help="Layer of every feature (default: the file's layer column, else admin)")] = None,
    level: Annotated[Optional[str], typer.Option(help="Level of every feature (default: the file's level column)")] = None,
    parent: Annotated[Optional[str], typer.Option(help="Parent code for features that name none")] = None,
    crs: Annotated[Optional[str], typer.Option(help="CRS of a file that declares none, e.g. EPSG:4490")] = None,
    source_layer: Annotated[Optional[str], typer.Option(help="Layer inside a multi-layer file")] = None,
    code_field: Annotated[Optional[str], typer.Option(help="Column holding the code")] = None,
    name_field: Annotated[Optional[str], typer.Option(help="Column holding the name")] = None,
    parent_field: Annotated[Optional[str], typer.Option(help="Column holding the parent code")] = None,
    repair: Annotated[bool, typer.Option(help="Mend invalid polygons instead of rejecting them")] = False,
    dry_run: Annotated[bool, typer.Option(help="Validate only; write nothing")] = False,
    max_spill: Annotated[Optional[float], typer.Option(
        help="Share of a feature's area allowed outside its parent (default GEOGRID_MAX_SPILL_RATIO)")] = None,
    valid_from: Annotated[Optional[datetime], typer.Option(
        help="Boundaries in force since this date (initial loads; default now)")] = None,
) -> None:
    """Import areas or grids from a file, all or nothing; prints a report."""
    from geogrid.areas import importing
    from geogrid.db import engine as db
    from geogrid.io import files

    def go():
        engine = ensure_database()
        fields = {k: v for k, v in (("code", code_field), ("name", name_field), ("parent", parent_field)) if v}
        read = files.read_features(file, layer=source_layer, crs=crs, fields=fields)
        with db.transaction(engine) as session:
            report = importing.import_areas(session, read.records, read.geoms, get_settings(),
                                        overrides={"layer": layer, "level": level}, defaults={"parent": parent},
                                        repair=repair, dry_run=dry_run, note=f"import {file.name}",
                                        max_spill_ratio=max_spill, valid_from=aware(valid_from))
        verb = "would import" if dry_run else "imported"
        typer.echo(f"{verb} {report.imported} features from {file.name} ({read.source_crs}): "
                   + ", ".join(f"{n} {k}" for k, n in report.by_level.items()))
        for item in report.repaired:
            typer.echo(f"  repaired: feature {item['index']} ({item['code']})")
        for item in report.generated_codes:
            typer.echo(f"  code generated: feature {item['index']} -> {item['code']}")
        for warning in report.warnings:
            typer.echo(f"  warning: {warning.get('code')}: {warning['message']}")
        for item in report.skipped:
            typer.echo(f"  skipped: feature {item['index']} ({item['code']}): {item['reason']}")

    run(go)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file; - for standard output (GeoJSON only)")],
    format: Annotated[str, typer.Option(help="geojson, gpkg or shp (zipped)")] = "geojson",
    layer: Annotated[Optional[str], typer.Option()] = None,
    level: Annotated[Optional[str], typer.Option()] = None,
    parent: Annotated[Optional[str], typer.Option()] = None,
    code_prefix: Annotated[Optional[str], typer.Option()] = None,
    with_notes: Annotated[bool, typer.Option(help="Include internal notes")] = False,
) -> None:
    """Export current areas to a file."""
    from geogrid.db import engine as db
    from geogrid.io import files


    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            frame = lookup.frame(session, lookup.AreaFilter(layer=layer, level=level, parent=parent,
                                                          code_prefix=code_prefix), with_notes=with_notes)
        if str(out) == "-":
            if format != "geojson":
                raise GeogridError(f"only geojson can be written to standard output, not {format}")
            files.stream_features(frame, sys.stdout.buffer)
            typer.echo(f"wrote {len(frame)} areas", err=True)
        else:
            files.write_features(frame, format, out)
            typer.echo(f"wrote {len(frame)} areas to {out}")

    run(go)


@app.command("locate")
def locate(lon: float, lat: float, lang: str = "zh") -> None:
    """Print every area containing a point (like GET /api/locate)."""

    from geogrid.db import engine as db


    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            found = lookup.locate(session, lon, lat, at=None, day=timeutil.local_today(get_settings()), lang=lang)
        typer.echo(jsonenc.dumps(found, indent=2))

    run(go)
