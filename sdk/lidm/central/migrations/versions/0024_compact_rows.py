"""Compact rows (issue 21): a dataset row's digest as its 32 bytes, its batch as a uuid, its sealed values framed short.

Every department dataset table (a table with ``_row_digest``, found in the database as 0021 finds them, except the
platform's own ``platform_*`` tables, whose ``_row_digest`` and ``_batch_id`` hold run ids and their own keys):
``_row_digest`` turns from 64 hex characters into its 32 bytes (bytea, BLOB; Python still sees the hex:
lidm.central.schema.Digest), and on PostgreSQL ``_batch_id`` from 36 characters into a uuid (16 bytes; SQLite keeps
the text). ``_retired_batch`` keeps its text: it is null in almost every row (no bytes), and every consumer view
reads it. A value that is not a digest, or a batch id that is not a uuid, is refused before anything changes.

Sealed rows are not opened: rows of 0021's format (``name:length:value``, format byte 0x01/0x02) still open, and a
row written from now on gets the short framing (0x03/0x04: a 2-byte field id and a varint length per field,
lidm.protect). So the upgrade needs no keyring and does not rewrite every row of a city-sized table; old rows take
the short form when a batch changes them.

The downgrade goes back: digests to hex text, batch ids to text, and rows sealed in the short framing sealed again in
0021's (which needs the keyring, as 0021's own migration does; refused clearly without it, nothing changed).

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from alembic import op
from cryptography.exceptions import InvalidTag

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

WARNINGS = "platform_warning"
BLOCK = 5000
_UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class NotConvertible(Exception):
    """Migration 0024 cannot convert this database; the message says why and what to do (never a value)."""


def upgrade() -> None:
    conn = op.get_bind()
    for table, cols in sorted(_datasets(conn).items()):
        if isinstance(cols["_row_digest"], sa.String):
            _compact(conn, table)


def downgrade() -> None:
    """Back to 0023's shape: hex digests, text batch ids, 0021's framing inside every sealed row (the keyring)."""
    conn = op.get_bind()
    inspector = sa.inspect(conn)
    sealed = [t for t in inspector.get_table_names() if any(c["name"] == "_sealed" for c in inspector.get_columns(t))]
    short = [t for t in sealed if conn.execute(sa.text(f"SELECT 1 FROM {_q(t)} WHERE {_short(conn)} LIMIT 1")).first()]
    if short:
        keyring, catalog = _keys(short)
        for table in sorted(short):
            _reframe(conn, inspector, table, keyring, catalog)
    for table, cols in sorted(_datasets(conn).items()):
        if isinstance(cols["_row_digest"], sa.LargeBinary):
            _text(conn, table)


def _datasets(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    """Department dataset tables: {table: {column: type}}."""
    inspector = sa.inspect(conn)
    out = {}
    for name in inspector.get_table_names():
        if name.startswith("platform_"):
            continue
        cols = {c["name"]: c["type"] for c in inspector.get_columns(name)}
        if "_row_digest" in cols and "_batch_id" in cols:
            out[name] = cols
    return out


def _compact(conn: sa.Connection, table: str) -> None:
    t = _q(table)
    if conn.dialect.name == "postgresql":
        bad = conn.execute(
            sa.text(
                f"SELECT count(*) FILTER (WHERE _row_digest !~ '^[0-9a-f]{{64}}$'), "
                f"count(*) FILTER (WHERE _batch_id !~ '{_UUID}') FROM {t}"
            )
        ).one()
        if bad[0] or bad[1]:
            raise NotConvertible(
                f"migration 0024: {table} has {bad[0]} row(s) whose _row_digest is not 64 hex characters and {bad[1]} "
                "whose _batch_id is not a uuid (lidm writes both so); correct or recall those rows and run "
                "`lidm db upgrade` again. Nothing was changed"
            )
        conn.execute(
            sa.text(
                f"ALTER TABLE {t} ALTER COLUMN _row_digest TYPE bytea USING decode(_row_digest, 'hex'), "
                "ALTER COLUMN _batch_id TYPE uuid USING _batch_id::uuid"
            )
        )
        return
    # SQLite (3.40 has no unhex): the type changes with a copy of the table, then each digest becomes its 32 bytes.
    with op.batch_alter_table(table) as batch:
        batch.alter_column("_row_digest", type_=sa.LargeBinary(), existing_nullable=False)
    rows = conn.execute(sa.text(f"SELECT rowid, _row_digest FROM {t}")).all()
    values = []
    for rowid, text in rows:
        try:
            digest = bytes.fromhex(bytes(text).decode("ascii")) if len(text) == 64 else None
        except ValueError:
            digest = None
        if digest is None:
            raise NotConvertible(f"migration 0024: {table}._row_digest holds a value that is not a digest")
        values.append({"v": digest, "r": rowid})
    for start in range(0, len(values), BLOCK):
        conn.execute(sa.text(f"UPDATE {t} SET _row_digest = :v WHERE rowid = :r"), values[start : start + BLOCK])


def _text(conn: sa.Connection, table: str) -> None:
    """Downgrade: digests back to their hex, batch ids to text."""
    t = _q(table)
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text(
                f"ALTER TABLE {t} ALTER COLUMN _row_digest TYPE varchar(64) USING encode(_row_digest, 'hex'), "
                "ALTER COLUMN _batch_id TYPE varchar(36) USING _batch_id::text"
            )
        )
        return
    conn.execute(sa.text(f"UPDATE {t} SET _row_digest = lower(hex(_row_digest))"))
    with op.batch_alter_table(table) as batch:
        batch.alter_column("_row_digest", type_=sa.String(64), existing_nullable=False)


# --------------------------------------------------------------------------- downgrade: 0021's framing again


def _short(conn: sa.Connection) -> str:
    """SQL: the row's sealed message has the short framing (format byte 0x03 or 0x04)."""
    if conn.dialect.name == "postgresql":
        return "_sealed IS NOT NULL AND get_byte(_sealed, 0) IN (3, 4)"
    return "_sealed IS NOT NULL AND substr(_sealed, 1, 1) IN (x'03', x'04')"


