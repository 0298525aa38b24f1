"""The service: ``geogrid serve`` (dropping root first) and ``geogrid demo``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from geogrid.cli.common import ensure_database, run
from geogrid.core.settings import get_settings

app = typer.Typer()


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
    run(ensure_database)
    # Everything that needs root or the cluster's password file happens before the switch:
    # the app's engine holds the URL, and the map assets are on disk.
    service = create_app(settings)
    run(lambda: _drop_root(settings, required=not demo_mode))
    # A long keep-alive: uvicorn's 5 s default can close a connection just as a busy client
    # reuses it. Proxy headers are handled inside the app (settings.trusted_proxies), once.
    uvicorn.run(service, host=host or settings.host, port=port or settings.port, timeout_keep_alive=75,
                proxy_headers=False)


SERVICE_IMPORTS = ("import api.app, maps.planner, maps.inspector, maps.public, pyproj, pyogrio; "
                   "pyproj.CRS.from_user_input('EPSG:4549')")


def _drop_root(settings, *, required: bool) -> None:
    from geogrid.db import cluster
    from maps import assets

    if os.geteuid() != 0:
        return
    run(lambda: assets.ensure_assets(settings))
    user = cluster.become_service_user(settings, SERVICE_IMPORTS, required=required)
    if user:
        typer.echo(f"serving as the unprivileged user {user}")
    else:
        typer.secho(f"warning: the demo serves as root because the system user {settings.db_system_user} cannot "
                    "run this installation (its Python or the checkout is out of its reach); never expose it "
                    "beyond this machine (see README, Security)",
                    fg=typer.colors.YELLOW, err=True)


@app.command("demo")
def demo(
    reset: Annotated[bool, typer.Option(help="Drop the demo jurisdiction and load it again")] = False,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API afterwards")] = True,
    out: Annotated[Path, typer.Option(help="Where the generated files go")] = Path("data/demo"),
) -> None:
    """Generate a synthetic jurisdiction into data/, load it and serve the API."""
    from geogrid.io import demo as demolib

    def go():
        engine = ensure_database()
        summary = demolib.load(engine, get_settings(), out, reset=reset)
        typer.echo(summary)

    run(go)
    if serve_after:
        serve(None, None, demo_mode=True)


