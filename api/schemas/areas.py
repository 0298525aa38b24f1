"""Areas and grids: request bodies (a GeoJSON Feature or FeatureCollection, a partial
Feature for edits) and the GeoJSON answers. Geometry stays a plain GeoJSON dict in bodies:
geogrid.geo.geometry checks it, so that every bad boundary gets the same message whatever
route it came by."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from api.schemas.common import Geometry, Link, Open, Out

Count = Field(default=None, ge=0, le=10_000_000)


def _web_address(value: str | None) -> str | None:
    """Only http(s): a ``javascript:`` or ``data:`` address must never reach a page's src or href."""
    from maps.base import safe_url

    if value is not None and safe_url(value) is None:
        raise ValueError("must be an http:// or https:// address")
    return value


WebAddress = Annotated[str | None, AfterValidator(_web_address)]


# --------------------------------------------------------------------------- requests


class AreaProperties(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: str | None = Field(default=None, pattern=r"^\d{1,32}$", description="Leave out to have one generated")
    name: str = Field(min_length=1, max_length=200)
    level: str | None = None
    layer: str | None = None
    parent: str | None = Field(default=None, description="Code of the parent area")
    households: StrictInt | None = Count
    population: StrictInt | None = Count
    land_use: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None, max_length=10_000, description="Internal; never published")


class FeatureIn(BaseModel):
    type: Literal["Feature"]
    geometry: dict | None
    properties: AreaProperties


class FeatureCollectionIn(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[FeatureIn] = Field(min_length=1)


class AreaEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    households: StrictInt | None = Count
    population: StrictInt | None = Count
    land_use: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None, max_length=10_000)


class AreaPatch(BaseModel):
    """A partial GeoJSON Feature: the properties to change and/or a new boundary."""

    type: Literal["Feature"] | None = None
    geometry: dict | None = Field(default=None, description="New boundary: becomes a new boundary version")
    properties: AreaEdit = Field(default_factory=AreaEdit)
    note: str | None = Field(default=None, max_length=2000, description="Why the boundary changed")
    version: int | None = Field(default=None, description="Version the edit is based on (or If-Match)")


# --------------------------------------------------------------------------- answers


class AreaIdentity(Out):
    """What names an area wherever it is answered: code, names, level, layer, parent."""

    code: str
    name: str
    level: str
    level_name: str
    layer: str
    layer_name: str
    parent: str | None


class AreaOutProperties(AreaIdentity):
    households: int | None
    population: int | None
    land_use: str | None
    area_m2: float
    boundary_version: int
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    version: int = Field(description="The area's version: its ETag, for If-Match")
    retired_at: dt.datetime | None
    repaired: bool | None = Field(default=None, description="After an edit: the new boundary was mended")
    warnings: list[dict] | None = Field(default=None, description="After an edit")


class AreaFeature(Out):
    type: Literal["Feature"]
    id: str = Field(description="The area's code")
    geometry: Geometry
    properties: AreaOutProperties


class AreaCollection(Out):
    """One page of areas: a GeoJSON FeatureCollection with the paging members of ``Page``."""

    type: Literal["FeatureCollection"]
    numberMatched: int
    numberReturned: int
    links: list[Link]
    features: list[AreaFeature]


class BoundaryVersionProperties(Out):
    code: str
    boundary_version: int
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    area_m2: float
    note: str | None


class BoundaryVersion(Out):
    type: Literal["Feature"]
    id: str = Field(description="code@boundary_version")
    geometry: Geometry
    properties: BoundaryVersionProperties


class BoundaryHistory(Out):
    type: Literal["FeatureCollection"]
    features: list[BoundaryVersion]


class GeneratedCode(Open):
    index: int
    code: str


class ImportReport(Out):
    """What an import did (or, for a dry run, would do)."""

    imported: int
    by_level: dict[str, int]
    codes: list[str]
    generated_codes: list[GeneratedCode]
    repaired: list[Open]
    warnings: list[Open]
    dry_run: bool


class FileImportReport(ImportReport):
    source_crs: str | None
    source_layer: str | None
