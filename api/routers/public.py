"""Public intake: anyone may report (rate-limited per client) and read back the status of
their own report by its receipt, nothing else. Open311 GeoReport v2 on the same path, so
existing reporting apps can submit to geogrid."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, status
from fastapi.responses import JSONResponse

from api.deps import Lang, SessionDep, SettingsDep, rate_limit
from api.schemas.public import (
    Open311Error,
    Open311Receipt,
    Open311Request,
    Open311Service,
    PublicReceipt,
    PublicReportIn,
)
from geogrid.core.errors import GeogridError
from geogrid.incidents import categories, intake, records, states

router = APIRouter(tags=["public"])


public_limit = rate_limit("public", lambda settings: settings.public_reports_per_minute)


OPEN311_ERRORS = {400: {"model": list[Open311Error], "description": "GeoReport v2 error list"},
                  404: {"model": list[Open311Error], "description": "GeoReport v2 error list"}}


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
def report_status(session: SessionDep, receipt: str, lang: Lang = "zh") -> dict:
    return records.public_view(records.by_receipt(session, receipt), lang)


# --------------------------------------------------------------------------- Open311 GeoReport v2


def _open311_error(code: int, description: str) -> JSONResponse:
    return JSONResponse([{"code": code, "description": description}], status_code=code)


def _status(state: str) -> str:
    return "closed" if state in states.TERMINAL else "open"


def _request(case: dict, lang: str) -> dict:
    return {"service_request_id": case["receipt"], "status": _status(case["state"]),
            "status_notes": states.STATES[case["state"]][1 if lang == "en" else 0],
            "service_name": case["category_en" if lang == "en" else "category_zh"], "service_code": case["category"],
            "agency_responsible": case["department"], "requested_datetime": case["reported_at"],
            "updated_datetime": case["updated_at"], "lat": case["lat"], "long": case["lon"]}


@router.get("/open311/v2/services.json", tags=["open311"], response_model=list[Open311Service], summary="Open311: the categories one may report")
def services(session: SessionDep, lang: Lang = "zh") -> list[dict]:
    return [{"service_code": c["key"], "service_name": c["name_en" if lang == "en" else "name_zh"],
             "description": f"{c['name_zh']} / {c['name_en']}", "metadata": False, "type": "realtime",
             "keywords": c["group_key"], "group": c["group_key"]}
            for c in categories.categories(session).values()]


@router.post("/open311/v2/requests.json", tags=["open311"], dependencies=[Depends(public_limit)],
             response_model=list[Open311Receipt], responses=OPEN311_ERRORS,
             status_code=status.HTTP_201_CREATED, summary="Open311: submit a request (form fields)")
def create_request(
    session: SessionDep,
    settings: SettingsDep,
    service_code: Annotated[str, Form()],
    lat: Annotated[float | None, Form()] = None,
    long: Annotated[float | None, Form()] = None,
    description: Annotated[str, Form(max_length=20_000)] = "",
    email: Annotated[str | None, Form(max_length=200)] = None,
    first_name: Annotated[str | None, Form(max_length=50)] = None,
    last_name: Annotated[str | None, Form(max_length=50)] = None,
    phone: Annotated[str | None, Form(max_length=32)] = None,
    media_url: Annotated[str | None, Form(max_length=500)] = None,
    device_id: Annotated[str | None, Form(max_length=100)] = None,
    lang: Lang = "zh",
):
    if lat is None or long is None:
        return _open311_error(400, "lat and long are required (WGS84)")
    reporter = {k: v for k, v in (("name", " ".join(x for x in (first_name, last_name) if x) or None),
                                  ("email", email), ("phone", phone)) if v}
    data = {"category": service_code, "lon": long, "lat": lat, "crs": "wgs84", "description": description,
            "channel": "open311", "media_urls": [media_url] if media_url else [], "reporter": reporter or None}
    try:
        case = intake.intake(session, data, settings, lang=lang, public=True)
    except GeogridError as exc:
        detail = "; ".join(str(p) for p in exc.problems) or exc.message
        return _open311_error(exc.status if exc.status < 500 else 400, detail)
    session.commit()
    return [{"service_request_id": case["receipt"], "service_notice": states.STATES["reported"][0],
             "account_id": None}]


@router.get("/open311/v2/requests.json", tags=["open311"], response_model=list[Open311Request], responses=OPEN311_ERRORS,
            summary="Open311: requests of public categories (no reporter data)")
def list_requests(
    session: SessionDep,
    service_request_id: Annotated[str | None, Query(description="Comma-separated receipts")] = None,
    service_code: str | None = None,
    start_date: dt.datetime | None = None,
    end_date: dt.datetime | None = None,
    status_: Annotated[str | None, Query(alias="status", pattern="^(open|closed)(,(open|closed))?$")] = None,
    lang: Lang = "zh",
):
    receipts = [r.strip() for r in (service_request_id or "").split(",") if r.strip()][:50]
    rows, _ = records.list_incidents(
        session, public_only=True, receipts=receipts or None, category=service_code,
        reported_since=start_date, reported_until=end_date,
        closed=None if not status_ or "," in status_ else status_ == "closed", limit=1000)
    return [_request(r, lang) for r in rows]


@router.get("/open311/v2/requests/{receipt}.json", tags=["open311"], response_model=list[Open311Request],
            responses=OPEN311_ERRORS, summary="Open311: one request by its id")
def get_request(session: SessionDep, receipt: str, lang: Lang = "zh"):
    try:
        return [_request(records.by_receipt(session, receipt), lang)]
    except GeogridError as exc:
        return _open311_error(exc.status, exc.message)
