"""Initial schema: levels, layers, areas with versioned boundaries, persons, roles, assignments.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import DATERANGE, TSTZRANGE, ExcludeConstraint

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Defaults found in published plans; every county may add or rename its own.
LEVELS = [
    ("province", 1, 6, "省", "Province"),
    ("city", 2, 6, "市", "City"),
    ("county", 3, 6, "县/区", "County / district"),
    ("town", 4, 9, "镇/街道", "Town / street"),
    ("village", 5, 12, "村/社区", "Village / community"),
    ("grid", 6, 15, "网格", "Grid"),
    ("microgrid", 7, 18, "微网格", "Micro-grid"),
]
LAYERS = [
    ("admin", "行政区划", "Administrative divisions", "The jurisdiction frame every net is drawn in."),
    ("comprehensive", "综治网格", "Comprehensive governance", "综合治理网格 (多网合一的主网)."),
    ("environment", "环境监管网格", "Environmental supervision", "环境监管网格."),
    ("safety", "安全生产网格", "Work safety", "安全生产网格."),
    ("fire", "消防网格", "Fire safety", "消防网格."),
    ("enterprise", "企业网格", "Enterprises", "企业网格 / 工业园区."),
]
ROLES = [
    ("grid_leader", 10, "网格长", "Grid leader", True),
    ("grid_worker_fulltime", 20, "专职网格员", "Full-time grid worker", True),
    ("grid_worker_parttime", 30, "兼职网格员", "Part-time grid worker", True),
    ("instructor", 40, "网格指导员", "Grid instructor", True),
    ("building_head", 50, "楼栋长", "Building head", False),
    ("env_informant", 60, "环保信息员", "Environmental informant", True),
    ("env_supervisor", 70, "环保监督员", "Environmental supervisor", True),
    ("police", 80, "驻村民警", "Resident police officer", False),
]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    level = op.create_table(
        "level",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("rank", sa.Integer, nullable=False, unique=True),
        sa.Column("code_length", sa.Integer, nullable=False),
        sa.Column("name_zh", sa.String(64), nullable=False),
        sa.Column("name_en", sa.String(64), nullable=False),
    )
    layer = op.create_table(
        "layer",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("name_zh", sa.String(64), nullable=False),
        sa.Column("name_en", sa.String(64), nullable=False),
        sa.Column("description", sa.Text),
    )
    op.create_table(
        "area",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("level_key", sa.String(32), sa.ForeignKey("level.key"), nullable=False, index=True),
        sa.Column("layer_key", sa.String(32), sa.ForeignKey("layer.key"), nullable=False, index=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("area.id"), index=True),
        sa.Column("households", sa.Integer),
        sa.Column("population", sa.Integer),
        sa.Column("land_use", sa.String(64)),
        sa.Column("notes", sa.Text),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("code ~ '^[0-9]+$'", name="area_code_digits"),
        sa.CheckConstraint("households IS NULL OR households >= 0", name="area_households_nonneg"),
        sa.CheckConstraint("population IS NULL OR population >= 0", name="area_population_nonneg"),
        sa.CheckConstraint("parent_id IS NULL OR parent_id <> id", name="area_not_own_parent"),
    )
    op.create_index("area_code_prefix", "area", ["code"], postgresql_ops={"code": "text_pattern_ops"})
    op.create_table(
        "boundary",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("area_id", sa.Integer, sa.ForeignKey("area.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column("area_m2", sa.Float, sa.Computed("ST_Area(geom::geography)", persisted=True)),
        sa.Column("valid", TSTZRANGE, nullable=False, server_default=sa.text("tstzrange(now(), NULL)")),
        sa.Column("note", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("area_id", "version"),
        ExcludeConstraint(("area_id", "="), ("valid", "&&"), name="boundary_no_overlapping_versions", using="gist"),
        sa.CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="boundary_geom_valid"),
    )
    # Every geometry gets a GiST index; the partial one serves "today", the common case.
    op.execute("CREATE INDEX boundary_geom_gist ON boundary USING gist (geom)")
    op.execute("CREATE INDEX boundary_current_geom_gist ON boundary USING gist (geom) WHERE upper_inf(valid)")
    op.execute("CREATE UNIQUE INDEX boundary_one_current ON boundary (area_id) WHERE upper_inf(valid)")

    op.create_table(
        "person",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ref", sa.String(64), unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(32)),
        sa.Column("photo_url", sa.String(500)),
        sa.Column("name_public", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("phone_public", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("photo_public", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("notes", sa.Text),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    role = op.create_table(
        "role",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("rank", sa.Integer, nullable=False, server_default="100"),
        sa.Column("name_zh", sa.String(64), nullable=False),
        sa.Column("name_en", sa.String(64), nullable=False),
        sa.Column("responsible", sa.Boolean, nullable=False, server_default="true"),
    )
    op.create_table(
        "assignment",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("person.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("area_id", sa.Integer, sa.ForeignKey("area.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("role_key", sa.String(32), sa.ForeignKey("role.key"), nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date),
        sa.Column("duties", sa.Text),
        sa.Column("period", DATERANGE, sa.Computed("daterange(start_date, end_date, '[]')", persisted=True)),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("end_date IS NULL OR end_date >= start_date", name="assignment_dates_ordered"),
        ExcludeConstraint(
            ("person_id", "="), ("area_id", "="), ("role_key", "="), ("period", "&&"),
            name="assignment_no_overlap", using="gist",
        ),
    )

    op.bulk_insert(level, [dict(zip(("key", "rank", "code_length", "name_zh", "name_en"), r)) for r in LEVELS])
    op.bulk_insert(layer, [dict(zip(("key", "name_zh", "name_en", "description"), r)) for r in LAYERS])
    op.bulk_insert(role, [dict(zip(("key", "rank", "name_zh", "name_en", "responsible"), r)) for r in ROLES])


def downgrade() -> None:
    for table in ("assignment", "role", "person", "boundary", "area", "layer", "level"):
        op.drop_table(table)
