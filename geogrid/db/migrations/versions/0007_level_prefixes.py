"""Levels that do not prefix their children's codes.

A national root above the provinces, or a 工作区 inserted between town and village, has
a code of its own that its children's national codes do not start with: their codes are
checked against (and generated under) the nearest ancestor whose level does prefix them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("level", sa.Column("prefixes_children", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade() -> None:
    op.drop_column("level", "prefixes_children")
