"""Nothing lost, checkably: quarantine line numbers and resolution, rows held back by the source clock,
accepted snapshot shrinks, and reconciliation results.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lidm_quarantine") as t:
        t.add_column(sa.Column("line_number", sa.BigInteger))
        t.add_column(sa.Column("resolved_batch", sa.String(36)))
        t.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True)))
    op.create_index("ix_lidm_quarantine_feed_key", "lidm_quarantine", ["feed", "key_token"])
    with op.batch_alter_table("lidm_watermark") as t:
        t.add_column(sa.Column("source_clock", sa.String(64)))
        t.add_column(sa.Column("deferred", sa.BigInteger, nullable=False, server_default="0"))
        t.add_column(sa.Column("checked_at", sa.DateTime(timezone=True)))
    op.create_table(
        "lidm_acceptance",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("feed", sa.String(100), nullable=False, index=True),
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("reason_code", sa.String(50), nullable=False),
        sa.Column("content_digest", sa.String(64)),
        sa.Column("source_digest", sa.String(64)),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_by_batch", sa.String(36)),
    )
    op.create_table(
        "lidm_reconcile",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("feed", sa.String(100), nullable=False, index=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("bucket_kind", sa.String(20), nullable=False),
        sa.Column("source_rows", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("central_rows", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("quarantined", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("missing", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("extra", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("changed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("detail", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("lidm_reconcile")
    op.drop_table("lidm_acceptance")
    with op.batch_alter_table("lidm_watermark") as t:
        t.drop_column("checked_at")
        t.drop_column("deferred")
        t.drop_column("source_clock")
    op.drop_index("ix_lidm_quarantine_feed_key", "lidm_quarantine")
    with op.batch_alter_table("lidm_quarantine") as t:
        t.drop_column("resolved_at")
        t.drop_column("resolved_batch")
        t.drop_column("line_number")
