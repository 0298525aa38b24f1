"""Cadre–household contact (联户): links, the 1+1+n check and the contact cards (连心卡);
visits (走访, 民情日记), who is behind on them, and the caller's day list."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response

from api.deps import STAFF, IfMatchDep, Lang, PageDep, SessionDep, SettingsDep, require
from api.routers.reports import download
from api.schemas.common import Page, paged
from api.schemas.contacts import (
    Behind,
    ContactLink,
    ContactLinkIn,
    ContactLinkPatch,
    DayList,
    StructureCheck,
    Visit,
    VisitIn,
)
from geogrid.people import cards, contacts, visits

router = APIRouter(prefix="/api", tags=["contacts"])

READ = [require(*contacts.READERS)]
WRITE = [require(*contacts.WRITERS)]
AreaCode = Annotated[str, Query(description="Area code (a grid, a village, a town ...): its whole subtree")]
OnDay = Annotated[dt.date | None, Query(description="The day looked at (default today, service time zone)")]
PDF_MEDIA: dict[str, dict] = {"application/pdf": {}}


@router.get("/contacts", dependencies=READ, response_model=Page[ContactLink],
            summary="Contact links (联户) of households in your scope")
def list_links(request: Request, session: SessionDep, page: PageDep,
               area: Annotated[str | None, Query(description="Households of this area's subtree")] = None,
               person: Annotated[int | None, Query(description="The cadre's person id")] = None,
               on: Annotated[dt.date | None, Query(description="Links active on this day only")] = None) -> dict:
    items, matched = contacts.list_links(session, area=area, person=person, active_on=on, limit=page.limit,
                                         offset=page.offset)
    return paged(request, page, items, matched)


@router.post("/contacts", dependencies=WRITE, status_code=status.HTTP_201_CREATED, response_model=ContactLink,
             summary="Link a cadre to a household (a radiating household names its central household)")
def create_link(session: SessionDep, body: ContactLinkIn) -> dict:
    out = contacts.create_link(session, body.model_dump())
    session.commit()
    return out


@router.get("/contacts/check", dependencies=READ, response_model=StructureCheck,
            summary="The 1+1+n check: households without a cadre, cadres over the limit, central households "
                    "with too few or many radiating ones, radiating households whose central link ended")
def check(session: SessionDep, settings: SettingsDep, area: AreaCode, on: OnDay = None) -> dict:
    return contacts.check_structure(session, settings, area=area, on=on)


@router.get("/contacts/cards.pdf", dependencies=READ, response_class=Response,
            responses={200: {"content": PDF_MEDIA, "description": "One A6 card per household (attachment)"}},
            summary="Contact cards (连心卡) of a grid or village: one A6 page per household with a contact cadre")
def contact_cards(session: SessionDep, settings: SettingsDep, area: AreaCode, on: OnDay = None,
                  lang: Lang = "zh") -> Response:
    return download(cards.contact_cards(session, settings, area=area, on=on, lang=lang))


@router.patch("/contacts/{link_id}", dependencies=WRITE, response_model=ContactLink,
              summary="End a contact link (end_date) or change its kind")
def update_link(session: SessionDep, link_id: int, body: ContactLinkPatch, expected: IfMatchDep) -> dict:
    out = contacts.update_link(session, link_id, body.model_dump(exclude_unset=True), expected)
    session.commit()
    return out


@router.post("/visits", dependencies=WRITE, status_code=status.HTTP_201_CREATED, response_model=Visit,
             summary="Log a visit (走访) to one or more households; optionally open a case linked to it")
def record_visit(session: SessionDep, settings: SettingsDep, body: VisitIn, lang: Lang = "zh") -> dict:
    data = body.model_dump()
    if body.open_case is not None:
        data["open_case"] = body.open_case.model_dump(exclude_none=True)
    out = visits.record_visit(session, data, settings, lang=lang)
    session.commit()
    return out


@router.get("/visits", dependencies=READ, response_model=Page[Visit], summary="Visits in your scope, newest first")
def list_visits(request: Request, session: SessionDep, page: PageDep,
                area: Annotated[str | None, Query(description="Visits placed in this area's subtree")] = None,
                person: Annotated[int | None, Query(description="The cadre's person id")] = None,
                start: Annotated[dt.date | None, Query(alias="from", description="First day")] = None,
                end: Annotated[dt.date | None, Query(alias="to", description="First day after (exclusive)")] = None
                ) -> dict:
    items, matched = visits.list_visits(session, area=area, person=person, start=start, end=end, limit=page.limit,
                                        offset=page.offset)
    return paged(request, page, items, matched)


@router.get("/visits/behind", dependencies=READ, response_model=Behind,
            summary="Households and cadres behind their visit quotas, with totals per grid and village")
def behind(session: SessionDep, settings: SettingsDep, page: PageDep, area: AreaCode, on: OnDay = None,
           lang: Lang = "zh") -> dict:
    return visits.behind(session, settings, area=area, on=on, lang=lang, limit=page.limit, offset=page.offset)


@router.get("/visits/{visit_id}", dependencies=READ, response_model=Visit)
def read_visit(session: SessionDep, visit_id: int) -> dict:
    return visits.get_visit(session, visit_id)


@router.get("/me/today", dependencies=STAFF, response_model=DayList,
            summary="Your day list: visits due to your households, patrols due in your scope")
def today(session: SessionDep, settings: SettingsDep, lang: Lang = "zh") -> dict:
    return visits.day_list(session, settings, lang=lang)
