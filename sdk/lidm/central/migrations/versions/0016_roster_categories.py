"""A roster member may hold several low-income categories, and may be leaving or have left.

civil_affairs.low_income_roster 4.0.0 adds ``categories`` (every category held, primary included, as comma-separated
codes: 低保 and 防止返贫监测 at once), ``exit_reason`` and the status ``gradual_exit`` (渐退; a code, no column).
Rows loaded before get their one category as ``categories``.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("civil_affairs_low_income_roster") as t:
        t.add_column(sa.Column("categories", sa.Text(), nullable=True))
        t.add_column(sa.Column("exit_reason", sa.Text(), nullable=True))
    op.execute("UPDATE civil_affairs_low_income_roster SET categories = category WHERE categories IS NULL")
    with op.batch_alter_table("civil_affairs_low_income_roster") as t:
        t.alter_column("categories", existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("civil_affairs_low_income_roster") as t:
        t.drop_column("exit_reason")
        t.drop_column("categories")
