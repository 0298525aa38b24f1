"""The household register: households, residents (ID numbers masked), tags, special groups,
derivation history, register counts and import reports."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from api.schemas.common import In, Out


class GridRef(Out):
    code: str
    name: str | None


class Household(Out):
    id: int
    ref: str
    head_name: str
    kind: Literal["registered", "floating", "separated"]
    rental: bool
    address: str
    town: str | None
    village: str | None
    street: str | None
    number: str | None
    building_no: str | None
    unit: str | None
    room: str | None
    building: str | None = Field(description="The building's code (楼栋编码), when it has one")
    located_by: Literal["own", "building"]
    lon: float
    lat: float
    grid: GridRef | None = Field(description="The comprehensive grid its point lies in (derived); null: none")
    members: int = Field(description="Live residents")
    phone: str | None = Field(description="Only for callers holding resident_data on its place")
    retired: bool
    version: int


class Tag(Out):
    id: int
    group_key: str
    group_name: str
    start_date: dt.date
    end_date: dt.date | None
    note: str | None


class Resident(Out):
    id: int
    household_id: int
    household_ref: str
    name: str
    relation: str | None
    gender: Literal["M", "F"] | None
    birth_date: dt.date | None
    id_number: str | None = Field(description="Masked: only the last 4 characters are shown")
    phone: str | None
    retired: bool
    version: int
    tags: list[Tag]


class HistoryRow(Out):
    grid: GridRef | None
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    reason: Literal["register", "redraw", "moved"]


class GridSize(Out):
    code: str
    name: str
    households: int | None
    population: int | None
    source: Literal["register", "typed"] = Field(description="register: counted from the household register; "
                                                 "typed: the numbers typed on the grid")
    typed_households: int | None
    typed_population: int | None


class SpecialGroup(Out):
    key: str
    name_zh: str
    name_en: str
    visit_every_days: int | None
    rank: int


class SpecialGroupIn(In):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    visit_every_days: int | None = Field(default=None, gt=0, le=3660)
    rank: int | None = Field(default=None, ge=0)


class TagIn(In):
    group_key: str = Field(max_length=32)
    start_date: dt.date
    end_date: dt.date | None = None
    note: str | None = Field(default=None, max_length=2000)


class TagPatch(In):
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    note: str | None = Field(default=None, max_length=2000)


class MoveIn(In):
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    building: str | None = Field(default=None, max_length=64, description="Take the point of this building")
    version: int | None = None


class ImportReport(Out):
    households: int
    residents: int
    tags: int
    buildings: int
    replaced: int = Field(description="Households already in the register, replaced (their old residents retired)")
    grids_assigned: int
    outside_grids: int = Field(description="Households whose point lies in no comprehensive grid")
    rows: int
