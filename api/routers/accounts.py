"""Logging in (OAuth2 password flow, opaque bearer tokens), accounts and grants (admin),
and the audit log (admin)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from api.deps import ADMIN, ClientAddress, PageDep, SessionDep, SettingsDep, bearer, links
from geogrid import access

router = APIRouter(prefix="/api", tags=["access"])


class AccountIn(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{2,64}$")
    password: str = Field(min_length=10, max_length=200)
    display_name: str | None = Field(default=None, max_length=100)


class GrantIn(BaseModel):
    role: str = Field(description="admin, planner, inspector, grid_worker or department_handler")
    area: str | None = Field(default=None, description="Area code: the grant holds for its subtree")
    department: str | None = Field(default=None, max_length=100)


class PasswordIn(BaseModel):
    password: str = Field(min_length=10, max_length=200)


@router.post("/token", summary="Log in: username and password (form fields) give a bearer token",
             description="Throttled per client address and per account name; a refused attempt answers 429 "
                         "with Retry-After.")
def token(session: SessionDep, settings: SettingsDep, address: ClientAddress,
          form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict:
    out = access.login(session, form.username, form.password, dt.timedelta(hours=settings.token_hours),
                       address=address, settings=settings)
    session.commit()
    return out


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke the token of this request")
def logout(session: SessionDep, token: Annotated[str | None, Depends(bearer)]) -> Response:
    if token:
        access.logout(session, token)
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", summary="Who the token belongs to, and their grants")
def me(session: SessionDep) -> dict:
    p = access.principal_of(session)
    return {"username": p.username, "authenticated": p.authenticated,
            "grants": [{"role": g.role, "area": g.area_code, "department": g.department} for g in p.grants]}


@router.get("/accounts", dependencies=ADMIN, summary="Accounts and their grants")
def list_accounts(session: SessionDep) -> list[dict]:
    return access.list_accounts(session)


@router.post("/accounts", dependencies=ADMIN, status_code=status.HTTP_201_CREATED)
def create_account(session: SessionDep, body: AccountIn) -> dict:
    out = access.create_account(session, body.username, body.password, body.display_name)
    session.commit()
    return out


@router.put("/accounts/{username}/password", dependencies=ADMIN, status_code=status.HTTP_204_NO_CONTENT,
            summary="Set a password; the account's tokens are revoked")
def set_password(session: SessionDep, username: str, body: PasswordIn) -> Response:
    access.set_password(session, username, body.password)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/accounts/{username}/grants", dependencies=ADMIN, status_code=status.HTTP_201_CREATED)
def grant(session: SessionDep, username: str, body: GrantIn) -> dict:
    out = access.grant(session, username, body.role, body.area, body.department)
    session.commit()
    return out


@router.delete("/accounts/{username}/grants", dependencies=ADMIN, status_code=status.HTTP_204_NO_CONTENT)
def revoke(session: SessionDep, username: str, role: Annotated[str, Query()],
           area: Annotated[str | None, Query()] = None) -> Response:
    access.revoke(session, username, role, area)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/audit", dependencies=ADMIN, summary="The audit log, newest first")
def audit(request: Request, session: SessionDep, page: PageDep,
          resource: Annotated[str | None, Query(description="area, person, assignment, account, ...")] = None,
          key: Annotated[str | None, Query(description="Code or id of the resource")] = None,
          actor: Annotated[str | None, Query(description="Username, or cli:USER")] = None) -> dict:
    items, matched = access.audit_log(session, resource=resource, key=key, actor_name=actor,
                                      limit=page.limit, offset=page.offset)
    return {"items": items, "numberMatched": matched, "numberReturned": len(items),
            "links": links(request, page, len(items), matched)}
