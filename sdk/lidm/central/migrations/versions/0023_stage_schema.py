"""The schema where a batch's workers stage its rows: lidm_stage (PostgreSQL only).

A big batch is protected in forked worker processes, and each writes its chunks into the database itself rather
than handing them back to the loading process. Their sessions cannot see the batch's temporary table, so the stage
is an UNLOGGED table of its own, here, apart from the datasets: the owner owns the schema, `lidm grants apply` lets
the loader create and drop tables in it, and nobody else may even look into it. SQLite keeps its temporary stage.

Revision ID: 0023
Revises: 0022
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SCHEMA IF NOT EXISTS lidm_stage")
    op.execute("REVOKE ALL ON SCHEMA lidm_stage FROM PUBLIC")
    op.execute(
        "COMMENT ON SCHEMA lidm_stage IS 'lidm: rows of batches being loaded, applied and dropped by each batch; "
        "a stage left by a run that died is dropped by its feed''s next run'"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SCHEMA IF EXISTS lidm_stage CASCADE")
