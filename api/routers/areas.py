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
    PublicReadSessionDep,
    SessionDep,
    SettingsDep,
)
from api.schemas.areas import (
    AreaCollection,
    AreaEditResult,
    AreaFeature,
    AreaPatch,
    BoundaryHistory,
    FeatureCollectionIn,
    FeatureIn,
    ImportReport,
    MergeIn,
    SplitIn,
    SplitMergeResult,
    VerticesIn,
    VerticesResult,
)
from api.schemas.common import GeoJSONResponse, paged
from geogrid.access import scopes
from geogrid.areas import importing, lookup, versions
from geogrid.core import jsonenc
from geogrid.core.errors import GeogridError, Problem
from geogrid.editing import operations
from geogrid.geo.geometry import parse_geojson_geometries, request_geometry

GEOJSON = "application/geo+json"
DryRun = Annotated[bool, Query(description="Compute everything, impact included; write nothing")]


def moves_of(body) -> list:
    """The vertex moves of an edit body as ((lon, lat), (lon, lat)) pairs."""
    return [(tuple(m.from_), tuple(m.to)) for m in body.moves]


def line_of(body: SplitIn, code: str, settings, lang: str):
    """The split line of a request: a GeoJSON LineString or MultiLineString, else 422 naming ``line``."""
    line = request_geometry(body.line, rejected=f"grid {code} was not split",
                            max_vertices=settings.max_vertices_per_feature, code=code)
    if line is None or line.geom_type not in ("LineString", "MultiLineString") or line.is_empty:
        why = ("line 必须是 GeoJSON LineString 或 MultiLineString" if lang != "en"
               else "line must be a GeoJSON LineString or MultiLineString")
        raise GeogridError(why, problems=[Problem(why, field="line", code=code)])
    return line


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
    def list_(request: Request, session: PublicReadSessionDep, f: FilterDep, page: PageDep, lang: Lang = "zh") -> Response:
        f.grids_only = grids_only
        f.published = not scopes.is_staff(session)  # the public reads what was published
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
    def read(session: PublicReadSessionDep, code: str, at: AtDep, lang: Lang = "zh") -> Response:
        feature = lookup.get_area(session, code, at=at, lang=lang, published=not scopes.is_staff(session))
        if grids_only and feature["properties"]["layer"] == "admin":
            raise GeogridError(f"{code} is an administrative area, not a grid: see /api/areas/{code}", status=404)
        return Response(jsonenc.dumps(feature), media_type=GEOJSON,
                        headers={"ETag": f'"{feature["properties"]["version"]}"'})

    if grids_only:
        # Before the /{code} routes, so that these paths are not taken for codes.
        @router.post("/vertices", dependencies=PLANNER, response_model=VerticesResult,
                     summary="Move vertices shared by grids: each moves in every grid that has it (all or nothing)")
        def move_vertices(session: SessionDep, settings: SettingsDep, body: VerticesIn, dry_run: DryRun = False,
                          lang: Lang = "zh") -> Response:
            result = operations.move_shared_vertices(session, settings, body.layer, moves_of(body),
                                                     expected=body.versions, note=body.note, dry_run=dry_run, lang=lang)
            session.commit()
            return Response(jsonenc.dumps({"dry_run": dry_run, **result}), media_type="application/json")

        @router.post("/merge", dependencies=PLANNER, status_code=status.HTTP_201_CREATED, response_model=SplitMergeResult,
                     summary="Merge adjacent grids into one new grid (code generated; the old ones retired)")
        def merge(session: SessionDep, settings: SettingsDep, body: MergeIn, dry_run: DryRun = False,
                  lang: Lang = "zh") -> Response:
            result = operations.merge(session, body.codes, settings, name=body.name, expected=body.versions,
                                      note=body.note, dry_run=dry_run, lang=lang)
            session.commit()
            return Response(jsonenc.dumps({"dry_run": dry_run, **result}), media_type="application/json",
                            status_code=status.HTTP_200_OK if dry_run else status.HTTP_201_CREATED)

        @router.post("/{code}/split", dependencies=PLANNER, status_code=status.HTTP_201_CREATED,
                     response_model=SplitMergeResult,
                     summary="Split a grid by a line into new grids (codes generated; the old one retired)")
        def split(session: SessionDep, settings: SettingsDep, code: str, body: SplitIn, expected: IfMatchDep,
                  dry_run: DryRun = False, lang: Lang = "zh") -> Response:
            versions_ = {**body.versions, **({code: expected} if expected is not None else {})}
            result = operations.split(session, code, settings, line_of(body, code, settings, lang),
                                      parts=[p.model_dump() for p in body.parts] if body.parts else None,
                                      assign_to=body.assign_to, expected=versions_, note=body.note,
                                      dry_run=dry_run, lang=lang)
            session.commit()
            return Response(jsonenc.dumps({"dry_run": dry_run, **result}), media_type="application/json",
                            status_code=status.HTTP_200_OK if dry_run else status.HTTP_201_CREATED)

    @router.patch("/{code}", dependencies=PLANNER, response_model=AreaEditResult, response_class=GeoJSONResponse,
                  summary=f"Edit a {kind}: attributes and/or a new boundary version; moves shared vertices in "
                          "the neighbours too; ?dry_run=true for the impact only")
    def edit(session: SessionDep, settings: SettingsDep, code: str, body: AreaPatch, expected: IfMatchDep,
             repair: Annotated[bool, Query()] = False, dry_run: DryRun = False, lang: Lang = "zh") -> Response:
        geometry = None
        if body.geometry is not None:
            geometry = request_geometry(body.geometry, rejected=f"area {code} was not changed",
                                        max_vertices=settings.max_vertices_per_feature, code=code)
        mine = expected if expected is not None else body.version
        result = operations.reshape(
            session, code, settings, geometry=geometry, changes=body.properties.model_dump(exclude_unset=True),
            moves=moves_of(body), expected={**body.versions, **({code: mine} if mine is not None else {})},
            note=body.note, repair=repair, dry_run=dry_run, lang=lang, grids_only=grids_only,
        )
        session.commit()
        feature = result["feature"]
        feature["properties"].update(repaired=result["repaired"], warnings=result["warnings"])
        body_out = {**feature, "dry_run": dry_run, "changed": result["changed"], "impact": result["impact"]}
        headers = {} if dry_run else {"ETag": f'"{feature["properties"]["version"]}"'}
        return Response(jsonenc.dumps(body_out), media_type=GEOJSON, headers=headers)

    @router.delete("/{code}", status_code=status.HTTP_204_NO_CONTENT, dependencies=PLANNER, response_class=Response,
                   summary=f"Retire a {kind}: its boundary ends now, its code stays reserved")
    def retire(session: SessionDep, settings: SettingsDep, code: str, expected: IfMatchDep) -> Response:
        versions.retire_area(session, code, settings, expected_version=expected)
        session.commit()
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/{code}/history", response_model=BoundaryHistory, response_class=GeoJSONResponse, summary="Every boundary version, newest first (the public: every published one)")
    def history(session: PublicReadSessionDep, code: str) -> Response:
        history = lookup.boundary_history(session, code, published=not scopes.is_staff(session))
        return Response(jsonenc.dumps(lookup.feature_collection(history)), media_type=GEOJSON)

    return router


areas_router = make_router("/api/areas", grids_only=False)
grids_router = make_router("/api/grids", grids_only=True)
