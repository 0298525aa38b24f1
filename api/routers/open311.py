"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2), so that existing reporting
apps can submit to geogrid and read back public requests: service discovery, the service
list and definitions, submitting a request (form fields) and reading requests, each in
JSON (``.json``) and XML (``.xml``), with the specification's error lists. A category's
questions (``attributes``, set by an admin) are its service definition; answers come as
``attribute[code]`` form fields and are checked like every other field.

Requests go through the same intake as every other channel (routing, time limits, the
public rate limit); what is read back is the public view of public categories only, never
a reporter's data or a description. ``jurisdiction_id`` is accepted everywhere; when
``open311_jurisdiction_id`` is configured, another one is a 404.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request, status
from fastapi.responses import JSONResponse, Response

from api.deps import Lang, ReadSessionDep, SessionDep, SettingsDep, rate_limit
from api.schemas.public import (
    Open311Discovery,
    Open311Error,
    Open311Receipt,
    Open311Request,
    Open311Service,
    Open311ServiceDefinition,
)
from geogrid.core.errors import GeogridError
from geogrid.incidents import categories, intake, records, states

router = APIRouter(prefix="/open311", tags=["open311"])
Format = Literal["json", "xml"]
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
# The day this interface last changed, as the discovery document's ``changeset``.
CHANGESET = "2026-11-23T00:00:00Z"
# XML names of list members (GeoReport v2's examples): a list in element K holds elements ITEM[K].
ITEM = {"services": "service", "service_requests": "request", "errors": "error", "endpoints": "endpoint",
        "formats": "format", "attributes": "attribute", "values": "value"}
ERRORS = {code: {"model": list[Open311Error], "description": "GeoReport v2 error list (XML: <errors>)"}
          for code in (400, 404)}
JurisdictionId = Annotated[str | None, Query(description="Only needed where one endpoint serves several jurisdictions")]

public_limit = rate_limit("public", lambda settings: settings.public_reports_per_minute)
ATTRIBUTE = re.compile(r"^attribute\[([^\]]{1,50})\](?:\[\])?$")


async def attribute_answers(request: Request) -> dict:
    """The ``attribute[code]`` form fields of a request (several values: a multi-value list)."""
    form = await request.form()
    answers: dict = {}
    for key in form:
        if (m := ATTRIBUTE.match(key)) is not None:
            values = [v for v in form.getlist(key) if isinstance(v, str)]
            answers[m.group(1)] = values if len(values) > 1 or key.endswith("[]") else values[0]
    return answers


# --------------------------------------------------------------------------- formats


def _element(tag: str, value) -> ET.Element:
    element = ET.Element(tag)
    if isinstance(value, dict):
        element.extend(_element(k, v) for k, v in value.items())
    elif isinstance(value, list):
        element.extend(_element(ITEM.get(tag, "item"), v) for v in value)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        element.text = value.isoformat()
    elif value is not None:
        element.text = str(value)
    return element


def to_xml(root: str, value) -> bytes:
    """``value`` as GeoReport v2 XML under ``root`` (ElementTree escapes every text).

    >>> to_xml("errors", [{"code": 404, "description": "a < b"}]).decode()
    "<?xml version='1.0' encoding='utf-8'?>\\n<errors><error><code>404</code><description>a &lt; b</description></error></errors>"
    """
    return ET.tostring(_element(root, value), encoding="utf-8", xml_declaration=True)


def answer(fmt: str, root: str, value, status_code: int = 200) -> Response:
    """``value`` in the format the path asked for; ``root`` names the XML document element."""
    if fmt == "xml":
        return Response(to_xml(root, value), status_code=status_code, media_type="text/xml; charset=utf-8")
    return JSONResponse(value, status_code=status_code)


def error(fmt: str, code: int, description: str) -> Response:
    """GeoReport v2's error list: ``[{code, description}]`` or ``<errors>``."""
    return answer(fmt, "errors", [{"code": code, "description": description}], code)


def format_of(path: str) -> str:
    """The format an Open311 path asks for (its extension); JSON otherwise."""
    return "xml" if path.endswith(".xml") else "json"


