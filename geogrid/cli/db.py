"""The database: ``geogrid db up|down|start|promote|status|migrate``.
"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from geogrid.cli.common import run
from geogrid.core.settings import get_settings

app = typer.Typer(help="The database: a local PostGIS cluster (with hot standbys on request), or "
                  "GEOGRID_DATABASE_URL.", no_args_is_help=True)


@app.command("up")
def db_up(
    replicas: Annotated[Optional[int], typer.Option(
        "--replicas", min=0, help="Make sure at least N hot standbys (streaming replication) exist and run; "
        "default: start those there are")] = None,
    synchronous: Annotated[Optional[bool], typer.Option(
        "--synchronous/--asynchronous", help="Commits wait until one standby has them (nothing acknowledged "
        "is lost on a failover; each commit waits a round trip) / return at once (as before); default: unchanged",
    )] = None,
) -> None:
    """Install PostgreSQL/PostGIS if missing, start the local cluster, run migrations (idempotent)."""
    from geogrid.db import cluster
    from geogrid.db import engine as db

    def go():
        settings = get_settings()
        info = cluster.up(settings, replicas=replicas, synchronous=synchronous)
        db.migrate(db.resolve_url(settings))
        what = "started" if info.started else "already running"
        if not info.managed:
            what = "external database (GEOGRID_DATABASE_URL)"
        typer.echo(f"database {what}: {info.masked_url}\nschema at revision {db.current_revision(db.resolve_url(settings))}")
        for sb in info.standbys:
            how = (f"created in {sb['seconds']:.1f} s and started" if sb["created"]
                   else "started" if sb["started"] else "already running")
            typer.echo(f"standby {sb['name']} on port {sb['port']}: {how}")
        if info.standbys:
            mode = "synchronous (commits wait for one standby)" if cluster.status(settings).get("synchronous") \
                else "asynchronous"
            typer.echo(f"replication: {mode}")

    run(go)


@app.command("down")
def db_down(only: Annotated[Optional[str], typer.Option(
        "--only", help="Stop only this node: 'primary' or a standby's name (standby1, ...)")] = None) -> None:
    """Stop the local cluster (every node), or one node of it."""
    from geogrid.db import cluster

    def go():
        settings = get_settings()
        stopped = cluster.down(settings, only=only)
        typer.echo(("stopped" if stopped else "not running") + (f": {only}" if only else ""))
        if stopped and only and only != "primary" and cluster.status(settings).get("synchronous"):
            running = [s for s in cluster.standbys(settings) if s["running"]]
            if not running:
                typer.echo("warning: synchronous replication and no standby running: commits wait until one is "
                           "back (geogrid db start NAME)")

    run(go)


@app.command("start")
def db_start(name: Annotated[str, typer.Argument(help="'primary' or a standby's name (standby1, ...)")]) -> None:
    """Start one stopped node of the local cluster again (a standby catches up by itself)."""
    from geogrid.db import cluster

    def go():
        done = cluster.start(get_settings(), name)
        node = done["name"] if done["name"] == name else f"{name} ({done['name']})"
        typer.echo(f"{node} {'started' if done['started'] else 'already running'} on port {done['port']}")

    run(go)


@app.command("promote")
def db_promote(name: Annotated[Optional[str], typer.Argument(
        help="The standby to promote; default: the running one that received the most WAL")] = None) -> None:
    """Make a standby the primary, after the primary stopped (refused while it runs)."""
    from geogrid.db import cluster

    def go():
        done = cluster.promote(get_settings(), name)
        typer.echo(f"promoted {done['promoted']} (port {done['port']}) in {done['seconds']:.1f} s: it is the primary "
                   "now; services on the multi-host URL reconnect to it by themselves")
        if done["standbys"]:
            sync = " (synchronously)" if done["synchronous"] else ""
            typer.echo(f"following it{sync}: {', '.join(done['standbys'])}")
        for other in done.get("diverged", []):
            typer.echo(f"warning: {other} had received more WAL than {done['promoted']} and cannot follow it: stop "
                       f"it, delete its data directory and run `geogrid db up` to copy it afresh")
        typer.echo(f"the old primary (node {done['retired']}) is retired, not rewound (no pg_rewind): its data stays "
                   f"in {done['retired_data_dir']} and geogrid never starts it again. Make fresh standbys from the "
                   "new primary with `geogrid db up --replicas N`; delete that directory once you no longer need it")

    run(go)


@app.command("status")
def db_status() -> None:
    """Where the database is and whether it runs; each standby's replication lag."""
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
        standbys = info.pop("standbys", [])
        for key, value in info.items():
            typer.echo(f"{key:>16}: {value}")
        for sb in standbys:
            typer.echo(f"{sb['name']:>16}: {_standby_line(sb)}")

    run(go)


def _standby_line(sb: dict) -> str:
    """One standby for humans: port, running, replication state, lag, its slot, any error."""
    if not sb["running"]:
        parts = [f"port {sb['port']}, not running"]
    else:
        parts = [f"port {sb['port']}, running", f"{sb['state'] or 'not streaming'}"
                 + (f" ({sb['sync_state']})" if sb["sync_state"] else "")]
        if sb["lag_bytes"] is not None:
            parts.append(f"lag {sb['lag_bytes']} bytes")
        if sb["replay_lag_s"] is not None:
            parts.append(f"replay lag {sb['replay_lag_s']:.3f} s")
        if sb.get("replay_lsn"):
            parts.append(f"replayed up to {sb['replay_lsn']}")
    if sb.get("slot"):
        left = sb.get("wal_left_bytes")
        parts.append(f"slot {sb['slot']}" + (f" ({left / 2**20:.0f} MB more WAL before it is lost)"
                                              if left is not None else ""))
    if sb.get("error"):
        parts.append(f"error: {sb['error']}")
    return ", ".join(parts)


@app.command("migrate")
def db_migrate(revision: str = "head") -> None:
    """Run the Alembic migrations up to REVISION."""
    from geogrid.db import engine as db

    def go():
        url = db.resolve_url(get_settings())
        db.migrate(url, revision)
        typer.echo(f"schema at revision {db.current_revision(url)}")

    run(go)
