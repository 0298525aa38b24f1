"""Incidents (事件) for staff: intake, the staff view with its history, the workflow's
request bodies, bulk import; incident categories."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from api.schemas.common import In, Open, Out
from geogrid.incidents.intake import CHANNELS, HANDLING, MAX_ADDRESS, MAX_DESCRIPTION, MAX_RESOLUTION
from geogrid.incidents.states import STATES

State = Literal[tuple(STATES)]  # type: ignore[valid-type]
Unit = Literal["working_hours", "working_days", "hours", "days"]
Step = Literal["accept", "dispatch", "handle", "verify"]


# --------------------------------------------------------------------------- requests


class Reporter(In):
    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, pattern=r"^[0-9+\-() ]{3,32}$")
    email: str | None = Field(default=None, max_length=200)


class IncidentIn(In):
    """A case placed by exactly one of: a point (lon, lat), a household of the register
    (household_id) or an area code (area: a grid of the category's net, or an
    administrative area whose office takes it)."""

    category: str = Field(description="Category key, see /api/categories")
    lon: float | None = Field(default=None, description="Longitude in `crs`")
    lat: float | None = Field(default=None, description="Latitude in `crs`")
    crs: str = Field(default="wgs84", description="wgs84, cgcs2000, gcj02 (Amap, Tencent) or bd09 (Baidu)")
    household_id: int | None = Field(default=None, description="Instead of a point: the household it concerns "
                                                               "(routed to the household's grid; no point is stored)")
    area: str | None = Field(default=None, max_length=32, pattern=r"^\d+$",
                             description="Instead of a point: an area code (a grid of the category's net, "
                                         "or an administrative area: its office takes the case)")
    address: str | None = Field(default=None, max_length=MAX_ADDRESS, description="Free-text address (private)")
    request_type: str | None = Field(default=None, max_length=32, description="咨询/意见建议/投诉…, see /api/request-types")
    handling: Literal[tuple(HANDLING)] = Field(  # type: ignore[valid-type]
        default="standard", description="standard; immediate 即办 (closed in this call, needs resolution); "
                                        "promised 承诺 (needs promised_at); joint 联办 (needs co_departments)")
    resolution: str | None = Field(default=None, max_length=MAX_RESOLUTION, description="即办: the answer given")
    promised_at: str | None = Field(default=None, max_length=40, description="承诺: the handling deadline, an ISO "
                                                                             "date-time (a date alone: its end)")
    co_departments: list[str] = Field(default_factory=list, max_length=10, description="联办: co-handling departments")
    owner_person_id: int | None = Field(default=None, description="包案: the leader who owns the case (a person)")
    description: str = Field(max_length=20_000, description=f"At most {MAX_DESCRIPTION} characters")
    channel: Literal[tuple(CHANNELS)] = "patrol"  # type: ignore[valid-type]
    occurred_at: dt.datetime | None = Field(default=None, description="Default: now")
    media_urls: list[str] = Field(default_factory=list, max_length=50)
    reporter: Reporter | None = Field(default=None, description="Private: never published")
    idempotency_key: str | None = Field(default=None, max_length=100,
                                        description="A second submission with the same key on the same channel "
                                                    "from the same account is refused (409)")
    attributes: dict[str, str | float | list[str]] | None = Field(
        default=None, description="Answers to the category's questions (see /api/categories), by code")

    def intake_data(self) -> dict:
        """The body as ``intake`` takes it: a reporter without its empty fields."""
        data = self.model_dump()
        data["reporter"] = self.reporter.model_dump(exclude_none=True) if self.reporter else None
        return data


class TransitionIn(In):
    to: State
    note: str | None = Field(default=None, max_length=2000)
    satisfaction: int | None = Field(default=None, ge=0, le=10, description="Resident satisfaction 0-10, on closing")


class CallbackIn(In):
    satisfaction: int = Field(ge=0, le=10, description="Resident satisfaction 0-10, as the call-back found it")
    note: str | None = Field(default=None, max_length=2000)


class NoteIn(In):
    note: str | None = Field(default=None, max_length=2000)


class OwnerIn(In):
    person_id: int | None = Field(description="The leader who owns the case (包案); null: nobody")
    note: str | None = Field(default=None, max_length=2000)


class CommentIn(In):
    note: str = Field(min_length=1, max_length=2000)


class MoveIn(In):
    lon: float
    lat: float
    crs: str = "wgs84"
    note: str | None = Field(default=None, max_length=2000)


class CategoryAttributeValue(In):
    key: str = Field(min_length=1, max_length=100)
    name: str | None = Field(default=None, max_length=200)


class CategoryAttributeIn(In):
    """A question the category asks a reporter (Open311 GeoReport v2 service attribute)."""

    code: str = Field(pattern=r"^[A-Za-z0-9_-]{1,50}$")
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
    required: bool = False
    description: str = Field(min_length=1, max_length=500, description="The question, as a reporter reads it")
    datatype_description: str | None = Field(default=None, max_length=500)
    values: list[CategoryAttributeValue] = Field(default_factory=list, max_length=200)


class CategoryPatch(In):
    attributes: list[CategoryAttributeIn] | None = Field(default=None, max_length=50,
                                                         description="Replaces the category's questions")
    time_limits: dict[Step, tuple[float, Unit]] | None = None
    department: str | None = Field(default=None, max_length=100)
    public: bool | None = None
    auto_escalate: bool | None = None


TimeLimitsIn = CategoryPatch  # its name in the routers before the schemas package


class CategoryIn(In):
    """A county's own category."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    group_key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    layer_key: str = Field(max_length=32, description="The net its cases are routed on (see /api/layers)")
    department: str = Field(min_length=1, max_length=100)
    public: bool = False
    time_limits: dict[Step, tuple[float, Unit]] = Field(description="Every step: accept, dispatch, handle, verify")
    auto_escalate: bool = True
    attributes: list[CategoryAttributeIn] = Field(default_factory=list, max_length=50)


