"""The data model: every table of the database, as the SQLAlchemy metadata Alembic
compares the migrations with (``tests/domain/test_schema.py`` checks they agree).

One table, ``area``, holds both administrative units (layer ``admin``) and the grids of
every thematic net: a grid is an area whose layer is a net. Boundaries live in their own
table, one row per version with a validity period (``tstzrange``), so that "which grid
contained this point on day D" is a plain spatial query. An exclusion constraint keeps an
area's versions from overlapping in time.

Geometries are stored in EPSG:4326 (lon/lat). Areas in m² are computed by PostGIS on the
spheroid (``geography``), never typed in and never in square degrees.

The migrations (``geogrid/db/migrations``) create the tables; this module declares them
as they are, with the database's own constraint and index names. The domain packages
write SQL against these tables (one resource's SQL in one module); nothing here runs SQL.
"""

from __future__ import annotations

import datetime

from geoalchemy2.types import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import (
    ARRAY,
    DATEMULTIRANGE,
    DATERANGE,
    JSONB,
    TSTZRANGE,
    ExcludeConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SRID = 4326
ADMIN_LAYER = "admin"


class Base(DeclarativeBase):
    """The declarative base; ``Base.metadata`` is the schema Alembic compares."""


# --------------------------------------------------------------------------- reference and areas


class Level(Base):
    """A level of the hierarchy (county, town, village, grid, ...), configurable per place."""

    __tablename__ = "level"
    __table_args__ = (
        PrimaryKeyConstraint("key", name="level_pkey"),
        UniqueConstraint("rank", name="level_rank_key")
    )

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, nullable=False, doc="1 = top")
    code_length: Mapped[int] = mapped_column(Integer, nullable=False, doc="digits of a code at this level")
    name_zh: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str] = mapped_column(String(64), nullable=False)
    prefixes_children: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"),
                                                    doc="children's codes start with this level's codes")


class Layer(Base):
    """A thematic net (综治, 环境, 安全生产...): its own division of the same land."""

    __tablename__ = "layer"
    __table_args__ = (
        PrimaryKeyConstraint("key", name="layer_pkey"),
    )

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


class Area(Base):
    """An administrative unit or a grid; its boundary versions are in :class:`Boundary`."""

    __tablename__ = "area"
    __table_args__ = (
        CheckConstraint("code::text ~ '^[0-9]+$'::text", name="area_code_digits"),
        CheckConstraint("households IS NULL OR households >= 0", name="area_households_nonneg"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="area_not_own_parent"),
        CheckConstraint("population IS NULL OR population >= 0", name="area_population_nonneg"),
        ForeignKeyConstraint(["layer_key"], ["layer.key"], name="area_layer_key_fkey"),
        ForeignKeyConstraint(["level_key"], ["level.key"], name="area_level_key_fkey"),
        ForeignKeyConstraint(["parent_id"], ["area.id"], name="area_parent_id_fkey"),
        PrimaryKeyConstraint("id", name="area_pkey"),
        UniqueConstraint("code", name="area_code_key"),
        Index("area_code_prefix", "code", postgresql_ops={"code": "text_pattern_ops"}),
        Index("ix_area_layer_key", "layer_key"),
        Index("ix_area_level_key", "level_key"),
        Index("ix_area_parent_id", "parent_id"),
        # pg_trgm (migration 0012): substring search of names (geogrid.areas.places)
        Index("area_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"})
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), nullable=False, doc="stable, never reused")
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    level_key: Mapped[str] = mapped_column(String(32), nullable=False)
    layer_key: Mapped[str] = mapped_column(String(32), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    parent_id: Mapped[int | None] = mapped_column(Integer)
    households: Mapped[int | None] = mapped_column(Integer)
    population: Mapped[int | None] = mapped_column(Integer)
    land_use: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text, doc="internal, never public")
    retired_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))
    related_changed_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(True), doc="last change of its assignments or exemptions (set by triggers, migration 0006)")


class Boundary(Base):
    """One version of an area's boundary, valid over ``valid`` (MapIt's generations)."""

    __tablename__ = "boundary"
    __table_args__ = (
        CheckConstraint("st_isvalid(geom) AND NOT st_isempty(geom)", name="boundary_geom_valid"),
        ExcludeConstraint(("area_id", "="), ("valid", "&&"), name="boundary_no_overlapping_versions", using="gist"),
        ForeignKeyConstraint(["area_id"], ["area.id"], ondelete="CASCADE", name="boundary_area_id_fkey"),
        PrimaryKeyConstraint("id", name="boundary_pkey"),
        UniqueConstraint("area_id", "version", name="boundary_area_id_version_key"),
        Index("boundary_current_geom_gist", "geom", postgresql_using="gist", postgresql_where="upper_inf(valid)"),
        Index("boundary_geom_gist", "geom", postgresql_using="gist"),
        Index("boundary_one_current", "area_id", postgresql_where="upper_inf(valid)", unique=True)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area_id: Mapped[int] = mapped_column(Integer, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    geom: Mapped[object] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
    valid: Mapped[object] = mapped_column(TSTZRANGE, nullable=False, server_default=text("tstzrange(now(), NULL::timestamp with time zone)"))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    area_m2: Mapped[float | None] = mapped_column(Double(53), Computed("st_area((geom)::geography)", persisted=True), doc="spheroidal area")
    note: Mapped[str | None] = mapped_column(Text)


class Exemption(Base):
    """A legitimate void inside a parent (lake, military land, exclave): not a coverage gap."""

    __tablename__ = "exemption"
    __table_args__ = (
        CheckConstraint("st_isvalid(geom) AND NOT st_isempty(geom)", name="exemption_geom_valid"),
        ForeignKeyConstraint(["area_id"], ["area.id"], ondelete="CASCADE", name="exemption_area_id_fkey"),
        PrimaryKeyConstraint("id", name="exemption_pkey"),
        Index("exemption_geom_gist", "geom", postgresql_using="gist"),
        Index("ix_exemption_area_id", "area_id")
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area_id: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False, comment="lake, river, military, exclave, other")
    geom: Mapped[object] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    name: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)


# --------------------------------------------------------------------------- people


class Person(Base):
    """Someone responsible for grids. Each contact field has its own public flag (公示)."""

    __tablename__ = "person"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="person_pkey"),
        UniqueConstraint("ref", name="person_ref_key")
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    name_public: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    phone_public: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    photo_public: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    ref: Mapped[str | None] = mapped_column(String(64), doc="external reference")
    phone: Mapped[str | None] = mapped_column(String(32))
    photo_url: Mapped[str | None] = mapped_column(String(500))
    notes: Mapped[str | None] = mapped_column(Text, doc="internal, never public")


