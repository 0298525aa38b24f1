"""Logging in, accounts and grants, the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from api.schemas.common import In, Out


class AccountIn(In):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{2,64}$")
    password: str = Field(min_length=10, max_length=200)
    display_name: str | None = Field(default=None, max_length=100)


class GrantIn(In):
    role: str = Field(description="admin, planner, inspector, grid_worker or department_handler")
    area: str | None = Field(default=None, description="Area code: the grant holds for its subtree")
    department: str | None = Field(default=None, max_length=100)


class PasswordIn(In):
    password: str = Field(min_length=10, max_length=200)


class Token(Out):
    access_token: str
    token_type: Literal["bearer"]
    expires_at: dt.datetime


class Grant(Out):
    role: str
    area: str | None = Field(description="Area code: the grant holds for its subtree; none: everywhere")
    department: str | None


class Me(Out):
    username: str | None
    authenticated: bool
    grants: list[Grant]


class AccountCreated(Out):
    id: int
    username: str
    display_name: str | None


class Account(AccountCreated):
    active: bool
    created_at: dt.datetime
    grants: list[Grant]


class AuditEntry(Out):
    id: int
    at: dt.datetime
    actor: str
    action: str
    resource: str
    key: str | None
    before: dict[str, Any] | None = Field(description="The record before the change (none for a creation)")
    after: dict[str, Any] | None = Field(description="The record after the change (none for a deletion)")
