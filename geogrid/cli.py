"""The ``geogrid`` command line: database, import/export, the service and the demo.

Every expected failure ends with a one-paragraph message on stderr and exit status 1
(2 for usage errors), never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from geogrid.errors import GeogridError
from geogrid.settings import get_settings

app = typer.Typer(help="geogrid: grid-based governance (网格化管理) on PostGIS.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database: a local PostGIS cluster, or GEOGRID_DATABASE_URL.", no_args_is_help=True)
app.add_typer(db_app, name="db")
user_app = typer.Typer(help="Accounts and their role grants.", no_args_is_help=True)
app.add_typer(user_app, name="user")


def _aware(moment: datetime | None) -> datetime | None:
    from zoneinfo import ZoneInfo

    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(get_settings().timezone))


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _run(fn):
    """Turn expected errors into messages, not tracebacks."""
    from sqlalchemy.exc import OperationalError

    from geogrid.cluster import ClusterError

    try:
        return fn()
    except GeogridError as exc:
        fail(str(exc))
    except ClusterError as exc:
        fail(str(exc))
    except OperationalError as exc:
        fail(f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}\n"
             "start the local cluster with `geogrid db up` or set GEOGRID_DATABASE_URL")
    except typer.Exit:
        raise
    except Exception as exc:  # a bug: say so in one line rather than dump a traceback on the user
        fail(f"unexpected {exc.__class__.__name__}: {str(exc)[:500]}\nthis is a bug in geogrid; please report "
             "it with the command you ran")


def ensure_database():
    """Start (or reach) the database and bring its schema up to date; return the engine."""
    from geogrid import cluster, db

    settings = get_settings()
    cluster.up(settings)
    url = db.resolve_url(settings)
    db.migrate(url)
    return db.get_engine(settings)


# --------------------------------------------------------------------------- db


@db_app.command("up")
def db_up() -> None:
    """Install PostgreSQL/PostGIS if missing, start the local cluster, run migrations (idempotent)."""
    from geogrid import cluster, db

    def go():
        settings = get_settings()
        info = cluster.up(settings)
        db.migrate(db.resolve_url(settings))
        what = "started" if info.started else "already running"
        if not info.managed:
            what = "external database (GEOGRID_DATABASE_URL)"
        typer.echo(f"database {what}: {info.masked_url}\nschema at revision {db.current_revision(db.resolve_url(settings))}")

    _run(go)


@db_app.command("down")
def db_down() -> None:
    """Stop the local cluster."""
    from geogrid import cluster

    _run(lambda: typer.echo("stopped" if cluster.down(get_settings()) else "not running"))


@db_app.command("status")
def db_status() -> None:
    """Where the database is and whether it runs."""
    from geogrid import cluster, db

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

    _run(go)


@db_app.command("migrate")
def db_migrate(revision: str = "head") -> None:
    """Run the Alembic migrations up to REVISION."""
    from geogrid import db

    def go():
        url = db.resolve_url(get_settings())
        db.migrate(url, revision)
        typer.echo(f"schema at revision {db.current_revision(url)}")

    _run(go)


# --------------------------------------------------------------------------- files


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
    from geogrid import areas, db, files

    def go():
        engine = ensure_database()
        fields = {k: v for k, v in (("code", code_field), ("name", name_field), ("parent", parent_field)) if v}
        read = files.read_features(file, layer=source_layer, crs=crs, fields=fields)
        with db.transaction(engine) as session:
            report = areas.import_areas(session, read.records, read.geoms, get_settings(),
                                        overrides={"layer": layer, "level": level}, defaults={"parent": parent},
                                        repair=repair, dry_run=dry_run, note=f"import {file.name}",
                                        max_spill_ratio=max_spill, valid_from=_aware(valid_from))
        verb = "would import" if dry_run else "imported"
        typer.echo(f"{verb} {report.imported} features from {file.name} ({read.source_crs}): "
                   + ", ".join(f"{n} {k}" for k, n in report.by_level.items()))
        for item in report.repaired:
            typer.echo(f"  repaired: feature {item['index']} ({item['code']})")
        for item in report.generated_codes:
            typer.echo(f"  code generated: feature {item['index']} -> {item['code']}")
        for warning in report.warnings:
            typer.echo(f"  warning: {warning.get('code')}: {warning['message']}")

    _run(go)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file")],
    format: Annotated[str, typer.Option(help="geojson, gpkg or shp (zipped)")] = "geojson",
    layer: Annotated[Optional[str], typer.Option()] = None,
    level: Annotated[Optional[str], typer.Option()] = None,
    parent: Annotated[Optional[str], typer.Option()] = None,
    code_prefix: Annotated[Optional[str], typer.Option()] = None,
    with_notes: Annotated[bool, typer.Option(help="Include internal notes")] = False,
) -> None:
    """Export current areas to a file."""
    from geogrid import areas, db, files

    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            frame = areas.frame(session, areas.AreaFilter(layer=layer, level=level, parent=parent,
                                                          code_prefix=code_prefix), with_notes=with_notes)
        files.write_features(frame, format, out)
        typer.echo(f"wrote {len(frame)} areas to {out}")

    _run(go)


@app.command("locate")
def locate(lon: float, lat: float, lang: str = "zh") -> None:
    """Print every area containing a point (like GET /api/locate)."""
    import datetime as dt

    from geogrid import areas, db

    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            found = areas.locate(session, lon, lat, at=None, day=areas.local_today(get_settings()), lang=lang)
        typer.echo(json.dumps(found, ensure_ascii=False, indent=2, default=str))

    _run(go)


# --------------------------------------------------------------------------- coverage

PROBLEMS_FOUND = 3


@app.command("coverage")
def coverage(
    code: Annotated[str, typer.Argument(help="Code of the parent area")],
    layer: Annotated[str, typer.Option(help="Layer whose children are checked")] = "comprehensive",
    subtree: Annotated[bool, typer.Option(help="Check every parent in the subtree")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Write the problems as GeoJSON here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON")] = False,
    sliver_width_m: Annotated[Optional[float], typer.Option(help="Default GEOGRID_SLIVER_WIDTH_M")] = None,
) -> None:
    """Check coverage (gaps, overlaps, spill-over, invalid, responsibility, size); the run is
    stored. Exit status 3 when problems are found, so scripts can stop a publication."""
    from geogrid import areas, coverage_runs, db

    def go():
        engine = ensure_database()
        options = coverage_runs.options_from(get_settings(), sliver_width_m=sliver_width_m)
        with db.transaction(engine) as session:
            return coverage_runs.run(session, code, layer, options, subtree=subtree,
                                     today=areas.local_today(get_settings()))

    result = _run(go)
    summary = result["summary"]
    if out:
        out.write_text(json.dumps(result["problems"], ensure_ascii=False), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    else:
        typer.echo(f"run {result['id']}: {summary['area']} / {layer}: {summary['grids']} grids under "
                   f"{summary['parents_checked']} parent(s), coverage {summary['coverage_pct']}% "
                   f"({result['seconds']} s)")
        for kind, n in sorted(summary["counts"].items()):
            typer.echo(f"  {kind:<18} {n}")
        for s in summary["parents"][:10]:
            if s["counts"]:
                typer.echo(f"  worst: {s['parent']} {s['parent_name']}: {s['coverage_pct']}% "
                           + ", ".join(f"{k} {v}" for k, v in sorted(s["counts"].items())))
    if summary["problems"]:
        raise typer.Exit(PROBLEMS_FOUND)


# --------------------------------------------------------------------------- incidents

incidents_app = typer.Typer(help="Incidents: bulk import, overdue escalation.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")


@incidents_app.command("import")
def incidents_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".csv with lon,lat columns or .geojson")],
) -> None:
    """Import historical incidents, all or nothing, with a progress bar."""
    from geogrid import db, files, incidents

    def go():
        engine = ensure_database()
        records = files.read_incident_rows(file)
        with typer.progressbar(length=len(records), label=f"routing {len(records)} incidents") as bar:
            with db.transaction(engine) as session:
                return incidents.import_incidents(session, records, get_settings(), progress=bar.update)

    out = _run(go)
    typer.echo(f"imported {out['imported']} incidents: " + ", ".join(f"{n} {k}" for k, n in out["by_route"].items()))


@incidents_app.command("escalate-overdue")
def incidents_escalate() -> None:
    """Escalate overdue cases one level (the service also does it every GEOGRID_ESCALATION_INTERVAL_S)."""
    from geogrid import db, incidents

    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            return incidents.escalate_overdue(session, get_settings())

    done = _run(go)
    typer.echo(f"escalated {len(done)} cases" + (": " + ", ".join(done) if done else ""))


# --------------------------------------------------------------------------- maps


@app.command("map")
def map_(
    kind: Annotated[str, typer.Argument(help="planner, inspector or public")],
    area: Annotated[str, typer.Option(help="Code of the area to map")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The standalone HTML file to write")],
    layer: Annotated[str, typer.Option(help="Thematic net (planner, public)")] = "comprehensive",
    lang: Annotated[str, typer.Option(help="zh or en")] = "zh",
    api: Annotated[Optional[str], typer.Option(help="Service address the planner map saves to")] = None,
) -> None:
    """Export a map as one self-contained HTML file (Leaflet and plugins inlined)."""
    import maps
    from geogrid import db

    if kind not in maps.KINDS:
        fail(f"unknown map {kind!r}; use one of {', '.join(maps.KINDS)}")
    if lang not in ("zh", "en"):
        fail("lang must be zh or en")

    def go():
        settings = get_settings()
        engine = ensure_database()
        params = {"area": area, "lang": lang, "inline": True}
        if kind != "inspector":
            params["layer"] = layer
        if kind == "planner":  # the service the file saves to: its meta tag and its place in the page's policy
            params["api"] = api or f"http://{settings.host}:{settings.port}"
        with db.transaction(engine) as session:
            if kind == "public":
                from geogrid import access

                session.info["principal"] = access.ANONYMOUS
            html = maps.render(kind, session, settings, **params)
        out.write_text(html, encoding="utf-8")
        return len(html.encode())

    size = _run(go)
    typer.echo(f"wrote {out} ({size / 1e6:.2f} MB)")


# --------------------------------------------------------------------------- users


def _in_transaction(fn):
    from geogrid import db

    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            return fn(session)

    return _run(go)


@user_app.command("add")
def user_add(
    username: str,
    password: Annotated[Optional[str], typer.Option(help="Default: read from stdin, or prompt")] = None,
    display_name: Annotated[Optional[str], typer.Option()] = None,
) -> None:
    """Create an account (then grant it roles)."""
    from geogrid import access

    if password is None:
        password = sys.stdin.readline().strip() if not sys.stdin.isatty() else typer.prompt(
            "password", hide_input=True, confirmation_prompt=True)
    _in_transaction(lambda s: access.create_account(s, username, password, display_name))
    typer.echo(f"account {username} created")


@user_app.command("list")
def user_list() -> None:
    """Accounts and their grants."""
    from geogrid import access

    for account in _in_transaction(access.list_accounts):
        grants = ", ".join(f"{g['role']}@{g['area'] or '*'}" + (f"[{g['department']}]" if g["department"] else "")
                           for g in account["grants"]) or "no roles"
        typer.echo(f"{account['username']:<20} {'active' if account['active'] else 'disabled':<9} {grants}")


@user_app.command("grant")
def user_grant(
    username: str,
    role: Annotated[str, typer.Argument(help="admin, planner, inspector, grid_worker, department_handler")],
    area: Annotated[Optional[str], typer.Option(help="Area code: the grant holds for its subtree")] = None,
    department: Annotated[Optional[str], typer.Option(help="For department handlers")] = None,
) -> None:
    """Grant a role on an area's subtree (no area: everywhere)."""
    from geogrid import access

    _in_transaction(lambda s: access.grant(s, username, role, area, department))
    typer.echo(f"{username}: {role} on {area or 'everything'}")


