"""Logging in (OAuth2 password flow, opaque bearer tokens), accounts and grants (admin),
and the audit log (admin)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import (
    ADMIN,
    ClientAddress,
    PageDep,
    SessionDep,
    SettingsDep,
    bearer,
)
from api.schemas.access import (
    Account,
    AccountCreated,
    AccountIn,
    AuditEntry,
    Grant,
    GrantIn,
    Me,
    PasswordIn,
    Token,
)
from api.schemas.common import Page, paged
from geogrid.access import accounts, scopes
from geogrid.access import audit as access_audit

router = APIRouter(prefix="/api", tags=["access"])


@router.post("/token", response_model=Token, summary="Log in: username and password (form fields) give a bearer token",
             description="Throttled per client address and per account name; a refused attempt answers 429 "
                         "with Retry-After.")
def token(session: SessionDep, settings: SettingsDep, address: ClientAddress,
          form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict:
    out = accounts.login(session, form.username, form.password, dt.timedelta(hours=settings.token_hours),
                       address=address, settings=settings)
    session.commit()
    return out


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, summary="Revoke the token of this request")
def logout(session: SessionDep, token: Annotated[str | None, Depends(bearer)]) -> Response:
    if token:
        accounts.logout(session, token)
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=Me, summary="Who the token belongs to, and their grants")
def me(session: SessionDep) -> dict:
    p = scopes.principal_of(session)
    return {"username": p.username, "authenticated": p.authenticated,
            "grants": [{"role": g.role, "area": g.area_code, "department": g.department} for g in p.grants]}


@router.get("/accounts", dependencies=ADMIN, response_model=list[Account], summary="Accounts and their grants")
def list_accounts(session: SessionDep) -> list[dict]:
    return accounts.list_accounts(session)


@router.post("/accounts", dependencies=ADMIN, status_code=status.HTTP_201_CREATED, response_model=AccountCreated)
def create_account(session: SessionDep, body: AccountIn) -> dict:
    out = accounts.create_account(session, body.username, body.password, body.display_name)
    session.commit()
    return out


@router.put("/accounts/{username}/password", dependencies=ADMIN, status_code=status.HTTP_204_NO_CONTENT,
            response_class=Response,
            summary="Set a password; the account's tokens are revoked")
def set_password(session: SessionDep, username: str, body: PasswordIn) -> Response:
    accounts.set_password(session, username, body.password)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/accounts/{username}/grants", dependencies=ADMIN, status_code=status.HTTP_201_CREATED,
             response_model=Grant)
def grant(session: SessionDep, username: str, body: GrantIn) -> dict:
    out = accounts.grant(session, username, body.role, body.area, body.department)
    session.commit()
    return out


@router.delete("/accounts/{username}/grants", dependencies=ADMIN, status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response)
def revoke(session: SessionDep, username: str, role: Annotated[str, Query()],
           area: Annotated[str | None, Query()] = None) -> Response:
    accounts.revoke(session, username, role, area)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/audit", dependencies=ADMIN, response_model=Page[AuditEntry], summary="The audit log, newest first")
def audit(request: Request, session: SessionDep, page: PageDep,
          resource: Annotated[str | None, Query(description="area, person, assignment, account, ...")] = None,
          key: Annotated[str | None, Query(description="Code or id of the resource")] = None,
          actor: Annotated[str | None, Query(description="Username, or cli:USER")] = None) -> dict:
    items, matched = access_audit.audit_log(session, resource=resource, key=key, actor_name=actor,
                                      limit=page.limit, offset=page.offset)
    return paged(request, page, items, matched)
