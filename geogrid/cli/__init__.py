"""The ``geogrid`` command line, one module per command group: ``db``, ``areas`` (import,
export, locate), ``coverage``, ``incidents``, ``maps``, ``report`` (assessment exports),
``contacts`` (contact cards, the 1+1+n check, visits behind), ``publication`` (publish,
publications), ``users`` and ``service``
(serve, demo). Every expected failure ends with a one-paragraph message on stderr and exit
status 1 (2 for usage errors), never a traceback. The entry point is ``geogrid.cli:app``.
"""

from __future__ import annotations

import sys

import typer

from geogrid.cli import areas, contacts, coverage, db, households, incidents, maps, publication, report, service, users

app = typer.Typer(help="geogrid: grid-based governance (网格化管理) on PostGIS.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(db.app, name="db")
app.add_typer(areas.app)
app.add_typer(coverage.app)
app.add_typer(contacts.app, name="contacts")
app.add_typer(incidents.app, name="incidents")
app.add_typer(households.app, name="households")
app.add_typer(maps.app)
app.add_typer(publication.app)
app.add_typer(users.app, name="user")
app.add_typer(report.app, name="report")
app.add_typer(service.app)


def main() -> None:  # pragma: no cover - entry point for python -m
    """Run the ``geogrid`` command line."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
