"""Warnings are routed to a level and can change hands.

platform.warning 2.2.0 adds ``target_consumer`` (who holds the warning: a city department, a county bureau or a
street office) and ``action_level`` (city, county, street); warnings raised before were all held by their city
department, so they get it and ``city``. platform.disposition 2.3.0 adds ``transfer_to`` and ``handover_reason``
for the outcomes ``transferred`` and ``returned`` (codes, no column).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("platform_warning") as t:
        t.add_column(sa.Column("target_consumer", sa.Text(), nullable=True))
        t.add_column(sa.Column("action_level", sa.Text(), nullable=True))
    op.execute("UPDATE platform_warning SET target_consumer = target_department, action_level = 'city'")
    with op.batch_alter_table("platform_warning") as t:
        t.alter_column("target_consumer", existing_type=sa.Text(), nullable=False)
        t.alter_column("action_level", existing_type=sa.Text(), nullable=False)
    with op.batch_alter_table("platform_disposition") as t:
        t.add_column(sa.Column("transfer_to", sa.Text(), nullable=True))
        t.add_column(sa.Column("handover_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("platform_disposition") as t:
        t.drop_column("handover_reason")
        t.drop_column("transfer_to")
    with op.batch_alter_table("platform_warning") as t:
        t.drop_column("action_level")
        t.drop_column("target_consumer")
