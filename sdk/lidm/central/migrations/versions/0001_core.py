"""Core tables: batches, quarantine, watermarks.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_count = {"nullable": False, "server_default": "0"}


def upgrade() -> None:
    op.create_table(
        "lidm_batch",
        sa.Column("batch_id", sa.String(36), primary_key=True),
        sa.Column("feed", sa.String(100), nullable=False),
        sa.Column("contract_id", sa.String(100), nullable=False),
        sa.Column("contract_version", sa.String(20), nullable=False),
        sa.Column("source_name", sa.String(300), nullable=False),
        sa.Column("source_digest", sa.String(64)),
        sa.Column("content_digest", sa.String(64)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text),
        *(
            sa.Column(c, sa.BigInteger, **_count)
            for c in ("extracted", "loaded", "quarantined", "inserted", "updated", "unchanged", "retired")
        ),
        sa.Column("watermark_from", sa.String(64)),
        sa.Column("watermark_to", sa.String(64)),
        sa.Column("manifest", sa.Text),
        sa.Column("signature", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_lidm_batch_feed", "lidm_batch", ["feed"])
    op.create_index("ix_lidm_batch_feed_digest", "lidm_batch", ["feed", "source_digest"])
    op.create_table(
        "lidm_quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(36), sa.ForeignKey("lidm_batch.batch_id"), nullable=False),
        sa.Column("feed", sa.String(100), nullable=False),
        sa.Column("row_number", sa.BigInteger),
        sa.Column("field", sa.String(100)),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("problems", sa.Text),
        sa.Column("key_token", sa.String(64)),
        sa.Column("payload_kind", sa.String(20), nullable=False),
        sa.Column("payload", sa.Text),
    )
    op.create_index("ix_lidm_quarantine_batch_id", "lidm_quarantine", ["batch_id"])
    op.create_table(
        "lidm_watermark",
        sa.Column("feed", sa.String(100), primary_key=True),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lidm_watermark")
    op.drop_table("lidm_quarantine")
    op.drop_table("lidm_batch")