def _jurisdiction_error(settings, fmt: str, jurisdiction_id: str | None) -> Response | None:
    expected = settings.open311_jurisdiction_id
    if jurisdiction_id and expected and jurisdiction_id != expected:
        return error(fmt, 404, f"jurisdiction_id {jurisdiction_id!r} is not served here; use {expected!r}")
    return None


def _request(case: dict, lang: str) -> dict:
    # A request placed by a household or an area has no point: lat and long are left out
    # (optional in GeoReport v2), never a household's location.
    point = {"lat": case["lat"], "long": case["lon"]} if case["lat"] is not None else {}
    return {"service_request_id": case["receipt"],
            "status": "closed" if case["state"] in states.TERMINAL else "open",
            "status_notes": states.STATES[case["state"]][1 if lang == "en" else 0],
            "service_name": case["category_en" if lang == "en" else "category_zh"], "service_code": case["category"],
            "agency_responsible": case["department"], "requested_datetime": case["reported_at"],
            "updated_datetime": case["updated_at"], **point}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value.isoformat() if isinstance(value, dt.datetime) else value


# --------------------------------------------------------------------------- routes


@router.get("/discovery.{fmt}", response_model=Open311Discovery, summary="Open311 service discovery")
def discovery(request: Request, settings: SettingsDep, fmt: Format) -> Response:
    base = str(request.base_url).rstrip("/") + "/open311/v2"
    document = {"changeset": CHANGESET, "contact": settings.open311_contact, "key_service": settings.open311_key_service,
                "endpoints": [{"specification": SPECIFICATION, "url": base, "changeset": CHANGESET,
                               "type": "production", "formats": ["application/json", "text/xml"]}]}
    return answer(fmt, "discovery", document)


@router.get("/v2/services.{fmt}", response_model=list[Open311Service], responses=ERRORS,
            summary="Open311: the categories one may report")
def services(session: ReadSessionDep, settings: SettingsDep, fmt: Format, jurisdiction_id: JurisdictionId = None,
             lang: Lang = "zh") -> Response:
    if (refused := _jurisdiction_error(settings, fmt, jurisdiction_id)) is not None:
        return refused
    return answer(fmt, "services", [
        {"service_code": c["key"], "service_name": c["name_en" if lang == "en" else "name_zh"],
         "description": f"{c['name_zh']} / {c['name_en']}", "metadata": bool(c["attributes"]), "type": "realtime",
         "keywords": c["group_key"], "group": c["group_key"]}
        for c in categories.categories(session).values()])


@router.get("/v2/services/{service_code}.{fmt}", response_model=Open311ServiceDefinition, responses=ERRORS,
            summary="Open311: one service's definition (the extra attributes it asks for)")
def service_definition(session: ReadSessionDep, settings: SettingsDep, service_code: str, fmt: Format,
                       jurisdiction_id: JurisdictionId = None) -> Response:
    if (refused := _jurisdiction_error(settings, fmt, jurisdiction_id)) is not None:
        return refused
    known = categories.categories(session)
    if service_code not in known:
        return error(fmt, 404, f"service_code {service_code!r} not found")
    return answer(fmt, "service_definition", {"service_code": service_code, "attributes": [
        {"variable": True, "code": a["code"], "datatype": a["datatype"], "required": a["required"],
         "datatype_description": a.get("datatype_description"), "order": a["order"], "description": a["description"],
         "values": a["values"]} for a in known[service_code]["attributes"]]})


@router.post("/v2/requests.{fmt}", dependencies=[Depends(public_limit)], response_model=list[Open311Receipt],
             responses=ERRORS, status_code=status.HTTP_201_CREATED,
             summary="Open311: submit a request (form fields; description optional, as in the specification)")
