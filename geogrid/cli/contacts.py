"""Cadre–household contact (联户) from the command line: ``geogrid contacts cards`` (the
contact cards, 连心卡, as one PDF), ``check`` (the 1+1+n structure) and ``behind`` (who is
behind on visits). Runs as the local operator.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from geogrid.cli.common import in_transaction
from geogrid.cli.report import check_lang, output_format, usage_error, write_atomically
from geogrid.core.settings import get_settings

app = typer.Typer(help="Cadre–household contact (联户): contact cards, the 1+1+n check, visits behind.",
                  no_args_is_help=True)


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        usage_error(f"--on {text!r} is not a date YYYY-MM-DD")


@app.command("cards")
def cards(
    area: Annotated[str, typer.Option(help="Code of a grid or village (its whole subtree)")],
    out: Annotated[Path, typer.Option(help="Output file, e.g. cards.pdf")],
    lang: Annotated[str, typer.Option(help="Language of the cards: zh (default) or en")] = "zh",
    on: Annotated[Optional[str], typer.Option(help="Links active on this day, YYYY-MM-DD (default today)")] = None,
) -> None:
    """Write the contact cards (连心卡) of an area: one A6 page per household with a contact cadre."""
    from geogrid.people import cards as contact_cards

    output_format(out, ("pdf",))
    check_lang(lang)
    day = _day(on)

    def go(session):
        export = contact_cards.contact_cards(session, get_settings(), area=area, on=day, lang=lang)
        write_atomically(out, export.content)
        return export

    export = in_transaction(go)
    typer.echo(f"wrote {out} ({len(export.content):,} bytes)")


@app.command("check")
def check(
    area: Annotated[str, typer.Option(help="Area code (its whole subtree)")],
    on: Annotated[Optional[str], typer.Option(help="The day, YYYY-MM-DD (default today)")] = None,
) -> None:
    """The 1+1+n check: households without a cadre, cadres over the limit, central households
    with too few or many radiating households, radiating households whose central link ended."""
    from geogrid.people import contacts

    day = _day(on)
    result = in_transaction(lambda s: contacts.check_structure(s, get_settings(), area=area, on=day, limit=20))
    typer.echo(f"{result['area']['code']} {result['area']['name']} on {result['on']}")
    for key, label in (("unlinked", "households without a contact cadre"),
                       ("overloaded_cadres", "cadres over the household limit"),
                       ("centrals_off", "central households with a radiating count out of range"),
                       ("orphaned_radiating", "radiating households whose central link ended")):
        part = result[key]
        typer.echo(f"  {label}: {part['count']}")
        for item in part["items"]:
            typer.echo("    " + ", ".join(f"{k}={v}" for k, v in item.items()))
    for v in result["villages"]:
        typer.echo(f"  village {v['code']} {v['name']}: {v['households']} households, {v['unlinked']} without a cadre")


@app.command("behind")
def behind(
    area: Annotated[str, typer.Option(help="Area code (its whole subtree)")],
    on: Annotated[Optional[str], typer.Option(help="The day, YYYY-MM-DD (default today)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Households and cadres listed at most")] = 50,
) -> None:
    """Households and cadres behind their visit quotas, with totals per village."""
    from geogrid.people import visits

    day = _day(on)
    result = in_transaction(lambda s: visits.behind(s, get_settings(), area=area, on=day, limit=limit))
    typer.echo(f"{result['area']['code']} {result['area']['name']} on {result['on']}: "
               f"{result['households']['count']} households behind, {result['cadres']['count']} cadres")
    for h in result["households"]["items"]:
        typer.echo(f"  {h['ref']}  {h['grid'] or '-'}  since {h['since']}  last visit {h['last_visit'] or '-'}  "
                   + "; ".join(r["text"] for r in h["reasons"]))
    for c in result["cadres"]["items"]:
        typer.echo(f"  cadre {c['name']} ({c['person_id']}): {c['behind']} households behind")
    for v in result["villages"]:
        typer.echo(f"  village {v['code'] or '-'} {v['name'] or ''}: {v['behind']} of {v['households']} behind")
