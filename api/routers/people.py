"""Persons and their assignments to areas (with history)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from api.deps import PLANNER, STAFF, IfMatchDep, PageDep, SessionDep
from api.schemas.common import Page, paged
from api.schemas.people import (
    Assignment,
    AssignmentIn,
    AssignmentPatch,
    Person,
    PersonIn,
    PersonPatch,
)
from geogrid.people import assignments, persons

router = APIRouter(prefix="/api", tags=["people"])


@router.get("/persons", dependencies=STAFF, response_model=Page[Person], summary="Persons in your scope (a post, held or past, in it; planners also those without a post); notes and unpublished phones only for planners")
def list_persons(request: Request, session: SessionDep, page: PageDep,
                 q: Annotated[str | None, Query(max_length=100, description="Name, ref or phone contains")] = None,
                 area: Annotated[str | None, Query(description="Persons who ever held a post in this area")] = None) -> dict:
    items, matched = persons.list_persons(session, q=q, area=area, limit=page.limit, offset=page.offset)
    return paged(request, page, items, matched)


@router.post("/persons", dependencies=PLANNER, status_code=status.HTTP_201_CREATED, response_model=Person)
def create_person(session: SessionDep, body: PersonIn) -> dict:
    out = persons.create_persons(session, [body.model_dump()])[0]
    session.commit()
    return out


@router.get("/persons/{person_id}", dependencies=STAFF, response_model=Person)
def read_person(session: SessionDep, person_id: int, response: Response) -> dict:
    person = persons.get_person(session, person_id)
    response.headers["ETag"] = f'"{person["version"]}"'
    return person


@router.patch("/persons/{person_id}", dependencies=PLANNER, response_model=Person)
def edit_person(session: SessionDep, person_id: int, body: PersonPatch, expected: IfMatchDep) -> dict:
    changes = body.model_dump(exclude_unset=True)
    version = changes.pop("version", None)
    out = persons.update_person(session, person_id, changes, expected if expected is not None else version)
    session.commit()
    return out


@router.delete("/persons/{person_id}", dependencies=PLANNER, status_code=status.HTTP_204_NO_CONTENT,
                response_class=Response)
def delete_person(session: SessionDep, person_id: int, expected: IfMatchDep) -> Response:
    persons.delete_person(session, person_id, expected)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/assignments", dependencies=STAFF, response_model=list[Assignment], summary="Assignments in your scope, filterable; history included")
def list_assignments(session: SessionDep, page: PageDep,
                     area: Annotated[str | None, Query(description="Area code")] = None,
                     person: Annotated[int | None, Query(description="Person id")] = None,
                     active_on: Annotated[dt.date | None, Query(description="Only posts held on this day")] = None) -> list[dict]:
    return assignments.list_assignments(session, area=area, person=person, active_on=active_on,
                                   limit=page.limit, offset=page.offset)


@router.post("/assignments", dependencies=PLANNER, status_code=status.HTTP_201_CREATED, response_model=list[Assignment],
             summary="Appoint one person, or several at once (all or nothing)")
def create_assignments(session: SessionDep, body: AssignmentIn | list[AssignmentIn]) -> list[dict]:
    records = body if isinstance(body, list) else [body]
    out = assignments.create_assignments(session, [r.model_dump() for r in records])
    session.commit()
    return out


@router.get("/assignments/{assignment_id}", dependencies=STAFF, response_model=Assignment)
def read_assignment(session: SessionDep, assignment_id: int, response: Response) -> dict:
    found = assignments.get_assignment(session, assignment_id)
    response.headers["ETag"] = f'"{found["version"]}"'
    return found


@router.patch("/assignments/{assignment_id}", dependencies=PLANNER, response_model=Assignment,
              summary="Change dates or duties; set end_date to end a post (history kept)")
def edit_assignment(session: SessionDep, assignment_id: int, body: AssignmentPatch, expected: IfMatchDep) -> dict:
    changes = body.model_dump(exclude_unset=True)
    version = changes.pop("version", None)
    out = assignments.update_assignment(session, assignment_id, changes, expected if expected is not None else version)
    session.commit()
    return out


@router.delete("/assignments/{assignment_id}", dependencies=PLANNER, status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response,
               summary="Remove an assignment entered by mistake")
def delete_assignment(session: SessionDep, assignment_id: int, expected: IfMatchDep) -> Response:
    assignments.delete_assignment(session, assignment_id, expected)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