@user_app.command("revoke")
def user_revoke(username: str, role: str, area: Annotated[Optional[str], typer.Option()] = None) -> None:
    """Take a role away (on one area, or everywhere it was granted)."""
    from geogrid import access

    n = _in_transaction(lambda s: access.revoke(s, username, role, area))
    typer.echo(f"{username}: {n} grant(s) of {role} revoked")


# --------------------------------------------------------------------------- service


@app.command("serve")
def serve(
    host: Annotated[Optional[str], typer.Option(help="Default: GEOGRID_HOST")] = None,
    port: Annotated[Optional[int], typer.Option(help="Default: GEOGRID_PORT")] = None,
    demo_mode: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs). Started as root, it first switches to the
    unprivileged system user (GEOGRID_DB_SYSTEM_USER), or refuses when that user cannot
    run it."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    _run(ensure_database)
    # Everything that needs root or the cluster's password file happens before the switch:
    # the app's engine holds the URL, and the map assets are on disk.
    service = create_app(settings)
    _run(lambda: _drop_root(settings, required=not demo_mode))
    # A long keep-alive: uvicorn's 5 s default can close a connection just as a busy client
    # reuses it. Proxy headers are handled inside the app (settings.trusted_proxies), once.
    uvicorn.run(service, host=host or settings.host, port=port or settings.port, timeout_keep_alive=75,
                proxy_headers=False)


