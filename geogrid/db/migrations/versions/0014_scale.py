"""Scale: lean intake and several service processes over one database.

- ``case_fact_stale`` and ``case_month_stale``: the cases whose assessment facts, and the
  (place, month) cells whose monthly sums, must be brought up to date. Intake only appends
  to the first (a plain insert, no row every other intake also touches), workflow events to
  the second; one runner at a time (an advisory lock) folds them into ``case_fact`` and
  ``case_month`` (:func:`geogrid.incidents.steps.catch_up`), before any indicator is read
  and every few seconds in the service. Before this, every intake rewrote its month cell
  in place, and two intakes in one grid and month collided on ``case_month_pkey``.
- A statement trigger on the reference tables every process caches (``category``,
  ``request_type``) notifies the channel ``geogrid_reference`` with the table's name, at
  commit, whoever changed them (the API, the CLI or psql): each process drops its copy.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

CACHED = ("category", "request_type")


def upgrade() -> None:
    op.create_table(
        "case_fact_stale",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer, nullable=False),
        comment="cases whose case_fact row is behind (steps.catch_up folds them in)",
    )
    op.create_table(
        "case_month_stale",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("place_id", sa.Integer, nullable=False),
        sa.Column("month", sa.Date, nullable=False),
        comment="(place, month) cells whose case_month sums are behind (steps.catch_up rewrites them)",
    )
    op.execute("""
        CREATE FUNCTION geogrid_notify_reference() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('geogrid_reference', TG_TABLE_NAME);
            RETURN NULL;
        END $$""")
    for table in CACHED:
        op.execute(f"""CREATE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
                       FOR EACH STATEMENT EXECUTE FUNCTION geogrid_notify_reference()""")


def downgrade() -> None:
    for table in CACHED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify ON {table}")
    op.execute("DROP FUNCTION IF EXISTS geogrid_notify_reference()")
    op.drop_table("case_month_stale")
    op.drop_table("case_fact_stale")