class Role(Base):
    """A post a person can hold in an area (网格长, 专职网格员, ...)."""

    __tablename__ = "role"
    __table_args__ = (
        PrimaryKeyConstraint("key", name="role_pkey"),
    )

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("100"))
    name_zh: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str] = mapped_column(String(64), nullable=False)
    responsible: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"), doc="counts as a responsible person for routing")


class Assignment(Base):
    """A person holding a role in an area over a date range (inclusive; open-ended when ``end_date`` is NULL)."""

    __tablename__ = "assignment"
    __table_args__ = (
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="assignment_dates_ordered"),
        ExcludeConstraint(("person_id", "="), ("area_id", "="), ("role_key", "="), ("period", "&&"),
                          name="assignment_no_overlap", using="gist"),
        ForeignKeyConstraint(["area_id"], ["area.id"], ondelete="CASCADE", name="assignment_area_id_fkey"),
        ForeignKeyConstraint(["person_id"], ["person.id"], ondelete="CASCADE", name="assignment_person_id_fkey"),
        ForeignKeyConstraint(["role_key"], ["role.key"], name="assignment_role_key_fkey"),
        PrimaryKeyConstraint("id", name="assignment_pkey"),
        Index("ix_assignment_area_id", "area_id"),
        Index("ix_assignment_person_id", "person_id")
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(Integer, nullable=False)
    area_id: Mapped[int] = mapped_column(Integer, nullable=False)
    role_key: Mapped[str] = mapped_column(String(32), nullable=False)
    start_date: Mapped[datetime.date] = mapped_column(Date, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    end_date: Mapped[datetime.date | None] = mapped_column(Date, doc="inclusive; NULL = ongoing")
    duties: Mapped[str | None] = mapped_column(Text)
    period: Mapped[object | None] = mapped_column(DATERANGE, Computed("daterange(start_date, end_date, '[]'::text)", persisted=True))


# --------------------------------------------------------------------------- access


class Account(Base):
    """A login: username, password hash, optionally the person it belongs to."""

    __tablename__ = "account"
    __table_args__ = (
        CheckConstraint("username::text ~ '^[A-Za-z0-9_.@-]{2,64}$'::text", name="account_username_chars"),
        ForeignKeyConstraint(["person_id"], ["person.id"], ondelete="SET NULL", name="account_person_id_fkey"),
        PrimaryKeyConstraint("id", name="account_pkey"),
        UniqueConstraint("username", name="account_username_key")
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    display_name: Mapped[str | None] = mapped_column(String(100))
    person_id: Mapped[int | None] = mapped_column(Integer)


class RoleGrant(Base):
    """An access role granted to an account on an area's subtree (NULL area: everywhere), or a department."""

    __tablename__ = "role_grant"
    __table_args__ = (
        CheckConstraint("role::text = ANY (ARRAY['admin'::character varying, 'planner'::character varying, 'inspector'::character varying, 'grid_worker'::character varying, 'department_handler'::character varying]::text[])", name="role_grant_known_role"),
        ForeignKeyConstraint(["account_id"], ["account.id"], ondelete="CASCADE", name="role_grant_account_id_fkey"),
        ForeignKeyConstraint(["area_id"], ["area.id"], ondelete="CASCADE", name="role_grant_area_id_fkey"),
        PrimaryKeyConstraint("id", name="role_grant_pkey"),
        Index("ix_role_grant_account_id", "account_id"),
        Index("role_grant_unique", "account_id", "role", text("coalesce(area_id, 0)"), text("coalesce(department, '')"),
              unique=True)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(Integer, nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    area_id: Mapped[int | None] = mapped_column(Integer, comment="scope: this area's subtree; NULL = the whole database")
    department: Mapped[str | None] = mapped_column(String(100), comment="for department handlers")


class ApiToken(Base):
    """A bearer token: only its SHA-256 is stored."""

    __tablename__ = "api_token"
    __table_args__ = (
        ForeignKeyConstraint(["account_id"], ["account.id"], ondelete="CASCADE", name="api_token_account_id_fkey"),
        PrimaryKeyConstraint("id", name="api_token_pkey"),
        UniqueConstraint("token_hash", name="api_token_token_hash_key"),
        Index("ix_api_token_account_id", "account_id")
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(Integer, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, comment="sha256 of the secret")
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    label: Mapped[str | None] = mapped_column(String(100))
    expires_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))


class Audit(Base):
    """One row per write: who, what, which row, the state before and after."""

    __tablename__ = "audit"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="audit_pkey"),
        Index("audit_at", "at"),
        Index("audit_resource_key", "resource", "key")
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    actor: Mapped[str] = mapped_column(String(100), nullable=False, comment="username, or cli:<user>")
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    resource: Mapped[str] = mapped_column(String(32), nullable=False)
    key: Mapped[str] = mapped_column(String(100), nullable=False)
    before: Mapped[object | None] = mapped_column(JSONB)
    after: Mapped[object | None] = mapped_column(JSONB)


class LoginFailure(Base):
    """Consecutive failed logins per account and per client address (throttling)."""

    __tablename__ = "login_failure"
    __table_args__ = (
        CheckConstraint("kind::text = ANY (ARRAY['account'::character varying, 'address'::character varying]::text[])", name="login_failure_kind"),
        PrimaryKeyConstraint("kind", "key", name="login_failure_pkey")
    )

    kind: Mapped[str] = mapped_column(String(16), primary_key=True, comment="account or address")
    key: Mapped[str] = mapped_column(String(200), primary_key=True, comment="username (lower case) or client address")
    failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"), comment="consecutive failures within the window")
    first_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    last_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    blocked_until: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))


class RateCounter(Base):
    """Hits per limit, client and time window (rate limits)."""

    __tablename__ = "rate_counter"
    __table_args__ = (
        PrimaryKeyConstraint("bucket", "window_start", name="rate_counter_pkey"),
        Index("rate_counter_window", "window_start")
    )

    bucket: Mapped[str] = mapped_column(String(300), primary_key=True, comment="limit name and client, e.g. public:1.2.3.4")
    window_start: Mapped[datetime.datetime] = mapped_column(DateTime(True), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))


# --------------------------------------------------------------------------- incidents


