"""``geogrid map``: export a map as one self-contained HTML file, or print grid boards
(网格公示牌) as PDF.
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
    kind: Annotated[str, typer.Argument(help="planner, inspector or public (an HTML map), or board (PDF posters)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The standalone HTML file (or the PDF) to write")],
    area: Annotated[Optional[str], typer.Option(help="Code of the area to map (maps)")] = None,
    grid: Annotated[Optional[str], typer.Option(help="board: the grid whose poster to print")] = None,
    village: Annotated[Optional[str], typer.Option(help="board: the village whose grids to print, one page each")
                       ] = None,
    layer: Annotated[Optional[str], typer.Option(
        help="Thematic net (planner, public, board); default comprehensive, or a board's grid's own")] = None,
    size: Annotated[str, typer.Option(help="board: paper, A4 or A3")] = "A4",
    lang: Annotated[str, typer.Option(help="zh or en")] = "zh",
    api: Annotated[Optional[str], typer.Option(help="Service address the planner map saves to")] = None,
) -> None:
    """Export a map as one self-contained HTML file (Leaflet and plugins inlined), or print
    grid boards: ``geogrid map board --grid CODE --out board.pdf`` (or ``--village CODE``)."""
    import maps
    from geogrid.db import engine as db

    if kind not in (*maps.KINDS, "board"):
        fail(f"unknown map {kind!r}; use one of {', '.join(maps.KINDS)} or board")
    if lang not in ("zh", "en"):
        fail("lang must be zh or en")
    if kind == "board":
        _board(out, grid=grid, village=village, layer=layer, size=size, lang=lang)
        return
    if area is None:
        fail(f"geogrid map {kind} needs --area CODE")
    if grid or village:
        fail("--grid and --village are for geogrid map board")

    def go():
        settings = get_settings()
        engine = ensure_database()
        params = {"area": area, "lang": lang, "inline": True}
        if kind != "inspector":
            params["layer"] = layer or "comprehensive"
        if kind == "planner":  # the service the file saves to: its meta tag and its place in the page's policy
            params["api"] = api or f"http://{settings.host}:{settings.port}"
        with db.transaction(engine) as session:
            if kind == "public":
                from geogrid.access import scopes

                session.info["principal"] = scopes.ANONYMOUS
            html = maps.render(kind, session, settings, **params)
        out.write_text(html, encoding="utf-8")
        return len(html.encode())

    size_bytes = run(go)
    typer.echo(f"wrote {out} ({size_bytes / 1e6:.2f} MB)")


def _board(out: Path, *, grid: str | None, village: str | None, layer: str | None, size: str, lang: str) -> None:
    from geogrid.access import scopes
    from geogrid.db import engine as db
    from maps import boards

    if (grid is None) == (village is None):
        fail("geogrid map board needs exactly one of --grid CODE (a poster) or --village CODE (a booklet)")
    if size not in boards.SIZES:
        fail(f"size must be one of {', '.join(boards.SIZES)}")

    def go():
        settings = get_settings()
        engine = ensure_database()
        with db.transaction(engine) as session:
            # The printed board is the public one: published fields only, whoever runs the command.
            session.info["principal"] = scopes.ANONYMOUS
            export = boards.board_pdf(session, settings, grid=grid, village=village, layer=layer, size=size,
                                      lang=lang)
        out.write_bytes(export.content)
        return len(export.content)

    written = run(go)
    typer.echo(f"wrote {out} ({written / 1e6:.2f} MB)")
