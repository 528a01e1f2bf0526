"""The audit log append-only in the database: a refusing trigger, a high-water mark of seq, signed checkpoints.

On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE of lidm_audit and lidm_audit_checkpoint, whoever
asks (the owner's accidental edit too; only disabling the trigger, an owner's or superuser's deliberate act,
gets past it). Another trigger, SECURITY DEFINER so the loader needs no privilege on lidm_audit_head, refuses an
entry whose seq is not above every seq used before and raises the mark: a deleted entry's number is never
reused. The mark moves with the inserting transaction, so a rolled-back append leaves no gap (a sequence would:
nextval is not transactional, and a gap must mean a deletion). SQLite keeps the mark by a trigger too; it has no
roles, so nothing there refuses an edit: the chain and its checkpoints only show it.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_APPEND_ONLY = ("lidm_audit", "lidm_audit_checkpoint")


def upgrade() -> None:
    op.create_table(
        "lidm_audit_head",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO lidm_audit_head (id, seq) SELECT 1, coalesce(max(seq), 0) FROM lidm_audit")
    op.create_table(
        "lidm_audit_checkpoint",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("entries", sa.BigInteger, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("signer", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(100), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        schema = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
        path = '"' + schema.replace('"', '""') + '"'
        op.execute(
            "CREATE FUNCTION lidm_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'lidm: % of % refused: the audit log is append-only', TG_OP, TG_TABLE_NAME "
            "USING ERRCODE = 'insufficient_privilege'; END $$"
        )
        for table in _APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION lidm_audit_refuse()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION lidm_audit_refuse()"
            )
        op.execute(
            "CREATE FUNCTION lidm_audit_advance() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
            f"SET search_path = pg_catalog, {path} AS $$ DECLARE top bigint; BEGIN "
            "SELECT seq INTO top FROM lidm_audit_head WHERE id = 1 FOR UPDATE; "
            "IF NEW.seq <= coalesce(top, 0) THEN RAISE EXCEPTION "
            "'lidm: audit entry % refused: numbers up to % were used already', NEW.seq, top "
            "USING ERRCODE = 'check_violation'; END IF; "
            "UPDATE lidm_audit_head SET seq = NEW.seq WHERE id = 1; RETURN NEW; END $$"
        )
        op.execute("REVOKE ALL ON FUNCTION lidm_audit_advance() FROM PUBLIC")
        op.execute(
            "CREATE TRIGGER lidm_audit_advance BEFORE INSERT ON lidm_audit "
            "FOR EACH ROW EXECUTE FUNCTION lidm_audit_advance()"
        )
    elif bind.dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER lidm_audit_advance AFTER INSERT ON lidm_audit BEGIN "
            "UPDATE lidm_audit_head SET seq = max(seq, NEW.seq) WHERE id = 1; END"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS lidm_audit_advance ON lidm_audit")
        op.execute("DROP FUNCTION IF EXISTS lidm_audit_advance()")
        for table in _APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS lidm_audit_refuse()")
    elif bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS lidm_audit_advance")
    op.drop_table("lidm_audit_checkpoint")
    op.drop_table("lidm_audit_head")
