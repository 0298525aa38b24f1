"""The household register (户情档案), residents and their special-group tags, cadre–household
contact links (联户), visits (走访) and requests without a map point (民情).

- ``building`` and ``household``: structured addresses, a point (the household's own or
  its building's), the grid derived from it (``household.grid_id``, current) and the
  history of that derivation (``household_grid``, one row per period, rewritten when
  grids are redrawn).
- ``resident`` and ``resident_tag``: sensitive personal data. An ID number is kept only as
  a keyed hash (duplicate detection) and its last 4 characters (display).
- ``special_group``, ``contact_kind``, ``request_type``: reference lists counties extend.
- ``contact_link``: a cadre (person) linked to a household with a kind and dates; a
  radiating household names its central household (the "1+1+n" structure).
- ``visit`` and ``visit_household``: the visit log; a visit may open a case.
- ``incident``: a point is no longer required. A request may be tied to a household, an
  address or an area instead (``route_kind`` 'area' when routed to an area's office), with
  a type (咨询, 意见建议, 投诉), a handling kind (即办, 承诺, 联办), co-handling departments
  and a leader who owns it (包案).
- ``role_grant``: the ``resident_data`` role (who may read residents, per area).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2.types import Geometry
from sqlalchemy.dialects.postgresql import ARRAY, DATEMULTIRANGE, JSONB, TSTZRANGE

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ROLES_BEFORE = ("admin", "planner", "inspector", "grid_worker", "department_handler")
ROLES_AFTER = (*ROLES_BEFORE, "resident_data")

SPECIAL_GROUPS = [  # key, 中文, English, visit every N days
    ("dibao", "低保", "Minimum living allowance", 90),
    ("wubao", "五保", "Five guarantees", 30),
    ("tekun", "特困", "Extreme hardship", 30),
    ("empty_nest", "空巢老人", "Empty-nest elderly", 30),
    ("living_alone", "独居老人", "Elderly living alone", 14),
    ("left_behind_child", "留守儿童", "Left-behind child", 30),
    ("disabled", "残疾人", "Person with disability", 90),
    ("community_correction", "社区矫正", "Community correction", 30),
    ("petitioner", "信访人员", "Petitioner", 30),
]
CONTACT_KINDS = [  # key, 中文, English, visit every N days, visits a year
    ("central", "中心户", "Central household", 31, 12),
    ("radiating", "辐射户", "Radiating household", 92, 6),
    ("hardship", "困难户", "Household in hardship", 31, 12),
    ("ordinary", "一般户", "Ordinary household", 183, 6),
]
REQUEST_TYPES = [  # key, 中文, English
    ("consultation", "咨询", "Consultation"),
    ("suggestion", "意见建议", "Opinion or suggestion"),
    ("complaint", "投诉", "Complaint"),
]


def _roles(roles) -> None:
    op.drop_constraint("role_grant_known_role", "role_grant", type_="check")
    op.create_check_constraint("role_grant_known_role", "role_grant", "role IN ('" + "', '".join(roles) + "')")


def upgrade() -> None:
    _roles(ROLES_AFTER)
    op.create_table(
        "special_group",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("name_zh", sa.String(64), nullable=False),
        sa.Column("name_en", sa.String(64), nullable=False),
        sa.Column("visit_every_days", sa.Integer, comment="a tagged resident's household is visited this often"),
        sa.Column("rank", sa.Integer, nullable=False, server_default=sa.text("100")),
        sa.CheckConstraint("visit_every_days IS NULL OR visit_every_days > 0", name="special_group_every_positive"),
    )
    op.create_table(
        "contact_kind",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("name_zh", sa.String(64), nullable=False),
        sa.Column("name_en", sa.String(64), nullable=False),
        sa.Column("visit_every_days", sa.Integer, nullable=False, comment="longest time between two visits"),
        sa.Column("visits_per_year", sa.Integer, nullable=False, comment="visits due over a calendar year"),
        sa.Column("rank", sa.Integer, nullable=False, server_default=sa.text("100")),
        sa.CheckConstraint("visit_every_days > 0 AND visits_per_year >= 0", name="contact_kind_quota_positive"),
    )
    op.create_table(
        "request_type",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("name_zh", sa.String(64), nullable=False),
        sa.Column("name_en", sa.String(64), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False, server_default=sa.text("100")),
    )
    rows = lambda table, cols, values: op.bulk_insert(  # noqa: E731
        sa.table(table, *[sa.column(c) for c in cols]),
        [dict(zip(cols, (*v, (i + 1) * 10), strict=True)) for i, v in enumerate(values)])
    rows("special_group", ("key", "name_zh", "name_en", "visit_every_days", "rank"), SPECIAL_GROUPS)
    rows("contact_kind", ("key", "name_zh", "name_en", "visit_every_days", "visits_per_year", "rank"), CONTACT_KINDS)
    rows("request_type", ("key", "name_zh", "name_en", "rank"), REQUEST_TYPES)

    def address() -> list[sa.Column]:
        return [
            sa.Column("town", sa.String(100)),
            sa.Column("village", sa.String(100), comment="village or community (社区)"),
            sa.Column("street", sa.String(200)),
            sa.Column("number", sa.String(32), comment="门牌号"),
        ]
    op.create_table(
        "building",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ref", sa.String(64), nullable=False, unique=True, comment="the county's building code"),
        sa.Column("name", sa.String(200)),
        *address(),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "household",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ref", sa.String(64), nullable=False, unique=True, comment="户编号"),
        sa.Column("building_id", sa.Integer, sa.ForeignKey("building.id")),
        *address(),
        sa.Column("building_no", sa.String(32), comment="楼/幢 as written in the address"),
        sa.Column("unit", sa.String(16), comment="单元"),
        sa.Column("room", sa.String(16), comment="室"),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("located_by", sa.String(16), nullable=False, comment="own (a point of its own) or building"),
        sa.Column("grid_id", sa.Integer, sa.ForeignKey("area.id"), comment="the grid holding the point, derived"),
        sa.Column("head_name", sa.String(100), nullable=False, comment="户主"),
        sa.Column("kind", sa.String(16), nullable=False, comment="registered 户籍, floating 流动 or separated 人户分离"),
        sa.Column("rental", sa.Boolean, nullable=False, server_default=sa.false(), comment="出租房"),
        sa.Column("phone", sa.String(32), comment="private"),
        sa.Column("notes", sa.Text, comment="internal, never public"),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("retired_at", sa.DateTime(timezone=True), comment="moved away or merged: kept for history"),
        sa.Column("visit_behind_from", sa.Date,
                  comment="no day before this one (from the last refresh on) can find it behind on visits; "
                          "NULL = none can (geogrid.people.visits.refresh_due)"),
        sa.Column("visit_obliged", DATEMULTIRANGE,
                  comment="the days with a visit obligation from the last refresh on (links, live tags)"),
        sa.CheckConstraint("kind IN ('registered', 'floating', 'separated')", name="household_kind"),
        sa.CheckConstraint("located_by IN ('own', 'building')", name="household_located_by"),
        sa.CheckConstraint("located_by = 'own' OR building_id IS NOT NULL", name="household_building_point"),
    )
    op.create_index("ix_household_grid_id", "household", ["grid_id"])
    op.create_index("ix_household_building_id", "household", ["building_id"])
    op.create_index("ix_household_grid_visit_behind_from", "household", ["grid_id", "visit_behind_from"])
    op.execute("CREATE INDEX household_geom_gist ON household USING gist (geom)")
    op.create_table(
        "household_grid",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("household_id", sa.Integer, sa.ForeignKey("household.id", ondelete="CASCADE"), nullable=False),
        sa.Column("grid_id", sa.Integer, sa.ForeignKey("area.id"), comment="NULL: in no grid over the period"),
        sa.Column("valid", TSTZRANGE, nullable=False, server_default=sa.text("tstzrange(now(), NULL)")),
        sa.Column("reason", sa.String(16), nullable=False, comment="register, redraw or moved"),
    )
    op.execute("CREATE UNIQUE INDEX household_grid_current ON household_grid (household_id) WHERE upper_inf(valid)")
    op.create_index("ix_household_grid_household_id", "household_grid", ["household_id"])
    op.create_table(
        "resident",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("household_id", sa.Integer, sa.ForeignKey("household.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("relation", sa.String(32), comment="relation to the head: 户主, 配偶, 子女, ..."),
        sa.Column("gender", sa.String(1), comment="M or F"),
        sa.Column("birth_date", sa.Date),
        sa.Column("id_hash", sa.String(64), comment="keyed hash (HMAC-SHA256) of the ID number"),
        sa.Column("id_last4", sa.String(4), comment="the ID number's last 4 characters, for display"),
        sa.Column("phone", sa.String(32)),
        sa.Column("notes", sa.Text),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("gender IS NULL OR gender IN ('M', 'F')", name="resident_gender"),
    )
    op.create_index("ix_resident_household_id", "resident", ["household_id"])
    op.execute("CREATE UNIQUE INDEX resident_id_hash_unique ON resident (id_hash) "
               "WHERE id_hash IS NOT NULL AND retired_at IS NULL")
    op.create_table(
        "resident_tag",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("resident_id", sa.Integer, sa.ForeignKey("resident.id", ondelete="CASCADE"), nullable=False),
        sa.Column("group_key", sa.String(32), sa.ForeignKey("special_group.key"), nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, comment="inclusive; NULL = ongoing"),
        sa.Column("note", sa.Text),
        sa.CheckConstraint("end_date IS NULL OR end_date >= start_date", name="resident_tag_dates"),
    )
    op.create_index("ix_resident_tag_resident_id", "resident_tag", ["resident_id"])
    op.create_table(
        "contact_link",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("person.id"), nullable=False, comment="the cadre"),
        sa.Column("household_id", sa.Integer, sa.ForeignKey("household.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), sa.ForeignKey("contact_kind.key"), nullable=False),
        sa.Column("central_id", sa.Integer, sa.ForeignKey("household.id"),
                  comment="a radiating household's central household"),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, comment="inclusive; NULL = ongoing"),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("end_date IS NULL OR end_date >= start_date", name="contact_link_dates"),
        sa.CheckConstraint("central_id IS NULL OR central_id <> household_id", name="contact_link_not_own_central"),
    )
    op.create_index("ix_contact_link_person_id", "contact_link", ["person_id"])
    op.create_index("ix_contact_link_household_id", "contact_link", ["household_id"])
    op.create_table(
        "visit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("visited_on", sa.Date, nullable=False),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("person.id"), nullable=False, comment="the cadre"),
        sa.Column("area_id", sa.Integer, sa.ForeignKey("area.id"), nullable=False,
                  comment="the grid (or area) of the households visited: the visit's place for scope"),
        sa.Column("findings", sa.Text, nullable=False, server_default=""),
        sa.Column("measures", sa.Text, nullable=False, server_default=""),
        sa.Column("deadline", sa.Date),
        sa.Column("photo_urls", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incident.id"), comment="the case it opened"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_by", sa.String(100), nullable=False),
    )
    op.create_index("ix_visit_person_day", "visit", ["person_id", "visited_on"])
    op.create_index("ix_visit_area_id", "visit", ["area_id"])
    op.create_table(
        "visit_household",
        sa.Column("visit_id", sa.Integer, sa.ForeignKey("visit.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("household_id", sa.Integer, sa.ForeignKey("household.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("visited_on", sa.Date, nullable=False, comment="the visit's day, for quota queries"),
    )
    op.create_index("ix_visit_household_household_day", "visit_household", ["household_id", "visited_on"])

    # Requests without a point.
    op.alter_column("incident", "geom", nullable=True)
    op.drop_constraint("incident_route_kind", "incident", type_="check")
    op.create_check_constraint("incident_route_kind", "incident", "route_kind IN ('grid', 'blind_spot', 'area')")
    op.add_column("incident", sa.Column("household_id", sa.Integer, sa.ForeignKey("household.id"),
                                        comment="the household the request is tied to"))
    op.add_column("incident", sa.Column("address", sa.Text, comment="the address given (private)"))
    op.add_column("incident", sa.Column("request_type", sa.String(32), sa.ForeignKey("request_type.key"),
                                        comment="咨询, 意见建议, 投诉 ..."))
    op.add_column("incident", sa.Column("handling", sa.String(16), nullable=False, server_default="standard",
                                        comment="standard, immediate 即办, promised 承诺 or joint 联办"))
    op.add_column("incident", sa.Column("promised_at", sa.DateTime(timezone=True),
                                        comment="承诺: the promised date, the handling deadline"))
    op.add_column("incident", sa.Column("co_departments", ARRAY(sa.String(100)), nullable=False,
                                        server_default=sa.text("'{}'"), comment="联办: co-handling departments"))
    op.add_column("incident", sa.Column("owner_person_id", sa.Integer, sa.ForeignKey("person.id"),
                                        comment="包案: the leader who owns the case"))
    op.create_check_constraint("incident_handling", "incident",
                               "handling IN ('standard', 'immediate', 'promised', 'joint')")
    op.create_check_constraint("incident_has_place", "incident",
                               "geom IS NOT NULL OR household_id IS NOT NULL OR route_kind = 'area'")
    op.create_index("ix_incident_household_id", "incident", ["household_id"])


def downgrade() -> None:
    op.execute("DELETE FROM incident WHERE geom IS NULL")
    op.drop_index("ix_incident_household_id", "incident")
    op.drop_constraint("incident_has_place", "incident", type_="check")
    op.drop_constraint("incident_handling", "incident", type_="check")
    for column in ("owner_person_id", "co_departments", "promised_at", "handling", "request_type", "address",
                   "household_id"):
        op.drop_column("incident", column)
    op.drop_constraint("incident_route_kind", "incident", type_="check")
    op.create_check_constraint("incident_route_kind", "incident", "route_kind IN ('grid', 'blind_spot')")
    op.alter_column("incident", "geom", nullable=False)
    for table in ("visit_household", "visit", "contact_link", "resident_tag", "resident", "household_grid",
                  "household", "building", "request_type", "contact_kind", "special_group"):
        op.drop_table(table)
    op.execute("DELETE FROM role_grant WHERE role = 'resident_data'")
    _roles(ROLES_BEFORE)
