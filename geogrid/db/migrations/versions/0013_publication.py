"""Publication (公示发布): what the public sees is what a planner published, one
generation at a time (MapIt's generations), and one definition of what is public.

- ``publication``: one planner's action: a layer within an area's subtree (or one grid),
  when, by whom, and what changed.
- ``published_area``: the published copy of an area: public attributes only (code, name,
  level, layer, parent's code) and its boundary, valid over ``valid`` (from the
  publication that put it there to the one that replaced or withdrew it). The current
  generation is ``upper_inf(valid)``; ``valid @> t`` is what the public saw at ``t``.
  ``geom_z8`` ... ``geom_z14``: the boundary simplified for tiles at those zooms, as one
  coverage per layer and level (shared edges simplified once: no gaps between
  neighbours at any zoom).
- ``published_layer``: per layer with a current generation, its size and extent (what
  every tile, TileJSON and OGC collection request asks), refreshed by each publication.
- ``tile_cache``: vector tiles of the published layers, shared by every API process;
  rows whose tile touches a republished area are deleted by the publication.
- ``pollution_source.public``: a source listed publicly (重点排污单位名录 and the like).
- Views, the one definition of what is public; every public endpoint reads them:
  ``public_area`` (the current generation), ``public_person`` (a person's published
  fields only), ``public_post`` (posts in published areas, with those fields), ``public_case`` (cases of public categories,
  public fields) and ``public_source``.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2.types import Geometry
from sqlalchemy.dialects.postgresql import TSTZRANGE

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BANDS = (8, 10, 12, 14)

VIEWS = {
    "public_area": """
        SELECT pa.area_id, pa.code, pa.name, pa.level_key, pa.layer_key, pa.parent_code, pa.version,
               pa.area_m2, pa.geom, lower(pa.valid) AS published_at, pa.publication_id
        FROM published_area pa WHERE upper_inf(pa.valid)""",
    "public_person": """
        SELECT p.id, CASE WHEN p.name_public THEN p.name END AS name,
               CASE WHEN p.phone_public THEN p.phone END AS phone,
               CASE WHEN p.photo_public THEN p.photo_url END AS photo_url
        FROM person p""",
    "public_post": """
        SELECT s.area_id, s.role_key, s.duties, s.start_date, s.period, p.id AS person_id, p.name, p.phone, p.photo_url
        FROM assignment s JOIN public_person p ON p.id = s.person_id
        WHERE EXISTS (SELECT 1 FROM published_area pa WHERE pa.area_id = s.area_id AND upper_inf(pa.valid))""",
    "public_case": """
        SELECT i.receipt, i.category_key, c.name_zh AS category_zh, c.name_en AS category_en, i.state,
               i.reported_at, i.closed_at, g.code AS grid, au.code AS authority, i.geom
        FROM incident i JOIN category c ON c.key = i.category_key
        LEFT JOIN published_area g ON g.area_id = i.grid_id AND upper_inf(g.valid)
        LEFT JOIN published_area au ON au.area_id = i.authority_id AND upper_inf(au.valid)
        WHERE c.public AND i.state <> 'void'""",
    "public_source": """
        SELECT s.id, s.name, s.kind, s.pollutants, s.permit_no, s.key_supervision, s.address,
               g.code AS grid, s.geom
        FROM pollution_source s LEFT JOIN published_area g ON g.area_id = s.grid_id AND upper_inf(g.valid)
        WHERE s.public""",
}


def upgrade() -> None:
    op.create_table(
        "publication",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("layer_key", sa.String(32), sa.ForeignKey("layer.key", name="publication_layer_key_fkey"), nullable=False),
        sa.Column("root_id", sa.Integer, sa.ForeignKey("area.id", name="publication_root_id_fkey"),
                  comment="the subtree published; NULL: the whole layer"),
        sa.Column("published_at", sa.DateTime(True), nullable=False, server_default=sa.text("now()")),
        sa.Column("published_by", sa.String(200), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("added", sa.Integer, nullable=False, server_default="0"),
        sa.Column("changed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("withdrawn", sa.Integer, nullable=False, server_default="0"),
        sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_publication_layer_key", "publication", ["layer_key"])
    op.create_table(
        "published_area",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("publication_id", sa.Integer, sa.ForeignKey("publication.id", name="published_area_publication_id_fkey"),
                  nullable=False),
        sa.Column("area_id", sa.Integer, sa.ForeignKey("area.id", ondelete="CASCADE", name="published_area_area_id_fkey"),
                  nullable=False),
        sa.Column("boundary_id", sa.Integer,
                  sa.ForeignKey("boundary.id", ondelete="SET NULL", name="published_area_boundary_id_fkey")),
        sa.Column("version", sa.Integer, nullable=False, comment="the boundary version published"),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("level_key", sa.String(32), nullable=False),
        sa.Column("layer_key", sa.String(32), nullable=False),
        sa.Column("parent_code", sa.String(32)),
        sa.Column("area_m2", sa.Double),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        *[sa.Column(f"geom_z{z}", Geometry("GEOMETRY", srid=4326, spatial_index=False)) for z in BANDS],
        sa.Column("valid", TSTZRANGE, nullable=False),
    )
    op.execute("ALTER TABLE published_area ADD CONSTRAINT published_area_no_overlapping_generations "
               "EXCLUDE USING gist (area_id WITH =, valid WITH &&)")
    op.create_index("published_area_one_current", "published_area", ["area_id"], unique=True,
                    postgresql_where=sa.text("upper_inf(valid)"))
    op.create_index("published_area_current_geom_gist", "published_area", ["geom"], postgresql_using="gist",
                    postgresql_where=sa.text("upper_inf(valid)"))
    op.create_index("published_area_geom_gist", "published_area", ["geom"], postgresql_using="gist")
    op.create_index("published_area_current_code", "published_area", ["layer_key", "code"],
                    postgresql_where=sa.text("upper_inf(valid)"))
    op.create_index("ix_published_area_publication_id", "published_area", ["publication_id"])
    # Place search over what is published (geogrid.areas.places): names by substring
    # (pg_trgm, migration 0012) and codes by prefix.
    op.execute("CREATE INDEX published_area_name_trgm ON published_area USING gin (name gin_trgm_ops) "
               "WHERE upper_inf(valid)")
    op.execute("CREATE INDEX published_area_code_prefix ON published_area (code text_pattern_ops) "
               "WHERE upper_inf(valid)")
    op.create_table(
        "published_layer",
        sa.Column("layer_key", sa.String(32), sa.ForeignKey("layer.key", ondelete="CASCADE",
                                                            name="published_layer_layer_key_fkey"), primary_key=True),
        sa.Column("areas", sa.Integer, nullable=False),
        sa.Column("x0", sa.Double, nullable=False),
        sa.Column("y0", sa.Double, nullable=False),
        sa.Column("x1", sa.Double, nullable=False),
        sa.Column("y1", sa.Double, nullable=False),
        sa.Column("min_zoom", sa.SmallInteger, nullable=False,
                  comment="the first zoom whose tiles hold its areas (fewer than a few hundred a tile)"),
        sa.Column("published_at", sa.DateTime(True), nullable=False),
        sa.Column("first_published_at", sa.DateTime(True), nullable=False),
    )
    op.create_table(
        "tile_cache",
        sa.Column("layer_key", sa.String(32), nullable=False),
        sa.Column("z", sa.SmallInteger, nullable=False),
        sa.Column("x", sa.Integer, nullable=False),
        sa.Column("y", sa.Integer, nullable=False),
        sa.Column("env", Geometry("POLYGON", srid=4326, spatial_index=False), nullable=False,
                  comment="the tile's extent with its buffer, for invalidation"),
        sa.Column("mvt", sa.LargeBinary, nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("layer_key", "z", "x", "y", name="tile_cache_pkey"),
    )
    op.create_index("tile_cache_env_gist", "tile_cache", ["env"], postgresql_using="gist")
    op.add_column("pollution_source", sa.Column("public", sa.Boolean, nullable=False, server_default=sa.text("false"),
                                                comment="listed publicly (name, kind, pollutants, permit, address)"))
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_column("pollution_source", "public")
    op.drop_table("tile_cache")
    op.drop_table("published_layer")
    op.drop_table("published_area")
    op.drop_table("publication")
