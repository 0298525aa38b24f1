"""What every resource shares: the paging envelope ``Page[T]`` and the one function that
builds it, links, GeoJSON geometry, and the bases of the request and response models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from api.deps import Page as PageParams

T = TypeVar("T")


class In(BaseModel):
    """Base of the request bodies: a member the model does not declare is refused (422
    naming it), never silently ignored: a misplaced field must not look like a success."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base of the response models: the fields a route returns, declared one by one."""

    model_config = ConfigDict(extra="ignore")


class Open(Out):
    """A bag whose members depend on its kind (an audit row's before/after, an event's data,
    a coverage problem's properties): the declared members are typed, others pass through."""

    model_config = ConfigDict(extra="allow")


class Link(Out):
    rel: Literal["self", "next", "prev"]
    type: str
    href: str


class Page(Out, Generic[T]):
    """One page of a list (OGC API Features style): the items, how many matched in all, how
    many are on this page, and links to this page and its neighbours."""

    items: list[T]
    numberMatched: int
    numberReturned: int
    links: list[Link]


def links(request: Request, page: PageParams, returned: int, matched: int) -> list[dict]:
    """self, and next/prev when there is such a page."""
    out = [{"rel": "self", "type": "application/geo+json", "href": str(request.url)}]
    if page.offset + returned < matched:
        out.append({"rel": "next", "type": "application/geo+json",
                    "href": str(request.url.include_query_params(offset=page.offset + page.limit, limit=page.limit))})
    if page.offset > 0:
        out.append({"rel": "prev", "type": "application/geo+json",
                    "href": str(request.url.include_query_params(offset=max(0, page.offset - page.limit),
                                                                 limit=page.limit))})
    return out


def paged(request: Request, page: PageParams, items: list, matched: int, *, member: str = "items") -> dict[str, Any]:
    """The paging envelope of one page of ``items`` out of ``matched``: ``Page[T]``'s shape
    (``member="features"`` for a GeoJSON FeatureCollection's members)."""
    return {member: items, "numberMatched": matched, "numberReturned": len(items),
            "links": links(request, page, len(items), matched)}


class GeoJSONResponse(JSONResponse):
    """GeoJSON (RFC 7946): the media type the areas' routes answer with."""

    media_type = "application/geo+json"


Geometry = dict[str, Any]  # GeoJSON geometry (RFC 7946); geogrid.geo.geometry checks incoming ones


class Health(Out):
    status: Literal["ok"]
    postgis: str
