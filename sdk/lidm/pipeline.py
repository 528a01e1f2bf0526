"""One feed, end to end: extract → conform → validate → protect → load, one transaction per batch.

The CLI, the DAGs and the test kit all call run_feed; nothing else runs a feed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from lidm.adapter import Adapter
from lidm.central import db, ledger
from lidm.central.holds import HELD_COLUMNS, Acceptance, accept_batch, held_csv
from lidm.central.loader import BatchWriter
from lidm.central.lock import feed_lock
from lidm.central.refusal import refusal
from lidm.central.schema import dataset_table
from lidm.central.stage import WORKER_SESSION, SharedStage
from lidm.central.stage import prepare as prepare_stages
from lidm.config import Settings, get_settings
from lidm.conform import check_columns, check_mapping
from lidm.contracts import Contract, UpdateMode, load_one
from lidm.errors import CentralUnavailable, ConfigError, LidmError, RejectedBatch, SourceError
from lidm.keys import Keyring, load_keyring
from lidm.producers import drop_trust
from lidm.protect import unseal
from lidm.registry import adapters, get_adapter
from lidm.sources import ReadOptions, SourceBatch
from lidm.sources.feedback import FeedbackRow, write_feedback
from lidm.sources.stores import open_store
from lidm.transform import ChunkTransform, can_fork, encrypt_payload, transform_chunks

log = logging.getLogger("lidm.pipeline")
MALFORMED_PER_INSERT = 5_000  # malformed rows of a text file encrypted and held back at a time
Progress = Callable[[str, int], None]


@dataclass
class BatchResult:
    """What one batch did; counts only, so it is safe for logs and XCom."""

    feed: str
    batch_id: str | None
    source: str
    status: str  # loaded | rejected | unchanged
    extracted: int = 0
    loaded: int = 0
    quarantined: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: int = 0
    deferred: int = 0  # rows dated after the source's clock: held back, read once their time comes
    reason: str | None = None
    top_reasons: list[tuple[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Unchanged(Exception):
    pass


@dataclass
class Feed:
    """Everything a run of one feed needs, resolved once."""

    adapter: Adapter
    contract: Contract
    settings: Settings
    keyring: Keyring
    engine: sa.Engine
    shared_stage: bool = False  # workers stage their rows themselves (PostgreSQL, more than one worker)

    @property
    def name(self) -> str:
        return self.adapter.name


def prepare(adapter: Adapter | str, settings: Settings | None = None) -> Feed:
    """Resolve adapter, contract, keys and the migrated central database for a feed."""
    settings = settings or get_settings()
    adapter = get_adapter(adapter) if isinstance(adapter, str) else adapter
    contract = load_one(adapter.contract, settings.contracts_dir)
    check_mapping(adapter, contract)
    _one_feed_per_snapshot(adapter, contract)
    keyring = load_keyring(settings)
    engine = db.connect(settings)
    try:
        db.ensure_current(engine, settings)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise CentralUnavailable(
            f"feed {adapter.contract}: the central database cannot be reached ({type(exc.orig).__name__}); "
            "nothing was read or written, the run can be retried"
        ) from None
    return Feed(adapter, contract, settings, keyring, engine)


def _one_feed_per_snapshot(adapter: Adapter, contract: Contract) -> None:
    """Two registered feeds of one full-snapshot contract would retire each other's rows on every run."""
    if contract.update_mode is not UpdateMode.FULL:
        return
    registered = adapters()
    if adapter.name not in registered:
        return
    others = sorted(n for n, a in registered.items() if a.contract == contract.id and n != adapter.name)
    if others:
        raise ConfigError(
            f"feed {adapter.name}: {contract.id} is a full snapshot and {', '.join(others)} also fills it; "
            "two feeds would retire each other's rows, so keep one adapter per full-snapshot contract"
        )


def run_feed(
    adapter: Adapter | str,
    settings: Settings | None = None,
    *,
    connections: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    since: str | None = None,
) -> list[BatchResult]:
    """Run every pending batch of a feed; returns one result per batch (none when nothing is pending).

    since: an incremental database feed reads from this time instead of its watermark (what `lidm reconcile`
    found missing is read again; rows already loaded change nothing; the watermark never moves back).
    """
    feed = prepare(adapter, settings)
    try:
        url = connection_url(feed.adapter, feed.settings, connections)
        # One run of a feed at a time: a second run waits, then stops having read and settled nothing.
        with feed_lock(feed.engine, feed.name, feed.settings.feed_lock_wait_seconds):
            return _run_locked(feed, url, progress, since)
    finally:
        feed.engine.dispose()


