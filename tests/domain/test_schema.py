"""The SQLAlchemy metadata (geogrid/db/schema.py) declares the database the migrations
build: Alembic's autogenerate comparison of the two finds nothing to change.

Two kinds of schema objects are beyond the comparison, because PostgreSQL reflection in
SQLAlchemy does not return them: the exclusion constraints (``boundary_no_overlapping_versions``,
``assignment_no_overlap``) and the expression parts of ``role_grant_unique``. They are
declared in the metadata all the same, and checked by name against the catalogue below.
"""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from geogrid.db.schema import Base

NOT_OURS = {"spatial_ref_sys", "alembic_version"}  # PostGIS's table; Alembic's own


def _ours(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "table" and name in NOT_OURS)


def test_metadata_matches_the_migrated_database(engine):
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "skipped expression-based index role_grant_unique" and the like
        ctx = MigrationContext.configure(conn, opts={"include_object": _ours, "compare_type": True,
                                                     "compare_server_default": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], diff


def test_every_table_is_declared(engine):
    with engine.connect() as conn:
        tables = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    assert tables - NOT_OURS == set(Base.metadata.tables)


def test_constraints_beyond_the_comparison_exist(engine):
    declared = {c.name for t in Base.metadata.tables.values() for c in t.constraints if c.name}
    declared |= {i.name for t in Base.metadata.tables.values() for i in t.indexes}
    with engine.connect() as conn:
        exclusions = set(conn.execute(text("SELECT conname FROM pg_constraint WHERE contype = 'x'")).scalars())
        unique = set(conn.execute(text("SELECT indexname FROM pg_indexes WHERE indexname = 'role_grant_unique'")).scalars())
    assert exclusions == {"boundary_no_overlapping_versions", "assignment_no_overlap", "published_area_no_overlapping_generations"}
    assert exclusions | unique <= declared
