"""Environmental supervision for staff: pollution sources (环境监管档案) and patrols."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from api.deps import (
    STAFF,
    IfMatchDep,
    PageDep,
    SessionDep,
    SettingsDep,
)
from api.schemas.common import Page, paged
from api.schemas.environment import (
    Patrol,
    PatrolIn,
    PatrolsBehind,
    Source,
    SourceIn,
    SourcePatch,
)
from geogrid.environment import patrols, sources

router = APIRouter(prefix="/api", tags=["incidents", "environment"])


@router.get("/sources", dependencies=STAFF, response_model=Page[Source], summary="Pollution sources in your scope (环境监管档案)")
def list_sources(request: Request, session: SessionDep, page: PageDep, area: str | None = None, key_only: bool = False,
                 kind: str | None = None) -> dict:
    items, matched = sources.list_sources(session, area=area, key_only=key_only, kind=kind,
                                          limit=page.limit, offset=page.offset)
    return paged(request, page, items, matched)


@router.post("/sources", dependencies=STAFF, status_code=status.HTTP_201_CREATED, response_model=Source)
def create_source(session: SessionDep, settings: SettingsDep, body: SourceIn) -> dict:
    out = sources.create_source(session, body.model_dump(), settings)
    session.commit()
    return out


@router.get("/sources/{source_id}", dependencies=STAFF, response_model=Source)
def read_source(session: SessionDep, source_id: int) -> dict:
    return sources.get_source(session, source_id)


@router.patch("/sources/{source_id}", dependencies=STAFF, response_model=Source)
def edit_source(session: SessionDep, settings: SettingsDep, source_id: int, body: SourcePatch,
                expected: IfMatchDep) -> dict:
    out = sources.update_source(session, source_id, body.model_dump(exclude_unset=True), settings, expected)
    session.commit()
    return out


@router.delete("/sources/{source_id}", dependencies=STAFF, status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response)
def delete_source(session: SessionDep, source_id: int) -> Response:
    sources.delete_source(session, source_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/patrols", dependencies=STAFF, status_code=status.HTTP_201_CREATED, response_model=Patrol,
             summary="A patrol check-in on an environment grid")
def record_patrol(session: SessionDep, settings: SettingsDep, body: PatrolIn) -> dict:
    out = patrols.record_patrol(session, body.model_dump(), settings)
    session.commit()
    return out


@router.get("/patrols/behind", dependencies=STAFF, response_model=PatrolsBehind,
            summary="Environment grids and key sources of your scope behind their patrol frequency")
def patrols_behind(session: SessionDep, settings: SettingsDep, area: str | None = None) -> dict:
    return patrols.patrols_behind(session, settings, area=area)
