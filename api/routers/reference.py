"""Reference lists that a county configures: levels, layers (thematic nets) and roles."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ADMIN, SessionDep
from api.schemas import LayerIn, LevelIn, RoleIn


class LayerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name_zh: str | None = Field(default=None, min_length=1, max_length=64)
    name_en: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=2000)
from geogrid import areas, people

router = APIRouter(prefix="/api", tags=["reference"])


@router.get("/levels", summary="Levels of the hierarchy, top down")
def list_levels(session: SessionDep) -> list[dict]:
    return list(areas.levels(session).values())


@router.post("/levels", status_code=status.HTTP_201_CREATED, dependencies=ADMIN, summary="Add a level")
def create_level(session: SessionDep, body: LevelIn) -> dict:
    out = areas.add_level(session, **body.model_dump())
    session.commit()
    return out


@router.get("/layers", summary="Thematic nets (admin = the jurisdiction frame)")
def list_layers(session: SessionDep) -> list[dict]:
    return list(areas.layers(session).values())


@router.post("/layers", status_code=status.HTTP_201_CREATED, dependencies=ADMIN, summary="Add a thematic net")
def create_layer(session: SessionDep, body: LayerIn) -> dict:
    out = areas.add_layer(session, **body.model_dump())
    session.commit()
    return out


@router.patch("/layers/{key}", dependencies=ADMIN, summary="Rename or describe a thematic net")
def edit_layer(session: SessionDep, key: str, body: LayerPatch) -> dict:
    out = areas.update_layer(session, key, body.model_dump(exclude_unset=True))
    session.commit()
    return out


@router.delete("/layers/{key}", dependencies=ADMIN, status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a thematic net that holds no areas")
def delete_layer(session: SessionDep, key: str) -> Response:
    areas.delete_layer(session, key)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/roles", summary="Posts a person can hold in a grid")
def list_roles(session: SessionDep) -> list[dict]:
    return list(people.roles(session).values())


@router.post("/roles", status_code=status.HTTP_201_CREATED, dependencies=ADMIN, summary="Add a role")
def create_role(session: SessionDep, body: RoleIn) -> dict:
    out = people.add_role(session, **body.model_dump())
    session.commit()
    return out
