"""Category attributes: the extra questions a category asks a reporter (Open311 service
definitions), and the answers an incident carries.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("category", sa.Column("attributes", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb"),
                                        comment="extra questions: code, datatype, required, description, values"))
    op.add_column("incident", sa.Column("attributes", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"),
                                        comment="answers to the category's questions, by attribute code"))


def downgrade() -> None:
    op.drop_column("incident", "attributes")
    op.drop_column("category", "attributes")
