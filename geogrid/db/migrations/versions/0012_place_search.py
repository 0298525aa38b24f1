"""Place search for the public map ("find my grid", ``geogrid.areas.places``): trigram
indexes (pg_trgm) for substring matches of area names and of door-plate addresses, and a
spatial index on buildings' points (an address is searched within a town or county).

- ``area_name_trgm``: ``name ILIKE '%新街%'`` over a county's areas.
- ``building_address_trgm``: a building's address as one text (village, street, number,
  then its name), the very expression ``geogrid.areas.places.BUILDING_ADDRESS`` searches.
- ``household_address_trgm``: the same for current households with a point of their own
  (no building), ``places.HOUSEHOLD_ADDRESS``; only door-plate fields, never unit or room.
- ``building_geom_gist``: buildings within the town or county searched.

pg_trgm is a contrib extension Debian's PostgreSQL package ships; it is a trusted
extension (PostgreSQL 13+), so a database owner without superuser rights may create it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Frozen copies of geogrid.areas.places.BUILDING_ADDRESS and HOUSEHOLD_ADDRESS: an index on
# an expression serves only queries that write the same expression.
BUILDING_ADDRESS = ("(coalesce(village, '') || coalesce(street, '') || coalesce(number, '') || ' ' "
                    "|| coalesce(name, ''))")
HOUSEHOLD_ADDRESS = "(coalesce(village, '') || coalesce(street, '') || coalesce(number, ''))"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX area_name_trgm ON area USING gin (name gin_trgm_ops)")
    op.execute(f"CREATE INDEX building_address_trgm ON building USING gin ({BUILDING_ADDRESS} gin_trgm_ops)")
    op.execute(f"CREATE INDEX household_address_trgm ON household USING gin ({HOUSEHOLD_ADDRESS} gin_trgm_ops) "
               "WHERE building_id IS NULL AND retired_at IS NULL")
    op.execute("CREATE INDEX building_geom_gist ON building USING gist (geom)")


def downgrade() -> None:
    for name in ("building_geom_gist", "household_address_trgm", "building_address_trgm", "area_name_trgm"):
        op.execute(f"DROP INDEX IF EXISTS {name}")
    # The extension stays: other objects may use it by now.