class RequestTypeIn(In):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    rank: int = Field(default=100, ge=0, le=100_000)


class RequestType(Out):
    key: str
    name_zh: str
    name_en: str
    rank: int


# --------------------------------------------------------------------------- answers


class Category(Out):
    key: str
    name_zh: str
    name_en: str
    group_key: str
    layer_key: str
    department: str | None
    public: bool
    time_limits: dict[Step, tuple[int | float, Unit]]
    auto_escalate: bool
    attributes: list[Open] = Field(default_factory=list, description="Questions asked of reporters")


class ResponsiblePerson(Out):
    """A person responsible for the incident's grid when it was routed (all fields: staff)."""

    person_id: int
    name: str
    phone: str | None
    role: str
    role_name: str


class CaseHousehold(Out):
    id: int
    ref: str
    address: str


class Incident(Out):
    """An incident as staff see it."""

    id: int
    receipt: str
    category: str
    category_zh: str
    category_en: str
    channel: str
    description: str
    attributes: dict = Field(default_factory=dict, description="Answers to the category's questions")
    occurred_at: dt.datetime
    reported_at: dt.datetime
    media_urls: list[str]
    reporter: dict[str, Any] | None = Field(description="Private: never published")
    original: dict[str, Any] = Field(description="Coordinates and system as received (or the household or area)")
    lon: float | None = Field(description="None for a case placed by a household or an area")
    lat: float | None
    route_kind: Literal["grid", "blind_spot", "area"]
    grid: str | None
    grid_name: str | None
    authority: str
    authority_name: str
    nearest_grid: dict[str, Any] | None = Field(description="Blind spots: code and distance of the nearest grid")
    responsible: list[ResponsiblePerson]
    department: str | None
    state: State
    escalation_level: int
    due_at: dt.datetime | None
    closed_at: dt.datetime | None
    satisfaction: int | None
    version: int
    updated_at: dt.datetime
    overdue: bool
    household: CaseHousehold | None = Field(default=None, description="The household it concerns (private)")
    address: str | None = Field(default=None, description="The address given (private)")
    request_type: str | None = None
    request_type_zh: str | None = None
    request_type_en: str | None = None
    handling: Literal[tuple(HANDLING)] = "standard"  # type: ignore[valid-type]
    promised_at: dt.datetime | None = None
    co_departments: list[str] = Field(default_factory=list)
    owner_person_id: int | None = Field(default=None, description="包案: the leader who owns the case")
    owner_name: str | None = None


class IncidentEvent(Out):
    at: dt.datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    note: str | None
    data: dict[str, Any] | None


class IncidentStep(Out):
    """A timed step: the area that owed it, its deadline (kept after it ended), when and how
    it ended, by whom, and the working hours it took."""

    step: Literal["accept", "dispatch", "handle", "verify"]
    authority: str
    started_at: dt.datetime
    due_at: dt.datetime | None
    ended_at: dt.datetime | None
    ended_by: str | None
    outcome: Literal["done", "escalated", "parked", "voided", "reopened"] | None
    late: bool | None
    working_hours: float | None


class IncidentCase(Incident):
    """One incident after intake or a move of the workflow: with the moves allowed next."""

    allowed: list[State]


class IncidentDetail(IncidentCase):
    """One incident with its history (every event, oldest first) and its timed steps."""

    history: list[IncidentEvent]
    steps: list[IncidentStep]


class Escalated(Out):
    escalated: list[str] = Field(description="Receipts of the cases escalated")


class IncidentImportReport(Out):
    imported: int
    by_route: dict[str, int]
