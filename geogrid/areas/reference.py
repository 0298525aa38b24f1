"""Levels and layers: the reference tables areas are classified by.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import conflict, not_found
from geogrid.db.schema import ADMIN_LAYER

# --------------------------------------------------------------------------- reference data


def levels(session: Session) -> dict[str, dict]:
    """The area levels by key (rank, code length, names), coarsest first."""
    rows = session.execute(text("SELECT key, rank, code_length, name_zh, name_en FROM level ORDER BY rank"))
    return {r.key: r._asdict() for r in rows}


def layers(session: Session) -> dict[str, dict]:
    """The layers (the administrative one and thematic grid nets) by key, with names and description."""
    rows = session.execute(text("SELECT key, name_zh, name_en, description FROM layer ORDER BY key"))
    return {r.key: r._asdict() for r in rows}


def add_level(session: Session, key: str, rank: int, code_length: int, name_zh: str, name_en: str) -> dict:
    """Add an area level (admin only); 409 when its key or rank is taken. Returns the new level."""
    scopes.require_role(session, "admin")
    if key in levels(session):
        raise conflict(f"level {key!r} exists already")
    if any(lv["rank"] == rank for lv in levels(session).values()):
        raise conflict(f"a level with rank {rank} exists already")
    session.execute(
        text("INSERT INTO level (key, rank, code_length, name_zh, name_en) VALUES (:k, :r, :c, :zh, :en)"),
        dict(k=key, r=rank, c=code_length, zh=name_zh, en=name_en),
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
