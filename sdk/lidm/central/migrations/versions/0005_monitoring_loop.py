"""The monitoring loop: runs, the life of each warning, pushes, disposition results; and the roster's
housing-difficulty flag (civil_affairs.low_income_roster 2.0.0) the housing rule reads.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "lidm_monitor_run",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("rules", sa.Text, nullable=False),
        sa.Column("counts", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "lidm_warning_state",
        sa.Column("warning_id", sa.String(40), primary_key=True),
        sa.Column("rule_id", sa.String(40), nullable=False),
        sa.Column("rule_version", sa.String(20), nullable=False),
        sa.Column("subject_token", sa.String(64), nullable=False),
        sa.Column("department", sa.String(40), nullable=False),
        sa.Column("raised_run", sa.String(36), nullable=False),
        sa.Column("last_matched_run", sa.String(36)),
        sa.Column("pushed_at", sa.DateTime(timezone=True)),
        sa.Column("push_id", sa.String(36)),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("disposed_at", sa.DateTime(timezone=True)),
        sa.Column("disposition_id", sa.String(80)),
        sa.Column("overdue_at", sa.DateTime(timezone=True)),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("close_reason", sa.Text),
        sa.Column("condition_cleared_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_lidm_warning_state_rule_subject", "lidm_warning_state", ["rule_id", "subject_token"])
    op.create_table(
        "lidm_warning_event",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("warning_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_lidm_warning_event_warning_id", "lidm_warning_event", ["warning_id"])
    op.create_table(
        "lidm_push",
        sa.Column("push_id", sa.String(36), primary_key=True),
        sa.Column("department", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("warnings", sa.BigInteger, nullable=False),
        sa.Column("content_digest", sa.String(64)),
        sa.Column("fields", sa.Text),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_lidm_push_department", "lidm_push", ["department"])
    op.create_table(
        "lidm_disposition_result",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("disposition_id", sa.String(80), nullable=False),
        sa.Column("warning_id", sa.String(40)),
        sa.Column("department", sa.String(40), nullable=False),
        sa.Column("source_name", sa.String(300), nullable=False),
        sa.Column("row_number", sa.BigInteger),
        sa.Column("row_digest", sa.String(64)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_lidm_disposition_result_disposition_id", "lidm_disposition_result", ["disposition_id"])
    with op.batch_alter_table("civil_affairs_low_income_roster") as batch:
        batch.add_column(sa.Column("housing_difficulty", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("civil_affairs_low_income_roster") as batch:
        batch.drop_column("housing_difficulty")
    for table in (
        "lidm_disposition_result",
        "lidm_push",
        "lidm_warning_event",
        "lidm_warning_state",
        "lidm_monitor_run",
    ):
        op.drop_table(table)
