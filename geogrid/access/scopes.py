"""Who may do what, where: the principal of a session, its role grants scoped to an area's
subtree, and the checks every domain function makes (:func:`require_role`,
:func:`require_scope`, :func:`require_object`, :func:`scope_filter`). Accounts, tokens and
logins are in :mod:`geogrid.access.accounts`, the audit log in :mod:`geogrid.access.audit`.

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

import getpass
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.core.errors import GeogridError, not_found

ACCESS_ROLES = {
    "admin": ("管理员", "Administrator"),
    "planner": ("规划员", "Planner"),
    "inspector": ("环保巡查员", "Inspector"),
    "grid_worker": ("网格员", "Grid worker"),
    "department_handler": ("部门处置人员", "Department handler"),
    # Not a job but a permission: reading residents and their special-group tags in the area.
    "resident_data": ("居民信息查阅", "Resident data"),
}
STAFF = frozenset(ACCESS_ROLES) - {"resident_data"}
RESIDENT_DATA = ("resident_data",)


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


def caller_person(session: Session) -> int | None:
    """The person the caller's account belongs to (``account.person_id``), or None (the
    local operator, an account without a person): whose day list, whose cases are "mine"."""
    p = principal_of(session)
    if p is None or p.account_id is None:
        return None
    return session.execute(text("SELECT person_id FROM account WHERE id = :id"), {"id": p.account_id}).scalar()


def actor(session: Session) -> str:
    """Who the audit log names for this session: a service task's actor, the account's username,
    or ``cli:<unix user>`` for the local operator."""
    if "actor" in session.info:  # a service task, e.g. "system:escalation"
        return session.info["actor"]
    p = principal_of(session)
    return p.username if p is not None else f"cli:{_unix_user()}"


def _unix_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def is_staff(session: Session) -> bool:
    """Whether the caller holds a staff role (or is the local operator): staff read current
    areas, drafts included; everyone else reads what was published."""
    p = principal_of(session)
    return p is None or p.has_role(*STAFF)


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