def _run_locked(feed: Feed, url: str, progress: Progress | None, since: str | None = None) -> list[BatchResult]:
    source = feed.adapter.source
    if since is not None and not source.incremental:
        raise ConfigError(f"feed {feed.name}: --since re-reads an incremental database source; this feed has none")
    incremental = source.incremental and feed.contract.update_mode is UpdateMode.INCREMENTAL
    wm = ledger.read_watermark(feed.engine, feed.name) if incremental else None
    if since is not None:
        wm = _earlier(since, wm)
    signed = getattr(source, "signed", False)
    trust = drop_trust(feed.settings, feed.name, feed.contract, signed) if source.delivers_files else None
    options = ReadOptions(wm, feed.settings.chunk_rows, incremental=incremental, trust=trust)
    # Stages an earlier run left (killed mid-batch) go now, under the lock; this run's workers stage their own.
    feed.shared_stage = prepare_stages(feed.engine, feed.name, wanted=feed.settings.workers > 1 and can_fork())
    results = []
    with source.read(url, feed.settings, options) as batches:
        for src in batches:
            result = run_batch(feed, src, progress)
            if "clock" in src.meta:
                result.deferred = src.meta["deferred"]
                _record_clock(feed, src)
            back = getattr(source, "feedback_table", None)  # a database table the department reads
            if back and result.status == "loaded" and result.quarantined:
                _feed_back(feed, url, back, result.batch_id)
            results.append(result)
    return results


def _feed_back(feed: Feed, url: str, table: str, batch_id: str | None) -> None:
    """Write the batch's quarantined rows to the department's feedback table: its own key value, field, reason."""
    key_conv = feed.adapter.converters().get(feed.contract.key[0])
    key_column = key_conv.column.lower() if key_conv else None
    now = datetime.now(UTC)
    rows = []
    for h in ledger.held_rows(feed.engine, batch_id):
        key = None
        if h["payload_kind"] == "raw_enc" and h["payload"] and key_column:
            # The department's own key value of the row it sent, back to its own database: nothing else of it.
            raw = json.loads(unseal(feed.keyring, h["payload"], f"quarantine/{feed.name}".encode()))
            value = {k.lower(): v for k, v in raw.items()}.get(key_column)
            key = None if value is None else str(value)[:64]
        rows.append(
            FeedbackRow(feed.name, h["batch_id"], now, key, h["row_number"], h["field"], h["reason"], h["message"])
        )
    try:
        write_feedback(url, table, rows)
    except Exception as exc:
        log.warning(
            "feed %s: could not write %d quarantine reasons to the department's table %s (%s); export them with "
            "`lidm quarantine export %s`",
            feed.name,
            len(rows),
            table,
            type(exc).__name__,
            feed.name,
        )


def accept_held(
    batch_id: str, note: str, settings: Settings | None = None, *, connections: Mapping[str, str] | None = None
) -> tuple[Acceptance, list[str]]:
    """Accept a held batch (audited) and, for a drop, put the delivery back so the feed's next run loads it."""
    settings = settings or get_settings()
    accepted = accept_batch(settings, batch_id, note=note)
    adapter = get_adapter(accepted.feed)
    if not adapter.source.delivers_files:
        return accepted, []  # a database source is read again by the next run anyway
    url = connection_url(adapter, settings, connections)
    store = open_store(url, settings)
    try:
        return accepted, adapter.source.return_delivery(store, accepted.source)
    finally:
        store.close()


def _earlier(since: str, stored: str | None) -> str:
    """Where a --since run starts: the earlier of the two (a later --since would skip rows)."""
    try:
        start = datetime.fromisoformat(since)
    except ValueError:
        raise ConfigError(f"--since {since!r} is not a date or time such as 2026-11-30 or 2026-11-30 08:00") from None
    if stored:
        try:
            if datetime.fromisoformat(stored) < start:
                return stored
        except ValueError:
            pass
    return start.isoformat(sep=" ")


def _record_clock(feed: Feed, src: SourceBatch) -> None:
    """Say when the source held rows back (dated after its own clock); the ledger keeps the figures for status."""
    deferred, clock, latest = src.meta["deferred"], src.meta["clock"], src.meta.get("deferred_latest")
    if deferred:
        ahead = f", up to {latest - clock} ahead" if latest is not None and latest.tzinfo == clock.tzinfo else ""
        log.warning(
            "feed %s: %d source row(s) are dated after the source's clock (%s%s); they are held back and read "
            "once their time comes. A clock ahead or a typing error in the update time?",
            feed.name,
            deferred,
            ledger.as_text(clock),
            ahead,
        )
    ledger.record_clock(feed.engine, feed.name, clock, deferred)


