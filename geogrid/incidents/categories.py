"""Incident categories: their net (layer), department and time limits.
"""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import GeogridError, Problem

EDITABLE = ("time_limits", "department", "public", "auto_escalate")


def categories(session: Session) -> dict[str, dict]:
    """Every category by key, in group order."""
    rows = session.execute(text("SELECT * FROM category ORDER BY group_key, key")).mappings()
    return {r["key"]: dict(r) for r in rows}


def resolve_category(session: Session, key: str | None, problems: list[Problem], known: dict | None = None) -> dict | None:
    """The category ``key`` names, or None with a problem added to ``problems``."""
    known = known if known is not None else categories(session)
    if key not in known:
        problems.append(Problem(f"unknown category {key!r}; known: {', '.join(known)}", field="category"))
        return None
    return known[key]


def update_category(session: Session, key: str, changes: dict) -> dict:
    """Change a category's time limits (merged step by step with the current ones),
    department, publicity or automatic escalation (admins only); audited. The category after."""
    scopes.require_role(session, "admin")
    before = categories(session).get(key)
    if before is None:
        raise GeogridError(f"category {key} not found", status=404)
    changes = {k: v for k, v in changes.items() if k in EDITABLE}
    if "time_limits" in changes:
        limits = {**before["time_limits"], **{k: list(v) for k, v in (changes["time_limits"] or {}).items()}}
        if any(v[0] < 0 for v in limits.values()):
            raise GeogridError("time limits must not be negative")
        changes["time_limits"] = json.dumps(limits)
    for column, value in changes.items():
        cast = "CAST(:v AS jsonb)" if column == "time_limits" else ":v"
        session.execute(text(f"UPDATE category SET {column} = {cast} WHERE key = :k"), {"v": value, "k": key})
    after = categories(session)[key]
    audit.record(session, "update", "category", key, before, after)
    return after
