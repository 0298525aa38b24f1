"""Public intake (a receipt, the status by receipt) and Open311 GeoReport v2."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from api.schemas.common import In, Out
from api.schemas.incidents import Reporter


class PublicReportIn(In):
    category: str
    lon: float
    lat: float
    crs: str = Field(default="wgs84", description="wgs84, cgcs2000, gcj02 (Amap, Tencent) or bd09 (Baidu)")
    description: str = Field(max_length=20_000)
    occurred_at: dt.datetime | None = None
    media_urls: list[str] = Field(default_factory=list, max_length=50)
    reporter: Reporter | None = Field(default=None, description="Private: never published")
    idempotency_key: str | None = Field(default=None, max_length=100)


class PublicReceipt(Out):
    """What anyone may see of a report: never the reporter, notes or persons' details."""

    receipt: str
    category: str
    category_name: str
    state: str
    state_name: str
    reported_at: dt.datetime
    closed_at: dt.datetime | None
    grid: str | None = Field(description="The grid handling it, as published (None: not published or none)")
    authority: str | None = Field(description="The area whose office answers for it, as published")


class Place(Out):
    """A place search result: what the public map shows of a grid or village, never a
    household (an address answers with the grid holding it)."""

    kind: Literal["grid", "village", "address"]
    label: str = Field(description="The text to show, e.g. 新街社区 · 青禾镇")
    code: str = Field(description="The grid's or village's code (an address: the grid holding it)")
    name: str = Field(description="The grid's or village's name (an address: the door-plate address)")
    grid_code: str | None = Field(default=None, description="The grid (grids and addresses)")
    grid_name: str | None = None
    bbox: list[float] = Field(description="[minx, miny, maxx, maxy] of the grid or village (WGS84), to zoom to")


class Places(Out):
    q: str
    area: str
    layer: str
    results: list[Place]


class Open311Service(Out):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str
    group: str


class Open311Request(Out):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str
    service_name: str
    service_code: str
    agency_responsible: str | None
    requested_datetime: dt.datetime
    updated_datetime: dt.datetime
    lat: float | None = Field(default=None, description="absent for a request filed without a map point")
    long: float | None = Field(default=None, description="absent for a request filed without a map point")


class Open311Receipt(Out):
    service_request_id: str
    service_notice: str
    account_id: str | None


class Open311Error(Out):
    code: int
    description: str


class Open311ServiceDefinition(Out):
    service_code: str
    attributes: list[dict] = Field(description="Questions the service asks (attribute[code] form fields)")


class Open311Endpoint(Out):
    specification: str
    url: str
    changeset: str
    type: Literal["production", "test"]
    formats: list[str]


class Open311Discovery(Out):
    changeset: str
    contact: str
    key_service: str
    endpoints: list[Open311Endpoint]