def create_request(
    session: SessionDep,
    settings: SettingsDep,
    fmt: Format,
    service_code: Annotated[str | None, Form()] = None,
    lat: Annotated[float | None, Form()] = None,
    long: Annotated[float | None, Form()] = None,
    address_string: Annotated[str | None, Form(max_length=500)] = None,
    description: Annotated[str, Form(max_length=20_000)] = "",
    email: Annotated[str | None, Form(max_length=200)] = None,
    first_name: Annotated[str | None, Form(max_length=50)] = None,
    last_name: Annotated[str | None, Form(max_length=50)] = None,
    phone: Annotated[str | None, Form(max_length=32)] = None,
    media_url: Annotated[str | None, Form(max_length=500)] = None,
    device_id: Annotated[str | None, Form(max_length=100)] = None,
    account_id: Annotated[str | None, Form(max_length=100)] = None,
    jurisdiction_id: Annotated[str | None, Form(max_length=100)] = None,
    answers: Annotated[dict, Depends(attribute_answers)] = None,  # type: ignore[assignment]
    lang: Lang = "zh",
) -> Response:
    if (refused := _jurisdiction_error(settings, fmt, jurisdiction_id)) is not None:
        return refused
    if not service_code:
        return error(fmt, 400, "service_code is required")
    if lat is None or long is None:
        # geogrid routes by location: an address alone cannot be placed in a grid.
        return error(fmt, 400, "lat and long are required (WGS84)" + (
            "; address_string alone cannot be routed to a grid (staff file requests by household or area "
            "code through /api/incidents)" if address_string else ""))
    reporter = {k: v for k, v in (("name", " ".join(x for x in (first_name, last_name) if x) or None),
                                  ("email", email), ("phone", phone)) if v}
    data = {"category": service_code, "lon": long, "lat": lat, "crs": "wgs84", "description": description,
            "channel": "open311", "media_urls": [media_url] if media_url else [], "reporter": reporter or None,
            "attributes": answers}
    try:
        case = intake.intake(session, data, settings, lang=lang, public=True)
    except GeogridError as exc:
        detail = "; ".join(str(p) for p in exc.problems) or exc.message
        return error(fmt, exc.status if exc.status < 500 else 400, detail)
    session.commit()
    return answer(fmt, "service_requests", [{"service_request_id": case["receipt"],
                                             "service_notice": states.STATES["reported"][1 if lang == "en" else 0],
                                             "account_id": None}], status.HTTP_201_CREATED)


@router.get("/v2/requests.{fmt}", response_model=list[Open311Request], responses=ERRORS,
            summary="Open311: requests of public categories (no reporter data, no description)")
def list_requests(
    session: ReadSessionDep,
    settings: SettingsDep,
    fmt: Format,
    service_request_id: Annotated[str | None, Query(description="Comma-separated receipts")] = None,
    service_code: str | None = None,
    start_date: dt.datetime | None = None,
    end_date: dt.datetime | None = None,
    status_: Annotated[str | None, Query(alias="status", pattern="^(open|closed)(,(open|closed))?$")] = None,
    jurisdiction_id: JurisdictionId = None,
    lang: Lang = "zh",
) -> Response:
    if (refused := _jurisdiction_error(settings, fmt, jurisdiction_id)) is not None:
        return refused
    receipts = [r.strip() for r in (service_request_id or "").split(",") if r.strip()][:50]
    rows, _ = records.list_incidents(
        session, public_only=True, receipts=receipts or None, category=service_code,
        reported_since=start_date, reported_until=end_date,
        closed=None if not status_ or "," in status_ else status_ == "closed", limit=1000)
    return answer(fmt, "service_requests", _jsonable([_request(r, lang) for r in rows]))


@router.get("/v2/requests/{receipt}.{fmt}", response_model=list[Open311Request], responses=ERRORS,
            summary="Open311: one request by its id")
def get_request(session: ReadSessionDep, settings: SettingsDep, receipt: str, fmt: Format,
                jurisdiction_id: JurisdictionId = None, lang: Lang = "zh") -> Response:
    if (refused := _jurisdiction_error(settings, fmt, jurisdiction_id)) is not None:
        return refused
    try:
        case = records.by_receipt(session, receipt)
    except GeogridError as exc:
        return error(fmt, exc.status, exc.message)
    return answer(fmt, "service_requests", _jsonable([_request(case, lang)]))
