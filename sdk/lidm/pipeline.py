"""One feed, end to end: extract → conform → validate → protect → load, one transaction per batch.

The CLI, the DAGs and the test kit all call run_feed; nothing else runs a feed.
"""

from __future__ import annotations

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

from lidm import audit, manifest
from lidm.adapter import Adapter
from lidm.central import db
from lidm.central.loader import BatchWriter
from lidm.central.schema import batch as batch_table
from lidm.central.schema import dataset_table
from lidm.central.schema import quarantine as quarantine_table
from lidm.central.schema import watermark as watermark_table
from lidm.config import Settings, get_settings
from lidm.conform import check_columns, check_mapping
from lidm.contracts import Contract, UpdateMode, load_one
from lidm.errors import CentralUnavailable, ConfigError, LidmError, RejectedBatch
from lidm.keys import Keyring, load_keyring
from lidm.producers import drop_trust
from lidm.registry import adapters, get_adapter
from lidm.retokenize import check_epoch
from lidm.sources import DropSource, SourceBatch, SqlSource
from lidm.sources.drops import open_store
from lidm.transform import ChunkTransform, encrypt_payload, transform_chunks

log = logging.getLogger("lidm.pipeline")
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
    reason: str | None = None
    top_reasons: list[tuple[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COUNTS = ("extracted", "loaded", "quarantined", "inserted", "updated", "unchanged", "retired")


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
        if not db.is_current(engine):
            db.migrate(engine)
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
) -> list[BatchResult]:
    """Run every pending batch of a feed; returns one result per batch (none when nothing is pending)."""
    feed = prepare(adapter, settings)
    try:
        url = _connection(feed, connections)
        source = feed.adapter.source
        if isinstance(source, SqlSource):
            wm = _watermark(feed) if feed.contract.update_mode is UpdateMode.INCREMENTAL else None
            return [run_batch(feed, source.batch(url, wm, feed.settings.chunk_rows), progress)]
        if isinstance(source, DropSource):
            store = open_store(url, feed.settings)
            trust = drop_trust(feed.settings, feed.name, feed.contract, source.signed)
            try:
                return [run_batch(feed, b, progress) for b in source.batches(store, trust=trust)]
            finally:
                store.close()
        raise ConfigError(f"adapter {feed.name}: unknown source type {type(source).__name__}")
    finally:
        feed.engine.dispose()


def _connection(feed: Feed, connections: Mapping[str, str] | None) -> str:
    name = feed.adapter.source.connection
    for table in (connections or {}, feed.settings.connections):
        if name in table:
            return table[name]
    raise ConfigError(
        f"feed {feed.name}: no connection '{name}'; set LIDM_CONNECTIONS='{{\"{name}\": \"URL\"}}' "
        "or an Airflow connection of that id"
    )


def _watermark(feed: Feed) -> str | None:
    with feed.engine.connect() as conn:
        return conn.execute(
            sa.select(watermark_table.c.value).where(watermark_table.c.feed == feed.name)
        ).scalar_one_or_none()


def run_batch(feed: Feed, src: SourceBatch, progress: Progress | None = None) -> BatchResult:
    """Load one batch atomically; a data fault rejects it whole and says why."""
    batch_id = str(uuid.uuid4())
    started = datetime.now(UTC)
    result = BatchResult(feed.name, batch_id, src.name, "loaded")
    try:
        with feed.engine.begin() as conn:
            receipt = _load(conn, feed, src, result, started, progress)
    except _Unchanged:
        log.info("feed %s: %s changes nothing; no batch recorded", feed.name, src.name)
        src.on_loaded("unchanged", json.dumps({"status": "unchanged", "source": src.name}))
        return BatchResult(feed.name, None, src.name, "unchanged", extracted=result.extracted)
    except RejectedBatch as exc:
        return _reject(feed, src, batch_id, started, exc, result.extracted)
    except sa.exc.DBAPIError as exc:
        # Driver messages can quote the offending row; say what failed, never the values.
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "-"
        if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
            raise CentralUnavailable(
                f"feed {feed.name}: the central database connection was lost during batch {batch_id} "
                f"({type(exc.orig).__name__}, SQLSTATE {code}); nothing was written, the run can be retried."
            ) from None
        raise LidmError(
            f"feed {feed.name}: central database refused batch {batch_id} ({type(exc.orig).__name__}, "
            f"SQLSTATE {code}); nothing was written. Check the migration state with `lidm db upgrade`."
        ) from None
    log.info(
        "feed %s batch %s: extracted %d loaded %d quarantined %d",
        feed.name,
        batch_id,
        result.extracted,
        result.loaded,
        result.quarantined,
    )
    src.on_loaded(batch_id, receipt)
    return result


def _load(
    conn: sa.Connection,
    feed: Feed,
    src: SourceBatch,
    result: BatchResult,
    started: datetime,
    progress: Progress | None,
) -> str:
    """Everything inside the batch's transaction; fills `result` and returns the signed receipt."""
    contract, keyring, batch_id = feed.contract, feed.keyring, result.batch_id
    table = dataset_table(contract, sa.MetaData())
    writer = BatchWriter(conn, contract, table, batch_id, feed.name, work_mem=feed.settings.central_work_mem)
    transform = ChunkTransform(
        feed.adapter,
        contract,
        keyring,
        feed=feed.name,
        batch_id=batch_id,
        city_prefix=feed.settings.city_prefix,
        timezone=feed.settings.timezone,
        csv_columns=writer.copy_columns,
    )
    content = hashlib.sha256()
    file = src.meta.get("file", src.name)
    reasons: Counter[str] = Counter()
    conn.execute(
        batch_table.insert().values(
            batch_id=batch_id,
            feed=feed.name,
            contract_id=contract.id,
            contract_version=contract.version,
            source_name=src.name,
            status="loading",
            started_at=started,
        )
    )
    check_epoch(conn, keyring)  # after the batch row: a running re-tokenization has committed by now
    for part in transform_chunks(transform, _chunks(src, feed.adapter, file), feed.settings.workers):
        result.extracted += part.rows
        content.update(part.digests)
        reasons.update(part.reasons)
        writer.quarantine(part.quarantine)
        if part.csv is not None:
            writer.write_csv(part.csv)
        elif part.protected is not None:
            writer.write(part.protected)
        if progress:
            progress(feed.name, part.rows)
    malformed = src.meta.get("state", {}).get("malformed") or []
    if malformed:
        result.extracted += len(malformed)
        writer.quarantine([_malformed_row(feed, m, reasons) for m in malformed])
    _refuse_replay(conn, feed, src, file, contract, result.extracted)
    content = content.hexdigest()
    if contract.update_mode is UpdateMode.FULL and _last_content(conn, feed) == content:
        raise _Unchanged
    counts = writer.finish(retire_missing=contract.update_mode is UpdateMode.FULL)
    if counts.duplicates:
        reasons["duplicate_key"] += counts.duplicates
    for name in ("loaded", "inserted", "updated", "unchanged", "retired"):
        setattr(result, name, getattr(counts, name))
    result.quarantined = writer.quarantined
    result.top_reasons = reasons.most_common(5)
    if (
        contract.update_mode is UpdateMode.INCREMENTAL
        and not (counts.inserted or counts.updated)
        and not _new_quarantine(conn, feed.name, batch_id)
    ):
        raise _Unchanged  # only boundary rows seen again (good or already quarantined): record nothing
    if result.extracted != result.loaded + result.quarantined:
        raise LidmError(
            f"batch {batch_id}: extracted {result.extracted} != loaded {result.loaded} + quarantined "
            f"{result.quarantined}; rolled back"
        )
    wm_from, wm_to = _wm(src.watermark_from), _wm(src.watermark_to())
    tallies = {k: getattr(result, k) for k in COUNTS}
    body, signature = manifest.sign(
        {
            "batch_id": batch_id,
            "feed": feed.name,
            "contract": contract.id,
            "version": contract.version,
            "source": src.name,
            "source_digest": src.source_digest(),
            "content_digest": content,
            **tallies,
            "watermark": [wm_from, wm_to],
            "policy_digest": manifest.policy_digest(contract),
            "keys": {"token": keyring.token.active, "encrypt": keyring.encrypt.active},
            "producer": src.meta.get("state", {}).get("producer"),  # the department's signed manifest, if any
        },
        keyring,
    )
    conn.execute(
        batch_table.update()
        .where(batch_table.c.batch_id == batch_id)
        .values(
            status="loaded",
            source_digest=src.source_digest(),
            content_digest=content,
            **tallies,
            watermark_from=wm_from,
            watermark_to=wm_to,
            manifest=body,
            signature=signature,
            finished_at=datetime.now(UTC),
        )
    )
    if wm_to is not None and contract.update_mode is UpdateMode.INCREMENTAL:
        _advance_watermark(conn, feed.name, wm_to, batch_id)
    # Last statement of the batch's transaction: the audit lock is held only until the commit right after.
    audit.append(
        conn,
        actor="pipeline",
        action="batch.load",
        subject=batch_id,
        detail={"feed": feed.name, "contract": contract.id, "version": contract.version, "source": src.name}
        | tallies
        | {"content_digest": content, "signature": signature},
        keyring=keyring,
    )
    return json.dumps({"receipt": json.loads(body), "signature": signature}, ensure_ascii=False)


def _new_quarantine(conn: sa.Connection, feed: str, batch_id: str) -> int:
    """Rows this batch quarantined that no earlier batch of the feed had quarantined already."""
    q, earlier = quarantine_table, quarantine_table.alias("earlier")
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


def _chunks(src: SourceBatch, adapter: Adapter, file: str) -> Iterator[pa.Table]:
    first = True
    for chunk in src.chunks():
        if first:
            check_columns(chunk.column_names, adapter, file)
            first = False
        yield chunk


def _wm(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat(sep=" ") if hasattr(value, "isoformat") else str(value)


def _malformed_row(feed: Feed, m: dict[str, Any], reasons: Counter[str]) -> dict[str, Any]:
    reasons["malformed_row"] += 1
    return {
        "row_number": m["row"],
        "field": None,
        "reason": "malformed_row",
        "message": f"row has {m['actual']} fields, the header has {m['expected']}",
        "payload_kind": "raw_enc",
        "payload": encrypt_payload(feed.keyring, feed.name, {"text": m["text"]}),
    }


def _refuse_replay(conn, feed, src, file, contract, extracted) -> None:  # type: ignore[no-untyped-def]
    digest = src.source_digest()
    if digest:
        earlier = conn.execute(
            sa.select(batch_table.c.batch_id, batch_table.c.started_at).where(
                batch_table.c.feed == feed.name,
                batch_table.c.source_digest == digest,
                batch_table.c.status == "loaded",
            )
        ).first()
        if earlier:
            raise RejectedBatch(
                "replay",
                f"this exact file was already loaded in batch {earlier.batch_id} "
                f"({earlier.started_at:%Y-%m-%d %H:%M}); nothing was loaded again",
                file=file,
            )
    if extracted == 0 and contract.update_mode is UpdateMode.FULL:
        raise RejectedBatch(
            "empty_snapshot", "a full snapshot with no rows would retire the whole dataset; refused", file=file
        )


def _last_content(conn: sa.Connection, feed: Feed) -> str | None:
    return conn.execute(
        sa.select(batch_table.c.content_digest)
        .where(batch_table.c.feed == feed.name, batch_table.c.status == "loaded")
        .order_by(batch_table.c.started_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def _advance_watermark(conn: sa.Connection, feed: str, value: str, batch_id: str) -> None:
    now = datetime.now(UTC)
    updated = conn.execute(
        watermark_table.update()
        .where(watermark_table.c.feed == feed)
        .values(value=value, batch_id=batch_id, updated_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(watermark_table.insert().values(feed=feed, value=value, batch_id=batch_id, updated_at=now))


def _reject(
    feed: Feed, src: SourceBatch, batch_id: str, started: datetime, exc: RejectedBatch, extracted: int
) -> BatchResult:
    """Record a rejected batch (no data written) and move the delivery aside with its reason."""
    with feed.engine.begin() as conn:
        conn.execute(
            batch_table.insert().values(
                batch_id=batch_id,
                feed=feed.name,
                contract_id=feed.contract.id,
                contract_version=feed.contract.version,
                source_name=src.name,
                source_digest=src.source_digest(),
                status="rejected",
                reason=str(exc),
                extracted=0,
                started_at=started,
                finished_at=datetime.now(UTC),
            )
        )
        audit.append(
            conn,
            actor="pipeline",
            action="batch.reject",
            subject=batch_id,
            detail={"feed": feed.name, "contract": feed.contract.id, "source": src.name, "reason": exc.reason},
            keyring=feed.keyring,
        )
    log.warning("feed %s: batch %s rejected: %s", feed.name, batch_id, exc)
    src.on_rejected(f"batch {batch_id} rejected\n{exc}")
    return BatchResult(
        feed.name, batch_id, src.name, "rejected", extracted=extracted, reason=str(exc), top_reasons=[(exc.reason, 1)]
    )
