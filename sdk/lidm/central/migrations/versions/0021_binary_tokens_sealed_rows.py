"""Binary tokens and one sealed message per row (issue 21): half the stored bytes of a protected row.

Every stored token column (a dataset's ``<field>_token``, ``lidm_quarantine.key_token``,
``lidm_warning_state.subject_token``) turns from 64 hex characters into its 32 bytes (bytea, BLOB); Python still
sees the hex (lidm.central.schema.Token). Every table with per-field ``<field>_enc`` ciphertexts gets one
``_sealed`` column instead: each row's values are opened with the keyring (bound to ``<contract>/<field>``) and
sealed again together, once per row (lidm.protect), then the ``_enc`` columns go. A warning's and an assistance
record's values were copied from their subject row and stay bound to its contract: each row is opened under
``sealed_by`` (a warning's), else its table's contract, else the contract among those encrypting the field whose
binding opens it, and sealed again under the same one (a warning without ``sealed_by`` is given it).

The tables are found in the database, not in the catalogue, so a deployment's own dataset tables convert too. A
database holding ciphertexts needs the keyring (LIDM_KEYRING or LIDM_KEYRING_JSON): without it the migration
refuses before changing anything; on PostgreSQL every migration runs in one transaction, so nothing is ever half
converted. Released tables (``lidm_<consumer>`` schemas) hold pseudonyms, hashes of the tokens' hex text, and
their registered statements and triggers now read ``encode(<token>, 'hex')``: nothing a consumer sees changes.

The downgrade goes back the same way, with the keyring: tokens to hex text, each sealed row to one ciphertext per
encrypted field of its table's contract (bound as 0020 bound them), the releases' statements to 0020's.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from alembic import op
from cryptography.exceptions import InvalidTag

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

WARNINGS = "platform_warning"
BLOCK = 5000


class NotConvertible(Exception):
    """Migration 0021 cannot convert this database; the message says why and what to do (never a value)."""


def upgrade() -> None:
    conn = op.get_bind()
    inspector = sa.inspect(conn)
    tables = {name: inspector.get_columns(name) for name in inspector.get_table_names()}
    sealed = {t: [c["name"] for c in cols if c["name"].endswith("_enc")] for t, cols in tables.items()}
    sealed = {t: cols for t, cols in sealed.items() if cols}
    keyring, catalog = _keys_if_needed(conn, sealed)
    for table, enc in sorted(sealed.items()):
        _reseal(conn, inspector, table, enc, keyring, catalog)
    for table, cols in sorted(tables.items()):
        tokens = [c["name"] for c in cols if c["name"].endswith("_token") and isinstance(c["type"], sa.String)]
        if tokens:
            _binary_tokens(conn, table, tokens)
    if conn.dialect.name == "postgresql":
        _releases_read_hex(conn)


def downgrade() -> None:
    """Back to 0020's shape: hex tokens, one "kid:alg:base64" ciphertext per encrypted field (the keyring again)."""
    conn = op.get_bind()
    inspector = sa.inspect(conn)
    tables = {name: inspector.get_columns(name) for name in inspector.get_table_names()}
    sealed = {t: ["_sealed"] for t, cols in tables.items() if any(c["name"] == "_sealed" for c in cols)}
    keyring, catalog = _keys_if_needed(conn, sealed, catalog_anyway=True)
    for table in sorted(sealed):
        _split(conn, inspector, table, keyring, catalog)
    for table, cols in sorted(tables.items()):
        tokens = [c["name"] for c in cols if c["name"].endswith("_token") and isinstance(c["type"], sa.LargeBinary)]
        if tokens:
            _text_tokens(conn, table, tokens)
    if conn.dialect.name == "postgresql":
        _releases_read_hex(conn, back=True)


# --------------------------------------------------------------------------- one sealed message per row


def _keys_if_needed(
    conn: sa.Connection, sealed: dict[str, list[str]], *, catalog_anyway: bool = False
) -> tuple[Any, dict[str, Any]]:
    """The keyring and the catalogue when some row holds a ciphertext (refused clearly without a keyring); the
    catalogue alone with `catalog_anyway`. A new, empty database needs neither, and is migrated at once: a load
    setting one up may run with a short idle-in-transaction timeout."""
    if not sealed:
        return None, {}
    from lidm.config import get_settings
    from lidm.contracts.load import load_catalog
    from lidm.errors import LidmError
    from lidm.keys import load_keyring

    holding = [
        t
        for t, enc in sealed.items()
        if conn.execute(
            sa.text(f"SELECT 1 FROM {_q(t)} WHERE {' OR '.join(f'{_q(c)} IS NOT NULL' for c in enc)} LIMIT 1")
        ).first()
    ]
    settings = op.get_context().config.attributes.get("settings") or get_settings()
    catalog = {c.table: c for c in load_catalog(settings.contracts_dir)} if holding or catalog_anyway else {}
    if not holding:
        return None, catalog
    try:
        keyring = load_keyring(settings)
    except LidmError as exc:
        raise NotConvertible(
            f"migration 0021 opens each row's encrypted values and seals them again (once per row, or back once per "
            f"field), and needs the keyring for it: {len(holding)} table(s) hold ciphertexts "
            f"({', '.join(sorted(holding)[:5])}), and the keyring cannot be loaded ({exc}). Set LIDM_KEYRING (or "
            "LIDM_KEYRING_JSON) to the keyring the data was protected with and run `lidm db upgrade` again; nothing "
            "was changed"
        ) from None
    return keyring, catalog


