"""Score sheets (考核方案): schemes and their items, periods, results, manual items,
rankings and the published red/black list (红黑榜)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from api.schemas.common import In, Out
from geogrid.assessment.scoring import ITEM_KINDS, MAX_ITEMS, PERIOD_KINDS, STATES, TARGET_KINDS

Number = int | float
TargetKind = Literal[tuple(TARGET_KINDS)]  # type: ignore[valid-type]
PeriodKind = Literal[tuple(PERIOD_KINDS)]  # type: ignore[valid-type]
ItemKind = Literal[tuple(ITEM_KINDS)]  # type: ignore[valid-type]
State = Literal[tuple(STATES)]  # type: ignore[valid-type]


# --------------------------------------------------------------------------- requests


class RuleIn(In):
    indicator: str = Field(description="An indicator key (GET /api/stats/definitions) or closed_late, unclosed")
    per: Number | None = Field(default=None, description="points for every whole `per` units")
    below: Number | None = Field(default=None, description="points when the value is below this (rates: 0-1)")
    above: Number | None = Field(default=None, description="points when the value is above this (rates: 0-1)")
    points: Number = Field(description="points taken (deduction) or given (bonus); capped at the item's points")


class ItemIn(In):
    code: str = Field(max_length=32)
    name: str = Field(max_length=200)
    points: Number = Field(description="the item's maximum points")
    kind: ItemKind
    rule: RuleIn | Literal["manual"] = Field(description='a rule on an indicator, or "manual" (entered by an assessor)')


class SchemeIn(In):
    area: str = Field(description="Code of the county or town that owns the scheme")
    name: str = Field(min_length=1, max_length=200)
    total: Literal[100, 1000]
    target_kind: TargetKind
    period_kind: PeriodKind
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_ITEMS)


class SchemePatch(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    total: Literal[100, 1000] | None = None
    target_kind: TargetKind | None = Field(default=None, description="only while the scheme has no period")
    period_kind: PeriodKind | None = Field(default=None, description="only while the scheme has no period")
    items: list[ItemIn] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)


class ManualIn(In):
    target: str = Field(max_length=100, description="Area code, person id or department name of the target")
    item: str = Field(max_length=32, description="Code of a manual item of the scheme")
    points: Number = Field(ge=0, description="Between 0 and the item's points")
    reason: str = Field(min_length=1, max_length=2000)
    evidence: str = Field(min_length=1, max_length=2000, description="A URL or a description of the evidence")


class PublishIn(In):
    red: int = Field(default=3, ge=1, le=50, description="Top places on the red list")
    black: int = Field(default=3, ge=1, le=50, description="Bottom places on the black list")


# --------------------------------------------------------------------------- responses


class Scheme(Out):
    id: int
    area: str
    area_name: str
    name: str
    total: int
    target_kind: str
    period_kind: str
    items: list[dict[str, Any]]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    created_by: str


class Period(Out):
    scheme_id: int
    name: str
    kind: str
    start: dt.date
    end: dt.date = Field(description="exclusive")
    state: State
    published: bool
    scheme_version: int
    red_n: int
    black_n: int
    measured_at: dt.datetime = Field(description="the moment 'overdue now' was measured at")
    computed_at: dt.datetime
    computed_by: str
    reviewed_at: dt.datetime | None
    reviewed_by: str | None
    frozen_at: dt.datetime | None
    frozen_by: str | None
    published_at: dt.datetime | None
    published_by: str | None
    targets: int
    scheme: dict[str, Any] = Field(description="the scheme (name, total, kinds, items) the period was computed with")


class RankingRow(Out):
    rank: int
    target: str
    name: str
    score: float
    deductions: float
    bonuses: float


class ScoreRow(RankingRow):
    items: list[dict[str, Any]] = Field(description="each item's points with its evidence")
    indicator_values: dict[str, Any]


class PeriodResults(Out):
    scheme: Scheme
    period: Period
    rows: list[ScoreRow]




class RankingScheme(Out):
    id: int
    name: str
    target_kind: str
    total: int


class RankingPeriod(Out):
    name: str
    start: dt.date
    end: dt.date
    state: State
    published: bool


class Ranking(Out):
    scheme: RankingScheme
    period: RankingPeriod
    rows: list[RankingRow]
    bottom: list[RankingRow] = Field(description="末三位: the last three places, ties included")
    red: list[RankingRow]
    black: list[RankingRow]


class PublicRow(Out):
    rank: int
    name: str | None = Field(description="unit name; a grid worker's only if it is public")
    score: float


class PublicList(Out):
    scheme: str
    target_kind: str
    period: str
    start: dt.date
    end: dt.date
    red: list[PublicRow]
    black: list[PublicRow]


class PublicArea(Out):
    code: str
    name: str


class PublicRankings(Out):
    area: PublicArea
    lists: list[PublicList]
