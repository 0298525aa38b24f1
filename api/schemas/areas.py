"""Areas and grids: request bodies (a GeoJSON Feature or FeatureCollection, a partial
Feature for edits) and the GeoJSON answers. Geometry stays a plain GeoJSON dict in bodies:
geogrid.geo.geometry checks it, so that every bad boundary gets the same message whatever
route it came by."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from api.schemas.common import Geometry, In, Link, Open, Out

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


def _wgs84_only(crs: dict | None) -> dict | None:
    name = str(((crs or {}).get("properties") or {}).get("name", "")).upper()
    if crs is not None and not (name.endswith("CRS84") or name.endswith("EPSG::4326") or name == "EPSG:4326"):
        raise ValueError(f"coordinates must be WGS84 lon/lat (RFC 7946), not {name or crs}; "
                         "upload the file to /api/import to have it reprojected")
    return crs


class FeatureIn(In):
    """A GeoJSON Feature to import. Its ``properties`` are open (files carry many columns
    geogrid does not use: they are ignored); its other members are GeoJSON's own."""

    type: Literal["Feature"]
    id: str | int | None = Field(default=None, description="Ignored: the code is in properties")
    bbox: list[float] | None = None
    geometry: dict | None
    properties: AreaProperties


class FeatureCollectionIn(In):
    type: Literal["FeatureCollection"]
    name: str | None = Field(default=None, description="Ignored (GDAL writes the layer name here)")
    crs: Annotated[dict | None, AfterValidator(_wgs84_only)] = Field(
        default=None, description="Only WGS84 (RFC 7946); upload a file (/api/import) to have it reprojected")
    bbox: list[float] | None = None
    features: list[FeatureIn] = Field(min_length=1)


class AreaEdit(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    parent: str | None = Field(default=None, pattern=r"^\d{1,32}$", description="Code of a new parent (e.g. "
                               "provinces under a national root); your scope must hold the old place and the new")
    households: StrictInt | None = Count
    population: StrictInt | None = Count
    land_use: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None, max_length=10_000)


Lon = Annotated[float, Field(ge=-180, le=180)]
Lat = Annotated[float, Field(ge=-90, le=90)]
Versions = Field(default_factory=dict, description="Version (ETag) of every other grid the edit touches, by code; "
                                                   "a dry run lists them in impact.grids[].version")


class VertexMove(In):
    """One dragged vertex: every grid with a vertex at ``from`` (or an edge through it,
    within ``shared_vertex_tolerance_m``) gets it at ``to``."""

    model_config = ConfigDict(populate_by_name=True)

    from_: tuple[Lon, Lat] = Field(alias="from", description="[lon, lat] of the vertex before")
    to: tuple[Lon, Lat] = Field(description="[lon, lat] of the vertex after")


class AreaPatch(In):
    """A partial GeoJSON Feature: the properties to change and/or a new boundary, and
    shared vertices to move in the neighbours too."""

    type: Literal["Feature"] | None = None
    id: str | int | None = Field(default=None, description="Ignored: the code is in the path")
    bbox: list[float] | None = None
    geometry: dict | None = Field(default=None, description="New boundary (Polygon or MultiPolygon, holes kept): "
                                                            "becomes a new boundary version")
    properties: AreaEdit = Field(default_factory=AreaEdit)
    note: str | None = Field(default=None, max_length=2000, description="Why the boundary changed")
    version: int | None = Field(default=None, description="Version the edit is based on (or If-Match)")
    moves: list[VertexMove] = Field(default_factory=list, max_length=1000,
                                    description="Vertices moved in this edit that neighbours share: moved in every "
                                                "other grid of the layer that has them (topological editing)")
    versions: dict[str, int] = Versions


class VerticesIn(In):
    """Move vertices shared by grids of one layer, without a target grid."""

    layer: str = Field(default="comprehensive", description="The net whose grids move")
    moves: list[VertexMove] = Field(min_length=1, max_length=1000)
    versions: dict[str, int] = Versions
    note: str | None = Field(default=None, max_length=2000)


class SplitPart(In):
    """Attributes of one piece of a split (pieces in reading order: north to south, west to east)."""

    name: str | None = Field(default=None, min_length=1, max_length=200, description="Default: old name（1）, （2）...")
    households: StrictInt | None = Field(default=None, ge=0, le=10_000_000, description="Default: by area share")
    population: StrictInt | None = Field(default=None, ge=0, le=10_000_000, description="Default: by area share")


class SplitIn(In):
    """Split a grid by a drawn line into two or more new grids."""

    line: dict = Field(description="GeoJSON LineString or MultiLineString (lon/lat) crossing the grid from edge to edge")
    parts: list[SplitPart] | None = Field(default=None, max_length=100,
                                          description="One per piece, in reading order (optional)")
    assign_to: int = Field(default=0, ge=0, description="Index of the piece that takes the old grid's current posts")
    note: str | None = Field(default=None, max_length=2000)
    versions: dict[str, int] = Versions


class MergeIn(In):
    """Merge two or more adjacent grids of one layer and parent into one new grid."""

    codes: list[str] = Field(min_length=2, max_length=100, description="The grids to merge")
    name: str | None = Field(default=None, min_length=1, max_length=200, description="Default: the first grid's name")
    note: str | None = Field(default=None, max_length=2000)
    versions: dict[str, int] = Field(default_factory=dict, description="Version (ETag) of each grid, by code")


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
    skipped: list[Open] = Field(default_factory=list, description="Features left out, with why (a city "
                                "without districts listed as its own child)")
    dry_run: bool


class FileImportReport(ImportReport):
    source_crs: str | None
    source_layer: str | None


# --------------------------------------------------------------------------- editing answers


class ImpactGrid(Out):
    code: str
    name: str
    version: int = Field(description="Current version: send it with the real run (If-Match or versions)")
    status: Literal["changed", "new", "retired", "unchanged"]
    area_before_m2: float | None = Field(description="Spheroidal area (PostGIS) before the edit")
    area_after_m2: float | None
    area_change_pct: float | None
    households_before: int | None
    households_after: int | None
    population_before: int | None
    population_after: int | None


class ImpactProblem(Out):
    kind: Literal["gap", "overlap"]
    area_m2: float
    codes: list[str] = Field(description="Grids next to the gap / overlapping")
    width_m: float | None
    width_class: str | None = None
    geometry: Geometry


class ImpactIncident(Out):
    id: int
    number: str = Field(description="The case's receipt number")
    state: str
    grid: str | None = Field(description="Grid the case is routed to (it stays there)")
    grid_after: str | None = Field(description="Grid that would contain it after the edit")


class Impact(Out):
    """What an edit does (or would do): areas, coverage problems created and removed,
    people moved (estimated by area share), open incidents whose grid changes."""

    grids: list[ImpactGrid]
    created: list[ImpactProblem]
    removed: list[ImpactProblem]
    households_moved: int | None
    population_moved: int | None
    incidents: list[ImpactIncident]
    notes: list[str]
    needs_confirmation: bool = Field(description="The edit creates a gap or an overlap, or changes an area by more "
                                                 "than edit_confirm_area_share")
    reasons: list[str]


class AreaEditResult(AreaFeature):
    """The edited grid (as it is, or would be after a dry run) with the edit's impact."""

    dry_run: bool
    changed: list[str] = Field(description="Neighbours whose shared vertices moved")
    impact: Impact


class VerticesResult(Out):
    dry_run: bool
    changed: list[str]
    impact: Impact


class SplitMergeResult(Out):
    dry_run: bool
    created: list[AreaFeature]
    retired: list[str]
    impact: Impact