class Category(Base):
    """An incident category: the net it is routed on, its department and time limits."""

    __tablename__ = "category"
    __table_args__ = (
        ForeignKeyConstraint(["layer_key"], ["layer.key"], name="category_layer_key_fkey"),
        PrimaryKeyConstraint("key", name="category_pkey")
    )

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str] = mapped_column(String(64), nullable=False)
    group_key: Mapped[str] = mapped_column(String(32), nullable=False)
    layer_key: Mapped[str] = mapped_column(String(32), nullable=False, comment="the net incidents of this category are routed on")
    department: Mapped[str] = mapped_column(String(100), nullable=False, comment="owning department")
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"), comment="incidents of this category may be shown publicly (without reporter data)")
    time_limits: Mapped[object] = mapped_column(JSONB, nullable=False, comment="step -> [amount, unit]")
    auto_escalate: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    attributes: Mapped[object] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"),
                                               comment="extra questions: code, datatype, required, description, values")


class Incident(Base):
    """A reported incident (事件): where, what, routed to whom, its state and time limit."""

    __tablename__ = "incident"
    __table_args__ = (
        CheckConstraint("geom IS NOT NULL OR household_id IS NOT NULL OR route_kind::text = 'area'::text", name="incident_has_place"),
        CheckConstraint("handling::text = ANY (ARRAY['standard'::character varying, 'immediate'::character varying, 'promised'::character varying, 'joint'::character varying]::text[])", name="incident_handling"),
        CheckConstraint("idempotency_key IS NULL OR idempotency_scope IS NOT NULL", name="incident_idempotency_scoped"),
        CheckConstraint("route_kind::text = ANY (ARRAY['grid'::character varying, 'blind_spot'::character varying, 'area'::character varying]::text[])", name="incident_route_kind"),
        CheckConstraint("satisfaction IS NULL OR satisfaction >= 0 AND satisfaction <= 10", name="incident_satisfaction_range"),
        ForeignKeyConstraint(["authority_id"], ["area.id"], name="incident_authority_id_fkey"),
        ForeignKeyConstraint(["category_key"], ["category.key"], name="incident_category_key_fkey"),
        ForeignKeyConstraint(["grid_id"], ["area.id"], name="incident_grid_id_fkey"),
        ForeignKeyConstraint(["household_id"], ["household.id"], name="incident_household_id_fkey"),
        ForeignKeyConstraint(["owner_person_id"], ["person.id"], name="incident_owner_person_id_fkey"),
        ForeignKeyConstraint(["request_type"], ["request_type.key"], name="incident_request_type_fkey"),
        PrimaryKeyConstraint("id", name="incident_pkey"),
        UniqueConstraint("idempotency_scope", "idempotency_key", name="incident_idempotency_scope_key"),
        UniqueConstraint("receipt", name="incident_receipt_key"),
        Index("incident_geom_gist", "geom", postgresql_using="gist"),
        Index("incident_open_due", "due_at", postgresql_where="((state)::text <> ALL ((ARRAY['closed'::character varying, 'void'::character varying])::text[]))"),
        Index("ix_incident_authority_id", "authority_id"),
        Index("ix_incident_category_key", "category_key"),
        Index("ix_incident_grid_id", "grid_id"),
        Index("ix_incident_household_id", "household_id"),
        Index("ix_incident_state", "state")
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    receipt: Mapped[str] = mapped_column(String(40), nullable=False, comment="unguessable; the reporter's handle")
    category_key: Mapped[str] = mapped_column(String(40), nullable=False)
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    occurred_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False)
    reported_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    media_urls: Mapped[object] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    geom: Mapped[object | None] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False),
                                                doc="NULL for a request tied to a household, an address or an area")
    original: Mapped[object] = mapped_column(JSONB, nullable=False, comment="coordinates and system as received")
    route_kind: Mapped[str] = mapped_column(String(16), nullable=False, comment="grid or blind_spot")
    authority_id: Mapped[int] = mapped_column(Integer, nullable=False, comment="area responsible now: the grid, or the territorial authority, or above after escalation")
    responsible: Mapped[object] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"), comment="persons holding posts in the grid on the day it happened, when routed")
    department: Mapped[str] = mapped_column(String(100), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'reported'::character varying"))
    escalation_level: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    reporter: Mapped[object | None] = mapped_column(JSONB, comment="name/phone/email: private, never published")
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    grid_id: Mapped[int | None] = mapped_column(Integer, comment="grid containing the point on the category's layer")
    nearest_grid: Mapped[object | None] = mapped_column(JSONB, comment="for blind spots: code and distance of the nearest grid")
    due_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True), comment="deadline of the current step")
    closed_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))
    attributes: Mapped[object] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"),
                                               comment="answers to the category's questions, by attribute code")
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    idempotency_scope: Mapped[str | None] = mapped_column(String(200), comment="channel:account the idempotency key belongs to")
    handling: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'standard'::character varying"), comment="standard, immediate 即办, promised 承诺 or joint 联办")
    co_departments: Mapped[list[str]] = mapped_column(ARRAY(String(length=100)), nullable=False, server_default=text("'{}'::character varying[]"), comment="联办: co-handling departments")
    household_id: Mapped[int | None] = mapped_column(Integer, comment="the household the request is tied to")
    address: Mapped[str | None] = mapped_column(Text, comment="the address given (private)")
    request_type: Mapped[str | None] = mapped_column(String(32), comment="咨询, 意见建议, 投诉 ...")
    promised_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True), comment="承诺: the promised date, the handling deadline")
    owner_person_id: Mapped[int | None] = mapped_column(Integer, comment="包案: the leader who owns the case")


class IncidentEvent(Base):
    """One step in a case's history (report, transitions, escalation, moves)."""

    __tablename__ = "incident_event"
    __table_args__ = (
        ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="CASCADE", name="incident_event_incident_id_fkey"),
        PrimaryKeyConstraint("id", name="incident_event_pkey"),
        Index("ix_incident_event_incident_id", "incident_id")
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[object | None] = mapped_column(JSONB)


