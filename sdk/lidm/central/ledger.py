"""The ledger of batches: what the central database records about every delivery, besides its rows.

A batch is opened (a ``loading`` row, in the batch's own transaction, after the token epoch is checked), then
either sealed (its counts, digests and signed manifest, the feed's watermark, the consumers' releases and the
audit entry, all in that same transaction) or rejected (a ``rejected`` row and its audit entry, in a transaction
of their own, nothing else written). The checks that decide a delivery's fate from what was loaded before live
here too: a replayed file, an unchanged snapshot, a snapshot that shrank more than the contract allows.

The pipeline extracts, transforms and writes rows; everything it records about them goes through this module,
and so do `lidm status`, recall and retention when they read or rewind what a batch did.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from lidm import manifest
from lidm.central import audit, release
from lidm.central.loader import LoadCounts
from lidm.central.schema import acceptance, batch, quarantine, token_epoch, watermark
from lidm.contracts import Contract, UpdateMode
from lidm.errors import KeyringError, RejectedBatch
from lidm.keys import Keyring

log = logging.getLogger("lidm.central.ledger")
COUNTS = ("extracted", "loaded", "quarantined", "inserted", "updated", "unchanged", "retired")
HELD_PER_FETCH = 5_000  # quarantined rows read at a time to go back to a department


def stored_epoch(conn: sa.Connection) -> tuple[int, list[str]]:
    """The token epoch of the central database: 1 (and no chain recorded) until a re-tokenization."""
    row = conn.execute(sa.select(token_epoch.c.epoch, token_epoch.c.chain).where(token_epoch.c.id == 1)).first()
    return (1, []) if row is None else (row.epoch, json.loads(row.chain))


def check_epoch(conn: sa.Connection, keyring: Keyring) -> None:
    """Refuse to write tokens of another chain than the stored ones: they would never join again."""
    epoch, chain = stored_epoch(conn)
    if epoch != keyring.token.epoch or (chain and list(keyring.token.token_chain) != chain):
        raise KeyringError(
            f"the central database's tokens are at epoch {epoch}, the keyring's at {keyring.token.epoch}: "
            "a re-tokenization moved the stored tokens to another key chain. Use the keyring it wrote (if the "
            "job stopped after its commit, the keyring file's .next copy is that keyring); nothing was written"
        )


def as_text(value: Any) -> str | None:
    """A watermark or clock value as stored: ISO text for dates and times."""
    if value is None:
        return None
    return value.isoformat(sep=" ") if hasattr(value, "isoformat") else str(value)


@dataclass
class Delivery:
    """What the ledger knows of one delivery; its source digest once the source has been read."""

    feed: str
    contract: Contract
    batch_id: str
    source: str  # the delivery's name (a file, a query window)
    file: str  # where a rejection points the department
    started: datetime
    source_digest: str | None = None

    def batch_row(self) -> dict[str, Any]:
        """What every lidm_batch row of this delivery says, whatever becomes of it."""
        return {
            "batch_id": self.batch_id,
            "feed": self.feed,
            "contract_id": self.contract.id,
            "contract_version": self.contract.version,
            "source_name": self.source,
            "started_at": self.started,
        }


def open_batch(conn: sa.Connection, d: Delivery, keyring: Keyring) -> None:
    """The batch's ``loading`` row, first in its transaction; then the token epoch (a running re-tokenization has
    committed by the time this row's lock lets the batch on)."""
    conn.execute(batch.insert().values(**d.batch_row(), status="loading"))
    check_epoch(conn, keyring)


def refuse_replay(conn: sa.Connection, d: Delivery, extracted: int) -> None:
    """A file loaded before, or a full snapshot without rows, is rejected before anything is applied."""
    if d.source_digest:
        earlier = conn.execute(
            sa.select(batch.c.batch_id, batch.c.started_at).where(
                batch.c.feed == d.feed, batch.c.source_digest == d.source_digest, batch.c.status == "loaded"
            )
        ).first()
        if earlier:
            raise RejectedBatch(
                "replay",
                f"this exact file was already loaded in batch {earlier.batch_id} "
                f"({earlier.started_at:%Y-%m-%d %H:%M}); nothing was loaded again",
                file=d.file,
            )
    if extracted == 0 and d.contract.update_mode is UpdateMode.FULL:
        raise RejectedBatch(
            "empty_snapshot", "a full snapshot with no rows would retire the whole dataset; refused", file=d.file
        )


