"""A roster member is urban or rural (城乡属性), as civil affairs' monthly statistics split them.

civil_affairs.low_income_roster 4.1.0 adds the optional ``urban_rural`` (urban 城镇 / rural 农村). Rows loaded before
keep it empty: the statistics count them as 未标注 until the next full roster file fills it.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("civil_affairs_low_income_roster") as t:
        t.add_column(sa.Column("urban_rural", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("civil_affairs_low_income_roster") as t:
        t.drop_column("urban_rural")
