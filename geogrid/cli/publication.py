"""``geogrid publish``: make a layer's current areas public (公示发布), see what would
change, and list the publications."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from geogrid.cli.common import ensure_database, run

app = typer.Typer()


@app.command("publish")
def publish(
    code: Annotated[str, typer.Argument(help="Code of the area whose subtree is published, or of one grid")],
    layer: Annotated[Optional[str], typer.Option(help="The layer (net); a grid's own layer by default")] = None,
    note: Annotated[Optional[str], typer.Option(help="Why, e.g. 2026年11月网格调整")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change, publish nothing")] = False,
) -> None:
    """Publish: the public map, place search, /api/locate, OGC API and tiles show these
    areas from now on, until the next publication."""
    from geogrid.db import engine as db
    from geogrid.publication import generations

    def go():
        with db.transaction(ensure_database()) as session:
            if dry_run:
                return generations.pending(session, code, layer=layer)
            return generations.publish(session, code, layer=layer, note=note)

    out = run(go)
    if dry_run:
        for kind in ("added", "changed", "withdrawn"):
            codes = out[kind]
            typer.echo(f"{kind}: {len(codes)}" + (f" ({', '.join(codes[:20])}{' ...' if len(codes) > 20 else ''})"
                                                  if codes else ""))
        typer.echo(f"unchanged: {out['unchanged']}; nothing was published (--dry-run)")
        return
    typer.echo(f"publication {out['id']}: {out['layer']} under {out['area']} ({out['area_name']}) at "
               f"{out['published_at']:%Y-%m-%d %H:%M:%S%z}: {out['added']} added, {out['changed']} changed, "
               f"{out['withdrawn']} withdrawn, {out['unchanged']} unchanged")


@app.command("publications")
def publications(
    layer: Annotated[Optional[str], typer.Option(help="Only this layer")] = None,
    area: Annotated[Optional[str], typer.Option(help="Only this area's subtree or above it")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 20,
) -> None:
    """List publications, newest first."""
    from geogrid.db import engine as db
    from geogrid.publication import generations

    def go():
        with db.transaction(ensure_database()) as session:
            return generations.list_publications(session, layer=layer, area=area, limit=limit)[0]

    for p in run(go):
        typer.echo(f"{p['id']:>5}  {p['published_at']:%Y-%m-%d %H:%M}  {p['layer']:<14} {p['area'] or '-':<14} "
                   f"+{p['added']} ~{p['changed']} -{p['withdrawn']} ={p['unchanged']}  {p['published_by']}"
                   + (f"  {p['note']}" if p["note"] else ""))
