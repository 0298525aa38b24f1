"""Coverage: exemption masks, stored check runs and repair proposals.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exemption",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("area_id", sa.Integer, sa.ForeignKey("area.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False, comment="lake, river, military, exclave, other"),
        sa.Column("name", sa.String(200)),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="exemption_geom_valid"),
    )
    op.execute("CREATE INDEX exemption_geom_gist ON exemption USING gist (geom)")
    op.create_table(
        "coverage_run",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("area_code", sa.String(32), nullable=False),
        sa.Column("layer", sa.String(32), nullable=False),
        sa.Column("subtree", sa.Boolean, nullable=False),
        sa.Column("options", JSONB, nullable=False),
        sa.Column("summary", JSONB, nullable=False),
        sa.Column("problems", JSONB, nullable=False, comment="GeoJSON FeatureCollection"),
        sa.Column("seconds", sa.Float),
    )
    op.create_index("coverage_run_area_layer", "coverage_run", ["area_code", "layer", "at"])
    op.create_table(
        "repair_proposal",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("area_code", sa.String(32), nullable=False),
        sa.Column("layer", sa.String(32), nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("base_versions", JSONB, nullable=False, comment="code -> area version the proposal was made from"),
        sa.Column("proposal", JSONB, nullable=False, comment="GeoJSON of the proposed boundaries and changes"),
        sa.Column("applied_at", sa.DateTime(timezone=True)),
        sa.Column("applied_by", sa.String(100)),
    )


def downgrade() -> None:
    for table in ("repair_proposal", "coverage_run", "exemption"):
        op.drop_table(table)
