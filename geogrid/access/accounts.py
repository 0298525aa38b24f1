"""Accounts, role grants, passwords, login and tokens.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geogrid.access import throttle
from geogrid.access.audit import record
from geogrid.access.scopes import ACCESS_ROLES, Grant, Principal, require_role
from geogrid.core.errors import GeogridError, conflict, not_found
from geogrid.core.settings import Settings, get_settings

_hasher = PasswordHasher()


# --------------------------------------------------------------------------- accounts


def _account(session: Session, username: str):
    row = session.execute(text("SELECT * FROM account WHERE username = :u"), {"u": username}).first()
    if row is None:
        raise not_found(f"account {username}")
    return row


def create_account(session: Session, username: str, password: str, display_name: str | None = None) -> dict:
    """Create an account (admin only); the password needs at least 10 characters. 409 when the
    username is taken; returns id, username and display name."""
    require_role(session, "admin")
    if len(password) < 10:
        raise GeogridError("password must have at least 10 characters")
    try:
        with session.begin_nested():
            account_id = session.execute(text(
                "INSERT INTO account (username, display_name, password_hash) VALUES (:u, :d, :h) RETURNING id"),
                {"u": username, "d": display_name, "h": _hasher.hash(password)}).scalar_one()
    except IntegrityError as exc:
        if "account_username_chars" in str(exc.orig):
            raise GeogridError("username may hold 2-64 letters, digits and _ . @ -") from None
        raise conflict(f"account {username} exists already") from None
    record(session, "create", "account", username, after={"username": username, "display_name": display_name})
    return {"id": account_id, "username": username, "display_name": display_name}


def set_password(session: Session, username: str, password: str) -> None:
    """Set an account's password (admin only, at least 10 characters) and revoke all its
    tokens; 404 for an unknown account."""
    require_role(session, "admin")
    if len(password) < 10:
        raise GeogridError("password must have at least 10 characters")
    _account(session, username)
    session.execute(text("UPDATE account SET password_hash = :h WHERE username = :u"),
                    {"h": _hasher.hash(password), "u": username})
    session.execute(text("UPDATE api_token SET revoked_at = now() WHERE revoked_at IS NULL AND account_id = "
                         "(SELECT id FROM account WHERE username = :u)"), {"u": username})
    record(session, "password", "account", username)


def list_accounts(session: Session) -> list[dict]:
    """Every account with its role grants (role, area code, department), by username (admin only)."""
    require_role(session, "admin")
    rows = session.execute(text("""
        SELECT ac.id, ac.username, ac.display_name, ac.active, ac.created_at,
               coalesce(json_agg(json_build_object('role', g.role, 'area', a.code, 'department', g.department)
                        ORDER BY g.role, a.code) FILTER (WHERE g.id IS NOT NULL), '[]') AS grants
        FROM account ac LEFT JOIN role_grant g ON g.account_id = ac.id LEFT JOIN area a ON a.id = g.area_id
        GROUP BY ac.id ORDER BY ac.username
    """)).mappings()
    return [dict(r) for r in rows]


def grant(session: Session, username: str, role: str, area_code: str | None = None,
          department: str | None = None) -> dict:
    """Grant ``role`` to an account on ``area_code``'s subtree (admin only; ``admin`` itself is
    global, without an area). 409 when the account holds that grant already."""
    require_role(session, "admin")
    if role not in ACCESS_ROLES:
        raise GeogridError(f"unknown role {role!r}; roles: {', '.join(ACCESS_ROLES)}")
    if role == "admin" and area_code:
        raise GeogridError("admin is a global role: grant it without an area")
    account = _account(session, username)
    area_id = None
    if area_code:
        area_id = session.execute(text("SELECT id FROM area WHERE code = :c"), {"c": area_code}).scalar()
        if area_id is None:
            raise GeogridError(f"unknown area {area_code}")
    try:
        with session.begin_nested():
            session.execute(text("INSERT INTO role_grant (account_id, role, area_id, department) VALUES (:a, :r, :ar, :d)"),
                            {"a": account.id, "r": role, "ar": area_id, "d": department})
    except IntegrityError:
        raise conflict(f"{username} holds {role} on {area_code or 'everything'} already") from None
    after = {"role": role, "area": area_code, "department": department}
    record(session, "grant", "account", username, after=after)
    return after


def revoke(session: Session, username: str, role: str, area_code: str | None = None) -> int:
    """Remove an account's grants of ``role`` (on ``area_code`` only, when given; admin only);
    returns how many went, 404 when none matched."""
    require_role(session, "admin")
    account = _account(session, username)
    removed = session.execute(text("""
        DELETE FROM role_grant g WHERE g.account_id = :a AND g.role = :r
          AND (CAST(:c AS text) IS NULL OR g.area_id = (SELECT id FROM area WHERE code = :c))
    """), {"a": account.id, "r": role, "c": area_code}).rowcount
    if not removed:
        raise not_found(f"grant of {role} on {area_code or 'any area'} to {username}")
    record(session, "revoke", "account", username, before={"role": role, "area": area_code})
    return removed


# --------------------------------------------------------------------------- tokens


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    """A hash no password matches: unknown and inactive accounts are verified against it,
    so that they take as long to refuse as a wrong password of a real account."""
    return _hasher.hash(secrets.token_urlsafe(32))


def login(session: Session, username: str, password: str, ttl: dt.timedelta, *, address: str | None = None,
          settings: Settings | None = None) -> dict:
    """Check a password and issue an opaque bearer token (stored only as its hash).

    Every login path goes through here, so one throttle holds for all of them: at most
    ``login_per_minute`` attempts a minute from ``address`` (the client, when known), and
    a growing wait after repeated failures of the account name or from the address
    (:mod:`geogrid.access.throttle`). A name that is no account is counted and answered exactly
    like one that is."""
    settings = settings or get_settings()
    engine = throttle.engine_of(session)
    if address is not None:
        throttle.hit(engine, f"login:{address}", settings.login_per_minute, address)
    throttle.refuse_if_blocked(engine, username, address)
    row = session.execute(text("SELECT id, password_hash, active FROM account WHERE username = :u"),
                          {"u": username}).first()
    try:
        ok = _hasher.verify(row.password_hash if row is not None else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not (ok and row is not None and row.active):
        throttle.record_failure(engine, settings, username, address)
        raise GeogridError("wrong username or password", status=401)
    throttle.reset_account(engine, username)
    token = secrets.token_urlsafe(32)
    expires = dt.datetime.now(dt.UTC) + ttl
    session.execute(text("INSERT INTO api_token (account_id, token_hash, expires_at) VALUES (:a, :h, :e)"),
                    {"a": row.id, "h": _digest(token), "e": expires})
    return {"access_token": token, "token_type": "bearer", "expires_at": expires.isoformat()}


def principal_for_token(session: Session, token: str) -> Principal | None:
    # One round trip: this runs on every authenticated request.
    """The principal a bearer token stands for, with its grants; None for an unknown, expired or
    revoked token or an inactive account."""
    row = session.execute(text("""
        SELECT ac.id, ac.username,
               coalesce(json_agg(json_build_array(g.role, g.area_id, a.code, g.department) ORDER BY g.id)
                        FILTER (WHERE g.id IS NOT NULL), '[]') AS grants
        FROM api_token t JOIN account ac ON ac.id = t.account_id
        LEFT JOIN role_grant g ON g.account_id = ac.id LEFT JOIN area a ON a.id = g.area_id
        WHERE t.token_hash = :h AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
          AND ac.active
        GROUP BY ac.id
    """), {"h": _digest(token)}).first()
    if row is None:
        return None
    return Principal(row.id, row.username, tuple(Grant(*g) for g in row.grants))


def logout(session: Session, token: str) -> None:
    """Revoke a bearer token (an unknown or revoked one is left alone)."""
    session.execute(text("UPDATE api_token SET revoked_at = now() WHERE token_hash = :h AND revoked_at IS NULL"),
                    {"h": _digest(token)})
