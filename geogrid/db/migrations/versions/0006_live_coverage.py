"""Live coverage: when an area's assignments or exemptions last changed.

A stored coverage run is still current while nothing it read has changed since. Areas and
boundaries carry their own times (created, updated, retired; a version's validity), but
an assignment that is updated or deleted, or an exemption that is deleted, leaves none:
triggers stamp the area it belongs to instead, whatever path wrote it (API, CLI, demo).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("assignment", "exemption")


def upgrade() -> None:
    op.add_column("area", sa.Column("related_changed_at", sa.DateTime(timezone=True)))
    # Once per area and transaction (IS DISTINCT FROM now()): a bulk appointment does not
    # rewrite the same area row for every person.
    op.execute("""
        CREATE FUNCTION area_related_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                UPDATE area SET related_changed_at = now()
                WHERE id = OLD.area_id AND related_changed_at IS DISTINCT FROM now();
            END IF;
            IF TG_OP <> 'DELETE' THEN
                UPDATE area SET related_changed_at = now()
                WHERE id = NEW.area_id AND related_changed_at IS DISTINCT FROM now();
            END IF;
            RETURN NULL;
        END $$
    """)
    for table in TABLES:
        op.execute(f"CREATE TRIGGER {table}_changes_area AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION area_related_changed()")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_changes_area ON {table}")
    op.execute("DROP FUNCTION area_related_changed()")
    op.drop_column("area", "related_changed_at")
