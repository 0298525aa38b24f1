"""Pollution sources (环境监管档案) and patrols of environment grids."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from api.schemas.common import In, Out
from geogrid.environment.sources import KINDS

Kind = Literal[tuple(KINDS)]  # type: ignore[valid-type]
Risk = Literal["low", "medium", "high"]


class SourceIn(In):
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    lon: float
    lat: float
    pollutants: list[str] = Field(default_factory=list, max_length=50)
    permit_no: str | None = Field(default=None, max_length=64)
    key_supervision: bool = False
    risk_level: Risk = "low"
    address: str | None = Field(default=None, max_length=300)
    notes: str | None = Field(default=None, max_length=5000)
    public: bool = Field(default=False, description="listed publicly (OGC collection `sources`): name, kind, "
                                                   "pollutants, permit, address; never notes or risk level")


class SourcePatch(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: Kind | None = None
    lon: float | None = None
    lat: float | None = None
    pollutants: list[str] | None = Field(default=None, max_length=50)
    permit_no: str | None = Field(default=None, max_length=64)
    key_supervision: bool | None = None
    risk_level: Risk | None = None
    address: str | None = Field(default=None, max_length=300)
    notes: str | None = Field(default=None, max_length=5000)
    public: bool | None = None


class PatrolIn(In):
    grid: str = Field(description="Code of the environment grid patrolled")
    at: dt.datetime | None = Field(default=None, description="Default: now")
    lon: float | None = None
    lat: float | None = None
    sources: list[int] = Field(default_factory=list, max_length=500, description="Ids of sources visited")
    notes: str | None = Field(default=None, max_length=5000)


class Source(Out):
    id: int
    name: str
    kind: str
    pollutants: list[str]
    permit_no: str | None
    key_supervision: bool
    risk_level: str
    address: str | None
    public: bool
    notes: str | None
    lon: float
    lat: float
    grid: str | None = Field(description="The environment grid it lies in")
    grid_name: str | None
    version: int
    created_at: dt.datetime
    last_visit: dt.datetime | None = Field(description="The last patrol that visited it")


class Patrol(Out):
    id: int
    grid: str
    at: dt.datetime
    sources: list[int]


class GridBehind(Out):
    code: str
    name: str
    level: str
    last_patrol: dt.datetime | None
    every_days: int
    due: dt.datetime | None
    days_overdue: int | None


class PatrolsBehind(Out):
    grids: list[GridBehind]
    key_sources: list[Source]
    checked_at: dt.datetime
