"""The household register: ``geogrid households import`` (with a progress bar),
``rederive`` (grids derived again for the whole register) and ``counts`` (per grid)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geogrid.cli.common import ensure_database, run
from geogrid.core.settings import get_settings

app = typer.Typer(help="The household register: import, grid derivation, counts.", no_args_is_help=True)


@app.command("import")
def households_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The register: .xlsx or .csv, one row a resident")],
    format: Annotated[str | None, typer.Option("--format", help="Declared format: csv or xlsx (default: the extension)")] = None,
    buildings: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Buildings to import first (.csv or .xlsx)")] = None,
    buildings_format: Annotated[str | None, typer.Option(help="Declared format of --buildings")] = None,
) -> None:
    """Import households and residents, all or nothing, with a progress bar; prints the report."""
    from geogrid.db import engine as db
    from geogrid.people import register_import

    def go():
        engine = ensure_database()
        with typer.progressbar(length=100, label=f"importing {file.name}") as bar:
            shown = [0]

            def progress(done: int, total: int) -> None:
                pct = int(100 * done / total) if total else 100
                if pct > shown[0]:
                    bar.update(pct - shown[0])
                    shown[0] = pct

            with db.transaction(engine) as session:
                return register_import.import_register(session, file, get_settings(), fmt=format, buildings=buildings,
                                                       buildings_fmt=buildings_format, progress=progress)

    out = run(go)
    typer.echo(f"imported {out['households']} households, {out['residents']} residents, {out['tags']} tags"
               + (f", {out['buildings']} buildings" if out["buildings"] else "")
               + (f"; {out['replaced']} households replaced" if out["replaced"] else ""))
    typer.echo(f"grids assigned: {out['grids_assigned']}; households outside every grid: {out['outside_grids']}")


@app.command("rederive")
def households_rederive() -> None:
    """Derive every live household's grid again from the current boundaries (history kept)."""
    from geogrid.db import engine as db
    from geogrid.people import households

    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            return households.rederive(session, None, "redraw")

    out = run(go)
    typer.echo(f"checked {out['checked']} households: {out['changed']} changed grid, {out['outside']} outside every grid")


@app.command("counts")
def households_counts(area: Annotated[str, typer.Argument(help="Area code")]) -> None:
    """Households and residents per comprehensive grid under AREA (register, else typed)."""
    from geogrid.db import engine as db
    from geogrid.people import households

    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            return households.grid_sizes(session, area)

    for g in run(go):
        typer.echo(f"{g['code']}\t{g['name']}\t{g['households']}\t{g['population']}\t{g['source']}")
