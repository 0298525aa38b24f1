"""Assessment indicators on the wire: their definitions and the grouped figures."""

from __future__ import annotations

import datetime as dt

from api.schemas.common import Open, Out


class Definition(Out):
    key: str
    name: str
    unit: str
    definition: str


class Place(Out):
    code: str
    name: str


class IndicatorRow(Open):
    """One group: its keys (``grid``, ``grid_name``, ``month``... as asked by ``by``) and every
    indicator of ``/api/stats/definitions`` (rates 0-1, hours in working hours; null where
    there is nothing to divide by, and patrol figures null for groups patrols have not)."""


class Indicators(Out):
    area: Place
    period_from: dt.date
    period_to: dt.date
    by: list[str]
    now: dt.datetime
    indicators: list[Definition]
    rows: list[IndicatorRow]
    total: IndicatorRow
