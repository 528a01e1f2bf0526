"""Quarantine rows carry the keyed digest of the row, so a bad row read again at an incremental
boundary is recognised as already quarantined instead of being quarantined once per run.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lidm_quarantine") as batch:
        batch.add_column(sa.Column("row_digest", sa.String(64)))
    op.create_index("ix_lidm_quarantine_feed_digest", "lidm_quarantine", ["feed", "row_digest"])


def downgrade() -> None:
    op.drop_index("ix_lidm_quarantine_feed_digest", table_name="lidm_quarantine")
    with op.batch_alter_table("lidm_quarantine") as batch:
        batch.drop_column("row_digest")
