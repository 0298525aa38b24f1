"""Assessment exports: ``geogrid report monthly`` (the monthly report, 月度通报, as PDF or
XLSX) and ``geogrid report indicators`` (indicator tables as XLSX or CSV). The format
follows the output file's extension; the file is written whole or not at all.
"""
from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from geogrid.cli.common import in_transaction
from geogrid.core.settings import get_settings

app = typer.Typer(help="Assessment exports: the monthly report (月度通报), indicator tables.", no_args_is_help=True)

LANGS = ("zh", "en")


def usage_error(message: str) -> NoReturn:
    """Print ``message`` as a usage error on stderr and exit with status 2; never returns."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def output_format(out: Path, allowed: tuple[str, ...]) -> str:
    """The format named by ``out``'s extension, one of ``allowed`` (else a usage error)."""
    ext = out.suffix.lower().lstrip(".")
    if ext not in allowed:
        usage_error(f"--out {out}: the format follows the extension; use " + " or ".join(f".{a}" for a in allowed))
    if out.exists() and out.is_dir():
        usage_error(f"--out {out} is a directory; give a file name")
    return ext


def check_lang(lang: str) -> str:
    """``lang`` if it is zh or en, else a usage error."""
    if lang not in LANGS:
        usage_error(f"--lang {lang!r}: use zh or en")
    return lang


def write_atomically(out: Path, content: bytes) -> None:
    """Write ``content`` to ``out`` through a temporary file in the same directory, so that a
    failed run never leaves half a report behind."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@app.command("monthly")
def monthly(
    area: Annotated[str, typer.Option(help="Area code: a county (by town), a town (by village) or below (by grid)")],
    month: Annotated[str, typer.Option(help="The month, e.g. 2026-11")],
    out: Annotated[Path, typer.Option(help="Output file: report.pdf or report.xlsx")],
    lang: Annotated[str, typer.Option(help="Language of the report: zh (default) or en")] = "zh",
) -> None:
    """Write the monthly report (月度通报) of an area as PDF or XLSX.

    Headline figures against the month before, the table by the next level down, the bottom
    three (末三位), charts and the definitions; runs as the local operator."""
    from geogrid.assessment import reports

    fmt = output_format(out, reports.REPORT_FORMATS)
    check_lang(lang)

    def go(session):
        export = reports.export_monthly(session, get_settings(), area=area, month=month, format=fmt, lang=lang)
        write_atomically(out, export.content)
        return export

    export = in_transaction(go)
    typer.echo(f"wrote {out} ({len(export.content):,} bytes): {export.filename.rsplit('.', 1)[0]}")


@app.command("indicators")
def indicators(
    area: Annotated[str, typer.Option(help="Area code: its whole subtree is counted")],
    out: Annotated[Path, typer.Option(help="Output file: .xlsx (one sheet per --by) or .csv (one table)")],
    period: Annotated[Optional[str], typer.Option(help="2026-11, 2026-Q4 or 2026 (instead of --from/--to)")] = None,
    start: Annotated[Optional[str], typer.Option("--from", help="First day, YYYY-MM-DD")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="First day after the period (exclusive), YYYY-MM-DD")] = None,
    by: Annotated[Optional[list[str]], typer.Option(
        help="A table's grouping, e.g. town, grid,month; repeat for more sheets (none: the total only)")] = None,
    lang: Annotated[str, typer.Option(help="Language of the headers: zh (default) or en")] = "zh",
    header: Annotated[str, typer.Option(help="CSV header: names (default) or keys (the API's field names)")] = "names",
) -> None:
    """Write indicator tables of an area and period as XLSX or CSV.

    XLSX: the total, one sheet per --by, the definitions. CSV: one table, UTF-8 with BOM."""
    from geogrid.assessment import indicators as ind
    from geogrid.assessment import reports
    from geogrid.assessment.periods import parse_period

    fmt = output_format(out, reports.TABLE_FORMATS)
    check_lang(lang)
    if header not in ("names", "keys"):
        usage_error(f"--header {header!r}: use names or keys")
    if period and (start or end):
        usage_error("give either --period or --from/--to, not both")
    if not period and not (start and end):
        usage_error("the period is missing: give --period 2026-11 or --from YYYY-MM-DD --to YYYY-MM-DD")

    def day(text: str, option: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            usage_error(f"{option} {text!r} is not a date YYYY-MM-DD")

    tables = [t for t in map(ind.parse_groupings, by or []) if t]
    dates = None if period else (day(start or "", "--from"), day(end or "", "--to"))

    def go(session):
        first, after = dates or parse_period(period or "")[2:]
        export = reports.export_indicators(session, get_settings(), area=area, start=first, end=after, tables=tables,
                                           format=fmt, lang=lang, header=header)
        write_atomically(out, export.content)
        return export

    export = in_transaction(go)
    typer.echo(f"wrote {out} ({len(export.content):,} bytes)")