SERVICE_IMPORTS = ("import api.app, maps.planner, maps.inspector, maps.public, pyproj, pyogrio; "
                   "pyproj.CRS.from_user_input('EPSG:4549')")


def _drop_root(settings, *, required: bool) -> None:
    from geogrid import cluster
    from maps import assets

    if os.geteuid() != 0:
        return
    _run(lambda: assets.ensure_assets(settings))
    user = cluster.become_service_user(settings, SERVICE_IMPORTS, required=required)
    if user:
        typer.echo(f"serving as the unprivileged user {user}")
    else:
        typer.secho(f"warning: the demo serves as root because the system user {settings.db_system_user} cannot "
                    "read this checkout; never expose it beyond this machine (see README, Security)",
                    fg=typer.colors.YELLOW, err=True)


@app.command("demo")
def demo(
    reset: Annotated[bool, typer.Option(help="Drop the demo jurisdiction and load it again")] = False,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API afterwards")] = True,
    out: Annotated[Path, typer.Option(help="Where the generated files go")] = Path("data/demo"),
) -> None:
    """Generate a synthetic jurisdiction into data/, load it and serve the API."""
    from geogrid import demo as demolib

    def go():
        engine = ensure_database()
        summary = demolib.load(engine, get_settings(), out, reset=reset)
        typer.echo(summary)

    _run(go)
    if serve_after:
        serve(None, None, demo_mode=True)


def main() -> None:  # pragma: no cover - entry point for python -m
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