class IncidentStep(Base):
    """A timed step of a case (accept, dispatch, handle, verify): the area that owed it, its
    deadline, when and how it ended, by whom; never cleared (assessment rebuilds from it)."""

    __tablename__ = "incident_step"
    __table_args__ = (
        CheckConstraint("(ended_at IS NULL) = (outcome IS NULL)", name="incident_step_ended"),
        CheckConstraint("outcome IS NULL OR outcome::text = ANY (ARRAY['done'::character varying, 'escalated'::character varying, 'parked'::character varying, 'voided'::character varying, 'reopened'::character varying]::text[])", name="incident_step_outcome"),
        CheckConstraint("step::text = ANY (ARRAY['accept'::character varying, 'dispatch'::character varying, 'handle'::character varying, 'verify'::character varying]::text[])", name="incident_step_step"),
        ForeignKeyConstraint(["authority_id"], ["area.id"], name="incident_step_authority_id_fkey"),
        ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="CASCADE", name="incident_step_incident_id_fkey"),
        PrimaryKeyConstraint("id", name="incident_step_pkey"),
        Index("incident_step_one_open", "incident_id", unique=True, postgresql_where="(ended_at IS NULL)"),
        Index("ix_incident_step_incident_id", "incident_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(Integer, nullable=False)
    step: Mapped[str] = mapped_column(String(16), nullable=False, comment="accept, dispatch, handle or verify")
    authority_id: Mapped[int] = mapped_column(Integer, nullable=False, comment="the area that had to finish the step")
    started_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False)
    due_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True), comment="the time limit in force; never cleared")
    ended_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))
    ended_by: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str | None] = mapped_column(String(16), comment="done, escalated, parked, voided or reopened")
    working_hours: Mapped[float | None] = mapped_column(Double(53), comment="working time the step took")
    late: Mapped[bool | None] = mapped_column(Boolean, Computed("(ended_at > due_at)", persisted=True),
                                              comment="ended after its time limit (null while open)")


class CaseFact(Base):
    """One row per case of what the assessment indicators count, written with its events."""

    __tablename__ = "case_fact"
    __table_args__ = (
        ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="CASCADE", name="case_fact_incident_id_fkey"),
        ForeignKeyConstraint(["place_id"], ["area.id"], name="case_fact_place_id_fkey"),
        PrimaryKeyConstraint("incident_id", name="case_fact_pkey"),
        Index("case_fact_place_day", "place_id", "reported_day"),
        Index("case_fact_reported", "reported_day"),
    )

    incident_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reported_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False)
    reported_day: Mapped[datetime.date] = mapped_column(Date, nullable=False,
                                                        comment="local date it was reported (GEOGRID_TIMEZONE)")
    place_id: Mapped[int] = mapped_column(Integer, nullable=False, comment="where it happened: its grid, or the "
                                          "territorial authority of a blind spot")
    category_key: Mapped[str] = mapped_column(String(40), nullable=False)
    department: Mapped[str] = mapped_column(String(100), nullable=False)
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    worker_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer()), nullable=False, server_default=text("'{}'::integer[]"),
                                                  comment="grid workers in post for the place when it was routed")
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    accepted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    voided: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    parked: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"),
                                         comment="parked (挂账) at least once")
    escalations: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    late_steps: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    closed_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))
    due_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True), comment="deadline of the open step")
    handling_hours: Mapped[float | None] = mapped_column(Double(53), comment="working hours of its steps, once closed")
    satisfaction: Mapped[int | None] = mapped_column(Integer)


# --------------------------------------------------------------------------- assessment: score sheets


class AssessmentScheme(Base):
    """A score sheet (考核方案) of a county or town: its target kind, period kind and items."""

    __tablename__ = "assessment_scheme"
    __table_args__ = (
        CheckConstraint("period_kind::text = ANY (ARRAY['month'::character varying, 'quarter'::character varying, 'year'::character varying]::text[])", name="assessment_scheme_period_kind"),
        CheckConstraint("target_kind::text = ANY (ARRAY['worker'::character varying, 'grid'::character varying, 'village'::character varying, 'town'::character varying, 'department'::character varying]::text[])", name="assessment_scheme_target_kind"),
        CheckConstraint("total = ANY (ARRAY[100, 1000])", name="assessment_scheme_total"),
        ForeignKeyConstraint(["area_id"], ["area.id"], name="assessment_scheme_area_id_fkey"),
        PrimaryKeyConstraint("id", name="assessment_scheme_pkey"),
        UniqueConstraint("area_id", "name", name="assessment_scheme_area_id_name_key"),
        Index("ix_assessment_scheme_area_id", "area_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area_id: Mapped[int] = mapped_column(Integer, nullable=False, comment="the county or town that owns the scheme")
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    total: Mapped[int] = mapped_column(Integer, nullable=False, comment="100 or 1000 points")
    target_kind: Mapped[str] = mapped_column(String(16), nullable=False, comment="worker, grid, village, town or department")
    period_kind: Mapped[str] = mapped_column(String(16), nullable=False, comment="month, quarter or year")
    items: Mapped[object] = mapped_column(JSONB, nullable=False, comment="code, name, points, kind, rule (or manual)")
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)


class AssessmentPeriod(Base):
    """One period of a scheme: the scheme as computed, its state and publication."""

    __tablename__ = "assessment_period"
    __table_args__ = (
        CheckConstraint("end_date > start_date", name="assessment_period_dates_ordered"),
        CheckConstraint("NOT published OR state::text = 'frozen'::text", name="assessment_period_published_frozen"),
        CheckConstraint("state::text = ANY (ARRAY['computed'::character varying, 'reviewed'::character varying, 'frozen'::character varying]::text[])", name="assessment_period_state"),
        ForeignKeyConstraint(["scheme_id"], ["assessment_scheme.id"], ondelete="CASCADE",
                             name="assessment_period_scheme_id_fkey"),
        PrimaryKeyConstraint("id", name="assessment_period_pkey"),
        UniqueConstraint("scheme_id", "start_date", name="assessment_period_scheme_id_start_date_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scheme_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(16), nullable=False, comment="2026-11, 2026-Q4 or 2026")
    start_date: Mapped[datetime.date] = mapped_column(Date, nullable=False)
    end_date: Mapped[datetime.date] = mapped_column(Date, nullable=False, comment="exclusive")
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'computed'::character varying"))
    published: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"),
                                            comment="its red/black list is on the public board")
    scheme_version: Mapped[int] = mapped_column(Integer, nullable=False)
    scheme: Mapped[object] = mapped_column(JSONB, nullable=False,
                                           comment="the scheme (name, total, kinds, items) it was computed with")
    red_n: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("3"))
    black_n: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("3"))
    measured_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False,
                                                           comment="the moment 'overdue now' was measured at")
    computed_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False)
    computed_by: Mapped[str] = mapped_column(String(100), nullable=False)
    reviewed_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))
    reviewed_by: Mapped[str | None] = mapped_column(String(100))
    frozen_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))
    frozen_by: Mapped[str | None] = mapped_column(String(100))
    published_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))
    published_by: Mapped[str | None] = mapped_column(String(100))


