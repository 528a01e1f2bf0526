"""The notes (备注) a department writes beside its answer to a warning.

platform.disposition 2.1.0 adds ``notes``: free text, stored encrypted like ``reason`` (``notes_enc``). Answers
taken before have none.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("platform_disposition") as t:
        t.add_column(sa.Column("notes_enc", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("platform_disposition") as t:
        t.drop_column("notes_enc")
