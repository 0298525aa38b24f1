"""Point lookup: the areas containing a point, and who is responsible there."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from api.schemas.areas import AreaIdentity
from api.schemas.common import Out


class PublicPerson(Out):
    """A person holding a post: name, phone and photo only where the person allowed them
    to be published (公示)."""

    role: str
    role_name: str
    duties: str | None
    since: dt.date
    name: str | None = None
    phone: str | None = None
    photo_url: str | None = None


class LocatedArea(AreaIdentity):
    boundary_version: int
    on_boundary: bool = Field(description="The point lies on the boundary (shared with a neighbour)")
    primary: bool = Field(description="The one area of its layer and level that the point belongs to")
    persons: list[PublicPerson]


class Located(Out):
    lon: float
    lat: float
    at: dt.datetime | None
    day: dt.date
    results: list[LocatedArea]