class AssessmentScore(Base):
    """The stored result of one target in one period: values read, items with evidence, score, rank."""

    __tablename__ = "assessment_score"
    __table_args__ = (
        ForeignKeyConstraint(["period_id"], ["assessment_period.id"], ondelete="CASCADE",
                             name="assessment_score_period_id_fkey"),
        PrimaryKeyConstraint("period_id", "target", name="assessment_score_pkey"),
    )

    period_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(String(100), primary_key=True, comment="area code, person id or department name")
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    area_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer()), nullable=False, server_default=text("'{}'::integer[]"),
                                                comment="the areas the target answers for (scope of readers and assessors)")
    indicator_values: Mapped[object] = mapped_column(JSONB, nullable=False, comment="the indicator values the rules read")
    items: Mapped[object] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"),
                                          comment="each item's points with its evidence")
    deductions: Mapped[float] = mapped_column(Double(53), nullable=False, server_default=text("0"))
    bonuses: Mapped[float] = mapped_column(Double(53), nullable=False, server_default=text("0"))
    score: Mapped[float] = mapped_column(Double(53), nullable=False)
    rank: Mapped[int | None] = mapped_column(Integer)


class AssessmentManual(Base):
    """Points an assessor entered for a manual item of one target, with reason and evidence."""

    __tablename__ = "assessment_manual"
    __table_args__ = (
        CheckConstraint("points >= 0::double precision", name="assessment_manual_points_nonneg"),
        ForeignKeyConstraint(["period_id"], ["assessment_period.id"], ondelete="CASCADE",
                             name="assessment_manual_period_id_fkey"),
        PrimaryKeyConstraint("id", name="assessment_manual_pkey"),
        UniqueConstraint("period_id", "target", "item_code", name="assessment_manual_period_id_target_item_code_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period_id: Mapped[int] = mapped_column(Integer, nullable=False)
    target: Mapped[str] = mapped_column(String(100), nullable=False)
    item_code: Mapped[str] = mapped_column(String(32), nullable=False)
    points: Mapped[float] = mapped_column(Double(53), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    evidence: Mapped[str] = mapped_column(Text, nullable=False, comment="a URL or a description of the evidence")
    entered_by: Mapped[str] = mapped_column(String(100), nullable=False)
    entered_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))


class CaseMonth(Base):
    """The facts of the cases reported in one place and local month, summed (what the
    indicators of places and months read instead of every case)."""

    __tablename__ = "case_month"
    __table_args__ = (
        ForeignKeyConstraint(["place_id"], ["area.id"], name="case_month_place_id_fkey"),
        PrimaryKeyConstraint("place_id", "month", name="case_month_pkey"),
    )

    place_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[datetime.date] = mapped_column(Date, primary_key=True,
                                                 comment="first day of the local month the cases were reported")
    received: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    accepted: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    closed: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    closed_on_time: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    voided: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    parked: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    late_cases: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    escalations: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    callbacks: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    first_reports: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    satisfaction: Mapped[list[int]] = mapped_column(ARRAY(Integer()), nullable=False,
                                                    server_default=text("'{}'::integer[]"),
                                                    comment="cases rated 0, 1, ... 10")
    hours: Mapped[list[float]] = mapped_column(ARRAY(Double(53)), nullable=False,
                                               server_default=text("'{}'::double precision[]"),
                                               comment="handling hours of the closed cases, sorted")
    hours_sum: Mapped[float] = mapped_column(Double(53), nullable=False, server_default=text("0"))
    open_due: Mapped[list[datetime.datetime]] = mapped_column(
        ARRAY(DateTime(True)), nullable=False, server_default=text("'{}'::timestamp with time zone[]"),
        comment="deadlines of the open cases' steps")
    open_due_in_time: Mapped[list[datetime.datetime]] = mapped_column(
        ARRAY(DateTime(True)), nullable=False, server_default=text("'{}'::timestamp with time zone[]"),
        comment="the same, of the open cases no step of which was late")


# --------------------------------------------------------------------------- environment


class PollutionSource(Base):
    """A pollution source under supervision (环境监管档案), placed in its environment grid."""

    __tablename__ = "pollution_source"
    __table_args__ = (
        CheckConstraint("risk_level::text = ANY (ARRAY['low'::character varying, 'medium'::character varying, 'high'::character varying]::text[])", name="pollution_source_risk"),
        ForeignKeyConstraint(["grid_id"], ["area.id"], name="pollution_source_grid_id_fkey"),
        PrimaryKeyConstraint("id", name="pollution_source_pkey"),
        Index("ix_pollution_source_grid_id", "grid_id"),
        Index("pollution_source_geom_gist", "geom", postgresql_using="gist")
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    pollutants: Mapped[object] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    key_supervision: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    risk_level: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'low'::character varying"))
    geom: Mapped[object] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    permit_no: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(300))
    notes: Mapped[str | None] = mapped_column(Text, comment="internal")
    grid_id: Mapped[int | None] = mapped_column(Integer, comment="its environment grid")
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"),
                                         comment="listed publicly (name, kind, pollutants, permit, address)")


class Patrol(Base):
    """A patrol of an environment grid and the sources it visited."""

    __tablename__ = "patrol"
    __table_args__ = (
        ForeignKeyConstraint(["area_id"], ["area.id"], name="patrol_area_id_fkey"),
        PrimaryKeyConstraint("id", name="patrol_pkey"),
        Index("ix_patrol_area_id", "area_id"),
        Index("patrol_geom_gist", "geom", postgresql_using="gist")
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area_id: Mapped[int] = mapped_column(Integer, nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False)
    sources: Mapped[object] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"), comment="ids of pollution sources visited")
    geom: Mapped[object | None] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    notes: Mapped[str | None] = mapped_column(Text)


# --------------------------------------------------------------------------- coverage


class CoverageRun(Base):
    """A stored coverage check: its options, summary and problems (GeoJSON)."""

    __tablename__ = "coverage_run"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="coverage_run_pkey"),
        Index("coverage_run_area_layer", "area_code", "layer", "at")
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    area_code: Mapped[str] = mapped_column(String(32), nullable=False)
    layer: Mapped[str] = mapped_column(String(32), nullable=False)
    subtree: Mapped[bool] = mapped_column(Boolean, nullable=False)
    options: Mapped[object] = mapped_column(JSONB, nullable=False)
    summary: Mapped[object] = mapped_column(JSONB, nullable=False)
    problems: Mapped[object] = mapped_column(JSONB, nullable=False, comment="GeoJSON FeatureCollection")
    seconds: Mapped[float | None] = mapped_column(Double(53))


