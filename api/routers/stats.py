"""Assessment indicators (考核指标): for an area's subtree and a period, grouped by place,
department, category, grid worker or time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AreaPeriodDep, Lang, SessionDep, SettingsDep
from api.schemas.stats import Definition, Indicators
from geogrid.assessment import indicators as ind

router = APIRouter(prefix="/api/stats", tags=["assessment"])


def definitions(lang: str) -> list[dict]:
    return [{"key": i.key, "name": i.name(lang), "unit": i.unit, "definition": i.definition(lang)}
            for i in ind.INDICATORS]


@router.get("/definitions", response_model=list[Definition], summary="What each indicator counts (one definition "
            "shared by the API, the dashboard, the score sheets and the exports)")
def list_definitions(lang: Lang = "zh") -> list[dict]:
    return definitions(lang)


@router.get("/indicators", response_model=Indicators, summary="Indicators of an area's cases and patrols, grouped")
def read_indicators(session: SessionDep, settings: SettingsDep, q: AreaPeriodDep,
                    by: Annotated[str, Query(description="Comma-separated groupings: " + ", ".join(ind.GROUPS))] = "",
                    lang: Lang = "zh") -> dict:
    out = ind.indicators(session, settings, area=q.area, start=q.start, end=q.end,
                         by=ind.parse_groupings(by))
    return {**out, "period_from": out["from"], "period_to": out["to"], "indicators": definitions(lang)}
