"""The data model: levels, layers (thematic nets), areas with versioned boundaries, persons,
roles and assignments.

One table, ``area``, holds both administrative units (layer ``admin``) and the grids of
every thematic net: a grid is an area whose layer is a net. Boundaries live in their own
table, one row per version with a validity period (``tstzrange``), so that "which grid
contained this point on day D" is a plain spatial query. An exclusion constraint keeps an
area's versions from overlapping in time.

Geometries are stored in EPSG:4326 (lon/lat). Areas in m² are computed by PostGIS on the
spheroid (``geography``), never typed in and never in square degrees.
"""

from __future__ import annotations

import datetime as dt

from geoalchemy2 import Geometry
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint, TSTZRANGE, DATERANGE
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SRID = 4326
ADMIN_LAYER = "admin"


class Base(DeclarativeBase):
    pass


class Level(Base):
    """A level of the hierarchy (county, town, village, grid, ...), configurable per place."""

    __tablename__ = "level"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, unique=True, comment="1 = top")
    code_length: Mapped[int] = mapped_column(Integer, comment="digits of a code at this level")
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))


class Layer(Base):
    """A thematic net (综治, 环境, 安全生产...): its own division of the same land."""

    __tablename__ = "layer"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)


class Area(Base):
    """An administrative unit or a grid. Its boundary is in :class:`Boundary`."""

    __tablename__ = "area"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, comment="stable, never reused")
    name: Mapped[str] = mapped_column(String(200))
    level_key: Mapped[str] = mapped_column(ForeignKey("level.key"), index=True)
    layer_key: Mapped[str] = mapped_column(ForeignKey("layer.key"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"), index=True)
    households: Mapped[int | None] = mapped_column(Integer)
    population: Mapped[int | None] = mapped_column(Integer)
    land_use: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text, comment="internal, never public")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]+$'", name="area_code_digits"),
        CheckConstraint("households IS NULL OR households >= 0", name="area_households_nonneg"),
        CheckConstraint("population IS NULL OR population >= 0", name="area_population_nonneg"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="area_not_own_parent"),
    )


class Boundary(Base):
    """One version of an area's boundary, valid over ``valid`` (MapIt's generations)."""

    __tablename__ = "boundary"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
    area_m2: Mapped[float] = mapped_column(
        Float, Computed("ST_Area(geom::geography)", persisted=True), comment="spheroidal area"
    )
    valid = mapped_column(TSTZRANGE, nullable=False, server_default=func.tstzrange(func.now(), None))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("area_id", "version"),
        ExcludeConstraint(("area_id", "="), ("valid", "&&"), name="boundary_no_overlapping_versions", using="gist"),
        CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="boundary_geom_valid"),
    )


class Person(Base):
    """Someone responsible for grids. Each contact field has its own public flag (公示)."""

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str | None] = mapped_column(String(64), unique=True, comment="external reference")
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    photo_url: Mapped[str | None] = mapped_column(String(500))
    name_public: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    phone_public: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    photo_public: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    notes: Mapped[str | None] = mapped_column(Text, comment="internal, never public")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Role(Base):
    """A post in a grid (网格长, 专职网格员, ...); extensible."""

    __tablename__ = "role"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, default=100)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))
    responsible: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default="true", comment="counts as a responsible person for routing"
    )


class Assignment(Base):
    """Person -> area -> role over a date range; history is kept, never overwritten."""

    __tablename__ = "assignment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id", ondelete="CASCADE"), index=True)
    role_key: Mapped[str] = mapped_column(ForeignKey("role.key"))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date, comment="inclusive; NULL = ongoing")
    duties: Mapped[str | None] = mapped_column(Text)
    period = mapped_column(
        DATERANGE, Computed("daterange(start_date, end_date, '[]')", persisted=True)
    )
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="assignment_dates_ordered"),
        ExcludeConstraint(
            ("person_id", "="), ("area_id", "="), ("role_key", "="), ("period", "&&"),
            name="assignment_no_overlap", using="gist",
        ),
    )
