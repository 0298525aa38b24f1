"""Incident categories (their net, department, time limits and publicity) and request
types (咨询, 意见建议, 投诉 …): the seeded ones and a county's own."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import (
    ADMIN,
    SessionDep,
)
from api.schemas.incidents import Category, CategoryIn, CategoryPatch, RequestType, RequestTypeIn
from geogrid.incidents import categories

router = APIRouter(prefix="/api", tags=["incidents"])


@router.get("/categories", response_model=list[Category], summary="Incident categories: net, department, time limits")
def list_categories(session: SessionDep) -> list[dict]:
    return list(categories.categories(session).values())


@router.post("/categories", dependencies=ADMIN, status_code=status.HTTP_201_CREATED, response_model=Category,
             summary="Add a county's own category (409 when the key exists)")
def create_category(session: SessionDep, body: CategoryIn) -> dict:
    out = categories.create_category(session, body.model_dump(mode="json"))
    session.commit()
    return out


@router.patch("/categories/{key}", dependencies=ADMIN, response_model=Category, summary="Set a category's time limits, department, publicity")
def edit_category(session: SessionDep, key: str, body: CategoryPatch) -> dict:
    out = categories.update_category(session, key, body.model_dump(exclude_unset=True))
    session.commit()
    return out


@router.get("/request-types", response_model=list[RequestType], summary="Request types: 咨询, 意见建议, 投诉 and the county's own")
def list_request_types(session: SessionDep) -> list[dict]:
    return categories.request_types(session)


@router.post("/request-types", dependencies=ADMIN, status_code=status.HTTP_201_CREATED, response_model=RequestType,
             summary="Add a request type (409 when the key exists)")
def create_request_type(session: SessionDep, body: RequestTypeIn) -> dict:
    out = categories.create_request_type(session, body.model_dump())
    session.commit()
    return out
