"""Incident categories: their net, department, time limits and publicity."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import (
    ADMIN,
    SessionDep,
)
from api.schemas.incidents import Category, CategoryPatch
from geogrid.incidents import categories

router = APIRouter(prefix="/api", tags=["incidents"])


@router.get("/categories", response_model=list[Category], summary="Incident categories: net, department, time limits")
def list_categories(session: SessionDep) -> list[dict]:
    return list(categories.categories(session).values())


@router.patch("/categories/{key}", dependencies=ADMIN, response_model=Category, summary="Set a category's time limits, department, publicity")
def edit_category(session: SessionDep, key: str, body: CategoryPatch) -> dict:
    out = categories.update_category(session, key, body.model_dump(exclude_unset=True))
    session.commit()
    return out
