"""Released tables: each consumer reads a table holding its own rows only, with tokens pseudonymised for it alone.

Two attacks shaped this (issue 15). A row limit in a view is a filter the planner may apply *after* a consumer's
own condition on an indexed column (text comparison is leakproof), and ``EXPLAIN ANALYZE`` then counts the hidden
rows it removed: a range bisection enumerates other districts' tokens. And one city-wide token per person in every
view lets any consumer holding a token next to an identity anywhere join it to everything else it is granted.

So `lidm grants apply` gives every consumer, per granted dataset, a *released table* in its schema
(``lidm_<consumer>.<table>__released``): the granted columns of the granted rows, copied, and nothing else.
There is nothing hidden in it for a plan to look through. Its view (``lidm_<consumer>.<table>``) shows it minus
the bookkeeping column ``_key`` (the base row's key, for re-releasing it), and the consumer holds SELECT on the
view only. Every token column is released as a pseudonym, HMAC-SHA256 of the stored token under a key derived
for this consumer and this dataset (:func:`pseudonym_key`), so two datasets of one consumer, or one dataset of two
consumers, do not join; a grant that lists the field under ``linkable`` (with its purpose) gets the consumer's
one key for every dataset so marked, so that consumer can join those datasets and no others. The platform's own
matching (the monitor) reads the base tables and keeps the master token. Pseudonym keys are derived from the
first token key of the keyring (the chain's root, never rotated): a re-tokenization rewrites every stored token,
the triggers note every row, and the next sync re-releases them all under the new tokens.

Keeping releases current: a statement-level trigger (``lidm_release_note``, migration 0013) on each dataset table
that has a release notes the key of every row inserted, updated or deleted, in the writer's transaction, in
``lidm_release_pending``; :func:`sync` (run by the pipeline at the end of each batch's transaction, by the
monitor, recall, retention and re-tokenization, and by ``lidm grants refresh``) re-releases those rows with the
keyring and clears them. A writer that does not sync leaves its keys noted and the next sync picks them up.
What a release holds is recorded in ``lidm_release`` by `grants apply`, so a sync needs no catalogue: it runs
exactly the statement the owner registered.

Pseudonyms are computed by PostgreSQL (``sha256`` is built in; HMAC is two of them over the key's inner and outer
pads, bound as parameters, never stored). With the ``sm`` profile they are HMAC-SHA256 too: PostgreSQL has no SM3.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from lidm.central.schema import release as registry
from lidm.central.schema import release_pending as pending
from lidm.central.sqltext import ident
from lidm.errors import KeyringError
from lidm.keys import Keyring

SUFFIX = "__released"
TOKEN_SUFFIX = "_token"  # a token field's column (Field.output_columns): bytea, released as a pseudonym
LINKABLE = "*"  # the scope of a consumer's linkable fields: one key across its datasets
_INFO = b"lidm pseudonym v1\x00"
# Above this share of a table's rows changed, a release is rebuilt whole rather than row by row.
REBUILD_FRACTION = 0.2


def pseudonym_key(keyring: Keyring, consumer: str, scope: str) -> bytes:
    """The key of one consumer's pseudonyms in one scope (a dataset id, or LINKABLE)."""
    info = _INFO + consumer.encode() + b"\x00" + scope.encode()
    return hmac.new(keyring.token.root_key, info, hashlib.sha256).digest()


def pseudonym(key: bytes, token: str | bytes | None) -> str | None:
    """What a consumer sees for a stored token (hex text, or the stored bytes a plain SQL read returns); the same
    value PostgreSQL computes in a release."""
    if token is None:
        return None
    text = bytes(token).hex() if isinstance(token, bytes | memoryview) else token
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer keys (RFC 2104): the SQL computes sha256(outer || sha256(inner || message))."""
    block = key.ljust(64, b"\x00") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\x00")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def token_text_sql(column: str) -> str:
    """A stored token (bytea since migration 0021) as the hex text it is in Python, which pseudonyms hash."""
    return f"encode({ident(column)}, 'hex')"


def pseudonym_sql(column: str, n: int) -> str:
    """SQL of a token column's pseudonym under the n-th bound key (parameters :ki_n and :ko_n): HMAC of the
    token's hex text, the value :func:`pseudonym` computes and the pseudonyms released before 0021 hashed."""
    inner = f"sha256(:ki_{n} || convert_to({token_text_sql(column)}, 'UTF8'))"
    return f"encode(sha256(:ko_{n} || {inner}), 'hex')"


def key_sql(columns: Iterable[str]) -> str:
    """The base row's key as one text value: the trigger notes it, a sync finds the row by it (a token key as
    its hex text, as before migration 0021, so the keys of rows released before it still match)."""
    cols = [token_text_sql(c) if c.endswith(TOKEN_SUFFIX) else f"CAST({ident(c)} AS text)" for c in columns]
    return cols[0] if len(cols) == 1 else f"concat_ws(chr(31), {', '.join(cols)})"


