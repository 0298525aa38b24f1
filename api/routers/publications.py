"""Publications (公示发布, MapIt's generations): planners publish a layer of an area, or one
grid; anyone may read the list of publications (who published is shown to staff)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from api.deps import PLANNER, PageDep, SessionDep
from api.schemas.common import Page, paged
from api.schemas.publications import Pending, Publication, PublicationIn
from geogrid.access import scopes
from geogrid.publication import generations

router = APIRouter(prefix="/api", tags=["publication"])


def _shown(session, row: dict) -> dict:
    return row if scopes.is_staff(session) else {**row, "published_by": None}


@router.post("/publications", dependencies=PLANNER, status_code=status.HTTP_201_CREATED, response_model=Publication,
             summary="Publish a layer's current areas under an area, or one grid: the public sees them from now on")
def publish(session: SessionDep, body: PublicationIn) -> dict:
    out = generations.publish(session, body.area, layer=body.layer, note=body.note)
    session.commit()
    return out


@router.get("/publications", response_model=Page[Publication], summary="Publications, newest first")
def list_publications(request: Request, session: SessionDep, page: PageDep,
                      layer: Annotated[str | None, Query(max_length=32)] = None,
                      area: Annotated[str | None, Query(pattern=r"^[0-9]+$", max_length=32,
                                                        description="Publications of this area's subtree or above it")] = None,
                      ) -> dict:
    items, matched = generations.list_publications(session, layer=layer, area=area, limit=page.limit,
                                                   offset=page.offset)
    return paged(request, page, [_shown(session, r) for r in items], matched)


@router.get("/publications/pending", dependencies=PLANNER, response_model=Pending,
            summary="What publishing the layer under the area would change now")
def pending(session: SessionDep, area: Annotated[str, Query(pattern=r"^[0-9]+$", max_length=32)],
            layer: Annotated[str | None, Query(max_length=32)] = None) -> dict:
    return generations.pending(session, area, layer=layer)


@router.get("/publications/{publication_id}", response_model=Publication, summary="One publication")
def read_publication(session: SessionDep, publication_id: int) -> dict:
    return _shown(session, generations.get_publication(session, publication_id))
