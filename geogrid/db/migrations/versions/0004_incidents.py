"""Incidents and their case workflow, categories with routing and time limits, pollution
sources and patrols.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

H, D = "working_hours", "working_days"
# key, zh, en, group, layer, department, public, {step: [amount, unit]}
CATEGORIES = [
    ("illegal_discharge", "违法排污", "Illegal discharge", "environment", "environment", "生态环境分局", True,
     {"accept": [2, H], "dispatch": [2, H], "handle": [3, D], "verify": [1, D]}),
    ("straw_burning", "秸秆焚烧", "Straw burning", "environment", "environment", "乡镇（街道）", True,
     {"accept": [1, H], "dispatch": [1, H], "handle": [2, H], "verify": [4, H]}),
    ("garbage_burning", "垃圾焚烧", "Garbage burning", "environment", "environment", "综合执法局", True,
     {"accept": [1, H], "dispatch": [1, H], "handle": [4, H], "verify": [1, D]}),
    ("construction_dust", "施工扬尘", "Construction dust", "environment", "environment", "住建局", True,
     {"accept": [2, H], "dispatch": [2, H], "handle": [1, D], "verify": [1, D]}),
    ("noise", "噪声扰民", "Noise", "environment", "environment", "公安分局", True,
     {"accept": [1, H], "dispatch": [1, H], "handle": [4, H], "verify": [1, D]}),
    ("catering_fumes", "餐饮油烟", "Catering fumes", "environment", "environment", "市场监管局", True,
     {"accept": [2, H], "dispatch": [2, H], "handle": [5, D], "verify": [2, D]}),
    ("new_pollution_source", "新增污染源", "New pollution source", "environment", "environment", "生态环境分局", False,
     {"accept": [4, H], "dispatch": [1, D], "handle": [7, D], "verify": [3, D]}),
    ("drinking_water_risk", "饮用水源风险", "Drinking-water source risk", "environment", "environment", "水利局", False,
     {"accept": [1, H], "dispatch": [1, H], "handle": [1, D], "verify": [1, D]}),
    ("dispute", "矛盾纠纷", "Dispute", "governance", "comprehensive", "综治中心", False,
     {"accept": [4, H], "dispatch": [1, D], "handle": [7, D], "verify": [2, D]}),
    ("safety_hazard", "安全隐患", "Safety hazard", "governance", "comprehensive", "应急管理局", True,
     {"accept": [2, H], "dispatch": [2, H], "handle": [3, D], "verify": [1, D]}),
    ("illegal_construction", "违法建设", "Illegal construction", "governance", "comprehensive", "综合执法局", True,
     {"accept": [2, H], "dispatch": [2, H], "handle": [20, D], "verify": [2, D]}),
    ("sanitation", "环境卫生", "Sanitation", "governance", "comprehensive", "环卫所", True,
     {"accept": [1, H], "dispatch": [1, H], "handle": [4, H], "verify": [1, D]}),
]


def upgrade() -> None:
    category = op.create_table(
        "category",
        sa.Column("key", sa.String(40), primary_key=True),
        sa.Column("name_zh", sa.String(64), nullable=False),
        sa.Column("name_en", sa.String(64), nullable=False),
        sa.Column("group_key", sa.String(32), nullable=False),
        sa.Column("layer_key", sa.String(32), sa.ForeignKey("layer.key"), nullable=False,
                  comment="the net incidents of this category are routed on"),
        sa.Column("department", sa.String(100), nullable=False, comment="owning department"),
        sa.Column("public", sa.Boolean, nullable=False, server_default="false",
                  comment="incidents of this category may be shown publicly (without reporter data)"),
        sa.Column("time_limits", JSONB, nullable=False, comment="step -> [amount, unit]"),
        sa.Column("auto_escalate", sa.Boolean, nullable=False, server_default="true"),
    )
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("receipt", sa.String(40), nullable=False, unique=True, comment="unguessable; the reporter's handle"),
        sa.Column("category_key", sa.String(40), sa.ForeignKey("category.key"), nullable=False, index=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("media_urls", JSONB, nullable=False, server_default="[]"),
        sa.Column("reporter", JSONB, comment="name/phone/email: private, never published"),
        sa.Column("idempotency_key", sa.String(100), unique=True),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("original", JSONB, nullable=False, comment="coordinates and system as received"),
        sa.Column("route_kind", sa.String(16), nullable=False, comment="grid or blind_spot"),
        sa.Column("grid_id", sa.Integer, sa.ForeignKey("area.id"), index=True,
                  comment="grid containing the point on the category's layer"),
        sa.Column("authority_id", sa.Integer, sa.ForeignKey("area.id"), nullable=False, index=True,
                  comment="area responsible now: the grid, or the territorial authority, or above after escalation"),
        sa.Column("nearest_grid", JSONB, comment="for blind spots: code and distance of the nearest grid"),
        sa.Column("responsible", JSONB, nullable=False, server_default="[]",
                  comment="persons holding posts in the grid on the day it happened, when routed"),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="reported", index=True),
        sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
        sa.Column("due_at", sa.DateTime(timezone=True), comment="deadline of the current step"),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("satisfaction", sa.Integer),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("satisfaction IS NULL OR satisfaction BETWEEN 0 AND 10", name="incident_satisfaction_range"),
        sa.CheckConstraint("route_kind IN ('grid', 'blind_spot')", name="incident_route_kind"),
    )
    op.execute("CREATE INDEX incident_geom_gist ON incident USING gist (geom)")
    op.execute("CREATE INDEX incident_open_due ON incident (due_at) WHERE state NOT IN ('closed', 'void')")
    op.create_table(
        "incident_event",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incident.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16)),
        sa.Column("note", sa.Text),
        sa.Column("data", JSONB),
    )
    op.create_table(
        "pollution_source",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("pollutants", JSONB, nullable=False, server_default="[]"),
        sa.Column("permit_no", sa.String(64)),
        sa.Column("key_supervision", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("risk_level", sa.String(16), nullable=False, server_default="low"),
        sa.Column("address", sa.String(300)),
        sa.Column("notes", sa.Text, comment="internal"),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("grid_id", sa.Integer, sa.ForeignKey("area.id"), index=True, comment="its environment grid"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("risk_level IN ('low', 'medium', 'high')", name="pollution_source_risk"),
    )
    op.execute("CREATE INDEX pollution_source_geom_gist ON pollution_source USING gist (geom)")
    op.create_table(
        "patrol",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("area_id", sa.Integer, sa.ForeignKey("area.id"), nullable=False, index=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False)),
        sa.Column("sources", JSONB, nullable=False, server_default="[]", comment="ids of pollution sources visited"),
        sa.Column("notes", sa.Text),
    )
    op.execute("CREATE INDEX patrol_geom_gist ON patrol USING gist (geom)")
    op.bulk_insert(category, [
        {"key": k, "name_zh": zh, "name_en": en, "group_key": g, "layer_key": layer, "department": dept,
         "public": public, "time_limits": limits}
        for k, zh, en, g, layer, dept, public, limits in CATEGORIES
    ])


def downgrade() -> None:
    for table in ("patrol", "pollution_source", "incident_event", "incident", "category"):
        op.drop_table(table)
