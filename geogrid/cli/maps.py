"""``geogrid map``: export a map as one self-contained HTML file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from geogrid.cli.common import ensure_database, fail, run
from geogrid.core.settings import get_settings

app = typer.Typer()


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
    from geogrid.db import engine as db

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
                from geogrid.access import scopes

                session.info["principal"] = scopes.ANONYMOUS
            html = maps.render(kind, session, settings, **params)
        out.write_text(html, encoding="utf-8")
        return len(html.encode())

    size = run(go)
    typer.echo(f"wrote {out} ({size / 1e6:.2f} MB)")
