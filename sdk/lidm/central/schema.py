"""Tables of the central database. Core tables are fixed; a dataset table follows its contract."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from lidm.contracts.model import SEALED, Contract, LogicalType, Protection

core_metadata = sa.MetaData()
TOKEN_BYTES = 32


class Token(sa.TypeDecorator[str]):
    """A stored token: 32 bytes (bytea, BLOB) in the database, lowercase hex in Python, as lidm.protect makes it.

    Half the bytes of the hex text, in the table and in every index on it. A value that is not hex (a key a person
    typed) is bound as its UTF-8 bytes, which no 32-byte token equals: it matches nothing, as the text did."""

    impl = sa.LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        try:
            return bytes.fromhex(value)
        except ValueError:
            return str(value).encode("utf-8")

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else bytes(value).hex()


class Digest(Token):
    """A dataset row's keyed digest (``_row_digest``): its 32 bytes stored, its hex in Python, as a token (0024)."""

    cache_ok = True


class BatchId(sa.TypeDecorator[str]):
    """The batch that wrote a dataset row (``_batch_id``): a uuid (16 bytes) on PostgreSQL, its text elsewhere;
    Python sees the text (str(uuid4()), as lidm.pipeline names a batch) either way (migration 0024)."""

    impl = sa.String(36)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Uuid(as_uuid=False))
        return dialect.type_descriptor(sa.String(36))


def batch_text(column: Any) -> Any:
    """A batch column as text, to compare with lidm_batch.batch_id (PostgreSQL has no uuid = varchar)."""
    return sa.cast(column, sa.String) if isinstance(column.type, BatchId) else column


def compact_meta(contract: Contract) -> bool:
    """Whether a dataset's bookkeeping columns are binary (digest) and uuid (batch ids): every department dataset.
    The platform's own tables (warnings, needs, records) keep text there: they write run ids and their own keys
    in those columns, and are small."""
    return contract.department != "platform"


class token_hex(FunctionElement[str]):
    """A token column as the lowercase hex text it was before migration 0021 (record ids, pseudonyms, keys)."""

    type = sa.String()
    inherit_cache = True


@compiles(token_hex)
def _token_hex(element: token_hex, compiler: Any, **kw: Any) -> str:
    return f"lower(hex({compiler.process(element.clauses, **kw)}))"


@compiles(token_hex, "postgresql")
def _token_hex_pg(element: token_hex, compiler: Any, **kw: Any) -> str:
    return f"encode({compiler.process(element.clauses, **kw)}, 'hex')"


class bytes_min(FunctionElement[Any]):
    """min() of a binary column (a token, a sealed row): PostgreSQL has no min(bytea), so it takes the min of the
    hex text, which orders as the bytes do: the same row a min over the old hex tokens picked."""

    inherit_cache = True

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(bytes_min)
def _bytes_min(element: bytes_min, compiler: Any, **kw: Any) -> str:
    return f"min({compiler.process(element.clauses, **kw)})"


@compiles(bytes_min, "postgresql")
def _bytes_min_pg(element: bytes_min, compiler: Any, **kw: Any) -> str:
    return f"decode(min(encode({compiler.process(element.clauses, **kw)}, 'hex')), 'hex')"


