"""Incidents: ``geogrid incidents import`` (historical cases), ``escalate-overdue`` and
``add-request-type`` (a county's own request type).
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


@app.command("add-request-type")
def incidents_add_request_type(
    key: Annotated[str, typer.Argument(help="Key, e.g. praise")],
    name_zh: Annotated[str, typer.Argument(help="Chinese name, e.g. 表扬")],
    name_en: Annotated[str, typer.Argument(help="English name")],
    rank: Annotated[int, typer.Option(help="Order in lists")] = 100,
) -> None:
    """Add a request type beside 咨询, 意见建议, 投诉 (audited; refused if the key exists)."""
    from geogrid.db import engine as db
    from geogrid.incidents import categories

    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            return categories.create_request_type(session, {"key": key, "name_zh": name_zh, "name_en": name_en,
                                                            "rank": rank})

    out = run(go)
    typer.echo(f"added request type {out['key']} ({out['name_zh']} / {out['name_en']})")