def bind_keys(keyring: Keyring | None, scopes: list[list[str]], what: str) -> dict[str, bytes]:
    """The parameters of a release's statement: each scope's inner and outer pad."""
    if not scopes:
        return {}
    if keyring is None:
        raise KeyringError(f"{what}: releasing token columns needs the keyring (LIDM_KEYRING or LIDM_KEYRING_JSON)")
    out: dict[str, bytes] = {}
    for n, (consumer, scope) in enumerate(scopes):
        out[f"ki_{n}"], out[f"ko_{n}"] = _pads(pseudonym_key(keyring, consumer, scope))
    return out


@dataclass(frozen=True)
class Registered:
    """A release as `grants apply` registered it: where it is and the statement filling it."""

    schema: str
    name: str
    base_table: str
    select_sql: str
    key_expr: str
    scopes: list[list[str]]

    @property
    def target(self) -> str:
        return f"{ident(self.schema)}.{ident(self.name)}"


def _registered(conn: sa.Connection, table: str | None = None, *, schema: str | None = None) -> list[Registered]:
    q = sa.select(registry)
    if table is not None:
        q = q.where(registry.c.base_table == table)
    if schema is not None:
        q = q.where(registry.c.schema_name == schema)
    return [
        Registered(r.schema_name, r.release_name, r.base_table, r.select_sql, r.key_expr, json.loads(r.scopes))
        for r in conn.execute(q.order_by(registry.c.schema_name, registry.c.release_name))
    ]


def fill(conn: sa.Connection, keyring: Keyring | None, rel: Registered, *, changed_only: bool = False) -> int:
    """Re-release a release's rows: all of them, or those whose keys a sync gathered (``pg_temp.lidm_sync_keys``).

    Returns rows written."""
    params = bind_keys(keyring, rel.scopes, f"release {rel.schema}.{rel.name}")
    if changed_only:
        conn.execute(sa.text(f"DELETE FROM {rel.target} r USING pg_temp.lidm_sync_keys k WHERE r._key = k.row_key"))
        select = f"{rel.select_sql} AND ({rel.key_expr}) IN (SELECT row_key FROM pg_temp.lidm_sync_keys)"
    else:
        conn.execute(sa.text(f"DELETE FROM {rel.target}"))
        select = rel.select_sql
    typed = sa.text(f"INSERT INTO {rel.target} {select}").bindparams(
        *(sa.bindparam(k, type_=sa.LargeBinary) for k in params)
    )
    return conn.execute(typed, params).rowcount


def _gather(conn: sa.Connection, table: str) -> None:
    """The table's noted keys, once, in a temporary table with statistics: each release joins it by index."""
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.lidm_sync_keys"))
    conn.execute(
        sa.text(
            "CREATE TEMPORARY TABLE lidm_sync_keys ON COMMIT DROP AS SELECT DISTINCT row_key FROM "
            "lidm_release_pending WHERE table_name = :table AND row_key IS NOT NULL"
        ),
        {"table": table},
    )
    conn.execute(sa.text("ANALYZE pg_temp.lidm_sync_keys"))


@dataclass(frozen=True)
class Synced:
    """What one sync did for one dataset table."""

    table: str
    noted: int  # distinct keys noted as changed (0 with whole)
    whole: bool  # rebuilt whole (a TRUNCATE, or most rows changed)
    releases: int
    rows: int  # rows written across its releases


def sync(conn: sa.Connection, keyring: Keyring | None, tables: Iterable[str] | None = None) -> list[Synced]:
    """Bring the releases of the changed dataset tables up to date, in the caller's transaction.

    Serialised per table (an advisory lock held to the commit), so two writers of one dataset never release
    the same key at once. Nothing to do on SQLite (no grants there) or when nothing is noted; without a keyring,
    tables whose releases hold pseudonyms are left noted for the next sync."""
    if conn.dialect.name != "postgresql":
        return []
    q = (
        sa.select(
            pending.c.table_name,
            sa.func.count(sa.distinct(pending.c.row_key)),
            sa.func.bool_or(pending.c.row_key.is_(None)),
        )
        .group_by(pending.c.table_name)
        .order_by(pending.c.table_name)
    )  # one lock order for every writer
    if tables is not None:
        q = q.where(pending.c.table_name.in_(list(tables)))
    out = []
    for table, noted, truncated in conn.execute(q).all():
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('lidm release ' || :t))"), {"t": table})
        releases = _registered(conn, table)
        if keyring is None and any(r.scopes for r in releases):
            continue  # a keyless writer (an audit-only run): the keys stay noted for the next sync with a keyring
        whole = bool(truncated)
        if releases and not whole:
            estimate = conn.execute(
                sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": ident(table)}
            ).scalar()
            whole = estimate is not None and estimate > 0 and noted > REBUILD_FRACTION * estimate
        if releases and not whole:
            _gather(conn, table)
        rows = sum(fill(conn, keyring, r, changed_only=not whole) for r in releases)
        conn.execute(pending.delete().where(pending.c.table_name == table))
        out.append(Synced(table, 0 if whole else noted, whole, len(releases), rows))
    return out
