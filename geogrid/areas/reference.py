"""Levels and layers: the reference tables areas are classified by.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import GeogridError, conflict, not_found
from geogrid.db.schema import ADMIN_LAYER

# --------------------------------------------------------------------------- reference data


def levels(session: Session) -> dict[str, dict]:
    """The area levels by key (rank, code length, names, whether their codes prefix their
    children's), coarsest first."""
    rows = session.execute(text("SELECT key, rank, code_length, name_zh, name_en, prefixes_children "
                                "FROM level ORDER BY rank"))
    return {r.key: r._asdict() for r in rows}


def layers(session: Session) -> dict[str, dict]:
    """The layers (the administrative one and thematic grid nets) by key, with names and description."""
    rows = session.execute(text("SELECT key, name_zh, name_en, description FROM layer ORDER BY key"))
    return {r.key: r._asdict() for r in rows}


def add_level(session: Session, key: str, code_length: int, name_zh: str, name_en: str, *, rank: int | None = None,
              above: str | None = None, below: str | None = None, prefixes_children: bool = True) -> dict:
    """Add an area level (admin only) at ``rank``, or inserted ``above`` or ``below`` an
    existing level (a national root above the provinces; a 工作区 below the towns): the
    ranks of the levels under it move down by one. ``prefixes_children=False``: its codes
    are not the start of its children's (theirs follow the nearest ancestor whose are).
    409 when the key or rank is taken; 422 for an unknown ``above``/``below``."""
    scopes.require_role(session, "admin")
    known = levels(session)
    if key in known:
        raise conflict(f"level {key!r} exists already")
    if sum(x is not None for x in (rank, above, below)) != 1:
        raise GeogridError("give exactly one of rank, above and below", status=422)
    for name, ref in (("above", above), ("below", below)):
        if ref is not None and ref not in known:
            raise GeogridError(f"{name}: unknown level {ref!r}; known: {', '.join(known)}", status=422)
    if rank is not None:
        if any(lv["rank"] == rank for lv in known.values()):
            raise conflict(f"a level with rank {rank} exists already")
    else:
        rank = known[above]["rank"] if above is not None else known[below]["rank"] + 1
        # Make room: every level from that rank down moves one down. Through negative ranks,
        # since the unique constraint is checked row by row.
        session.execute(text("UPDATE level SET rank = -(rank + 1) WHERE rank >= :r"), {"r": rank})
        session.execute(text("UPDATE level SET rank = -rank WHERE rank < 0"))
    session.execute(
        text("INSERT INTO level (key, rank, code_length, name_zh, name_en, prefixes_children) "
             "VALUES (:k, :r, :c, :zh, :en, :p)"),
        dict(k=key, r=rank, c=code_length, zh=name_zh, en=name_en, p=prefixes_children),
    )
    audit.record(session, "create", "level", key, after=levels(session)[key])
    return levels(session)[key]


def add_layer(session: Session, key: str, name_zh: str, name_en: str, description: str | None = None) -> dict:
    """Add a thematic layer (admin only); 409 when the key is taken. Returns the new layer."""
    scopes.require_role(session, "admin")
    if key in layers(session):
        raise conflict(f"layer {key!r} exists already")
    session.execute(
        text("INSERT INTO layer (key, name_zh, name_en, description) VALUES (:k, :zh, :en, :d)"),
        dict(k=key, zh=name_zh, en=name_en, d=description),
    )
    audit.record(session, "create", "layer", key, after=layers(session)[key])
    return layers(session)[key]


def update_layer(session: Session, key: str, changes: dict) -> dict:
    """Change a layer's names or description (admin only; other keys of ``changes`` are
    ignored); 404 for an unknown layer. Returns the layer as it is now."""
    scopes.require_role(session, "admin")
    before = layers(session).get(key)
    if before is None:
        raise not_found(f"layer {key}")
    changes = {k: v for k, v in changes.items() if k in ("name_zh", "name_en", "description")}
    if changes:
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        session.execute(text(f"UPDATE layer SET {sets} WHERE key = :key"), {**changes, "key": key})
        audit.record(session, "update", "layer", key, before, layers(session)[key])
    return layers(session)[key]


def delete_layer(session: Session, key: str) -> None:
    """Remove a thematic net that holds no areas (retired ones included: history stays)."""
    scopes.require_role(session, "admin")
    before = layers(session).get(key)
    if before is None:
        raise not_found(f"layer {key}")
    used = session.execute(text("SELECT count(*) FROM area WHERE layer_key = :k"), {"k": key}).scalar_one()
    if key == ADMIN_LAYER or used:
        raise conflict(f"layer {key} holds {used} areas and cannot be deleted" if used else "the admin layer is required")
    session.execute(text("DELETE FROM layer WHERE key = :k"), {"k": key})
    audit.record(session, "delete", "layer", key, before, None)
