"""The outcomes the policy names, and services beside money.

platform.disposition 3.0.0 adds the outcomes ``case_by_case`` (一事一议, with ``follow_up_date`` and
``follow_up_result``) and ``data_error`` (比对数据有误; codes, no column). Answers taken before have neither field.
platform.assistance_record 3.0.0 adds ``service_kind`` (服务类社会救助, "物质+服务") and ``project_id`` (the project
list's programme, rules/projects.yaml); the next build of the happiness list fills them in. ``assistance_kind``
gains the code ``service`` in both (no column).

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("platform_disposition") as t:
        t.add_column(sa.Column("follow_up_date", sa.Date(), nullable=True))
        t.add_column(sa.Column("follow_up_result", sa.Text(), nullable=True))
    with op.batch_alter_table("platform_assistance_record") as t:
        t.add_column(sa.Column("service_kind", sa.Text(), nullable=True))
        t.add_column(sa.Column("project_id", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("platform_assistance_record") as t:
        t.drop_column("project_id")
        t.drop_column("service_kind")
    with op.batch_alter_table("platform_disposition") as t:
        t.drop_column("follow_up_result")
        t.drop_column("follow_up_date")
