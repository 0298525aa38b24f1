"""Assessment indicators (考核指标): for an area's subtree and a period, grouped by place,
department, category, grid worker or time."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import Lang, SessionDep, SettingsDep
from api.schemas.stats import Definition, Indicators
from geogrid.assessment import indicators as ind
from geogrid.assessment.periods import parse_period
from geogrid.core.errors import GeogridError, Problem

router = APIRouter(prefix="/api/stats", tags=["assessment"])


class StatsQuery:
    """The area, period and grouping every indicator request takes: ``from``/``to`` (``to``
    exclusive: the first day after the period) or a named ``period`` (2026-11, 2026-Q4, 2026)."""

    def __init__(
        self,
        area: Annotated[str, Query(description="Area code: its whole subtree is counted")],
        period: Annotated[str | None, Query(description="2026-11, 2026-Q4 or 2026 (instead of from/to)")] = None,
        start: Annotated[dt.date | None, Query(alias="from", description="First day (local date)")] = None,
        end: Annotated[dt.date | None, Query(alias="to", description="First day after the period (exclusive)")] = None,
        by: Annotated[str, Query(description="Comma-separated groupings: " + ", ".join(ind.GROUPS))] = "",
    ) -> None:
        if period is not None and (start or end):
            raise GeogridError("give either period or from/to, not both",
                               problems=[Problem("period and from/to both given", field="period")])
        if period is not None:
            named = parse_period(period)
            start, end = named.start, named.end
        if start is None or end is None:
            raise GeogridError("the period is missing: give period=2026-11 or from=YYYY-MM-DD&to=YYYY-MM-DD",
                               problems=[Problem("missing", field="from" if start is None else "to")])
        self.area, self.start, self.end = area, start, end
        self.by = [b.strip() for b in by.split(",") if b.strip()]


StatsDep = Annotated[StatsQuery, Depends(StatsQuery)]


def definitions(lang: str) -> list[dict]:
    return [{"key": i.key, "name": i.name(lang), "unit": i.unit, "definition": i.definition(lang)}
            for i in ind.INDICATORS]


@router.get("/definitions", response_model=list[Definition], summary="What each indicator counts (one definition "
            "shared by the API, the dashboard, the score sheets and the exports)")
def list_definitions(lang: Lang = "zh") -> list[dict]:
    return definitions(lang)


@router.get("/indicators", response_model=Indicators, summary="Indicators of an area's cases and patrols, grouped")
def read_indicators(session: SessionDep, settings: SettingsDep, q: StatsDep, lang: Lang = "zh") -> dict:
    out = ind.indicators(session, settings, area=q.area, start=q.start, end=q.end, by=q.by)
    return {**out, "period_from": out["from"], "period_to": out["to"], "indicators": definitions(lang)}