def _reseal(conn: sa.Connection, inspector: Any, table: str, enc: list[str], keyring: Any, catalog: dict) -> None:
    key = _key(inspector, table)
    op.add_column(table, sa.Column("_sealed", sa.LargeBinary(), nullable=True))
    if keyring is not None:
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        _write_back(conn, t, key, {"_sealed": sa.LargeBinary()}, _opened(conn, t, key, enc, keyring, catalog))
    with op.batch_alter_table(table) as batch:
        for col in enc:
            batch.drop_column(col)


def _key(inspector: Any, table: str) -> list[str]:
    key = inspector.get_pk_constraint(table)["constrained_columns"]
    if not key:
        raise NotConvertible(f"migration 0021: table {table} has encrypted values but no primary key")
    return key


def _write_back(conn: sa.Connection, t: sa.Table, key: list[str], columns: dict[str, Any], blocks: Any) -> None:
    """Rows' new values, staged by key in a temporary table, then written in one UPDATE."""
    stage = sa.Table(
        f"lidm_0021_{t.name}"[:63],
        sa.MetaData(),
        *(sa.Column(k, t.c[k].type, primary_key=True) for k in key),
        *(sa.Column(c, type_) for c, type_ in columns.items()),
        prefixes=["TEMPORARY"],
    )
    stage.create(conn)
    for block in blocks:
        if block:
            conn.execute(stage.insert(), block)
    match = sa.and_(*(stage.c[k] == t.c[k] for k in key))
    values = {c: sa.select(stage.c[c]).where(match).scalar_subquery() for c in columns}
    conn.execute(t.update().where(sa.exists().where(match)).values(values))
    stage.drop(conn)


def _opened(
    conn: sa.Connection, t: sa.Table, key: list[str], enc: list[str], keyring: Any, catalog: dict
) -> Iterator[list[dict[str, Any]]]:
    """Blocks of {key…, sealed}: each row's old values opened and sealed again together, under the same contract."""
    from lidm.protect import row_plaintext, seal_rows

    sealed_by: dict[str, str] = {}
    if t.name == WARNINGS:
        ws = sa.table("lidm_warning_state", sa.column("warning_id"), sa.column("sealed_by"))
        sealed_by = {w: s for w, s in conn.execute(sa.select(ws.c.warning_id, ws.c.sealed_by)) if s}
    own = catalog[t.name].id if t.name in catalog else None
    candidates = {
        f: [c.id for c in catalog.values() if any(x.name == f and "encrypt" in x.protection for x in c.fields)]
        for f in (c[:-4] for c in enc)
    }
    found: dict[str, str] = {}  # warning id -> the contract that opened it, where sealed_by was empty
    last: dict[str, str] = {}  # field -> the contract that opened the previous row: copied rows come in runs
    rows = conn.execute(
        sa.select(*(t.c[k] for k in key), *(t.c[c] for c in enc))
        .where(sa.or_(*(t.c[c].is_not(None) for c in enc)))
        .execution_options(stream_results=True, yield_per=BLOCK)
    )
    for part in rows.partitions():
        groups: dict[str, list[tuple[tuple[Any, ...], dict[str, str | None]]]] = {}
        for row in part:
            keys, values = tuple(row[: len(key)]), dict(zip((c[:-4] for c in enc), row[len(key) :], strict=True))
            first = next(f for f, v in values.items() if v is not None)
            preferred = [sealed_by.get(str(keys[0])), own, last.get(first), *candidates[first]]
            contract = _which(keyring, values[first], first, [p for p in preferred if p], t.name)
            last[first] = contract
            if t.name == WARNINGS and str(keys[0]) not in sealed_by:
                found[str(keys[0])] = contract
            opened = {f: None if v is None else _open(keyring, v, contract, f, t.name) for f, v in values.items()}
            groups.setdefault(contract, []).append((keys, opened))
        block = []
        for contract, members in groups.items():
            columns = {f: pa.array([m[1][f] for m in members], pa.string()) for f in members[0][1]}
            for (keys, _), value in zip(
                members, seal_rows(keyring, contract, row_plaintext(columns)).to_pylist(), strict=True
            ):
                block.append(dict(zip(key, keys, strict=True)) | {"_sealed": value})
        yield block
    if found:
        ws = sa.table("lidm_warning_state", sa.column("warning_id"), sa.column("sealed_by"))
        named = ws.update().where(ws.c.warning_id == sa.bindparam("w")).values(sealed_by=sa.bindparam("s"))
        conn.execute(named, [{"w": w, "s": s} for w, s in found.items()])


