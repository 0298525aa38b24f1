"""Security: login throttling and rate limits kept in PostgreSQL (shared by every worker
and host), and idempotency keys scoped to their channel and account.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Failed logins per account and per client address, with the backoff they earned.
    op.create_table(
        "login_failure",
        sa.Column("kind", sa.String(16), primary_key=True, comment="account or address"),
        sa.Column("key", sa.String(200), primary_key=True, comment="username (lower case) or client address"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0",
                  comment="consecutive failures within the window"),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("blocked_until", sa.DateTime(timezone=True)),
        sa.CheckConstraint("kind IN ('account', 'address')", name="login_failure_kind"),
    )
    # Fixed-window request counters (public intake and any other per-client limit).
    op.create_table(
        "rate_counter",
        sa.Column("bucket", sa.String(300), primary_key=True, comment="limit name and client, e.g. public:1.2.3.4"),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("hits", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("rate_counter_window", "rate_counter", ["window_start"])

    # Idempotency keys: one namespace per channel and account, so an anonymous reporter
    # cannot take a key that another system will send later.
    op.add_column("incident", sa.Column("idempotency_scope", sa.String(200),
                                        comment="channel:account the idempotency key belongs to"))
    op.execute("""
        UPDATE incident i SET idempotency_scope = i.channel || ':' || coalesce(
            (SELECT e.actor FROM incident_event e WHERE e.incident_id = i.id ORDER BY e.id LIMIT 1), '-')
        WHERE i.idempotency_key IS NOT NULL
    """)
    op.drop_constraint("incident_idempotency_key_key", "incident", type_="unique")
    op.create_unique_constraint("incident_idempotency_scope_key", "incident", ["idempotency_scope", "idempotency_key"])
    op.create_check_constraint("incident_idempotency_scoped", "incident",
                               "idempotency_key IS NULL OR idempotency_scope IS NOT NULL")


def downgrade() -> None:
    op.drop_constraint("incident_idempotency_scoped", "incident", type_="check")
    op.drop_constraint("incident_idempotency_scope_key", "incident", type_="unique")
    op.create_unique_constraint("incident_idempotency_key_key", "incident", ["idempotency_key"])
    op.drop_column("incident", "idempotency_scope")
    op.drop_index("rate_counter_window", "rate_counter")
    op.drop_table("rate_counter")
    op.drop_table("login_failure")
