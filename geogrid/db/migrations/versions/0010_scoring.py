"""Score sheets (考核方案): schemes with their items and rules, assessment periods
(computed, reviewed, frozen; published for the red/black list), the stored score of every
target of a period with the evidence of each item, and the manual items assessors enter.

A period keeps a copy of the scheme it was computed with and its results as stored rows:
a frozen period is never recomputed, so a later data correction cannot change it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assessment_scheme",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("area_id", sa.Integer, nullable=False, comment="the county or town that owns the scheme"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("total", sa.Integer, nullable=False, comment="100 or 1000 points"),
        sa.Column("target_kind", sa.String(16), nullable=False, comment="worker, grid, village, town or department"),
        sa.Column("period_kind", sa.String(16), nullable=False, comment="month, quarter or year"),
        sa.Column("items", JSONB, nullable=False, comment="code, name, points, kind, rule (or manual)"),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(["area_id"], ["area.id"], name="assessment_scheme_area_id_fkey"),
        sa.UniqueConstraint("area_id", "name", name="assessment_scheme_area_id_name_key"),
        sa.CheckConstraint("total IN (100, 1000)", name="assessment_scheme_total"),
        sa.CheckConstraint("target_kind IN ('worker', 'grid', 'village', 'town', 'department')",
                           name="assessment_scheme_target_kind"),
        sa.CheckConstraint("period_kind IN ('month', 'quarter', 'year')", name="assessment_scheme_period_kind"),
    )
    op.create_table(
        "assessment_period",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scheme_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(16), nullable=False, comment="2026-11, 2026-Q4 or 2026"),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, nullable=False, comment="exclusive"),
        sa.Column("state", sa.String(16), nullable=False, server_default="computed"),
        sa.Column("published", sa.Boolean, nullable=False, server_default=sa.false(),
                  comment="its red/black list is on the public board"),
        sa.Column("scheme_version", sa.Integer, nullable=False),
        sa.Column("scheme", JSONB, nullable=False, comment="the scheme (name, total, kinds, items) it was computed with"),
        sa.Column("red_n", sa.Integer, nullable=False, server_default=sa.text("3")),
        sa.Column("black_n", sa.Integer, nullable=False, server_default=sa.text("3")),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False,
                  comment="the moment 'overdue now' was measured at"),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_by", sa.String(100), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        sa.Column("reviewed_by", sa.String(100)),
        sa.Column("frozen_at", sa.DateTime(timezone=True)),
        sa.Column("frozen_by", sa.String(100)),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("published_by", sa.String(100)),
        sa.ForeignKeyConstraint(["scheme_id"], ["assessment_scheme.id"], ondelete="CASCADE",
                                name="assessment_period_scheme_id_fkey"),
        sa.UniqueConstraint("scheme_id", "start_date", name="assessment_period_scheme_id_start_date_key"),
        sa.CheckConstraint("state IN ('computed', 'reviewed', 'frozen')", name="assessment_period_state"),
        sa.CheckConstraint("NOT published OR state = 'frozen'", name="assessment_period_published_frozen"),
        sa.CheckConstraint("end_date > start_date", name="assessment_period_dates_ordered"),
    )
    op.create_table(
        "assessment_score",
        sa.Column("period_id", sa.Integer, nullable=False),
        sa.Column("target", sa.String(100), nullable=False, comment="area code, person id or department name"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("area_ids", ARRAY(sa.Integer), nullable=False, server_default=sa.text("'{}'"),
                  comment="the areas the target answers for (scope of readers and assessors)"),
        sa.Column("indicator_values", JSONB, nullable=False, comment="the indicator values the rules read"),
        sa.Column("items", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb"),
                  comment="each item's points with its evidence"),
        sa.Column("deductions", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("bonuses", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("rank", sa.Integer),
        sa.ForeignKeyConstraint(["period_id"], ["assessment_period.id"], ondelete="CASCADE",
                                name="assessment_score_period_id_fkey"),
        sa.PrimaryKeyConstraint("period_id", "target", name="assessment_score_pkey"),
    )
    op.create_table(
        "assessment_manual",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("period_id", sa.Integer, nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("item_code", sa.String(32), nullable=False),
        sa.Column("points", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False, comment="a URL or a description of the evidence"),
        sa.Column("entered_by", sa.String(100), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.ForeignKeyConstraint(["period_id"], ["assessment_period.id"], ondelete="CASCADE",
                                name="assessment_manual_period_id_fkey"),
        sa.UniqueConstraint("period_id", "target", "item_code", name="assessment_manual_period_id_target_item_code_key"),
        sa.CheckConstraint("points >= 0", name="assessment_manual_points_nonneg"),
    )
    op.create_index("ix_assessment_scheme_area_id", "assessment_scheme", ["area_id"])


def downgrade() -> None:
    op.drop_table("assessment_manual")
    op.drop_table("assessment_score")
    op.drop_table("assessment_period")
    op.drop_table("assessment_scheme")