def _which(keyring: Any, value: str, field: str, contracts: list[str], table: str) -> str:
    """The first of `contracts` whose binding opens `value`."""
    from lidm.errors import LidmError
    from lidm.protect import unseal

    for contract in dict.fromkeys(contracts):
        try:
            unseal(keyring, value, f"{contract}/{field}".encode())
        except (InvalidTag, ValueError):
            continue
        except LidmError as exc:  # no such key id, or a key of another algorithm
            raise NotConvertible(f"migration 0021: {table}.{field}_enc: {exc}; nothing was changed") from None
        return contract
    raise NotConvertible(
        f"migration 0021: a value of {table}.{field}_enc opens under none of the contracts encrypting {field} with "
        "this keyring; it must be the keyring the data was protected with. Nothing was changed"
    )


def _open(keyring: Any, value: str, contract: str, field: str, table: str) -> str:
    from lidm.protect import unseal

    try:
        return unseal(keyring, value, f"{contract}/{field}".encode()).decode("utf-8")
    except (InvalidTag, ValueError):
        raise NotConvertible(
            f"migration 0021: a row of {table} has {field}_enc sealed for another contract than its other values "
            f"({contract}); nothing was changed"
        ) from None


def _split(conn: sa.Connection, inspector: Any, table: str, keyring: Any, catalog: dict) -> None:
    """Downgrade: a table's sealed rows back to one ciphertext per encrypted field of its contract."""
    from lidm.protect import open_row, seal

    if table not in catalog and keyring is not None:
        raise NotConvertible(f"migration 0021 (down): no contract in the catalogue names table {table}")
    key = _key(inspector, table)
    fields = [f.name for f in catalog[table].sealed_fields] if table in catalog else []
    for f in fields:
        op.add_column(table, sa.Column(f"{f}_enc", sa.Text(), nullable=True))
    if keyring is not None and fields:
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        sealed_by: dict[str, str] = {}
        if table == WARNINGS:
            ws = sa.table("lidm_warning_state", sa.column("warning_id"), sa.column("sealed_by"))
            sealed_by = {w: s for w, s in conn.execute(sa.select(ws.c.warning_id, ws.c.sealed_by)) if s}
        others = [c.id for c in catalog.values() if c.sealed_fields]

        def blocks() -> Iterator[list[dict[str, Any]]]:
            rows = conn.execute(
                sa.select(*(t.c[k] for k in key), t.c._sealed)
                .where(t.c._sealed.is_not(None))
                .execution_options(stream_results=True, yield_per=BLOCK)
            )
            last = None
            for part in rows.partitions():
                block = []
                for row in part:
                    keys, sealed = row[: len(key)], bytes(row[-1])
                    tried = [sealed_by.get(str(keys[0])), catalog[table].id, last, *others]
                    for contract in dict.fromkeys(c for c in tried if c):
                        try:
                            values = {f: open_row(keyring, contract, sealed, f) for f in fields}
                        except InvalidTag:
                            continue
                        last = contract
                        break
                    else:
                        raise NotConvertible(f"migration 0021 (down): a row of {table} opens under no contract")
                    enc = {
                        f"{f}_enc": None if v is None else seal(keyring, v.encode("utf-8"), f"{last}/{f}".encode())
                        for f, v in values.items()
                    }
                    block.append(dict(zip(key, keys, strict=True)) | enc)
                yield block

        _write_back(conn, t, key, {f"{f}_enc": sa.Text() for f in fields}, blocks())
    with op.batch_alter_table(table) as batch:
        batch.drop_column("_sealed")


# --------------------------------------------------------------------------- binary tokens