def last_content(conn: sa.Connection, feed: str) -> str | None:
    """The content digest of the feed's newest loaded batch: a snapshot equal to it changes nothing."""
    return conn.execute(
        sa.select(batch.c.content_digest)
        .where(batch.c.feed == feed, batch.c.status == "loaded")
        .order_by(batch.c.started_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def guard_shrink(conn: sa.Connection, d: Delivery, counts: LoadCounts, content: str) -> int | None:
    """A full snapshot that retires more than lidmMaxRetireFraction of the live rows is held (rejected with the
    figures) unless an operator accepted this very content with `lidm batch accept`; returns that acceptance."""
    limit = d.contract.max_retire_fraction
    if counts.live_before == 0 or counts.retired <= limit * counts.live_before:
        return None
    a = acceptance
    match = a.c.content_digest == content
    if d.source_digest:
        match = sa.or_(match, a.c.source_digest == d.source_digest)
    accepted = conn.execute(
        sa.select(a.c.id).where(a.c.feed == d.feed, a.c.used_by_batch.is_(None), match).limit(1)
    ).scalar_one_or_none()
    if accepted is not None:
        conn.execute(a.update().where(a.c.id == accepted).values(used_by_batch=d.batch_id))
        log.warning("feed %s: batch %s retires %d rows, as accepted by an operator", d.feed, d.batch_id, counts.retired)
        return accepted
    share = counts.retired / counts.live_before
    exc = RejectedBatch(
        "suspicious_shrink",
        f"this full snapshot would retire {counts.retired:,} of the {counts.live_before:,} live rows ({share:.0%}), "
        f"more than the contract allows at once (lidmMaxRetireFraction {limit:g}); it is held and nothing was "
        f"loaded. A truncated export? If the department really removed them, accept it with `lidm batch accept "
        f"{d.batch_id} --reason TEXT`, then run the feed again",
        file=d.file,
    )
    exc.content_digest = content  # type: ignore[attr-defined]  # what `lidm batch accept` lets through
    raise exc


def new_quarantine(conn: sa.Connection, feed: str, batch_id: str) -> int:
    """Rows this batch quarantined that no earlier batch of the feed had quarantined already."""
    q, earlier = quarantine, quarantine.alias("earlier")
    seen = (
        sa.select(earlier.c.id)
        .where(earlier.c.feed == feed, earlier.c.batch_id != batch_id, earlier.c.row_digest == q.c.row_digest)
        .exists()
    )
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(q)
        .where(q.c.batch_id == batch_id, sa.or_(q.c.row_digest.is_(None), ~seen))
    ).scalar_one()


def seal_batch(
    conn: sa.Connection,
    d: Delivery,
    keyring: Keyring,
    tallies: dict[str, int],
    *,
    content: str,
    watermark_from: str | None,
    watermark_to: str | None,
    newest_record: str | None = None,
    producer: Any = None,
    accepted: int | None = None,
) -> str:
    """Close a loaded batch in its own transaction: the signed manifest, the counts, the watermark, the consumers'
    releases and the audit entry (last: its lock is held only until the commit right after). Returns the receipt."""
    body, signature = manifest.sign(
        {
            "batch_id": d.batch_id,
            "feed": d.feed,
            "contract": d.contract.id,
            "version": d.contract.version,
            "source": d.source,
            "source_digest": d.source_digest,
            "content_digest": content,
            **tallies,
            "watermark": [watermark_from, watermark_to],
            "policy_digest": manifest.policy_digest(d.contract),
            "keys": {"token": keyring.token.active, "encrypt": keyring.encrypt.active},
            "producer": producer,  # the department's signed manifest, if any
        },
        keyring,
    )
    conn.execute(
        batch.update()
        .where(batch.c.batch_id == d.batch_id)
        .values(
            status="loaded",
            source_digest=d.source_digest,
            content_digest=content,
            **tallies,
            watermark_from=watermark_from,
            watermark_to=watermark_to,
            newest_record=newest_record,
            manifest=body,
            signature=signature,
            finished_at=datetime.now(UTC),
        )
    )
    if watermark_to is not None and d.contract.update_mode is UpdateMode.INCREMENTAL:
        advance_watermark(conn, d.feed, watermark_to, d.batch_id)
    release.sync(conn, keyring, [d.contract.table])  # consumers' released tables follow in the same commit
    audit.append(
        conn,
        actor="pipeline",
        action="batch.load",
        subject=d.batch_id,
        detail={"feed": d.feed, "contract": d.contract.id, "version": d.contract.version, "source": d.source}
        | tallies
        | {"content_digest": content, "signature": signature}
        | ({"accepted_shrink": accepted} if accepted else {}),
        keyring=keyring,
    )
    return json.dumps({"receipt": json.loads(body), "signature": signature}, ensure_ascii=False)


def reject_batch(engine: sa.Engine, d: Delivery, keyring: Keyring, exc: RejectedBatch) -> None:
    """Record a rejected batch (no data written) and its audit entry, in a transaction of their own."""
    with engine.begin() as conn:
        conn.execute(
            batch.insert().values(
                **d.batch_row(),
                source_digest=d.source_digest,
                content_digest=getattr(exc, "content_digest", None),
                status="rejected",
                reason=str(exc),
                extracted=0,
                finished_at=datetime.now(UTC),
            )
        )
        audit.append(
            conn,
            actor="pipeline",
            action="batch.reject",
            subject=d.batch_id,
            detail={"feed": d.feed, "contract": d.contract.id, "source": d.source, "reason": exc.reason},
            keyring=keyring,
        )


def read_watermark(engine: sa.Engine, feed: str) -> str | None:
    """Where the feed's next incremental read starts; None before anything was loaded."""
    with engine.connect() as conn:
        value = conn.execute(sa.select(watermark.c.value).where(watermark.c.feed == feed)).scalar_one_or_none()
    return value or None  # "": rows were held back before anything was loaded


def advance_watermark(conn: sa.Connection, feed: str, value: str, batch_id: str) -> None:
    now = datetime.now(UTC)
    updated = conn.execute(
        watermark.update().where(watermark.c.feed == feed).values(value=value, batch_id=batch_id, updated_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(watermark.insert().values(feed=feed, value=value, batch_id=batch_id, updated_at=now))


def record_clock(engine: sa.Engine, feed: str, clock: Any, deferred: int) -> None:
    """Keep the source's clock and the rows it held back beside the watermark, for `lidm status`."""
    now = datetime.now(UTC)
    values = {"source_clock": as_text(clock), "deferred": deferred, "checked_at": now}
    with engine.begin() as conn:
        updated = conn.execute(watermark.update().where(watermark.c.feed == feed).values(**values))
        if updated.rowcount == 0 and deferred:
            # Nothing loaded yet, but something held back: say so (the read position stays empty).
            conn.execute(watermark.insert().values(feed=feed, value="", batch_id="-", updated_at=now, **values))


def held_rows(engine: sa.Engine, batch_id: str | None, *columns: str) -> Iterator[sa.RowMapping]:
    """A batch's quarantined rows in source order (`columns` of them, else all): what goes back to the department.

    Read a slice at a time, so a batch that held back most of a big delivery still fits in memory."""
    q = quarantine
    picked = [q.c[c] for c in columns] if columns else [q]
    query = sa.select(*picked).where(q.c.batch_id == batch_id).order_by(q.c.row_number)
    with engine.connect() as conn:
        yield from conn.execute(query.execution_options(yield_per=HELD_PER_FETCH)).mappings()
