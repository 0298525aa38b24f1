"""Areas and grids as GeoJSON: list, read, create (one feature or a collection), edit
(a new boundary becomes a new version), retire, history.

``/api/areas`` covers every area, administrative units included; ``/api/grids`` is the
same resource narrowed to the thematic nets, with grid defaults for new features.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status

from api.deps import (
    PLANNER,
    AtDep,
    FilterDep,
    IfMatchDep,
    Lang,
    PageDep,
    SessionDep,
    SettingsDep,
)
from api.schemas.areas import (
    AreaCollection,
    AreaFeature,
    AreaPatch,
    BoundaryHistory,
    FeatureCollectionIn,
    FeatureIn,
    ImportReport,
)
from api.schemas.common import GeoJSONResponse, paged
from geogrid.areas import importing, lookup, versions
from geogrid.core import jsonenc
from geogrid.core.errors import GeogridError
from geogrid.geo.geometry import parse_geojson_geometries, request_geometry

GEOJSON = "application/geo+json"


def geometries_of(features: list[FeatureIn], settings) -> list:
    return parse_geojson_geometries([f.geometry for f in features], codes=[f.properties.code for f in features],
                                    max_vertices_per_feature=settings.max_vertices_per_feature,
                                    max_vertices_per_request=settings.max_vertices_per_request)


def make_router(prefix: str, *, grids_only: bool) -> APIRouter:
    kind = "grid" if grids_only else "area"
    router = APIRouter(prefix=prefix, tags=["grids" if grids_only else "areas"])
    defaults = {"layer": "comprehensive", "level": "grid"} if grids_only else {"layer": "admin", "level": None}

    @router.get("", response_model=AreaCollection, response_class=GeoJSONResponse,
                summary=f"List {kind}s (GeoJSON FeatureCollection, paginated)")
    def list_(request: Request, session: SessionDep, f: FilterDep, page: PageDep, lang: Lang = "zh") -> Response:
        f.grids_only = grids_only
        features, matched = lookup.list_areas(session, f, limit=page.limit, offset=page.offset, lang=lang)
        body = {"type": "FeatureCollection", **paged(request, page, features, matched, member="features")}
        return Response(jsonenc.dumps(body), media_type=GEOJSON)

    @router.post("", status_code=status.HTTP_201_CREATED, dependencies=PLANNER, response_model=ImportReport,
                 summary=f"Create {kind}s from a GeoJSON Feature or FeatureCollection (all or nothing)")
    def create(
        session: SessionDep,
        settings: SettingsDep,
        body: Annotated[FeatureIn | FeatureCollectionIn, Body(discriminator="type")],
        repair: Annotated[bool, Query(description="Mend invalid polygons (make_valid) instead of rejecting them")] = False,
        dry_run: Annotated[bool, Query(description="Validate only; write nothing")] = False,
        layer: Annotated[str | None, Query(description="Layer for features that name none")] = None,
        level: Annotated[str | None, Query(description="Level for features that name none")] = None,
        parent: Annotated[str | None, Query(description="Parent for features that name none")] = None,
    ) -> dict:
        features = body.features if isinstance(body, FeatureCollectionIn) else [body]
        geoms = geometries_of(features, settings)
        report = importing.import_areas(
            session, [f.properties.model_dump() for f in features], geoms, settings,
            defaults={"layer": layer or defaults["layer"], "level": level or defaults["level"], "parent": parent},
            repair=repair, dry_run=dry_run,
        )
        session.commit()
        return report.as_dict()

    @router.get("/{code}", response_model=AreaFeature, response_class=GeoJSONResponse, summary=f"One {kind} (GeoJSON Feature); ?at= for a past boundary")
    def read(session: SessionDep, code: str, at: AtDep, lang: Lang = "zh") -> Response:
        feature = lookup.get_area(session, code, at=at, lang=lang)
        if grids_only and feature["properties"]["layer"] == "admin":
            raise GeogridError(f"{code} is an administrative area, not a grid: see /api/areas/{code}", status=404)
        return Response(jsonenc.dumps(feature), media_type=GEOJSON,
                        headers={"ETag": f'"{feature["properties"]["version"]}"'})

    @router.patch("/{code}", dependencies=PLANNER, response_model=AreaFeature, response_class=GeoJSONResponse,
                  summary=f"Edit a {kind}: attributes and/or a new boundary version")
    def edit(session: SessionDep, settings: SettingsDep, code: str, body: AreaPatch, expected: IfMatchDep,
             repair: Annotated[bool, Query()] = False) -> Response:
        geometry = None
        if body.geometry is not None:
            geometry = request_geometry(body.geometry, rejected=f"area {code} was not changed",
                                        max_vertices=settings.max_vertices_per_feature, code=code)
        result = versions.update_area(
            session, code, settings, changes=body.properties.model_dump(exclude_unset=True), geometry=geometry,
            repair=repair, note=body.note, expected_version=expected if expected is not None else body.version,
        )
        session.commit()
        feature = lookup.get_area(session, code)
        feature["properties"].update(repaired=result["repaired"], warnings=result["warnings"])
        return Response(jsonenc.dumps(feature), media_type=GEOJSON, headers={"ETag": f'"{feature["properties"]["version"]}"'})

    @router.delete("/{code}", status_code=status.HTTP_204_NO_CONTENT, dependencies=PLANNER, response_class=Response,
                   summary=f"Retire a {kind}: its boundary ends now, its code stays reserved")
    def retire(session: SessionDep, code: str, expected: IfMatchDep) -> Response:
        versions.retire_area(session, code, expected_version=expected)
        session.commit()
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/{code}/history", response_model=BoundaryHistory, response_class=GeoJSONResponse, summary="Every boundary version, newest first")
    def history(session: SessionDep, code: str) -> Response:
        return Response(jsonenc.dumps(lookup.feature_collection(lookup.boundary_history(session, code))), media_type=GEOJSON)

    return router


areas_router = make_router("/api/areas", grids_only=False)
grids_router = make_router("/api/grids", grids_only=True)
