"""Index what a monitoring run joins and looks up: the household token of every dataset table carrying one (a rule's
clause `on: household` probes it per subject row: housing_no_public_rental reached housing_public_rental_housing by a
sequential scan, bench/monitor_rules.py), and the warnings by status and due date (the open ones, those gone overdue).
The person token was indexed by 0009; the warning state's (rule, person) by 0005. lidm.central.schema.dataset_table
declares the same indexes, so a deployment's new dataset gets them from `lidm db revision`.

Revision ID: 0022
Revises: 0021
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

HOUSEHOLD_TOKEN_TABLES = (
    "agriculture_rural_retired_fishermen",
    "agriculture_rural_return_risk_monitoring",
    "civil_affairs_hardship_disability_subsidy",
    "civil_affairs_home_visit",
    "civil_affairs_low_income_roster",
    "civil_affairs_severe_disability_care_subsidy",
    "civil_affairs_temporary_assistance",
    "education_education_assistance",
    "education_student_enrollment",
    "emergency_disaster_relief",
    "health_population",
    "housing_public_rental_housing",
    "housing_rural_house_renovation",
    "platform_assistance_record",
    "platform_disposition",
    "platform_needs",
    "platform_warning",
)


def upgrade() -> None:
    for table in HOUSEHOLD_TOKEN_TABLES:
        op.create_index(f"ix_{table}_hhtok", table, ["household_id_token"])
    op.create_index("ix_platform_warning_status_due", "platform_warning", ["status", "due_date"])


def downgrade() -> None:
    op.drop_index("ix_platform_warning_status_due", table_name="platform_warning")
    for table in HOUSEHOLD_TOKEN_TABLES:
        op.drop_index(f"ix_{table}_hhtok", table_name=table)