def _binary_tokens(conn: sa.Connection, table: str, tokens: list[str]) -> None:
    # lidm_quarantine.key_token also held the department's own key of a duplicate row whose key is not tokenized:
    # that is no token, and goes (the held row keeps it in its payload). Any other column holds tokens only.
    lenient = table == "lidm_quarantine"
    if conn.dialect.name == "postgresql":
        cols = ", ".join(
            f"ALTER COLUMN {_q(c)} TYPE bytea USING "
            + (
                f"CASE WHEN {_q(c)} ~ '^[0-9a-f]{{64}}$' THEN decode({_q(c)}, 'hex') END"
                if lenient
                else f"decode({_q(c)}, 'hex')"
            )
            for c in tokens
        )
        conn.execute(sa.text(f"ALTER TABLE {_q(table)} {cols}"))
        return
    # SQLite (3.40 has no unhex): the type changes with a copy of the table (which casts the hex text to its 64
    # ASCII bytes), then each value becomes the 32 bytes it spells.
    with op.batch_alter_table(table) as batch:
        for c in tokens:
            batch.alter_column(c, type_=sa.LargeBinary())
    for c in tokens:
        rows = conn.execute(sa.text(f"SELECT rowid, {_q(c)} FROM {_q(table)} WHERE {_q(c)} IS NOT NULL")).all()
        if rows:
            conn.execute(
                sa.text(f"UPDATE {_q(table)} SET {_q(c)} = :v WHERE rowid = :r"),
                [{"v": _token_bytes(bytes(v), lenient, table, c), "r": r} for r, v in rows],
            )


def _token_bytes(text: bytes, lenient: bool, table: str, column: str) -> bytes | None:
    try:
        if len(text) == 64:
            return bytes.fromhex(text.decode("ascii"))
    except ValueError:
        pass
    if lenient:
        return None
    raise NotConvertible(f"migration 0021: {table}.{column} holds a value that is not a token; nothing was changed")


def _text_tokens(conn: sa.Connection, table: str, tokens: list[str]) -> None:
    """Downgrade: 32-byte tokens back to their 64 hex characters."""
    if conn.dialect.name == "postgresql":
        cols = ", ".join(f"ALTER COLUMN {_q(c)} TYPE varchar(64) USING encode({_q(c)}, 'hex')" for c in tokens)
        conn.execute(sa.text(f"ALTER TABLE {_q(table)} {cols}"))
        return
    for c in tokens:  # the hex first (SQLite keeps text in a BLOB column), then the declared type
        rows = conn.execute(sa.text(f"SELECT rowid, {_q(c)} FROM {_q(table)} WHERE {_q(c)} IS NOT NULL")).all()
        if rows:
            conn.execute(
                sa.text(f"UPDATE {_q(table)} SET {_q(c)} = :v WHERE rowid = :r"),
                [{"v": bytes(v).hex(), "r": r} for r, v in rows],
            )
    with op.batch_alter_table(table) as batch:
        for c in tokens:
            batch.alter_column(c, type_=sa.String(64))


_TOKEN_TEXT = re.compile(r'CAST\(("(?:[^"]|"")*_token") AS text\)')
_TOKEN_BYTES = re.compile(r"""convert_to\(("(?:[^"]|"")*_token"), 'UTF8'\)""")


_HEX_BYTES = re.compile(r"""convert_to\(encode\(("(?:[^"]|"")*_token"), '+hex'+\), 'UTF8'\)""")
_HEX_TEXT = re.compile(r"""encode\(("(?:[^"]|"")*_token"), '+hex'+\)""")


def _hex(sql: str, quote: str = "'", *, back: bool = False) -> str:
    """A release's statement or key as it reads a bytea token: its hex text, what it read before (`back`: 0020's
    own text again). `quote` is how a quote is written where the text sits (in a trigger's argument: doubled)."""
    if back:
        return _HEX_TEXT.sub(r"CAST(\1 AS text)", _HEX_BYTES.sub(r"convert_to(\1, 'UTF8')", sql))
    sql = _TOKEN_BYTES.sub(rf"convert_to(encode(\1, {quote}hex{quote}), 'UTF8')", sql)
    return _TOKEN_TEXT.sub(rf"encode(\1, {quote}hex{quote})", sql)


def _releases_read_hex(conn: sa.Connection, *, back: bool = False) -> None:
    """Registered releases and their triggers read the tokens' hex text, so the keys and pseudonyms stay the same."""
    if sa.inspect(conn).has_table("lidm_release"):
        for schema, name, select, key in conn.execute(
            sa.text("SELECT schema_name, release_name, select_sql, key_expr FROM lidm_release")
        ).all():
            conn.execute(
                sa.text(
                    "UPDATE lidm_release SET select_sql = :s, key_expr = :k "
                    "WHERE schema_name = :a AND release_name = :b"
                ),
                {"s": _hex(select, back=back), "k": _hex(key, back=back), "a": schema, "b": name},
            )
    triggers = conn.execute(
        sa.text(
            "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = "
            "t.tgrelid WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal "
            "AND starts_with(t.tgname, 'lidm_release_')"
        )
    ).all()
    for name, table, definition in triggers:
        wanted = _hex(definition, "''", back=back)
        if wanted != definition:
            conn.execute(sa.text(f"DROP TRIGGER {_q(name)} ON {_q(table)}"))
            conn.execute(sa.text(wanted))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
