"""Areas and grids as GeoJSON: list, read, create (one feature or a collection), edit
(a new boundary becomes a new version), retire, history.

``/api/areas`` covers every area, administrative units included; ``/api/grids`` is the
same resource narrowed to the thematic nets, with grid defaults for new features.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status

from api.deps import PLANNER, AtDep, FilterDep, IfMatchDep, Lang, PageDep, SessionDep, SettingsDep, links
from api.schemas import AreaPatch, FeatureCollectionIn, FeatureIn
from geogrid import areas
from geogrid.errors import GeogridError, Problem
from geogrid.geometry import parse_geojson_geometries, parse_geojson_geometry

GEOJSON = "application/geo+json"


def geometries_of(features: list[FeatureIn], settings) -> list:
    return parse_geojson_geometries([f.geometry for f in features], codes=[f.properties.code for f in features],
                                    max_vertices_per_feature=settings.max_vertices_per_feature,
                                    max_vertices_per_request=settings.max_vertices_per_request)


def make_router(prefix: str, *, grids_only: bool) -> APIRouter:
    kind = "grid" if grids_only else "area"
    router = APIRouter(prefix=prefix, tags=["grids" if grids_only else "areas"])
    defaults = {"layer": "comprehensive", "level": "grid"} if grids_only else {"layer": "admin", "level": None}

    @router.get("", summary=f"List {kind}s (GeoJSON FeatureCollection, paginated)")
    def list_(request: Request, session: SessionDep, f: FilterDep, page: PageDep, lang: Lang = "zh") -> Response:
        f.grids_only = grids_only
        features, matched = areas.list_areas(session, f, limit=page.limit, offset=page.offset, lang=lang)
        body = areas.feature_collection(features, numberMatched=matched, numberReturned=len(features),
                                        links=links(request, page, len(features), matched))
        return Response(areas.dumps(body), media_type=GEOJSON)

    @router.post("", status_code=status.HTTP_201_CREATED, dependencies=PLANNER,
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
        report = areas.import_areas(
            session, [f.properties.model_dump() for f in features], geoms, settings,
            defaults={"layer": layer or defaults["layer"], "level": level or defaults["level"], "parent": parent},
            repair=repair, dry_run=dry_run,
        )
        session.commit()
        return report.as_dict()

    @router.get("/{code}", summary=f"One {kind} (GeoJSON Feature); ?at= for a past boundary")
    def read(session: SessionDep, code: str, at: AtDep, lang: Lang = "zh") -> Response:
        feature = areas.get_area(session, code, at=at, lang=lang)
        if grids_only and feature["properties"]["layer"] == "admin":
            raise GeogridError(f"{code} is an administrative area, not a grid: see /api/areas/{code}", status=404)
        return Response(areas.dumps(feature), media_type=GEOJSON,
                        headers={"ETag": f'"{feature["properties"]["version"]}"'})

    @router.patch("/{code}", dependencies=PLANNER, summary=f"Edit a {kind}: attributes and/or a new boundary version")
    def edit(session: SessionDep, settings: SettingsDep, code: str, body: AreaPatch, expected: IfMatchDep,
             repair: Annotated[bool, Query()] = False) -> Response:
        geometry = None
        if body.geometry is not None:
            try:
                geometry = parse_geojson_geometry(body.geometry, max_vertices=settings.max_vertices_per_feature)
            except ValueError as exc:
                raise GeogridError(f"area {code} was not changed", problems=[Problem(str(exc), field="geometry", code=code)]) from None
        result = areas.update_area(
            session, code, settings, changes=body.properties.model_dump(exclude_unset=True), geometry=geometry,
            repair=repair, note=body.note, expected_version=expected if expected is not None else body.version,
        )
        session.commit()
        feature = areas.get_area(session, code)
        feature["properties"].update(repaired=result["repaired"], warnings=result["warnings"])
        return Response(areas.dumps(feature), media_type=GEOJSON, headers={"ETag": f'"{feature["properties"]["version"]}"'})

    @router.delete("/{code}", status_code=status.HTTP_204_NO_CONTENT, dependencies=PLANNER,
                   summary=f"Retire a {kind}: its boundary ends now, its code stays reserved")
    def retire(session: SessionDep, code: str, expected: IfMatchDep) -> Response:
        areas.retire_area(session, code, expected_version=expected)
        session.commit()
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/{code}/history", summary="Every boundary version, newest first")
    def history(session: SessionDep, code: str) -> Response:
        return Response(areas.dumps(areas.feature_collection(areas.boundary_history(session, code))), media_type=GEOJSON)

    return router


areas_router = make_router("/api/areas", grids_only=False)
grids_router = make_router("/api/grids", grids_only=True)
