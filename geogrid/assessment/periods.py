"""Assessment periods by name: a month ``2026-11``, a quarter ``2026-Q4``, a year ``2026``,
as half-open ranges of local dates ``[start, end)``.

>>> parse_period("2026-11")
Period(name='2026-11', kind='month', start=datetime.date(2026, 11, 1), end=datetime.date(2026, 12, 1))
>>> parse_period("2026-Q4").end, parse_period("2026").end
(datetime.date(2027, 1, 1), datetime.date(2027, 1, 1))
>>> parse_period("2026-13")
Traceback (most recent call last):
...
geogrid.core.errors.GeogridError: period '2026-13' is not a month (2026-11), a quarter (2026-Q4) or a year (2026)
  - period: expected 2026-11, 2026-Q4 or 2026
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

from geogrid.core.errors import GeogridError, Problem

KINDS = ("month", "quarter", "year")


class Period(NamedTuple):
    name: str
    kind: str
    start: dt.date
    end: dt.date


def _add_months(day: dt.date, months: int) -> dt.date:
    n = day.year * 12 + day.month - 1 + months
    return dt.date(n // 12, n % 12 + 1, 1)


FIRST_YEAR, LAST_YEAR = 1900, 9998


def parse_period(name: str, field: str = "period") -> Period:
    """The period a name stands for; a 422 naming ``field`` and the forms accepted otherwise.

    >>> parse_period("9999-01")
    Traceback (most recent call last):
    ...
    geogrid.core.errors.GeogridError: period '9999-01' is outside the years 1900 to 9998
      - period: a year from 1900 to 9998
    """
    text = (name or "").strip()
    year = re.match(r"\d{4}", text)
    if year and not FIRST_YEAR <= int(year[0]) <= LAST_YEAR:
        raise GeogridError(f"period {name!r} is outside the years {FIRST_YEAR} to {LAST_YEAR}",
                           problems=[Problem(f"a year from {FIRST_YEAR} to {LAST_YEAR}", field=field)])
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", text)
    if m and 1 <= int(m[2]) <= 12:
        start = dt.date(int(m[1]), int(m[2]), 1)
        return Period(f"{start:%Y-%m}", "month", start, _add_months(start, 1))
    m = re.fullmatch(r"(\d{4})-[Qq]([1-4])", text)
    if m:
        start = dt.date(int(m[1]), 3 * int(m[2]) - 2, 1)
        return Period(f"{m[1]}-Q{m[2]}", "quarter", start, _add_months(start, 3))
    if re.fullmatch(r"\d{4}", text):
        start = dt.date(int(text), 1, 1)
        return Period(text, "year", start, dt.date(start.year + 1, 1, 1))
    raise GeogridError(f"period {name!r} is not a month (2026-11), a quarter (2026-Q4) or a year (2026)",
                       problems=[Problem("expected 2026-11, 2026-Q4 or 2026", field=field)])


def period_containing(day: dt.date, kind: str) -> Period:
    """The period of ``kind`` that holds ``day``.

    >>> period_containing(dt.date(2026, 11, 24), "quarter").name
    '2026-Q4'
    """
    if kind == "month":
        return parse_period(f"{day:%Y-%m}")
    if kind == "quarter":
        return parse_period(f"{day.year}-Q{(day.month - 1) // 3 + 1}")
    if kind == "year":
        return parse_period(str(day.year))
    raise GeogridError(f"unknown period kind {kind!r}; use {', '.join(KINDS)}")


def previous(period: Period, count: int) -> list[Period]:
    """The ``count`` periods of the same kind ending with ``period``, oldest first.

    >>> [p.name for p in previous(parse_period("2026-02"), 3)]
    ['2025-12', '2026-01', '2026-02']
    """
    step = {"month": 1, "quarter": 3, "year": 12}[period.kind]
    return [period_containing(_add_months(period.start, -step * i), period.kind) for i in range(count - 1, -1, -1)]
