"""Response models of OGC API - Features (``/ogc``), for the OpenAPI document: the
documents are built by ``api/routers/ogc.py`` (features by PostGIS) and are not validated
through these models on the way out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from api.schemas.common import Open


class OgcLink(Open):
    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class LandingPage(Open):
    title: str
    description: str | None = None
    links: list[OgcLink]


class Conformance(Open):
    conformsTo: list[str]


class SpatialExtent(Open):
    bbox: list[list[float]]
    crs: str | None = None


class TemporalExtent(Open):
    interval: list[list[str | None]]
    trs: str | None = None


class Extent(Open):
    spatial: SpatialExtent | None = None
    temporal: TemporalExtent | None = None


class CollectionInfo(Open):
    id: str
    title: str
    description: str | None = None
    links: list[OgcLink]
    extent: Extent | None = None
    itemType: str = "feature"
    crs: list[str]
    storageCrs: str | None = None


class Collections(Open):
    links: list[OgcLink]
    collections: list[CollectionInfo]


class Feature(Open):
    type: Literal["Feature"]
    id: str | int
    geometry: dict[str, Any] | None
    properties: dict[str, Any] | None
    links: list[OgcLink] | None = None


class FeatureCollection(Open):
    type: Literal["FeatureCollection"]
    features: list[Feature]
    links: list[OgcLink]
    timeStamp: str
    numberReturned: int
    numberMatched: int | None = Field(default=None, description="Given only where counting is cheap")


class Queryables(Open):
    title: str
    type: Literal["object"]
    properties: dict[str, dict[str, Any]]