class RepairProposal(Base):
    """A proposed coverage repair, applied only once confirmed and only if no grid changed meanwhile."""

    __tablename__ = "repair_proposal"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="repair_proposal_pkey"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    area_code: Mapped[str] = mapped_column(String(32), nullable=False)
    layer: Mapped[str] = mapped_column(String(32), nullable=False)
    params: Mapped[object] = mapped_column(JSONB, nullable=False)
    base_versions: Mapped[object] = mapped_column(JSONB, nullable=False, comment="code -> area version the proposal was made from")
    proposal: Mapped[object] = mapped_column(JSONB, nullable=False, comment="GeoJSON of the proposed boundaries and changes")
    applied_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))
    applied_by: Mapped[str | None] = mapped_column(String(100))


# --------------------------------------------------------------------------- households, contact and visits


class SpecialGroup(Base):
    """A special group needing care (低保, 五保, 独居老人...) and how often its households are visited."""

    __tablename__ = 'special_group'
    __table_args__ = (
        CheckConstraint('visit_every_days IS NULL OR visit_every_days > 0', name='special_group_every_positive'),
        PrimaryKeyConstraint('key', name='special_group_pkey')
    )

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str] = mapped_column(String(64), nullable=False)
    rank: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text('100'))
    visit_every_days: Mapped[int | None] = mapped_column(Integer, comment="a tagged resident's household is visited this often")


class ContactKind(Base):
    """A kind of cadre-household contact (中心户, 辐射户, 困难户...) with its visit quota."""

    __tablename__ = 'contact_kind'
    __table_args__ = (
        CheckConstraint('visit_every_days > 0 AND visits_per_year >= 0', name='contact_kind_quota_positive'),
        PrimaryKeyConstraint('key', name='contact_kind_pkey')
    )

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str] = mapped_column(String(64), nullable=False)
    visit_every_days: Mapped[int] = mapped_column(Integer, nullable=False, comment='longest time between two visits')
    visits_per_year: Mapped[int] = mapped_column(Integer, nullable=False, comment='visits due over a calendar year')
    rank: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text('100'))


class RequestType(Base):
    """A type of request (咨询, 意见建议, 投诉...)."""

    __tablename__ = 'request_type'
    __table_args__ = (
        PrimaryKeyConstraint('key', name='request_type_pkey'),
    )

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str] = mapped_column(String(64), nullable=False)
    rank: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text('100'))


class Building(Base):
    """A building of the register: its structured address and its point."""

    __tablename__ = 'building'
    __table_args__ = (
        PrimaryKeyConstraint('id', name='building_pkey'),
        UniqueConstraint('ref', name='building_ref_key'),
        Index('building_geom_gist', 'geom', postgresql_using='gist'),
        # Migration 0012: the expression geogrid.areas.places.BUILDING_ADDRESS searches (pg_trgm)
        Index('building_address_trgm',
              text("(coalesce(village, '') || coalesce(street, '') || coalesce(number, '') || ' ' || coalesce(name, ''))"
                   " gin_trgm_ops"), postgresql_using='gin')
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(64), nullable=False, comment="the county's building code")
    geom: Mapped[object] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text('now()'))
    name: Mapped[str | None] = mapped_column(String(200))
    town: Mapped[str | None] = mapped_column(String(100))
    village: Mapped[str | None] = mapped_column(String(100), comment='village or community (社区)')
    street: Mapped[str | None] = mapped_column(String(200))
    number: Mapped[str | None] = mapped_column(String(32), comment='门牌号')


class Household(Base):
    """A household of the register (户情档案): address, point, derived grid, head, kind."""

    __tablename__ = 'household'
    __table_args__ = (
        CheckConstraint("kind::text = ANY (ARRAY['registered'::character varying, 'floating'::character varying, 'separated'::character varying]::text[])", name='household_kind'),
        CheckConstraint("located_by::text = 'own'::text OR building_id IS NOT NULL", name='household_building_point'),
        CheckConstraint("located_by::text = ANY (ARRAY['own'::character varying, 'building'::character varying]::text[])", name='household_located_by'),
        ForeignKeyConstraint(['building_id'], ['building.id'], name='household_building_id_fkey'),
        ForeignKeyConstraint(['grid_id'], ['area.id'], name='household_grid_id_fkey'),
        PrimaryKeyConstraint('id', name='household_pkey'),
        UniqueConstraint('ref', name='household_ref_key'),
        Index('household_geom_gist', 'geom', postgresql_using='gist'),
        Index('ix_household_building_id', 'building_id'),
        Index('ix_household_grid_id', 'grid_id'),
        Index('ix_household_grid_visit_behind_from', 'grid_id', 'visit_behind_from'),
        # Migration 0012: geogrid.areas.places.HOUSEHOLD_ADDRESS (door-plate fields only), pg_trgm
        Index('household_address_trgm',
              text("(coalesce(village, '') || coalesce(street, '') || coalesce(number, '')) gin_trgm_ops"),
              postgresql_using='gin', postgresql_where='((building_id IS NULL) AND (retired_at IS NULL))')
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(64), nullable=False, comment='户编号')
    geom: Mapped[object] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
    located_by: Mapped[str] = mapped_column(String(16), nullable=False, comment='own (a point of its own) or building')
    head_name: Mapped[str] = mapped_column(String(100), nullable=False, comment='户主')
    kind: Mapped[str] = mapped_column(String(16), nullable=False, comment='registered 户籍, floating 流动 or separated 人户分离')
    rental: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text('false'), comment='出租房')
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text('1'))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text('now()'))
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text('now()'))
    building_id: Mapped[int | None] = mapped_column(Integer)
    town: Mapped[str | None] = mapped_column(String(100))
    village: Mapped[str | None] = mapped_column(String(100), comment='village or community (社区)')
    street: Mapped[str | None] = mapped_column(String(200))
    number: Mapped[str | None] = mapped_column(String(32), comment='门牌号')
    building_no: Mapped[str | None] = mapped_column(String(32), comment='楼/幢 as written in the address')
    unit: Mapped[str | None] = mapped_column(String(16), comment='单元')
    room: Mapped[str | None] = mapped_column(String(16), comment='室')
    grid_id: Mapped[int | None] = mapped_column(Integer, comment='the grid holding the point, derived')
    phone: Mapped[str | None] = mapped_column(String(32), comment='private')
    notes: Mapped[str | None] = mapped_column(Text, comment='internal, never public')
    retired_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True), comment='moved away or merged: kept for history')
    visit_behind_from: Mapped[datetime.date | None] = mapped_column(Date, comment='no day before this one (from the last refresh on) can find it behind on visits; NULL = none can (geogrid.people.visits.refresh_due)')
    visit_obliged: Mapped[object | None] = mapped_column(DATEMULTIRANGE, comment='the days with a visit obligation from the last refresh on (links, live tags)')


