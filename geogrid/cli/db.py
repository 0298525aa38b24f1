"""The database: ``geogrid db up|down|status|migrate``.
"""
from __future__ import annotations

import typer

from geogrid.cli.common import run
from geogrid.core.settings import get_settings

app = typer.Typer(help="The database: a local PostGIS cluster, or GEOGRID_DATABASE_URL.", no_args_is_help=True)


@app.command("up")
def db_up() -> None:
    """Install PostgreSQL/PostGIS if missing, start the local cluster, run migrations (idempotent)."""
    from geogrid.db import cluster
    from geogrid.db import engine as db

    def go():
        settings = get_settings()
        info = cluster.up(settings)
        db.migrate(db.resolve_url(settings))
        what = "started" if info.started else "already running"
        if not info.managed:
            what = "external database (GEOGRID_DATABASE_URL)"
        typer.echo(f"database {what}: {info.masked_url}\nschema at revision {db.current_revision(db.resolve_url(settings))}")

    run(go)


@app.command("down")
def db_down() -> None:
    """Stop the local cluster."""
    from geogrid.db import cluster

    run(lambda: typer.echo("stopped" if cluster.down(get_settings()) else "not running"))


@app.command("status")
def db_status() -> None:
    """Where the database is and whether it runs."""
    from geogrid.db import cluster
    from geogrid.db import engine as db

    def go():
        settings = get_settings()
        info = cluster.status(settings)
        if info.get("running"):
            try:
                info["schema_revision"] = db.current_revision(db.resolve_url(settings))
            except Exception as exc:  # status must report, not fail
                info["schema_revision"] = f"unknown ({exc.__class__.__name__})"
        for key, value in info.items():
            typer.echo(f"{key:>16}: {value}")

    run(go)


@app.command("migrate")
def db_migrate(revision: str = "head") -> None:
    """Run the Alembic migrations up to REVISION."""
    from geogrid.db import engine as db

    def go():
        url = db.resolve_url(get_settings())
        db.migrate(url, revision)
        typer.echo(f"schema at revision {db.current_revision(url)}")

    run(go)