def connection_url(adapter: Adapter, settings: Settings, connections: Mapping[str, str] | None = None) -> str:
    """The source connection of a feed: given here, else from LIDM_CONNECTIONS."""
    name = adapter.source.connection
    for table in (connections or {}, settings.connections):
        if name in table:
            return table[name]
    raise ConfigError(
        f"feed {adapter.name}: no connection '{name}'; set LIDM_CONNECTIONS='{{\"{name}\": \"URL\"}}' "
        "or an Airflow connection of that id"
    )


def run_batch(feed: Feed, src: SourceBatch, progress: Progress | None = None) -> BatchResult:
    """Load one batch atomically; a data fault rejects it whole and says why."""
    batch_id = str(uuid.uuid4())
    started = datetime.now(UTC)
    result = BatchResult(feed.name, batch_id, src.name, "loaded")
    stage = None
    if feed.shared_stage:  # in a table the workers' sessions can see; the batch drops it when it loads
        workers = db.connect(feed.settings, pooled=False, name=WORKER_SESSION)
        stage = SharedStage(feed.engine, workers, feed.name, batch_id)
    try:
        with feed.engine.begin() as conn:
            receipt = _load(conn, feed, src, result, started, progress, stage)
    except _Unchanged:
        log.info("feed %s: %s changes nothing; no batch recorded", feed.name, src.name)
        src.on_loaded("unchanged", json.dumps({"status": "unchanged", "source": src.name}))
        return BatchResult(feed.name, None, src.name, "unchanged", extracted=result.extracted)
    except RejectedBatch as exc:
        return _reject(feed, src, batch_id, started, exc, result.extracted)
    except LidmError:
        raise  # the gateway's own errors say whether to retry (source, central database) or fix; the delivery stays
    except (OSError, MemoryError) as exc:  # the machine, not the delivery: a full disk, a vanished mount
        raise SourceError(
            f"feed {feed.name}: batch {batch_id} stopped on the machine's side ({type(exc).__name__}"
            f"{': ' + exc.strerror if isinstance(exc, OSError) and exc.strerror else ''}); nothing was written, "
            "the delivery stays where it is and the run can be retried"
        ) from None
    except Exception as exc:
        file = src.meta.get("file", src.name)
        refused = refusal(feed.name, feed.contract, feed.settings, batch_id, exc, file)
        return _reject(feed, src, batch_id, started, refused, result.extracted)
    finally:
        if stage is not None:
            stage.discard()
    log.info(
        "feed %s batch %s: extracted %d loaded %d quarantined %d",
        feed.name,
        batch_id,
        result.extracted,
        result.loaded,
        result.quarantined,
    )
    src.on_loaded(batch_id, receipt)
    if result.quarantined and src.on_feedback is not None:
        _reasons_back(feed, src.on_feedback, batch_id)
    return result


def _reasons_back(feed: Feed, write: Callable[[str], None], batch_id: str) -> None:
    """The department's copy of what this delivery had held back: where (the row's key masked, its record time) and
    why, never a value of the row's content."""
    try:
        write(held_csv(ledger.held_rows(feed.engine, batch_id, *HELD_COLUMNS)))
    except (OSError, LidmError) as exc:
        log.warning(
            "feed %s: the reasons of batch %s could not be put next to the delivery (%s); export them with "
            "`lidm quarantine export %s`",
            feed.name,
            batch_id,
            type(exc).__name__,
            feed.name,
        )