batch = sa.Table(
    "lidm_batch",
    core_metadata,
    sa.Column("batch_id", sa.String(36), primary_key=True),
    sa.Column("feed", sa.String(100), nullable=False, index=True),
    sa.Column("contract_id", sa.String(100), nullable=False),
    sa.Column("contract_version", sa.String(20), nullable=False),
    sa.Column("source_name", sa.String(300), nullable=False),
    sa.Column("source_digest", sa.String(64)),
    sa.Column("content_digest", sa.String(64)),
    sa.Column("status", sa.String(20), nullable=False),  # loaded | rejected | recalled
    sa.Column("reason", sa.Text),
    sa.Column("extracted", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("loaded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("quarantined", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("inserted", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("retired", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("watermark_from", sa.String(64)),
    sa.Column("watermark_to", sa.String(64)),
    sa.Column("manifest", sa.Text),
    sa.Column("signature", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("recalled_at", sa.DateTime(timezone=True)),  # lidm.central.recall (migration 0008)
    sa.Column("recall_reason", sa.Text),
    sa.Column("newest_record", sa.String(64)),  # the newest record time among the rows it loaded (migration 0014)
)
sa.Index("ix_lidm_batch_feed_digest", batch.c.feed, batch.c.source_digest)

quarantine = sa.Table(
    "lidm_quarantine",
    core_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("lidm_batch.batch_id"), nullable=False, index=True),
    sa.Column("feed", sa.String(100), nullable=False),
    sa.Column("row_number", sa.BigInteger),
    sa.Column("field", sa.String(100)),
    sa.Column("reason", sa.String(50), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("problems", sa.Text),  # JSON list of {field, code} when a row has several
    sa.Column("key_token", Token()),
    sa.Column("payload_kind", sa.String(20), nullable=False),  # raw_enc | protected
    sa.Column("payload", sa.Text),
    sa.Column("row_digest", sa.String(64)),  # keyed digest of the row: recognises a bad row read again
    sa.Column("line_number", sa.BigInteger),  # a text file's line where the row starts (migration 0011)
    sa.Column("resolved_batch", sa.String(36)),  # the batch that loaded a corrected row with the same key
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    # where the department finds the row in its own system: its key (masked where the contract masks it) and its
    # record time; the read position alone means nothing in a database table (migration 0014)
    sa.Column("locator", sa.String(200)),
)
sa.Index("ix_lidm_quarantine_feed_digest", quarantine.c.feed, quarantine.c.row_digest)
sa.Index("ix_lidm_quarantine_feed_key", quarantine.c.feed, quarantine.c.key_token)

watermark = sa.Table(
    "lidm_watermark",
    core_metadata,
    sa.Column("feed", sa.String(100), primary_key=True),
    sa.Column("value", sa.String(64), nullable=False),
    sa.Column("batch_id", sa.String(36), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # The source's own clock at the last read, and how many rows were dated after it (held back, read later).
    sa.Column("source_clock", sa.String(64)),
    sa.Column("deferred", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("checked_at", sa.DateTime(timezone=True)),
)

# An operator's explicit acceptance of a held batch (a full snapshot that shrank too much), audited.
acceptance = sa.Table(
    "lidm_acceptance",
    core_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("feed", sa.String(100), nullable=False, index=True),
    sa.Column("batch_id", sa.String(36), nullable=False),  # the rejected batch being accepted
    sa.Column("reason_code", sa.String(50), nullable=False),
    sa.Column("content_digest", sa.String(64)),
    sa.Column("source_digest", sa.String(64)),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_by_batch", sa.String(36)),
)

# What `lidm reconcile FEED` found: counts per run, and the mismatched days or key ranges (no values).
reconcile = sa.Table(
    "lidm_reconcile",
    core_metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("feed", sa.String(100), nullable=False, index=True),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # ok | mismatch
    sa.Column("bucket_kind", sa.String(20), nullable=False),  # day | key_range
    sa.Column("source_rows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("central_rows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("quarantined", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("missing", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("extra", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("changed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("detail", sa.Text),  # JSON list of {bucket, source, central, missing, extra, changed}
)

# Which token chain the stored tokens were made with (lidm.retokenize; migration 0010). No row: epoch 1.
token_epoch = sa.Table(
    "lidm_token_epoch",
    core_metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("chain", sa.Text, nullable=False),  # JSON list of token key ids (ids only, never keys)
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# The monitoring loop. A warning's contract fields live in platform_warning (the platform.warning dataset, so
# grants apply to it like to any dataset); its life (who, when, why) lives here.
monitor_run = sa.Table(
    "lidm_monitor_run",
    core_metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("rules", sa.Text, nullable=False),  # JSON {rule_id: version}
    sa.Column("counts", sa.Text),  # JSON {rule_id: {matched, raised, closed, still_open}}
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

warning_state = sa.Table(
    "lidm_warning_state",
    core_metadata,
    sa.Column("warning_id", sa.String(40), primary_key=True),
    sa.Column("rule_id", sa.String(40), nullable=False),
    sa.Column("rule_version", sa.String(20), nullable=False),
    sa.Column("subject_token", Token(), nullable=False),  # the person's id-number token
    sa.Column("sealed_by", sa.String(100)),  # contract whose binding the copied sealed row carries (the subject's)
    sa.Column("department", sa.String(40), nullable=False),
    sa.Column("raised_run", sa.String(36), nullable=False),
    # The run that raised it. Not rewritten by each run that finds the condition still holding: a run that finds
    # nothing new writes no warning row (issue 21); what each run matched is in lidm_monitor_run.counts.
    sa.Column("last_matched_run", sa.String(36)),
    sa.Column("pushed_at", sa.DateTime(timezone=True)),
    sa.Column("push_id", sa.String(36)),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("disposed_at", sa.DateTime(timezone=True)),
    sa.Column("disposition_id", sa.String(80)),
    sa.Column("overdue_at", sa.DateTime(timezone=True)),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("close_reason", sa.Text),
    sa.Column("condition_cleared_at", sa.DateTime(timezone=True)),  # a disposed warning's condition went away
)
sa.Index("ix_lidm_warning_state_rule_subject", warning_state.c.rule_id, warning_state.c.subject_token)

warning_event = sa.Table(
    "lidm_warning_event",
    core_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("warning_id", sa.String(40), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False),  # the status entered
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),  # monitor run, push, department, operator
    sa.Column("detail", sa.Text),  # why; never a personal value
)

push = sa.Table(
    "lidm_push",
    core_metadata,
    sa.Column("push_id", sa.String(36), primary_key=True),
    sa.Column("department", sa.String(40), nullable=False, index=True),
    sa.Column("channel", sa.String(20), nullable=False),  # folder | sftp | table
    sa.Column("target", sa.String(300), nullable=False),  # file or table name, never a credential
    sa.Column("warnings", sa.BigInteger, nullable=False),
    sa.Column("content_digest", sa.String(64)),
    sa.Column("fields", sa.Text),  # JSON list of the fields sent (what the grant allowed)
    sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
)

disposition_result = sa.Table(
    "lidm_disposition_result",
    core_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("disposition_id", sa.String(80), nullable=False, index=True),
    sa.Column("warning_id", sa.String(40)),
    sa.Column("department", sa.String(40), nullable=False),
    sa.Column("source_name", sa.String(300), nullable=False),  # file or table it came from
    sa.Column("row_number", sa.BigInteger),
    sa.Column("row_digest", sa.String(64)),
    sa.Column("status", sa.String(20), nullable=False),  # applied | refused | unchanged
    sa.Column("reason", sa.Text),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
)

# The audit log (lidm.central.audit): append-only, hash-chained; seq is assigned by the appender, so a gap is a
# deletion.
# On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE (migration 0012).
audit = sa.Table(
    "lidm_audit",
    core_metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime, nullable=False),  # UTC, naive: hashed exactly as stored
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),  # feed, batch, push, consumer: never a personal value
    sa.Column("detail", sa.Text, nullable=False),  # canonical JSON: counts and ids
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("seal", sa.String(120)),  # key id + HMAC of hash with the sign key, when the writer held the keyring
)
# The highest seq ever appended, kept by a trigger on lidm_audit (migration 0012): a deleted entry's number is
# never handed out again, and entries cut off the end show as missing up to it.
audit_head = sa.Table(
    "lidm_audit_head",
    core_metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),  # one row, id 1
    sa.Column("seq", sa.BigInteger, nullable=False),
)
# Signed checkpoints of the audit chain's head (lidm.central.audit.checkpoint), made by the administrator with a key the
# loader does not hold; the loader may read them, never write them.
audit_checkpoint = sa.Table(
    "lidm_audit_checkpoint",
    core_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("seq", sa.BigInteger, nullable=False),  # the entry the checkpoint covers, and all before it
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("entries", sa.BigInteger, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),  # UTC, naive
    sa.Column("signer", sa.String(200), nullable=False),
    sa.Column("key_id", sa.String(100), nullable=False),
    sa.Column("signature", sa.String(200), nullable=False),  # base64 Ed25519 over the canonical checkpoint
)

# Released tables (lidm.central.release, migration 0013): per consumer and dataset, the table `grants apply`
# released and the statement filling it; and the keys of dataset rows changed since the releases were synced.
release = sa.Table(
    "lidm_release",
    core_metadata,
    sa.Column("schema_name", sa.String(63), primary_key=True),
    sa.Column("release_name", sa.String(63), primary_key=True),
    sa.Column("contract_id", sa.String(100), nullable=False),
    sa.Column("consumer", sa.String(100), nullable=False),
    sa.Column("base_table", sa.String(63), nullable=False, index=True),
    sa.Column("select_sql", sa.Text, nullable=False),  # SELECT … FROM the base table: no key, only :ki_n/:ko_n
    sa.Column("key_expr", sa.Text, nullable=False),  # the base row's key as text, as the trigger notes it
    sa.Column("scopes", sa.Text, nullable=False),  # JSON [[consumer, scope], …]: the pseudonym keys to bind
    sa.Column("digest", sa.String(64), nullable=False),
)
release_pending = sa.Table(
    "lidm_release_pending",
    core_metadata,
    sa.Column("table_name", sa.String(63), nullable=False, index=True),
    sa.Column("row_key", sa.Text),  # NULL: the whole table (a TRUNCATE)
)

_SQL_TYPES = {
    LogicalType.STRING: sa.Text,
    LogicalType.DATE: sa.Date,
    LogicalType.TIMESTAMP: sa.DateTime,
    LogicalType.NUMBER: lambda: sa.Numeric(18, 4),
    LogicalType.INTEGER: sa.BigInteger,
    LogicalType.BOOLEAN: sa.Boolean,
}
META_COLUMNS = ("_batch_id", "_row_digest", "_retired_batch")
JOIN_TOKENS = {"id_number_token": "idtok", "household_id_token": "hhtok"}  # column -> its index's name suffix
# What the monitoring run looks warnings up by besides their key: the open ones, and those past their due date
# (migration 0022).
LOOKUP_INDEXES = {"platform_warning": {"ix_platform_warning_status_due": ("status", "due_date")}}


def dataset_table(contract: Contract, metadata: sa.MetaData) -> sa.Table:
    """The central table of a dataset: one column per protected output (tokens binary, the encrypted fields sealed
    together in ``_sealed``), then bookkeeping."""
    key_cols = set(contract.key_columns())
    cols = []
    for f, col, kind in contract.output_columns():
        if kind is Protection.TOKEN:
            ctype: sa.types.TypeEngine[Any] = Token()
        elif kind is Protection.MASK:
            ctype = sa.Text()
        else:
            ctype = _SQL_TYPES[f.type]()
        nullable = col not in key_cols and not (f.required and kind is Protection.CLEAR)
        cols.append(sa.Column(col, ctype, primary_key=col in key_cols, nullable=nullable))
    if contract.sealed_fields:
        cols.append(sa.Column(SEALED, sa.LargeBinary()))
    compact = compact_meta(contract)
    batch_type, digest_type = (BatchId, Digest) if compact else (lambda: sa.String(36), lambda: sa.String(64))
    cols += [
        sa.Column("_batch_id", batch_type(), nullable=False, index=True),
        sa.Column("_row_digest", digest_type(), nullable=False),
        # mostly null (no bytes), and read by every consumer view's WHERE: it keeps its text (migration 0024)
        sa.Column("_retired_batch", sa.String(36)),
    ]
    table = sa.Table(contract.table, metadata, *cols)
    leading = contract.key_columns()[:1]
    # The join tokens of the monitoring rules: the person's (every clause) and the household's (`on: household`).
    # Any dataset may become a rule's clause without a migration (rules are data), so every table carrying one
    # indexes it unless its key leads with it (migrations 0009 and 0022; bench/monitor_rules.py: a clause probed
    # per subject row through an unindexed token cannot finish at city scale).
    for token, suffix in JOIN_TOKENS.items():
        if token in table.c and [token] != leading:
            sa.Index(f"ix_{contract.table}_{suffix}", table.c[token])
    for name, columns in LOOKUP_INDEXES.get(contract.table, {}).items():
        sa.Index(name, *(table.c[c] for c in columns))
    return table


def full_metadata(contracts) -> sa.MetaData:  # type: ignore[no-untyped-def]
    """Core tables plus one table per contract: what the migrations must produce."""
    md = sa.MetaData()
    for t in core_metadata.tables.values():
        t.to_metadata(md)
    for c in contracts:
        dataset_table(c, md)
    return md
