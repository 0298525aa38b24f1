"""``geogrid coverage``: check a parent's grids, store the run, exit 3 when problems are found.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from geogrid.cli.common import ensure_database, run
from geogrid.core import jsonenc, timeutil
from geogrid.core.settings import get_settings

app = typer.Typer()


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
    from geogrid.coverage import checks, runs
    from geogrid.db import engine as db

    def go():
        engine = ensure_database()
        options = checks.options_from(get_settings(), sliver_width_m=sliver_width_m)
        with db.transaction(engine) as session:
            return runs.run(session, code, layer, options, subtree=subtree,
                                     today=timeutil.local_today(get_settings()))

    result = run(go)
    summary = result["summary"]
    if out:
        out.write_text(jsonenc.dumps(result["problems"]), encoding="utf-8")
    if as_json:
        typer.echo(jsonenc.dumps(result, indent=1))
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
