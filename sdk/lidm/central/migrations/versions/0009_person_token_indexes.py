"""Index the person token on every dataset table not keyed by it: each monitoring rule joins on it, and a
correlated SUM over an unindexed token (high medical costs) cannot finish at city scale (bench/monitor_rules.py:
cancelled after 120 s at 1M people, about 3 s at 10M with the index).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = (
    "agriculture_rural_relocated_households",
    "civil_affairs_temporary_assistance",
    "disability_federation_disability_certificates",
    "education_education_assistance",
    "emergency_disaster_relief",
    "health_disease_emergency_fund",
    "health_medical_expenses",
    "housing_public_rental_housing",
    "housing_rural_house_renovation",
    "hr_social_security_employment",
    "hr_social_security_unemployment",
    "hr_social_security_work_injury",
    "justice_legal_aid",
    "medical_insurance_insurance_reimbursements",
    "medical_insurance_medical_assistance",
    "platform_assistance_record",
    "platform_disposition",
    "platform_warning",
)


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_idtok", table, ["id_number_token"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_idtok", table_name=table)
