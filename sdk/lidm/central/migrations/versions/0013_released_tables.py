"""Released tables (lidm.central.release): their registry, the keys of changed rows, and the trigger noting them.

``lidm_release`` records, per consumer and dataset, the table `lidm grants apply` released to the consumer and the
statement that fills it; ``lidm_release_pending`` holds the keys of dataset rows changed since the releases were
last brought up to date. On PostgreSQL, ``lidm_release_note()`` is the statement-level trigger function `grants
apply` attaches to every dataset table that has a release: whoever changes rows (a load, a recall, retention, a
re-tokenization, the monitor), their keys are noted in the same transaction, and the next sync re-releases
exactly those rows. A TRUNCATE notes a NULL key: the table's releases are rebuilt whole.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lidm_release",
        sa.Column("schema_name", sa.String(63), primary_key=True),
        sa.Column("release_name", sa.String(63), primary_key=True),
        sa.Column("contract_id", sa.String(100), nullable=False),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("base_table", sa.String(63), nullable=False, index=True),
        sa.Column("select_sql", sa.Text, nullable=False),
        sa.Column("key_expr", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )
    op.create_table(
        "lidm_release_pending",
        sa.Column("table_name", sa.String(63), nullable=False, index=True),
        sa.Column("row_key", sa.Text),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION lidm_release_note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF TG_OP IN ('INSERT', 'UPDATE') THEN EXECUTE format("
            "'INSERT INTO %I.lidm_release_pending (table_name, row_key) SELECT DISTINCT %L, %s FROM lidm_new', "
            "TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[0]); END IF; "
            "IF TG_OP IN ('UPDATE', 'DELETE') THEN EXECUTE format("
            "'INSERT INTO %I.lidm_release_pending (table_name, row_key) SELECT DISTINCT %L, %s FROM lidm_old', "
            "TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[0]); END IF; "
            "IF TG_OP = 'TRUNCATE' THEN EXECUTE format("
            "'INSERT INTO %I.lidm_release_pending (table_name, row_key) VALUES (%L, NULL)', "
            "TG_TABLE_SCHEMA, TG_TABLE_NAME); END IF; "
            "RETURN NULL; END $$"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS lidm_release_note() CASCADE")
    op.drop_table("lidm_release_pending")
    op.drop_table("lidm_release")
