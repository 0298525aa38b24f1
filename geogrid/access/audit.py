"""The audit log: one row per write, in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access.scopes import actor, require_role
from geogrid.core.jsonenc import dumps_or_none

# --------------------------------------------------------------------------- audit


def record(session: Session, action: str, resource: str, key, before=None, after=None) -> None:
    """One row of the audit log, in the same transaction as the write it describes."""
    record_many(session, action, resource, [(key, before, after)])


def record_many(session: Session, action: str, resource: str, items) -> None:
    """Audit rows for a batch: ``items`` are (key, before, after) triples."""
    who = actor(session)
    params = [{"actor": who, "action": action, "resource": resource, "key": str(key),
               "before": dumps_or_none(before), "after": dumps_or_none(after)} for key, before, after in items]
    if params:
        session.execute(
            text("INSERT INTO audit (actor, action, resource, key, before, after) "
                 "VALUES (:actor, :action, :resource, :key, CAST(:before AS jsonb), CAST(:after AS jsonb))"),
            params,
        )


def audit_log(session: Session, *, resource: str | None = None, key: str | None = None, actor_name: str | None = None,
              limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    """One page of the audit log, newest first, filtered by resource, key and actor, and the total
    matched (admin only)."""
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
