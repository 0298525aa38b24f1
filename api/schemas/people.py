"""Persons and their assignments to areas."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from api.schemas.areas import WebAddress
from api.schemas.common import In, Out


class PersonIn(In):
    ref: str | None = Field(default=None, max_length=64, description="Your own reference for this person")
    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, pattern=r"^[0-9+\-() ]{3,32}$")
    photo_url: WebAddress = Field(default=None, max_length=500)
    name_public: bool = True
    phone_public: bool = False
    photo_public: bool = False
    notes: str | None = Field(default=None, max_length=10_000)


class PersonPatch(In):
    ref: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    phone: str | None = Field(default=None, pattern=r"^[0-9+\-() ]{3,32}$")
    photo_url: WebAddress = Field(default=None, max_length=500)
    name_public: bool | None = None
    phone_public: bool | None = None
    photo_public: bool | None = None
    notes: str | None = Field(default=None, max_length=10_000)
    version: int | None = None


class Person(Out):
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


class AssignmentIn(In):
    person: int | str = Field(description="Person id or ref")
    area: str = Field(description="Area code")
    role: str
    start_date: dt.date
    end_date: dt.date | None = Field(default=None, description="Inclusive; leave out while the post is held")
    duties: str | None = Field(default=None, max_length=2000)


class AssignmentPatch(In):
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    duties: str | None = Field(default=None, max_length=2000)
    version: int | None = None


class Assignment(Out):
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
