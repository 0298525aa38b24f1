"""Instants and days in the configured time zone.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from geogrid.core.settings import Settings

# --------------------------------------------------------------------------- time


def as_instant(at: dt.date | dt.datetime | None, settings: Settings) -> dt.datetime | None:
    """The instant a query looks at: a datetime as is, a date as the end of that day
    in the service's time zone (so that an edit made during day D counts on day D)."""
    if at is None or isinstance(at, dt.datetime):
        if isinstance(at, dt.datetime) and at.tzinfo is None:
            return at.replace(tzinfo=ZoneInfo(settings.timezone))
        return at
    return dt.datetime.combine(at, dt.time.max, tzinfo=ZoneInfo(settings.timezone))


def local_today(settings: Settings) -> dt.date:
    """Today in the jurisdiction's time zone (not the server's)."""
    return dt.datetime.now(ZoneInfo(settings.timezone)).date()
