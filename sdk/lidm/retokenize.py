"""Re-tokenization: every stored token moved to a new token key in one transaction, from the tokens alone.

Tokens are the join key across every feed, and token-only fields (household_id) keep no raw value to hash
again. So the token key is never swapped: a re-tokenization appends a key to the keyring's token chain, and
rewrites each stored token t as HMAC(k_new, t), the value the extended chain gives for the same raw value. All
tables, the quarantine's key tokens and the warnings' subjects move together or not at all; the central
database records the chain's length (its token epoch), and a load with a keyring of another epoch is refused
before it reads a row. Keyed row digests use the chain's first key, so a re-run after the job changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from lidm.central import audit, db, release
from lidm.central.ledger import check_epoch
from lidm.central.schema import Token, dataset_table, quarantine, token_epoch, warning_state
from lidm.config import Settings
from lidm.contracts import Protection, load_catalog
from lidm.errors import ConfigError
from lidm.keys import Keyring, extend_token_chain, load_keyring, write_keyring
from lidm.protect import next_token_function

log = logging.getLogger("lidm.retokenize")
BLOCK = 50_000  # distinct tokens mapped per round trip


@dataclass
class Retokenized:
    """What the job did: counts and key ids only."""

    epoch: int
    chain: list[str]
    keyring: str
    rows: dict[str, int] = field(default_factory=dict)  # "table.column" -> tokens rewritten


def token_columns(settings: Settings) -> list[tuple[sa.Table, str]]:
    """Every stored token column: each dataset's token fields, the quarantine's keys, the warnings' subjects."""
    md = sa.MetaData()
    out = [(quarantine, "key_token"), (warning_state, "subject_token")]
    for contract in load_catalog(settings.contracts_dir):
        table = dataset_table(contract, md)
        out += [(table, col) for _f, col, kind in contract.output_columns() if kind is Protection.TOKEN]
    return out


def retokenize(settings: Settings, *, out: Path | None = None) -> Retokenized:
    """Append a token key, rewrite every stored token with it, record the epoch, then install the keyring.

    The new keyring is written next to the old one as KEYRING.next before the transaction and moved into place
    after the commit; with LIDM_KEYRING_JSON (no file) it goes to `out`, to be stored back by the operator.
    """
    keyring = load_keyring(settings)
    if settings.keyring_json and out is None:
        raise ConfigError("the keyring comes from LIDM_KEYRING_JSON: give --out PATH for the new keyring")
    target = out or settings.effective_keyring
    staged = target.with_name(f"{target.name}.next")
    new = extend_token_chain(keyring)
    write_keyring(new, staged, overwrite=True)
    engine = db.connect(settings)
    try:
        db.ensure_current(engine, settings)
        with engine.begin() as conn:
            result = _rewrite(conn, settings, keyring, new)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()
    os.replace(staged, target)
    result.keyring = str(target)
    log.info("re-tokenized to epoch %d: %d tokens rewritten", result.epoch, sum(result.rows.values()))
    return result


def _rewrite(conn: sa.Connection, settings: Settings, old: Keyring, new: Keyring) -> Retokenized:
    if conn.dialect.name == "postgresql":
        # Loads insert their batch row first: they wait here, then find the new epoch and stop before reading.
        conn.execute(sa.text("LOCK TABLE lidm_batch IN EXCLUSIVE MODE"))
    check_epoch(conn, old)
    step = next_token_function(new)
    mapping = sa.Table(
        "lidm_retoken_map",
        sa.MetaData(),
        sa.Column("old", Token(), primary_key=True),  # binary, as the token columns are (hex in Python)
        sa.Column("new", Token(), nullable=False),
        prefixes=["TEMPORARY"],
    )
    mapping.drop(conn, checkfirst=True)
    mapping.create(conn)
    done = Retokenized(epoch=new.token.epoch, chain=list(new.token.token_chain), keyring="")
    inspector = sa.inspect(conn)
    for table, column in token_columns(settings):
        if not inspector.has_table(table.name):
            continue
        col = table.c[column]
        distinct = conn.execute(
            sa.select(col).where(col.is_not(None)).distinct().execution_options(stream_results=True, yield_per=BLOCK)
        )
        for part in distinct.partitions():
            conn.execute(mapping.insert(), [{"old": v, "new": step(v)} for (v,) in part])
        rewritten = conn.execute(table.update().where(col == mapping.c.old).values({column: mapping.c.new})).rowcount
        done.rows[f"{table.name}.{column}"] = rewritten
        conn.execute(mapping.delete())
    mapping.drop(conn)
    release.sync(conn, new)  # every re-tokenized row is noted: consumers' pseudonyms follow the new tokens
    conn.execute(token_epoch.delete())
    conn.execute(
        token_epoch.insert().values(id=1, epoch=done.epoch, chain=json.dumps(done.chain), updated_at=datetime.now(UTC))
    )
    audit.append(
        conn,
        actor="keys",
        action="keys.retokenize",
        subject=f"epoch {done.epoch}",
        detail={"chain": done.chain, "tokens": sum(done.rows.values()), "columns": len(done.rows)},
        keyring=new,
    )
    return done
