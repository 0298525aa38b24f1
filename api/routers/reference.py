"""Reference lists that a county configures: levels, layers (thematic nets) and roles."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import ADMIN, SessionDep
from api.schemas.reference import (
    Layer,
    LayerIn,
    LayerPatch,
    Level,
    LevelIn,
    Role,
    RoleIn,
)
from geogrid.areas import reference
from geogrid.people import assignments

router = APIRouter(prefix="/api", tags=["reference"])


@router.get("/levels", response_model=list[Level], summary="Levels of the hierarchy, top down")
def list_levels(session: SessionDep) -> list[dict]:
    return list(reference.levels(session).values())


@router.post("/levels", status_code=status.HTTP_201_CREATED, dependencies=ADMIN, response_model=Level, summary="Add a level")
def create_level(session: SessionDep, body: LevelIn) -> dict:
    out = reference.add_level(session, **body.model_dump())
    session.commit()
    return out


@router.get("/layers", response_model=list[Layer], summary="Thematic nets (admin = the jurisdiction frame)")
def list_layers(session: SessionDep) -> list[dict]:
    return list(reference.layers(session).values())


@router.post("/layers", status_code=status.HTTP_201_CREATED, dependencies=ADMIN, response_model=Layer, summary="Add a thematic net")
def create_layer(session: SessionDep, body: LayerIn) -> dict:
    out = reference.add_layer(session, **body.model_dump())
    session.commit()
    return out


@router.patch("/layers/{key}", dependencies=ADMIN, response_model=Layer, summary="Rename or describe a thematic net")
def edit_layer(session: SessionDep, key: str, body: LayerPatch) -> dict:
    out = reference.update_layer(session, key, body.model_dump(exclude_unset=True))
    session.commit()
    return out


@router.delete("/layers/{key}", dependencies=ADMIN, status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Remove a thematic net that holds no areas")
def delete_layer(session: SessionDep, key: str) -> Response:
    reference.delete_layer(session, key)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/roles", response_model=list[Role], summary="Posts a person can hold in a grid")
def list_roles(session: SessionDep) -> list[dict]:
    return list(assignments.roles(session).values())


@router.post("/roles", status_code=status.HTTP_201_CREATED, dependencies=ADMIN, response_model=Role, summary="Add a role")
def create_role(session: SessionDep, body: RoleIn) -> dict:
    out = assignments.add_role(session, **body.model_dump())
    session.commit()
    return out
