"""Batch recall: when and why a loaded batch was withdrawn (lidm.central.recall); its status becomes recalled.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lidm_batch") as batch:
        batch.add_column(sa.Column("recalled_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("recall_reason", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("lidm_batch") as batch:
        batch.drop_column("recall_reason")
        batch.drop_column("recalled_at")
