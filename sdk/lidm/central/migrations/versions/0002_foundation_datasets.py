"""Dataset tables of the foundation feeds: health.population 1.0.0, civil_affairs.low_income_roster 1.0.0.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _meta() -> list[sa.Column]:
    return [
        sa.Column("_batch_id", sa.String(36), nullable=False),
        sa.Column("_row_digest", sa.String(64), nullable=False),
        sa.Column("_retired_batch", sa.String(36)),
    ]


def upgrade() -> None:
    op.create_table(
        "health_population",
        sa.Column("id_number_token", sa.String(64), primary_key=True),
        sa.Column("id_number_enc", sa.Text),
        sa.Column("id_number_masked", sa.Text),
        sa.Column("name_enc", sa.Text),
        sa.Column("name_masked", sa.Text),
        sa.Column("gender", sa.Text, nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("household_id_token", sa.String(64)),
        sa.Column("phone_enc", sa.Text),
        sa.Column("phone_masked", sa.Text),
        sa.Column("district_code", sa.Text, nullable=False),
        sa.Column("street_code", sa.Text),
        sa.Column("address_enc", sa.Text),
        sa.Column("residence_status", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        *_meta(),
    )
    op.create_index("ix_health_population__batch_id", "health_population", ["_batch_id"])
    op.create_table(
        "civil_affairs_low_income_roster",
        sa.Column("id_number_token", sa.String(64), primary_key=True),
        sa.Column("id_number_enc", sa.Text),
        sa.Column("id_number_masked", sa.Text),
        sa.Column("name_enc", sa.Text),
        sa.Column("name_masked", sa.Text),
        sa.Column("household_id_token", sa.String(64)),
        sa.Column("relation_to_head", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("district_code", sa.Text, nullable=False),
        sa.Column("street_code", sa.Text, nullable=False),
        sa.Column("approval_date", sa.Date, nullable=False),
        sa.Column("termination_date", sa.Date),
        sa.Column("monthly_amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("phone_enc", sa.Text),
        sa.Column("phone_masked", sa.Text),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        *_meta(),
    )
    op.create_index("ix_civil_affairs_low_income_roster__batch_id", "civil_affairs_low_income_roster", ["_batch_id"])


def downgrade() -> None:
    op.drop_table("civil_affairs_low_income_roster")
    op.drop_table("health_population")
