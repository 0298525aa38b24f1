"""Who may do what, where: accounts, role grants scoped to an area's subtree, tokens, and
the audit log.

A grant gives an account a role (planner, inspector, grid worker, department handler)
on one area; it holds for that area's subtree. Writes to an area's boundary or attributes
need a grant on a *strict* ancestor (a town planner draws the town's grids, not the town
itself, which belongs to the county); appointments need a grant covering the area itself.
``admin`` grants are global.

**The scope rule.** Every domain function checks the caller's scope on every object it
reads or writes (its old place and its new place, and every object it links to) *before*
it reveals anything about it: before a state check (409), a version check (412) or a
lookup that would answer 404. For a caller whose grants are not global, an object that
does not exist and one outside their scope get the same answer, a 403 "X is outside your
scope or does not exist" (:func:`hidden`, :func:`require_object`); a caller who could see
the object wherever it were (a global grant, an admin, the command line) gets 404 for one
that does not exist. Objects named inside a request body (the sources of a patrol, the
person of an appointment) are refused with a 422 naming them, the same for unknown and
out-of-scope ones; places a request would write into (a new or moved object, the rows of
an import) get a 403 naming them (areas are public). Lists are scoped like edits: a caller sees only
the rows whose place lies in their jurisdiction (:func:`scope_filter`). A grant bound to
a department without an area (department handlers) reaches that department's cases, not
every area.

The principal rides on the database session (``session.info["principal"]``) so that
every domain write checks the same rules whichever route reached it. A session without
a principal is the local operator (the ``geogrid`` command line, run by whoever can read
the project's state directory) and may do everything; every write is audited either way.

>>> p = Principal(0, "x", (Grant("planner", 7, "339901100"),))
>>> p.has_role("planner"), p.has_role("admin"), p.is_admin
(True, False, False)
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import hashlib
import json
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geogrid import throttle
from geogrid.errors import GeogridError, conflict, not_found
from geogrid.settings import Settings, get_settings

ACCESS_ROLES = {
    "admin": ("管理员", "Administrator"),
    "planner": ("规划员", "Planner"),
    "inspector": ("环保巡查员", "Inspector"),
    "grid_worker": ("网格员", "Grid worker"),
    "department_handler": ("部门处置人员", "Department handler"),
}
STAFF = frozenset(ACCESS_ROLES)
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Grant:
    role: str
    area_id: int | None
    area_code: str | None = None
    department: str | None = None


@dataclass(frozen=True)
class Principal:
    account_id: int | None
    username: str
    grants: tuple[Grant, ...] = ()

    @property
    def is_admin(self) -> bool:
        return any(g.role == "admin" for g in self.grants)

    @property
    def authenticated(self) -> bool:
        return self.account_id is not None

    def has_role(self, *roles: str) -> bool:
        return self.is_admin or any(g.role in roles for g in self.grants)


ANONYMOUS = Principal(None, "anonymous")


# --------------------------------------------------------------------------- checks


def principal_of(session: Session) -> Principal | None:
    """None means the trusted local operator (command line)."""
    return session.info.get("principal")


def actor(session: Session) -> str:
    if "actor" in session.info:  # a service task, e.g. "system:escalation"
        return session.info["actor"]
    p = principal_of(session)
    return p.username if p is not None else f"cli:{_unix_user()}"


def _unix_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def require_role(session: Session, *roles: str) -> Principal | None:
    """401 for anonymous callers, 403 for accounts without any of ``roles``."""
    p = principal_of(session)
    if p is None or p.has_role(*roles):
        return p
    if not p.authenticated:
        raise GeogridError("authentication required: log in at /api/token and send 'Authorization: Bearer TOKEN'",
                           status=401)
    raise GeogridError(f"{p.username} lacks the role for this: needs {' or '.join(roles)}", status=403)


def _roots(p: Principal, roles) -> list[int | None]:
    """The areas whose subtrees ``p``'s grants of ``roles`` cover; None: everywhere. A
    department grant without an area is no area grant (it reaches its department's cases)."""
    return [g.area_id for g in p.grants if g.role in roles and not (g.department and g.area_id is None)]


def sees_everything(p: Principal | None, roles) -> bool:
    """Whether ``p``'s scope for ``roles`` is the whole jurisdiction."""
    return p is None or p.is_admin or None in _roots(p, roles)


def _outside(session: Session, roots: list[int], area_ids, strict: bool) -> list:
    """The areas of ``area_ids`` that lie in no subtree of ``roots`` (``strict``: below the
    root, not the root itself), by code."""
    return session.execute(text("""
        WITH RECURSIVE up(target, id, depth) AS (
            SELECT a.id, CASE WHEN :strict THEN a.parent_id ELSE a.id END, 0
            FROM area a WHERE a.id = ANY(:ids)
            UNION ALL
            SELECT up.target, a.parent_id, up.depth + 1 FROM area a JOIN up ON a.id = up.id
            WHERE a.parent_id IS NOT NULL AND up.depth < 64
        )
        SELECT a.id, a.code, a.name FROM area a
        WHERE a.id = ANY(:ids)
          AND NOT EXISTS (SELECT 1 FROM up WHERE up.target = a.id AND up.id = ANY(:roots))
        ORDER BY a.code
    """), {"ids": list(area_ids), "roots": roots, "strict": strict}).all()


def require_scope(session: Session, roles: tuple[str, ...], area_ids: list[int], *, strict: bool,
                  action: str = "change") -> None:
    """Every area in ``area_ids`` must lie in the subtree of a grant of one of ``roles``
    (``strict``: below the granted area, not the area itself). 403 names the first
    area out of scope (areas are public: naming one reveals nothing)."""
    p = require_role(session, *roles)
    if sees_everything(p, roles) or not area_ids:
        return
    outside = _outside(session, [r for r in _roots(p, roles) if r is not None], area_ids, strict)
    if outside:
        scope = ", ".join(sorted({g.area_code or "?" for g in p.grants if g.role in roles})) or "(none)"
        raise GeogridError(f"{p.username} may not {action} {outside[0].code} ({outside[0].name}): "
                           f"outside the {'/'.join(roles)} scope {scope}", status=403)


def outside_scope(session: Session, roles, area_ids) -> set[int]:
    """The areas of ``area_ids`` outside the caller's scope for ``roles`` (all of them
    for a caller without any of the roles)."""
    p = principal_of(session)
    area_ids = {i for i in area_ids if i is not None}
    if sees_everything(p, roles) or not area_ids:
        return set()
    if not p.has_role(*roles):
        return area_ids
    return {r.id for r in _outside(session, [r for r in _roots(p, roles) if r is not None], area_ids, False)}


def in_scope(session: Session, roles, area_ids) -> bool:
    """Whether any area of ``area_ids`` lies in the caller's scope for ``roles`` (no role: no)."""
    if sees_everything(principal_of(session), roles):
        return True
    area_ids = {i for i in area_ids if i is not None}
    return bool(area_ids - outside_scope(session, roles, area_ids))


def hidden(what: str) -> GeogridError:
    """The one answer for an object the caller may not see, whether it exists or not."""
    return GeogridError(f"{what} is outside your scope or does not exist", status=403)


def require_object(session: Session, what: str, roles, places: list[int] | None, *,
                   reachable: bool = False) -> Principal | None:
    """The check before a domain function reveals anything about one object: the caller
    needs one of ``roles`` and the object must lie in their scope (any of its ``places``;
    ``reachable``: in reach by another rule, e.g. a department's case). ``places`` None
    means the object does not exist: 404 for a caller who could see it anywhere, else the
    same 403 as for an object out of scope."""
    p = require_role(session, *roles)
    if places is None:
        if sees_everything(p, roles):
            raise not_found(what)
        raise hidden(what)
    if not (reachable or in_scope(session, roles, places)):
        raise hidden(what)
    return p


def scope_filter(session: Session, roles, area_sql: str, name: str = "scope_roots") -> tuple[str, dict]:
    """A SQL condition (and its parameters) true for rows whose area ``area_sql`` (a column
    or scalar expression) lies in the caller's scope for ``roles``: lists are scoped like edits.
    The caller's role is checked by the caller (``require_role``); without one of ``roles``
    no row is in scope."""
    p = principal_of(session)
    if sees_everything(p, roles):
        return "TRUE", {}
    if not p.has_role(*roles):
        return "FALSE", {}
    return (f"""EXISTS (WITH RECURSIVE up(id, depth) AS (SELECT ({area_sql}), 0
                        UNION ALL SELECT a.parent_id, up.depth + 1 FROM area a JOIN up ON a.id = up.id
                        WHERE a.parent_id IS NOT NULL AND up.depth < 64)
               SELECT 1 FROM up WHERE up.id = ANY(:{name}))""",
            {name: [r for r in _roots(p, roles) if r is not None]})


# --------------------------------------------------------------------------- audit


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def record(session: Session, action: str, resource: str, key, before=None, after=None) -> None:
    """One row of the audit log, in the same transaction as the write it describes."""
    record_many(session, action, resource, [(key, before, after)])


def record_many(session: Session, action: str, resource: str, items) -> None:
    """Audit rows for a batch: ``items`` are (key, before, after) triples."""
    who = actor(session)
    params = [{"actor": who, "action": action, "resource": resource, "key": str(key),
               "before": _json(before), "after": _json(after)} for key, before, after in items]
    if params:
        session.execute(
            text("INSERT INTO audit (actor, action, resource, key, before, after) "
                 "VALUES (:actor, :action, :resource, :key, CAST(:before AS jsonb), CAST(:after AS jsonb))"),
            params,
        )


def audit_log(session: Session, *, resource: str | None = None, key: str | None = None, actor_name: str | None = None,
              limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    require_role(session, "admin")
    where, params = ["TRUE"], {"limit": limit, "offset": offset}
    for column, value in (("resource", resource), ("key", key), ("actor", actor_name)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    cond = " AND ".join(where)
    total = session.execute(text(f"SELECT count(*) FROM audit WHERE {cond}"), params).scalar_one()
    rows = session.execute(text(f"SELECT id, at, actor, action, resource, key, before, after FROM audit "
                                f"WHERE {cond} ORDER BY id DESC LIMIT :limit OFFSET :offset"), params).mappings()
    return [dict(r) for r in rows], total


# --------------------------------------------------------------------------- accounts


def _account(session: Session, username: str):
    row = session.execute(text("SELECT * FROM account WHERE username = :u"), {"u": username}).first()
    if row is None:
        raise not_found(f"account {username}")
    return row


def create_account(session: Session, username: str, password: str, display_name: str | None = None) -> dict:
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
    (:mod:`geogrid.throttle`). A name that is no account is counted and answered exactly
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
    session.execute(text("UPDATE api_token SET revoked_at = now() WHERE token_hash = :h AND revoked_at IS NULL"),
                    {"h": _digest(token)})
