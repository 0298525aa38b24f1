"""Public intake: anyone may report (rate-limited per client) and read back the status of
their own report by its receipt, nothing else; and the public map's place search ("find my
grid"). Open311 GeoReport v2 clients use ``api/routers/open311.py``, which goes through the
same intake."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from api.deps import Lang, ReadSessionDep, SessionDep, SettingsDep, rate_limit
from api.schemas.public import Places, PublicReceipt, PublicReportIn
from geogrid.areas import places
from geogrid.incidents import intake, records

router = APIRouter(tags=["public"])


public_limit = rate_limit("public", lambda settings: settings.public_reports_per_minute)


@router.post("/api/public/reports", dependencies=[Depends(public_limit)], status_code=status.HTTP_201_CREATED,
             response_model=PublicReceipt,
             summary="Report a problem (no account needed); the answer is your receipt")
def report(session: SessionDep, settings: SettingsDep, body: PublicReportIn, lang: Lang = "zh") -> dict:
    data = {**body.model_dump(), "channel": "public_web",
            "reporter": body.reporter.model_dump(exclude_none=True) if body.reporter else None}
    case = intake.intake(session, data, settings, lang=lang, public=True)
    session.commit()
    return records.public_view(case, lang)


@router.get("/api/public/reports/{receipt}", response_model=PublicReceipt, summary="The status of your report, by its receipt")
def report_status(session: ReadSessionDep, receipt: str, lang: Lang = "zh") -> dict:
    return records.public_view(records.by_receipt(session, receipt), lang)


@router.get("/api/public/places", response_model=Places,
            summary="Find my grid: grids, villages and addresses matching a name, a code prefix or an address")
def find_places(
    session: ReadSessionDep,
    q: Annotated[str, Query(description="A village or grid name (substring), the first digits of a code, "
                                        f"or an address; 1 to {places.MAX_QUERY} characters")],
    area: Annotated[str, Query(description="The town or county searched (its code)")],
    layer: Annotated[str, Query(description="The net of grids shown")] = "comprehensive",
    limit: Annotated[int, Query(description=f"1 to {places.MAX_LIMIT}")] = 10,
) -> dict:
    """Current areas only, within ``area``, best first (exact, prefix, substring). An
    address comes from the household register at door-plate level (village, street,
    number, building name) and answers with the grid holding it, never the household."""
    return {"q": q.strip(), "area": area, "layer": layer,
            "results": places.search(session, q, area=area, layer=layer, limit=limit)}