def _keys(tables: list[str]) -> tuple[Any, dict[str, Any]]:
    from lidm.config import get_settings
    from lidm.contracts.load import load_catalog
    from lidm.errors import LidmError
    from lidm.keys import load_keyring

    settings = op.get_context().config.attributes.get("settings") or get_settings()
    try:
        keyring = load_keyring(settings)
    except LidmError as exc:
        raise NotConvertible(
            f"migration 0024 (down) seals rows again in 0021's framing and needs the keyring for it: "
            f"{len(tables)} table(s) hold rows sealed since 0024 ({', '.join(sorted(tables)[:5])}), and the keyring "
            f"cannot be loaded ({exc}). Set LIDM_KEYRING (or LIDM_KEYRING_JSON) and run the downgrade again; nothing "
            "was changed"
        ) from None
    return keyring, {c.table: c for c in load_catalog(settings.contracts_dir)}


def _reframe(conn: sa.Connection, inspector: Any, table: str, keyring: Any, catalog: dict[str, Any]) -> None:
    """A table's rows sealed in the short framing, opened and sealed again in 0021's, under the same contract."""
    from lidm.protect import open_fields, row_plaintext_v1, seal_rows

    key = inspector.get_pk_constraint(table)["constrained_columns"]
    if not key:
        raise NotConvertible(f"migration 0024 (down): table {table} has sealed rows but no primary key")
    t = sa.Table(table, sa.MetaData(), autoload_with=conn)
    sealed_by: dict[str, str] = {}
    if table == WARNINGS:
        ws = sa.table("lidm_warning_state", sa.column("warning_id"), sa.column("sealed_by"))
        sealed_by = {w: s for w, s in conn.execute(sa.select(ws.c.warning_id, ws.c.sealed_by)) if s}
    own = catalog[table].id if table in catalog else None
    others = [c.id for c in catalog.values() if c.sealed_fields]
    fields = {c.id: [f.name for f in c.sealed_fields] for c in catalog.values()}

    def blocks() -> Iterator[list[dict[str, Any]]]:
        rows = conn.execute(
            sa.select(*(t.c[k] for k in key), t.c._sealed)
            .where(sa.text(_short(conn)))
            .execution_options(stream_results=True, yield_per=BLOCK)
        )
        last = None
        for part in rows.partitions():
            groups: dict[str, list[tuple[Any, dict[str, str | None]]]] = {}
            for row in part:
                keys, sealed = tuple(row[: len(key)]), bytes(row[-1])
                tried = [sealed_by.get(str(keys[0])), own, last, *others]
                for contract in dict.fromkeys(c for c in tried if c):
                    try:
                        values = open_fields(keyring, contract, sealed, fields[contract])
                    except InvalidTag:
                        continue
                    last = contract
                    break
                else:
                    raise NotConvertible(f"migration 0024 (down): a row of {table} opens under no contract")
                groups.setdefault(last, []).append((keys, values))
            block = []
            for contract, members in groups.items():
                columns = {f: pa.array([m[1][f] for m in members], pa.string()) for f in fields[contract]}
                resealed = seal_rows(keyring, contract, row_plaintext_v1(columns), v1=True).to_pylist()
                for (keys, _), value in zip(members, resealed, strict=True):
                    block.append(dict(zip(key, keys, strict=True)) | {"_sealed": value})
            yield block

    _write_back(conn, t, key, blocks())


def _write_back(conn: sa.Connection, t: sa.Table, key: list[str], blocks: Iterator[list[dict[str, Any]]]) -> None:
    """Rows' new sealed values, staged by key in a temporary table, then written in one UPDATE."""
    stage = sa.Table(
        f"lidm_0024_{t.name}"[:63],
        sa.MetaData(),
        *(sa.Column(k, t.c[k].type, primary_key=True) for k in key),
        sa.Column("_sealed", sa.LargeBinary()),
        prefixes=["TEMPORARY"],
    )
    stage.create(conn)
    for block in blocks:
        if block:
            conn.execute(stage.insert(), block)
    match = sa.and_(*(stage.c[k] == t.c[k] for k in key))
    value = sa.select(stage.c._sealed).where(match).scalar_subquery()
    conn.execute(t.update().where(sa.exists().where(match)).values(_sealed=value))
    stage.drop(conn)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
