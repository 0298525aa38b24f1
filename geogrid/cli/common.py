"""What every command shares: failures as one-paragraph messages (exit 1), never a
traceback; the database started and migrated before use; aware datetimes."""
from __future__ import annotations

from datetime import datetime

import typer

from geogrid.core.errors import GeogridError
from geogrid.core.settings import get_settings


def aware(moment: datetime | None) -> datetime | None:
    """``moment`` in the configured time zone when it has none (naive input from the command
    line); aware datetimes and None are returned as they are."""
    from zoneinfo import ZoneInfo

    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(get_settings().timezone))


def fail(message: str) -> None:
    """Print ``message`` as an error on stderr and exit with status 1; never returns."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def run(fn):
    """Turn expected errors into messages, not tracebacks."""
    from sqlalchemy.exc import OperationalError

    from geogrid.db.cluster import ClusterError

    try:
        return fn()
    except GeogridError as exc:
        fail(str(exc))
    except ClusterError as exc:
        fail(str(exc))
    except OperationalError as exc:
        fail(f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}\n"
             "start the local cluster with `geogrid db up` or set GEOGRID_DATABASE_URL")
    except (typer.Exit, BrokenPipeError):
        # A closed pipe (``geogrid ... | head``) is the reader's choice, not a failure of
        # ours: Click ends quietly on it, as Unix tools do.
        raise
    except Exception as exc:  # a bug: say so in one line rather than dump a traceback on the user
        fail(f"unexpected {exc.__class__.__name__}: {str(exc)[:500]}\nthis is a bug in geogrid; please report "
             "it with the command you ran")


def ensure_database():
    """Start (or reach) the database and bring its schema up to date; return the engine."""
    from geogrid.db import cluster
    from geogrid.db import engine as db

    settings = get_settings()
    cluster.up(settings)
    url = db.resolve_url(settings)
    db.migrate(url)
    return db.get_engine(settings)




def in_transaction(fn):
    """Run ``fn(session)`` in one transaction on the started and migrated database, failures
    turned into messages as by :func:`run`; returns what ``fn`` returns."""
    from geogrid.db import engine as db

    def go():
        engine = ensure_database()
        with db.transaction(engine) as session:
            return fn(session)

    return run(go)
