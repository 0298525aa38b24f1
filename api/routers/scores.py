"""Score sheets (考核方案) for staff: schemes, periods (compute, review, freeze), manual
items, results and rankings; the admin publishes a frozen period's red/black list (红黑榜),
which the public reads at /api/public/rankings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.deps import ADMIN, PLANNER, STAFF, IfMatchDep, SessionDep, SettingsDep
from api.schemas.scores import (
    ManualIn,
    Period,
    PeriodResults,
    PublicRankings,
    PublishIn,
    Ranking,
    Scheme,
    SchemeIn,
    SchemePatch,
    ScoreRow,
)
from geogrid.assessment import scoring

router = APIRouter(tags=["assessment"])
PREFIX = "/api/assessment/schemes"
PERIOD = PREFIX + "/{scheme_id}/periods/{period}"
PeriodName = Annotated[str, Path(description="A month 2026-11, a quarter 2026-Q4 or a year 2026")]


def _items(body) -> dict:
    """A body as the domain takes it: absent rule members left out, not null."""
    data = body.model_dump(exclude_unset=True)
    if data.get("items") is not None:
        data["items"] = [{**i, "rule": i["rule"] if i["rule"] == "manual" else
                          {k: v for k, v in i["rule"].items() if v is not None}} for i in data["items"]]
    return data


@router.get(PREFIX, dependencies=STAFF, response_model=list[Scheme], summary="Score sheets in your scope (考核方案)")
def list_schemes(session: SessionDep, area: str | None = None) -> list[dict]:
    return scoring.list_schemes(session, area=area)


@router.post(PREFIX, dependencies=PLANNER, status_code=status.HTTP_201_CREATED, response_model=Scheme,
             summary="Define a score sheet for a county or town")
def create_scheme(session: SessionDep, body: SchemeIn) -> dict:
    out = scoring.create_scheme(session, _items(body))
    session.commit()
    return out


@router.get(PREFIX + "/{scheme_id}", dependencies=STAFF, response_model=Scheme)
def read_scheme(session: SessionDep, scheme_id: int) -> dict:
    return scoring.get_scheme(session, scheme_id)


@router.patch(PREFIX + "/{scheme_id}", dependencies=PLANNER, response_model=Scheme,
              summary="Edit a score sheet (frozen periods keep the version they were computed with)")
def edit_scheme(session: SessionDep, scheme_id: int, body: SchemePatch, expected: IfMatchDep) -> dict:
    out = scoring.update_scheme(session, scheme_id, _items(body), expected)
    session.commit()
    return out


@router.get(PREFIX + "/{scheme_id}/periods", dependencies=STAFF, response_model=list[Period],
            summary="The periods of a score sheet, newest first")
def list_periods(session: SessionDep, scheme_id: int) -> list[dict]:
    return scoring.list_periods(session, scheme_id)


@router.get(PERIOD, dependencies=STAFF, response_model=PeriodResults,
            summary="A period's scores with every item's points and evidence")
def read_period(session: SessionDep, scheme_id: int, period: PeriodName) -> dict:
    return scoring.get_period(session, scheme_id, period)


@router.get(PERIOD + "/ranking", dependencies=STAFF, response_model=Ranking,
            summary="Ranking, bottom three (末三位), red and black lists of a period")
def read_ranking(session: SessionDep, scheme_id: int, period: PeriodName,
                 red: Annotated[int | None, Query(ge=1, le=50, description="Top places (default 3)")] = None,
                 black: Annotated[int | None, Query(ge=1, le=50, description="Bottom places (default 3)")] = None,
                 ) -> dict:
    return scoring.ranking(session, scheme_id, period, red=red, black=black)


@router.post(PERIOD + "/compute", dependencies=PLANNER, response_model=Period,
             summary="(Re)compute a period from the indicators (409 once frozen)")
def compute(session: SessionDep, settings: SettingsDep, scheme_id: int, period: PeriodName) -> dict:
    out = scoring.compute_period(session, settings, scheme_id, period)
    session.commit()
    return out


@router.post(PERIOD + "/review", dependencies=PLANNER, response_model=Period, summary="Mark a computed period reviewed")
def review(session: SessionDep, scheme_id: int, period: PeriodName) -> dict:
    out = scoring.review_period(session, scheme_id, period)
    session.commit()
    return out


@router.post(PERIOD + "/freeze", dependencies=PLANNER, response_model=Period,
             summary="Freeze a reviewed period that has ended: its results never change again")
def freeze(session: SessionDep, settings: SettingsDep, scheme_id: int, period: PeriodName) -> dict:
    out = scoring.freeze_period(session, settings, scheme_id, period)
    session.commit()
    return out


@router.post(PERIOD + "/publish", dependencies=ADMIN, response_model=Period,
             summary="Publish the red/black list (红黑榜) of a frozen period")
def publish(session: SessionDep, scheme_id: int, period: PeriodName, body: PublishIn | None = None) -> dict:
    body = body or PublishIn()
    out = scoring.publish_period(session, scheme_id, period, red=body.red, black=body.black)
    session.commit()
    return out


@router.post(PERIOD + "/manual", dependencies=STAFF, response_model=ScoreRow,
             summary="Enter a manual item's points for a target, with reason and evidence")
def manual(session: SessionDep, scheme_id: int, period: PeriodName, body: ManualIn) -> dict:
    out = scoring.enter_manual(session, scheme_id, period, body.model_dump())
    session.commit()
    return out


@router.get("/api/public/rankings", response_model=PublicRankings, tags=["public"],
            summary="Published red/black lists (红黑榜) of an area's score sheets: names, scores, ranks")
def public_rankings(session: SessionDep, area: str,
                    period: Annotated[str | None, Query(description="e.g. 2026-11; default the latest")] = None) -> dict:
    return scoring.published_lists(session, area, period)
