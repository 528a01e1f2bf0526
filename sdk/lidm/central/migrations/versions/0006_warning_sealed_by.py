"""A warning copies its subject row's ciphertexts (id number, name), which stay bound to the subject feed's
contract; the state row names that contract, so re-identifying a warning opens it with the right binding.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lidm_warning_state") as batch:
        batch.add_column(sa.Column("sealed_by", sa.String(100)))


def downgrade() -> None:
    with op.batch_alter_table("lidm_warning_state") as batch:
        batch.drop_column("sealed_by")
