"""What a home visit finds (走访情况), and the needs list (需求清单) with its summary for charity.

civil_affairs.home_visit 1.0.0: one row per person visited, keyed on the person's token so a later visit replaces the
earlier row (the rules read each person's latest finding). platform.needs 1.0.0: one row per household and kind of
need, built by the platform from open warnings and visits. platform.needs_summary 1.0.0: the needs counted per street
and kind, small counts withheld, what a charity reads.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "civil_affairs_home_visit",
        sa.Column("id_number_token", sa.String(length=64), nullable=False),
        sa.Column("id_number_enc", sa.Text(), nullable=True),
        sa.Column("id_number_masked", sa.Text(), nullable=True),
        sa.Column("name_enc", sa.Text(), nullable=True),
        sa.Column("name_masked", sa.Text(), nullable=True),
        sa.Column("visit_id", sa.Text(), nullable=False),
        sa.Column("household_id_token", sa.String(length=64), nullable=True),
        sa.Column("district_code", sa.Text(), nullable=False),
        sa.Column("street_code", sa.Text(), nullable=False),
        sa.Column("village_code", sa.Text(), nullable=True),
        sa.Column("area_kind", sa.Text(), nullable=False),
        sa.Column("visit_date", sa.Date(), nullable=False),
        sa.Column("visitor_enc", sa.Text(), nullable=True),
        sa.Column("visitor_masked", sa.Text(), nullable=True),
        sa.Column("household_size_now", sa.BigInteger(), nullable=True),
        sa.Column("household_size_change", sa.BigInteger(), nullable=True),
        sa.Column("monthly_income_per_capita", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("income_change", sa.Text(), nullable=False),
        sa.Column("health_change", sa.Text(), nullable=False),
        sa.Column("housing_change", sa.Text(), nullable=False),
        sa.Column("employment_change", sa.Text(), nullable=False),
        sa.Column("needs", sa.Text(), nullable=True),
        sa.Column("notes_enc", sa.Text(), nullable=True),
        sa.Column("entered_at", sa.DateTime(), nullable=False),
        sa.Column("_batch_id", sa.String(length=36), nullable=False),
        sa.Column("_row_digest", sa.String(length=64), nullable=False),
        sa.Column("_retired_batch", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id_number_token"),
    )
    with op.batch_alter_table("civil_affairs_home_visit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_civil_affairs_home_visit__batch_id"), ["_batch_id"], unique=False)

    op.create_table(
        "platform_needs",
        sa.Column("need_id", sa.Text(), nullable=False),
        sa.Column("household_id_token", sa.String(length=64), nullable=True),
        sa.Column("id_number_token", sa.String(length=64), nullable=True),
        sa.Column("id_number_masked", sa.Text(), nullable=True),
        sa.Column("need_kind", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("open_warnings", sa.BigInteger(), nullable=False),
        sa.Column("district_code", sa.Text(), nullable=False),
        sa.Column("street_code", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("_batch_id", sa.String(length=36), nullable=False),
        sa.Column("_row_digest", sa.String(length=64), nullable=False),
        sa.Column("_retired_batch", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("need_id"),
    )
    with op.batch_alter_table("platform_needs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_platform_needs__batch_id"), ["_batch_id"], unique=False)
        batch_op.create_index("ix_platform_needs_idtok", ["id_number_token"], unique=False)

    op.create_table(
        "platform_needs_summary",
        sa.Column("summary_id", sa.Text(), nullable=False),
        sa.Column("district_code", sa.Text(), nullable=False),
        sa.Column("district_name", sa.Text(), nullable=True),
        sa.Column("street_code", sa.Text(), nullable=True),
        sa.Column("need_kind", sa.Text(), nullable=False),
        sa.Column("households", sa.BigInteger(), nullable=False),
        sa.Column("households_shown", sa.BigInteger(), nullable=True),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("_batch_id", sa.String(length=36), nullable=False),
        sa.Column("_row_digest", sa.String(length=64), nullable=False),
        sa.Column("_retired_batch", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("summary_id"),
    )
    with op.batch_alter_table("platform_needs_summary", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_platform_needs_summary__batch_id"), ["_batch_id"], unique=False)


def downgrade() -> None:
    op.drop_table("platform_needs_summary")
    op.drop_table("platform_needs")
    op.drop_table("civil_affairs_home_visit")
