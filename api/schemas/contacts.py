"""Contact links (联户), the 1+1+n check, visits (走访), quotas and the day list."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from api.schemas.common import In, Out


class ContactLinkIn(In):
    person_id: int = Field(description="The cadre (a person)")
    household_id: int
    kind: str = Field(description="central 中心户, radiating 辐射户, hardship 困难户, ordinary 一般户 ...")
    central_id: int | None = Field(default=None, description="A radiating household's central household")
    start_date: dt.date
    end_date: dt.date | None = Field(default=None, description="Inclusive; none: ongoing")


class ContactLinkPatch(In):
    kind: str | None = None
    central_id: int | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = Field(default=None, description="End the link (inclusive)")


class ContactLink(Out):
    id: int
    person_id: int
    person_name: str
    household_id: int
    household_ref: str
    kind: str
    kind_name_zh: str
    kind_name_en: str
    central_id: int | None
    central_ref: str | None
    start_date: dt.date
    end_date: dt.date | None
    version: int
    created_at: dt.datetime
    grid: str | None


class AreaRef(Out):
    code: str
    name: str


class Counted(Out):
    count: int
    items: list[dict[str, Any]]


class StructureCheck(Out):
    area: AreaRef
    on: dt.date
    limits: dict[str, Any]
    unlinked: Counted
    overloaded_cadres: Counted
    centrals_off: Counted
    orphaned_radiating: Counted
    grids: list[dict[str, Any]]
    villages: list[dict[str, Any]]


class OpenCaseIn(In):
    category: str
    description: str | None = Field(default=None, max_length=5000, description="Default: the visit's findings")
    request_type: str | None = Field(default=None, description="consultation 咨询, suggestion 意见建议, complaint 投诉")
    channel: str | None = Field(default=None, description="Default: visit (走访)")
    handling: str | None = None
    promised_at: dt.datetime | None = None
    co_departments: list[str] | None = Field(default=None, max_length=10)
    owner_person_id: int | None = None
    attributes: dict[str, Any] | None = None


class VisitIn(In):
    visited_on: dt.date
    person_id: int = Field(description="The cadre who visited")
    household_ids: list[int] = Field(min_length=1, max_length=100)
    findings: str = Field(default="", max_length=5000, description="What was found (民情)")
    measures: str = Field(default="", max_length=5000, description="What was done")
    deadline: dt.date | None = None
    photo_urls: list[str] = Field(default_factory=list, max_length=10, description="http(s) URLs, at most 10")
    open_case: OpenCaseIn | None = Field(default=None, description="Open a case tied to the first household")


class VisitedHousehold(Out):
    id: int
    ref: str


class Visit(Out):
    id: int
    visited_on: dt.date
    person_id: int
    person_name: str
    area: str
    area_name: str
    households: list[VisitedHousehold]
    findings: str
    measures: str
    deadline: dt.date | None
    photo_urls: list[str]
    incident_id: int | None
    incident_receipt: str | None
    created_at: dt.datetime
    created_by: str


class Reason(Out):
    rule: str = Field(description="gap (the last visit is too old) or count (too few visits this year)")
    text: str
    every_days: int | None = None
    due_on: dt.date | None = None
    visits: int | None = None
    due: int | None = None
    per_year: int | None = None


class BehindHousehold(Out):
    id: int
    ref: str
    address: str
    grid: str | None
    grid_name: str | None
    last_visit: dt.date | None
    since: dt.date = Field(description="The first day it was behind")
    reasons: list[Reason]


class BehindHouseholds(Out):
    count: int
    items: list[BehindHousehold]


class BehindCadre(Out):
    person_id: int
    name: str
    behind: int
    households: list[str]


class BehindCadres(Out):
    count: int
    items: list[BehindCadre]


class Behind(Out):
    area: AreaRef
    on: dt.date
    households: BehindHouseholds
    cadres: BehindCadres
    grids: list[dict[str, Any]]
    villages: list[dict[str, Any]]


class DueVisit(Out):
    id: int
    ref: str
    address: str
    grid: str | None
    status: str = Field(description="overdue, or due_today (behind tomorrow unless visited today)")
    last_visit: dt.date | None
    reasons: list[Reason]


class DuePatrol(Out):
    code: str
    name: str
    last_patrol: dt.datetime | None
    due: dt.datetime | None


class DueVisits(Out):
    count: int
    items: list[DueVisit]


class DuePatrols(Out):
    count: int
    items: list[DuePatrol]
    key_sources: int


class PersonRef(Out):
    id: int
    name: str


class DayList(Out):
    day: dt.date
    person: PersonRef | None
    summary: str
    visits: DueVisits
    patrols: DuePatrols
