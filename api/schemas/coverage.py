"""Coverage checks ("全覆盖、无盲区"), stored runs, repair proposals and exemption masks."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from api.schemas.common import Geometry, In, Open, Out

Number = int | float  # as computed: an integer stays an integer in the answer


# --------------------------------------------------------------------------- requests


class RepairIn(In):
    area: str
    layer: str = "comprehensive"
    gap_width_m: float = Field(default=5.0, ge=0, le=1000, description="Gaps narrower than this go to a neighbour")
    merge_strategy: Literal["longest_border", "max_area", "min_area", "min_index"] = "longest_border"
    snapping_distance_m: float = Field(default=-1, ge=-1, le=100, description="-1: chosen by GEOS")


class ExemptionIn(In):
    area: str = Field(description="Code of the area the void lies in")
    kind: Literal["lake", "river", "reservoir", "military", "exclave", "other"]
    name: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=2000)
    geometry: dict


# --------------------------------------------------------------------------- checks and runs


class ProblemProperties(Open):
    """What is wrong, where: members beyond these depend on the kind (width of a gap,
    persons missing, the outlier's statistics...)."""

    kind: str = Field(description="gap, overlap, spill, invalid, no_responsible, overloaded_person, size outlier...")
    parent: str = Field(description="Code of the parent area checked")


class ProblemFeature(Out):
    type: Literal["Feature"]
    id: int
    geometry: Geometry | None
    properties: ProblemProperties


class Problems(Out):
    type: Literal["FeatureCollection"]
    features: list[ProblemFeature]


class ParentSummary(Open):
    """One parent area checked: its measures and the count of problems per kind."""

    parent: str
    parent_name: str
    layer: str
    grids: int
    coverage_pct: Number
    counts: dict[str, int]


class CheckSummary(Out):
    area: str
    layer: str
    subtree: bool
    parents_checked: int
    grids: int
    coverage_pct: Number
    counts: dict[str, int] = Field(description="Problems per kind")
    problems: int
    parents: list[ParentSummary] = Field(description="Worst first")


class CoverageCheck(Out):
    """A check just made (and stored as run ``id``)."""

    summary: CheckSummary
    problems: Problems
    seconds: Number
    options: dict[str, Any]
    at: str = Field(description="When it ran (ISO 8601)")
    id: int


class CurrentCoverage(CoverageCheck):
    """The problems of the boundaries as they are now: the stored run ``id`` while nothing
    it read has changed since, else a check made (and stored) for this request."""

    fresh: bool = Field(description="True when checked now, false for a stored run still current")


class RunListed(Out):
    id: int
    at: dt.datetime
    actor: str
    area_code: str
    layer: str
    subtree: bool
    seconds: Number
    counts: dict[str, int]
    coverage_pct: Number


class Run(Out):
    """A stored run, whole."""

    id: int
    at: dt.datetime
    actor: str
    area_code: str
    layer: str
    subtree: bool
    options: dict[str, Any]
    summary: CheckSummary
    problems: Problems
    seconds: Number


class OldNew(Out):
    old: Number
    new: Number


class ProblemKey(Out):
    kind: str
    codes: list[str]


class RunComparison(Out):
    old: int = Field(description="Id of the earlier run")
    new: int
    area: str
    layer: str
    coverage_pct: OldNew
    counts: dict[str, OldNew]
    appeared: list[ProblemKey]
    resolved: list[ProblemKey]


# --------------------------------------------------------------------------- repairs


class RepairProperties(Open):
    code: str
    name: str
    changed: bool
    version: int
    retire: bool
    area_before_m2: Number
    area_after_m2: Number
    gained_m2: Number
    lost_m2: Number
    lost_to: list[Any]


class RepairFeature(Out):
    type: Literal["Feature"]
    id: str
    geometry: Geometry | None
    properties: RepairProperties


class RepairCollection(Out):
    type: Literal["FeatureCollection"]
    features: list[RepairFeature]


class RepairParams(Out):
    gap_width_m: Number
    merge_strategy: str
    snapping_distance_m: Number


class RepairProposed(Out):
    id: int
    area: str
    layer: str
    params: RepairParams
    grids: int
    changed: int
    proposal: RepairCollection


class RepairProposal(Out):
    """A stored proposal: the versions it was computed from, and whether it was applied."""

    id: int
    at: dt.datetime
    actor: str
    area_code: str
    layer: str
    params: RepairParams
    base_versions: dict[str, int]
    proposal: RepairCollection
    applied_at: dt.datetime | None
    applied_by: str | None


class RepairApplied(Out):
    id: int
    applied: list[str] = Field(description="Codes of the areas given a new boundary version")


# --------------------------------------------------------------------------- exemptions


class Exemption(Out):
    id: int
    area: str
    kind: str
    name: str | None


class ExemptionProperties(Exemption):
    area_m2: Number


class ExemptionFeature(Out):
    type: Literal["Feature"]
    id: int
    geometry: Geometry
    properties: ExemptionProperties


class ExemptionCollection(Out):
    type: Literal["FeatureCollection"]
    features: list[ExemptionFeature]
