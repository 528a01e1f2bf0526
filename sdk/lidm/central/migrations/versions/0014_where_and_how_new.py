"""Where a held-back row is in the department's system, and how new a batch's data is.

``lidm_quarantine.locator`` names a quarantined row by its key (masked where the contract masks it) and its record
time, which a department can look up in its own table; the read position of a database source, the only name it had
before, is a position in watermark order. ``lidm_batch.newest_record`` is the newest record time among the rows a
batch loaded, so `lidm status` shows how new the data is beside when it was loaded.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lidm_quarantine") as t:
        t.add_column(sa.Column("locator", sa.String(200)))
    with op.batch_alter_table("lidm_batch") as t:
        t.add_column(sa.Column("newest_record", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("lidm_batch") as t:
        t.drop_column("newest_record")
    with op.batch_alter_table("lidm_quarantine") as t:
        t.drop_column("locator")