class HouseholdGrid(Base):
    """The grid a household lay in over a period (derivation history)."""

    __tablename__ = 'household_grid'
    __table_args__ = (
        ForeignKeyConstraint(['grid_id'], ['area.id'], name='household_grid_grid_id_fkey'),
        ForeignKeyConstraint(['household_id'], ['household.id'], ondelete='CASCADE', name='household_grid_household_id_fkey'),
        PrimaryKeyConstraint('id', name='household_grid_pkey'),
        Index('household_grid_current', 'household_id', postgresql_where='upper_inf(valid)', unique=True),
        Index('ix_household_grid_household_id', 'household_id')
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    household_id: Mapped[int] = mapped_column(Integer, nullable=False)
    valid: Mapped[object] = mapped_column(TSTZRANGE, nullable=False, server_default=text('tstzrange(now(), NULL::timestamp with time zone)'))
    reason: Mapped[str] = mapped_column(String(16), nullable=False, comment='register, redraw or moved')
    grid_id: Mapped[int | None] = mapped_column(Integer, comment='NULL: in no grid over the period')


class Resident(Base):
    """A member of a household. Sensitive: an ID number is kept only as a keyed hash and its last 4 characters."""

    __tablename__ = 'resident'
    __table_args__ = (
        CheckConstraint("gender IS NULL OR (gender::text = ANY (ARRAY['M'::character varying, 'F'::character varying]::text[]))", name='resident_gender'),
        ForeignKeyConstraint(['household_id'], ['household.id'], ondelete='CASCADE', name='resident_household_id_fkey'),
        PrimaryKeyConstraint('id', name='resident_pkey'),
        Index('ix_resident_household_id', 'household_id'),
        Index('resident_id_hash_unique', 'id_hash', postgresql_where='((id_hash IS NOT NULL) AND (retired_at IS NULL))', unique=True)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    household_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text('1'))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text('now()'))
    relation: Mapped[str | None] = mapped_column(String(32), comment='relation to the head: 户主, 配偶, 子女, ...')
    gender: Mapped[str | None] = mapped_column(String(1), comment='M or F')
    birth_date: Mapped[datetime.date | None] = mapped_column(Date)
    id_hash: Mapped[str | None] = mapped_column(String(64), comment='keyed hash (HMAC-SHA256) of the ID number')
    id_last4: Mapped[str | None] = mapped_column(String(4), comment="the ID number's last 4 characters, for display")
    phone: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    retired_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(True))


class ResidentTag(Base):
    """A special-group tag on a resident, with dates."""

    __tablename__ = 'resident_tag'
    __table_args__ = (
        CheckConstraint('end_date IS NULL OR end_date >= start_date', name='resident_tag_dates'),
        ForeignKeyConstraint(['group_key'], ['special_group.key'], name='resident_tag_group_key_fkey'),
        ForeignKeyConstraint(['resident_id'], ['resident.id'], ondelete='CASCADE', name='resident_tag_resident_id_fkey'),
        PrimaryKeyConstraint('id', name='resident_tag_pkey'),
        Index('ix_resident_tag_resident_id', 'resident_id')
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(Integer, nullable=False)
    group_key: Mapped[str] = mapped_column(String(32), nullable=False)
    start_date: Mapped[datetime.date] = mapped_column(Date, nullable=False)
    end_date: Mapped[datetime.date | None] = mapped_column(Date, comment='inclusive; NULL = ongoing')
    note: Mapped[str | None] = mapped_column(Text)


class ContactLink(Base):
    """A cadre linked to a household (联户), with a kind and dates; a radiating household names its central one."""

    __tablename__ = 'contact_link'
    __table_args__ = (
        CheckConstraint('central_id IS NULL OR central_id <> household_id', name='contact_link_not_own_central'),
        CheckConstraint('end_date IS NULL OR end_date >= start_date', name='contact_link_dates'),
        ForeignKeyConstraint(['central_id'], ['household.id'], name='contact_link_central_id_fkey'),
        ForeignKeyConstraint(['household_id'], ['household.id'], ondelete='CASCADE', name='contact_link_household_id_fkey'),
        ForeignKeyConstraint(['kind'], ['contact_kind.key'], name='contact_link_kind_fkey'),
        ForeignKeyConstraint(['person_id'], ['person.id'], name='contact_link_person_id_fkey'),
        PrimaryKeyConstraint('id', name='contact_link_pkey'),
        Index('ix_contact_link_household_id', 'household_id'),
        Index('ix_contact_link_person_id', 'person_id')
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(Integer, nullable=False, comment='the cadre')
    household_id: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    start_date: Mapped[datetime.date] = mapped_column(Date, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text('1'))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text('now()'))
    central_id: Mapped[int | None] = mapped_column(Integer, comment="a radiating household's central household")
    end_date: Mapped[datetime.date | None] = mapped_column(Date, comment='inclusive; NULL = ongoing')


class Visit(Base):
    """A cadre's visit (走访, 民情日记) to one or more households; it may open a case."""

    __tablename__ = 'visit'
    __table_args__ = (
        ForeignKeyConstraint(['area_id'], ['area.id'], name='visit_area_id_fkey'),
        ForeignKeyConstraint(['incident_id'], ['incident.id'], name='visit_incident_id_fkey'),
        ForeignKeyConstraint(['person_id'], ['person.id'], name='visit_person_id_fkey'),
        PrimaryKeyConstraint('id', name='visit_pkey'),
        Index('ix_visit_area_id', 'area_id'),
        Index('ix_visit_person_day', 'person_id', 'visited_on')
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    visited_on: Mapped[datetime.date] = mapped_column(Date, nullable=False)
    person_id: Mapped[int] = mapped_column(Integer, nullable=False, comment='the cadre')
    area_id: Mapped[int] = mapped_column(Integer, nullable=False, comment="the grid (or area) of the households visited: the visit's place for scope")
    findings: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''::text"))
    measures: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''::text"))
    photo_urls: Mapped[object] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text('now()'))
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    deadline: Mapped[datetime.date | None] = mapped_column(Date)
    incident_id: Mapped[int | None] = mapped_column(Integer, comment='the case it opened')


class VisitHousehold(Base):
    """A household of a visit (with the visit's day, for quota queries)."""

    __tablename__ = 'visit_household'
    __table_args__ = (
        ForeignKeyConstraint(['household_id'], ['household.id'], ondelete='CASCADE', name='visit_household_household_id_fkey'),
        ForeignKeyConstraint(['visit_id'], ['visit.id'], ondelete='CASCADE', name='visit_household_visit_id_fkey'),
        PrimaryKeyConstraint('visit_id', 'household_id', name='visit_household_pkey'),
        Index('ix_visit_household_household_day', 'household_id', 'visited_on')
    )

    visit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    visited_on: Mapped[datetime.date] = mapped_column(Date, nullable=False, comment="the visit's day, for quota queries")


# --------------------------------------------------------------------------- publication (migration 0013)

# Zooms whose tiles read a coverage-simplified copy of the published boundaries
# (``published_area.geom_zN``); deeper zooms read the boundary itself.
TILE_BANDS = (8, 10, 12, 14)


class Publication(Base):
    """A planner's publication (公示发布) of a layer within an area's subtree, or of one grid."""

    __tablename__ = "publication"
    __table_args__ = (
        ForeignKeyConstraint(["layer_key"], ["layer.key"], name="publication_layer_key_fkey"),
        ForeignKeyConstraint(["root_id"], ["area.id"], name="publication_root_id_fkey"),
        PrimaryKeyConstraint("id", name="publication_pkey"),
        Index("ix_publication_layer_key", "layer_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    layer_key: Mapped[str] = mapped_column(String(32), nullable=False)
    published_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))
    published_by: Mapped[str] = mapped_column(String(200), nullable=False)
    added: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    changed: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    withdrawn: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    unchanged: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    root_id: Mapped[int | None] = mapped_column(Integer, comment="the subtree published; NULL: the whole layer")
    note: Mapped[str | None] = mapped_column(Text)


class PublishedArea(Base):
    """The published copy of an area, valid from its publication to the next one that
    replaced or withdrew it: public attributes only. The views ``public_area``,
    ``public_post``, ``public_case`` and ``public_source`` (migration 0013) are the one
    definition of what is public."""

    __tablename__ = "published_area"
    __table_args__ = (
        ExcludeConstraint(("area_id", "="), ("valid", "&&"), name="published_area_no_overlapping_generations",
                          using="gist"),
        ForeignKeyConstraint(["area_id"], ["area.id"], ondelete="CASCADE", name="published_area_area_id_fkey"),
        ForeignKeyConstraint(["boundary_id"], ["boundary.id"], ondelete="SET NULL",
                             name="published_area_boundary_id_fkey"),
        ForeignKeyConstraint(["publication_id"], ["publication.id"], name="published_area_publication_id_fkey"),
        PrimaryKeyConstraint("id", name="published_area_pkey"),
        Index("published_area_one_current", "area_id", unique=True, postgresql_where="upper_inf(valid)"),
        Index("published_area_current_geom_gist", "geom", postgresql_using="gist", postgresql_where="upper_inf(valid)"),
        Index("published_area_geom_gist", "geom", postgresql_using="gist"),
        Index("published_area_current_code", "layer_key", "code", postgresql_where="upper_inf(valid)"),
        Index("ix_published_area_publication_id", "publication_id"),
        Index("published_area_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"},
              postgresql_where="upper_inf(valid)"),
        Index("published_area_code_prefix", "code", postgresql_ops={"code": "text_pattern_ops"},
              postgresql_where="upper_inf(valid)"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    publication_id: Mapped[int] = mapped_column(Integer, nullable=False)
    area_id: Mapped[int] = mapped_column(Integer, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, comment="the boundary version published")
    code: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    level_key: Mapped[str] = mapped_column(String(32), nullable=False)
    layer_key: Mapped[str] = mapped_column(String(32), nullable=False)
    geom: Mapped[object] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
    valid: Mapped[object] = mapped_column(TSTZRANGE, nullable=False)
    boundary_id: Mapped[int | None] = mapped_column(Integer)
    parent_code: Mapped[str | None] = mapped_column(String(32))
    area_m2: Mapped[float | None] = mapped_column(Double(53))
    geom_z8: Mapped[object | None] = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))
    geom_z10: Mapped[object | None] = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))
    geom_z12: Mapped[object | None] = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))
    geom_z14: Mapped[object | None] = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))


