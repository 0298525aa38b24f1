"""Request bodies. Geometry stays a plain GeoJSON dict here: geogrid.geometry checks it,
so that every bad boundary gets the same message whatever route it came by."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

Count = Field(default=None, ge=0, le=10_000_000)


def _web_address(value: str | None) -> str | None:
    """Only http(s): a ``javascript:`` or ``data:`` address must never reach a page's src or href."""
    from maps.base import safe_url

    if value is not None and safe_url(value) is None:
        raise ValueError("must be an http:// or https:// address")
    return value


WebAddress = Annotated[str | None, AfterValidator(_web_address)]


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


class LevelIn(BaseModel):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    rank: int = Field(ge=1, le=99)
    code_length: int = Field(ge=2, le=32)
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)


class LayerIn(BaseModel):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=2000)


class RoleIn(BaseModel):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    rank: int = Field(default=100, ge=0, le=10_000)
    responsible: bool = True


class PersonIn(BaseModel):
    ref: str | None = Field(default=None, max_length=64, description="Your own reference for this person")
    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, pattern=r"^[0-9+\-() ]{3,32}$")
    photo_url: WebAddress = Field(default=None, max_length=500)
    name_public: bool = True
    phone_public: bool = False
    photo_public: bool = False
    notes: str | None = Field(default=None, max_length=10_000)


class PersonPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    phone: str | None = Field(default=None, pattern=r"^[0-9+\-() ]{3,32}$")
    photo_url: WebAddress = Field(default=None, max_length=500)
    name_public: bool | None = None
    phone_public: bool | None = None
    photo_public: bool | None = None
    notes: str | None = Field(default=None, max_length=10_000)
    version: int | None = None


class Person(BaseModel):
    id: int
    ref: str | None
    name: str
    phone: str | None
    photo_url: str | None
    name_public: bool
    phone_public: bool
    photo_public: bool
    notes: str | None
    version: int
    created_at: dt.datetime


class AssignmentIn(BaseModel):
    person: int | str = Field(description="Person id or ref")
    area: str = Field(description="Area code")
    role: str
    start_date: dt.date
    end_date: dt.date | None = Field(default=None, description="Inclusive; leave out while the post is held")
    duties: str | None = Field(default=None, max_length=2000)


class AssignmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_date: dt.date | None = None
    end_date: dt.date | None = None
    duties: str | None = Field(default=None, max_length=2000)
    version: int | None = None


class Assignment(BaseModel):
    id: int
    person_id: int
    person_ref: str | None
    person_name: str
    area: str
    role: str
    start_date: dt.date
    end_date: dt.date | None
    duties: str | None
    version: int
    created_at: dt.datetime