def _load(
    conn: sa.Connection,
    feed: Feed,
    src: SourceBatch,
    result: BatchResult,
    started: datetime,
    progress: Progress | None,
    stage: SharedStage | None = None,
) -> str:
    """Everything inside the batch's transaction; fills `result` and returns the signed receipt."""
    contract, keyring, batch_id = feed.contract, feed.keyring, result.batch_id
    table = dataset_table(contract, sa.MetaData())
    names = {f: c.column for f, c in feed.adapter.converters().items()}  # held rows named in the source's terms
    mem = feed.settings.central_work_mem
    writer = BatchWriter(conn, contract, table, batch_id, feed.name, work_mem=mem, source_names=names, shared=stage)
    transform = ChunkTransform(
        feed.adapter,
        contract,
        keyring,
        feed=feed.name,
        batch_id=batch_id,
        city_prefix=feed.settings.city_prefix,
        timezone=feed.settings.timezone,
        copy_input=writer.copy_input,
    )
    content = hashlib.sha256()
    file = src.meta.get("file", src.name)
    reasons: Counter[str] = Counter()
    newest = None
    delivery = ledger.Delivery(feed.name, contract, batch_id, src.name, file, started)
    ledger.open_batch(conn, delivery, keyring)
    parts = transform_chunks(transform, _chunks(src, feed.adapter, file), feed.settings.workers, writer.sink)
    with contextlib.closing(parts):  # a failure stops the workers here, before the stage is dropped
        for part in parts:
            result.extracted += part.rows + _hold_malformed(feed, src, reasons, writer)
            content.update(part.digests)
            reasons.update(part.reasons)
            writer.take(part.quarantine, part.copy, part.protected)
            if part.newest is not None and (newest is None or part.newest > newest):
                newest = part.newest
            if progress:
                progress(feed.name, part.rows)
    result.extracted += _hold_malformed(feed, src, reasons, writer)  # those after the last good row
    delivery.source_digest = src.source_digest()
    ledger.refuse_replay(conn, delivery, result.extracted)
    content = content.hexdigest()
    if contract.update_mode is UpdateMode.FULL and ledger.last_content(conn, feed.name) == content:
        raise _Unchanged
    counts = writer.finish(retire_missing=contract.update_mode is UpdateMode.FULL)
    accepted = ledger.guard_shrink(conn, delivery, counts, content) if counts.retired else None
    if counts.duplicates:
        reasons["duplicate_key"] += counts.duplicates
    for name in ("loaded", "inserted", "updated", "unchanged", "retired"):
        setattr(result, name, getattr(counts, name))
    result.quarantined = writer.quarantined
    result.top_reasons = reasons.most_common(5)
    if (
        contract.update_mode is UpdateMode.INCREMENTAL
        and not (counts.inserted or counts.updated)
        and not ledger.new_quarantine(conn, feed.name, batch_id)
    ):
        raise _Unchanged  # only boundary rows seen again (good or already quarantined): record nothing
    if result.extracted != result.loaded + result.quarantined:
        raise LidmError(
            f"batch {batch_id}: extracted {result.extracted} != loaded {result.loaded} + quarantined "
            f"{result.quarantined}; rolled back"
        )
    return ledger.seal_batch(
        conn,
        delivery,
        keyring,
        {k: getattr(result, k) for k in ledger.COUNTS},
        content=content,
        watermark_from=ledger.as_text(src.watermark_from),
        watermark_to=ledger.as_text(src.watermark_to()),
        newest_record=ledger.as_text(newest),
        producer=src.meta.get("state", {}).get("producer"),
        accepted=accepted,
    )


def _chunks(src: SourceBatch, adapter: Adapter, file: str) -> Iterator[pa.Table]:
    first = True
    for chunk in src.chunks():
        if first:
            check_columns(chunk.column_names, adapter, file)
            first = False
        yield chunk


def _hold_malformed(feed: Feed, src: SourceBatch, reasons: Counter[str], writer: BatchWriter) -> int:
    """Hold back the rows with too many or too few fields the reader has found so far, taking them from it a slice
    at a time (memory stays bounded however many there are); returns how many."""
    found = src.meta.get("state", {}).get("malformed")
    held = 0
    while found:
        taken = found[:MALFORMED_PER_INSERT]
        del found[: len(taken)]
        writer.quarantine([_malformed_row(feed, m, reasons) for m in taken])
        held += len(taken)
    return held


def _malformed_row(feed: Feed, m: dict[str, Any], reasons: Counter[str]) -> dict[str, Any]:
    reasons["malformed_row"] += 1
    return {
        "row_number": m["row"],
        "line_number": m.get("line"),
        "field": None,
        "reason": "malformed_row",
        "message": f"row has {m['actual']} fields, the header has {m['expected']}",
        "payload_kind": "raw_enc",
        "payload": encrypt_payload(feed.keyring, feed.name, {"text": m["text"]}),
    }


def _reject(
    feed: Feed, src: SourceBatch, batch_id: str, started: datetime, exc: RejectedBatch, extracted: int
) -> BatchResult:
    """Record a rejected batch (no data written) and move the delivery aside with its reason."""
    d = ledger.Delivery(feed.name, feed.contract, batch_id, src.name, src.meta.get("file", src.name), started)
    d.source_digest = src.source_digest()
    ledger.reject_batch(feed.engine, d, feed.keyring, exc)
    log.warning("feed %s: batch %s rejected: %s", feed.name, batch_id, exc)
    src.on_rejected(f"batch {batch_id} rejected\n{exc}")
    return BatchResult(
        feed.name, batch_id, src.name, "rejected", extracted=extracted, reason=str(exc), top_reasons=[(exc.reason, 1)]
    )