class PublishedLayer(Base):
    """A layer with a current published generation: its size and extent, refreshed by each
    publication (tiles, TileJSON and OGC collections read it on every request)."""

    __tablename__ = "published_layer"
    __table_args__ = (
        ForeignKeyConstraint(["layer_key"], ["layer.key"], ondelete="CASCADE", name="published_layer_layer_key_fkey"),
        PrimaryKeyConstraint("layer_key", name="published_layer_pkey"),
    )

    layer_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    areas: Mapped[int] = mapped_column(Integer, nullable=False)
    x0: Mapped[float] = mapped_column(Double(53), nullable=False)
    y0: Mapped[float] = mapped_column(Double(53), nullable=False)
    x1: Mapped[float] = mapped_column(Double(53), nullable=False)
    y1: Mapped[float] = mapped_column(Double(53), nullable=False)
    min_zoom: Mapped[int] = mapped_column(SmallInteger, nullable=False,
                                          comment="the first zoom whose tiles hold its areas (fewer than a few hundred a tile)")
    published_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False)
    first_published_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False)


class TileCache(Base):
    """Vector tiles of published layers, shared by every API process; a publication deletes
    the tiles that touch what it changed."""

    __tablename__ = "tile_cache"
    __table_args__ = (
        PrimaryKeyConstraint("layer_key", "z", "x", "y", name="tile_cache_pkey"),
        Index("tile_cache_env_gist", "env", postgresql_using="gist"),
    )

    layer_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    z: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    x: Mapped[int] = mapped_column(Integer, primary_key=True)
    y: Mapped[int] = mapped_column(Integer, primary_key=True)
    env: Mapped[object] = mapped_column(Geometry("POLYGON", srid=SRID, spatial_index=False), nullable=False,
                                        comment="the tile's extent with its buffer, for invalidation")
    mvt: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    etag: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(True), nullable=False, server_default=text("now()"))


class CaseFactStale(Base):
    """A case whose ``case_fact`` row is behind (intake appends; ``steps.catch_up`` folds in)."""

    __tablename__ = "case_fact_stale"
    __table_args__ = (PrimaryKeyConstraint("id", name="case_fact_stale_pkey"),
                      {"comment": "cases whose case_fact row is behind (steps.catch_up folds them in)"})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(Integer, nullable=False)


class CaseMonthStale(Base):
    """A (place, month) cell whose ``case_month`` sums are behind."""

    __tablename__ = "case_month_stale"
    __table_args__ = (PrimaryKeyConstraint("id", name="case_month_stale_pkey"),
                      {"comment": "(place, month) cells whose case_month sums are behind (steps.catch_up rewrites them)"})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    place_id: Mapped[int] = mapped_column(Integer, nullable=False)
    month: Mapped[datetime.date] = mapped_column(Date, nullable=False)
