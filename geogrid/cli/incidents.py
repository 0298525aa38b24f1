"""Incidents: ``geogrid incidents import`` (historical cases) and ``escalate-overdue``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geogrid.cli.common import ensure_database, run
from geogrid.core.settings import get_settings
from geogrid.incidents import workflow

app = typer.Typer(help="Incidents: bulk import, overdue escalation.", no_args_is_help=True)


@app.command("import")
def incidents_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".csv with lon,lat columns or .geojson")],
) -> None:
    """Import historical incidents, all or nothing, with a progress bar."""
    from geogrid.db import engine as db
    from geogrid.incidents import bulk
    from geogrid.io import files

    def go():
        engine = ensure_database()
        records = files.read_incident_rows(file)
        with typer.progressbar(length=len(records), label=f"routing {len(records)} incidents") as bar:
            with db.transaction(engine) as session:
                return bulk.import_incidents(session, records, get_settings(), progress=bar.update)

    out = run(go)
    typer.echo(f"imported {out['imported']} incidents: " + ", ".join(f"{n} {k}" for k, n in out["by_route"].items()))


@app.command("escalate-overdue")
def incidents_escalate() -> None:
    """Escalate overdue cases one level (the service also does it every GEOGRID_ESCALATION_INTERVAL_S)."""
    from geogrid.db import engine as db


    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            return workflow.escalate_overdue(session, get_settings())

    done = run(go)
    typer.echo(f"escalated {len(done)} cases" + (": " + ", ".join(done) if done else ""))
