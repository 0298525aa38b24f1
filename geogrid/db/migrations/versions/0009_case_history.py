"""Case history that assessment can trust: every step of a case with the deadline it had,
when it ended, how and by whom (``incident_step``), and one row of assessment facts per
case (``case_fact``) and their sums per place and month (``case_month``), kept by the same
code that writes the case's events.

Existing cases are migrated by replaying their events (:func:`geogrid.incidents.steps.rebuild`):
the deadline of a step that ended before this migration is recomputed from the category's
time limits of today; the open step keeps the deadline the case carries.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident_step",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incident.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.String(16), nullable=False, comment="accept, dispatch, handle or verify"),
        sa.Column("authority_id", sa.Integer, sa.ForeignKey("area.id"), nullable=False,
                  comment="the area that had to finish the step"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), comment="the time limit in force; never cleared"),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("ended_by", sa.String(100)),
        sa.Column("outcome", sa.String(16), comment="done, escalated, parked, voided or reopened"),
        sa.Column("working_hours", sa.Float, comment="working time the step took"),
        sa.Column("late", sa.Boolean, sa.Computed("ended_at > due_at", persisted=True),
                  comment="ended after its time limit (null while open)"),
        sa.CheckConstraint("step IN ('accept', 'dispatch', 'handle', 'verify')", name="incident_step_step"),
        sa.CheckConstraint("outcome IS NULL OR outcome IN ('done', 'escalated', 'parked', 'voided', 'reopened')",
                           name="incident_step_outcome"),
        sa.CheckConstraint("(ended_at IS NULL) = (outcome IS NULL)", name="incident_step_ended"),
    )
    op.create_index("ix_incident_step_incident_id", "incident_step", ["incident_id"])
    op.create_index("incident_step_one_open", "incident_step", ["incident_id"], unique=True,
                    postgresql_where=sa.text("ended_at IS NULL"))
    op.create_table(
        "case_fact",
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incident.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_day", sa.Date, nullable=False, comment="local date it was reported (GEOGRID_TIMEZONE)"),
        sa.Column("place_id", sa.Integer, sa.ForeignKey("area.id"), nullable=False,
                  comment="where it happened: its grid, or the territorial authority of a blind spot"),
        sa.Column("category_key", sa.String(40), nullable=False),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("worker_ids", ARRAY(sa.Integer), nullable=False, server_default=sa.text("'{}'"),
                  comment="grid workers in post for the place when it was routed"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("voided", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("parked", sa.Boolean, nullable=False, server_default=sa.false(), comment="parked (挂账) at least once"),
        sa.Column("escalations", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("late_steps", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("due_at", sa.DateTime(timezone=True), comment="deadline of the open step"),
        sa.Column("handling_hours", sa.Float, comment="working hours of its steps, once closed"),
        sa.Column("satisfaction", sa.Integer),
    )
    op.create_index("case_fact_reported", "case_fact", ["reported_day"])
    op.create_index("case_fact_place_day", "case_fact", ["place_id", "reported_day"])
    op.create_table(
        "case_month",
        sa.Column("place_id", sa.Integer, sa.ForeignKey("area.id"), primary_key=True),
        sa.Column("month", sa.Date, primary_key=True, comment="first day of the local month the cases were reported"),
        *[sa.Column(name, sa.Integer, nullable=False, server_default=sa.text("0"))
          for name in ("received", "accepted", "closed", "closed_on_time", "voided", "parked", "late_cases",
                       "escalations", "callbacks", "first_reports")],
        sa.Column("satisfaction", ARRAY(sa.Integer), nullable=False, server_default=sa.text("'{}'"),
                  comment="cases rated 0, 1, ... 10"),
        sa.Column("hours", ARRAY(sa.Float), nullable=False, server_default=sa.text("'{}'"),
                  comment="handling hours of the closed cases, sorted"),
        sa.Column("hours_sum", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("open_due", ARRAY(sa.DateTime(timezone=True)), nullable=False, server_default=sa.text("'{}'"),
                  comment="deadlines of the open cases' steps"),
        sa.Column("open_due_in_time", ARRAY(sa.DateTime(timezone=True)), nullable=False,
                  server_default=sa.text("'{}'"), comment="the same, of the open cases no step of which was late"),
    )
    from geogrid.core.settings import get_settings
    from geogrid.incidents.steps import rebuild
    from geogrid.incidents.states import calendar

    rebuild(op.get_bind(), calendar(get_settings()))


def downgrade() -> None:
    op.drop_table("case_month")
    op.drop_table("case_fact")
    op.drop_table("incident_step")
