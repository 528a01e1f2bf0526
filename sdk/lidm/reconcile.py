"""Reconciliation: is everything the source holds in the central database, and nothing else?

`lidm reconcile FEED` reads the feed's source database again and computes, in this process, what the central
table should hold: per row the central key (the keyed token where the key is tokenized) and the keyed row
digest. It compares them with the live rows of the central table and with the feed's open quarantine, and
names every day (by the contract's watermark field) or key range (the first byte of the token) where rows
are missing, extra or different. Only tokens, digests and counts are compared; no raw value is written
anywhere, and the report holds days, key ranges and counts.

Rows the source has but the gateway rightly holds back are not "missing": rows quarantined by validation
(their digest is in the feed's open quarantine), rows dated after the incremental watermark (not read yet).
A drop feed is reconciled when it loads (the receipt's counts); this check is for database sources.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from lidm.adapter import Adapter
from lidm.central.schema import batch as batch_table
from lidm.central.schema import batch_text, dataset_table
from lidm.central.schema import quarantine as quarantine_table
from lidm.central.schema import reconcile as reconcile_table
from lidm.central.schema import watermark as watermark_table
from lidm.config import Settings
from lidm.contracts import UpdateMode
from lidm.contracts.model import LogicalType
from lidm.errors import ConfigError
from lidm.pipeline import Feed, connection_url, prepare
from lidm.transform import ChunkTransform

log = logging.getLogger("lidm.reconcile")
NO_DATE = "no date"


@dataclass
class Bucket:
    """One day or key range whose rows differ (counts only)."""

    bucket: str
    source: int = 0
    central: int = 0
    quarantined: int = 0
    missing: int = 0  # in the source, neither in the central table nor in quarantine
    extra: int = 0  # live in the central table, not in the source
    changed: int = 0  # in both, with different content


@dataclass
class Reconciliation:
    feed: str
    run_id: str
    checked_at: datetime
    bucket_kind: str  # day | key_range
    source_rows: int = 0
    central_rows: int = 0
    quarantined: int = 0
    not_yet_read: int = 0  # source rows after the incremental watermark
    missing: int = 0
    extra: int = 0
    changed: int = 0
    buckets: list[Bucket] = field(default_factory=list)  # only the ones that differ

    @property
    def status(self) -> str:
        return "ok" if not (self.missing or self.extra or self.changed) else "mismatch"

    def as_dict(self) -> dict:
        return asdict(self) | {"status": self.status, "checked_at": self.checked_at.isoformat()}


def _h64(values: pa.Array) -> np.ndarray:
    """The first 8 bytes of hex strings (tokens, digests) as integers: enough to tell rows apart, cheap to hold."""
    text = pc.utf8_slice_codeunits(pc.fill_null(pc.cast(values, pa.string()), ""), 0, 16)
    return np.array([int(v, 16) if v else 0 for v in text.to_pylist()], dtype=np.uint64)


def _key64(values: pa.Array, tokenized: bool) -> np.ndarray:
    if tokenized:
        return _h64(values)
    import hashlib

    return np.array(
        [
            int.from_bytes(hashlib.blake2b((v or "").encode(), digest_size=8).digest(), "big")
            for v in values.to_pylist()
        ],
        dtype=np.uint64,
    )


class _Side:
    """Key, digest and bucket of every row of one side, as compact arrays."""

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []
        self.digests: list[np.ndarray] = []
        self.buckets: list[np.ndarray] = []

    def add(self, keys: np.ndarray, digests: np.ndarray, buckets: np.ndarray) -> None:
        self.keys.append(keys)
        self.digests.append(digests)
        self.buckets.append(buckets)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.keys:
            return np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, object)
        return np.concatenate(self.keys), np.concatenate(self.digests), np.concatenate(self.buckets)


def reconcile(
    feed_name: Adapter | str,
    settings: Settings | None = None,
    *,
    connections: Mapping[str, str] | None = None,
    record: bool = True,
) -> Reconciliation:
    """Compare the feed's source with the central table; record the result for `lidm status` and the Feeds page."""
    feed = prepare(feed_name, settings)
    try:
        if not feed.adapter.source.rereadable:
            raise ConfigError(
                f"feed {feed.name}: reconcile compares a database source with the central table; a drop is checked "
                "when it loads (extracted = loaded + quarantined, in its receipt)"
            )
        result = _compare(feed, connection_url(feed.adapter, feed.settings, connections))
        if record:
            _record(feed, result)
        return result
    finally:
        feed.engine.dispose()


def _day_field(feed: Feed) -> str | None:
    """The contract's watermark (or first date-time) field, where the central table keeps it in clear."""
    c = feed.contract
    candidates = [c.watermark] if c.watermark else []
    candidates += [f.name for f in c.fields if f.type in (LogicalType.TIMESTAMP, LogicalType.DATE)]
    for name in candidates:
        if name and [col for col, _p in c.field(name).output_columns()] == [name]:
            return name
    return None


def _days(values: pa.Array) -> np.ndarray:
    """'YYYY-MM-DD' of date, timestamp or ISO-text values; NO_DATE where there is none."""
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        text = pc.strftime(values, format="%Y-%m-%d")
    else:
        text = pc.utf8_slice_codeunits(pc.cast(values, pa.string()), 0, 10)
    return np.array(pc.fill_null(text, NO_DATE).to_pylist(), dtype=object)


def _compare(feed: Feed, url: str) -> Reconciliation:
    contract, source = feed.contract, feed.adapter.source
    day_field = _day_field(feed)
    tokenized = contract.key_columns()[0] != contract.key[0]
    result = Reconciliation(feed.name, str(uuid.uuid4()), datetime.now(UTC), "day" if day_field else "key_range")
    transform = ChunkTransform(
        feed.adapter,
        contract,
        feed.keyring,
        feed=feed.name,
        batch_id="reconcile",
        city_prefix=feed.settings.city_prefix,
        timezone=feed.settings.timezone,
    )
    incremental = contract.update_mode is UpdateMode.INCREMENTAL
    upto = _stored_watermark(feed) if incremental else None

    def bucket_of(keys64: np.ndarray, days: np.ndarray | None) -> np.ndarray:
        if days is not None:
            return days
        return np.array([f"key range {int(k) >> 56:02x}" for k in keys64], dtype=object)

    src, held = _Side(), _Side()
    for chunk in source.batch(url, None, feed.settings.chunk_rows).chunks():
        rows, fp = transform.fingerprint(chunk)
        keep = np.ones(rows.num_rows, dtype=bool)
        days = _days(rows[day_field].combine_chunks()) if day_field else None
        if upto is not None and contract.watermark:
            wm = _as_timestamp(rows[contract.watermark].combine_chunks())
            if wm is not None:
                later = np.asarray(pc.fill_null(pc.greater(wm, pa.scalar(upto, wm.type)), False))
                result.not_yet_read += int(later.sum())
                keep &= ~later
        k64, d64 = _key64(fp["key"].combine_chunks(), tokenized), _h64(fp["digest"].combine_chunks())
        valid = np.asarray(fp["valid"].combine_chunks().to_numpy(zero_copy_only=False), dtype=bool)
        b = bucket_of(k64, days)
        good, bad = keep & valid, keep & ~valid
        src.add(k64[good], d64[good], b[good])
        held.add(k64[bad], d64[bad], b[bad])

    s_keys, s_dig, s_bucket = src.arrays()
    h_keys, h_dig, h_bucket = held.arrays()
    # A key twice in one delivery is quarantined whole (duplicate_key): move every occurrence to the held side.
    uniq, counts = np.unique(s_keys, return_counts=True)
    dup = np.isin(s_keys, uniq[counts > 1])
    h_dig, h_bucket = np.concatenate([h_dig, s_dig[dup]]), np.concatenate([h_bucket, s_bucket[dup]])
    s_keys, s_dig, s_bucket = s_keys[~dup], s_dig[~dup], s_bucket[~dup]

    c_keys, c_dig, c_bucket = _central(feed, day_field, tokenized, bucket_of)
    open_q = _open_quarantine(feed)
    result.source_rows = len(s_keys) + len(h_dig) + result.not_yet_read
    result.central_rows = len(c_keys)

    buckets: dict[str, Bucket] = {}

    def b(name: str) -> Bucket:
        return buckets.setdefault(name, Bucket(name))

    for name in s_bucket:
        b(name).source += 1
    for name in h_bucket:
        b(name).source += 1
    for name in c_bucket:
        b(name).central += 1
    in_q = np.isin(h_dig, open_q)
    result.quarantined = int(in_q.sum())
    for name, ok in zip(h_bucket, in_q, strict=True):
        if ok:
            b(name).quarantined += 1
        else:
            b(name).missing += 1  # held back by validation, yet not in the quarantine: lost without a trace
    order = np.argsort(c_keys)
    c_sorted = c_keys[order]
    pos = np.searchsorted(c_sorted, s_keys)
    found = (pos < len(c_sorted)) & (c_sorted[np.minimum(pos, max(len(c_sorted) - 1, 0))] == s_keys)
    found &= len(c_sorted) > 0
    c_match_dig = np.where(found, c_dig[order][np.minimum(pos, max(len(c_sorted) - 1, 0))], 0)
    # A row whose corrected version is still quarantined is not missing: its digest is in the open quarantine.
    quarantined_instead = ~found & np.isin(s_dig, open_q)
    for name, miss, diff, q in zip(s_bucket, ~found, found & (c_match_dig != s_dig), quarantined_instead, strict=True):
        if q:
            b(name).quarantined += 1
            result.quarantined += 1
        elif miss:
            b(name).missing += 1
        elif diff:
            b(name).changed += 1
    extra = ~np.isin(c_keys, s_keys) & ~np.isin(c_keys, h_keys)
    for name in c_bucket[extra]:
        b(name).extra += 1
    result.buckets = sorted((x for x in buckets.values() if x.missing or x.extra or x.changed), key=lambda x: x.bucket)
    result.missing = sum(x.missing for x in buckets.values())
    result.extra = sum(x.extra for x in buckets.values())
    result.changed = sum(x.changed for x in buckets.values())
    return result


def _as_timestamp(values: pa.Array) -> pa.Array | None:
    if pa.types.is_timestamp(values.type):
        return values if values.type.tz is None else pc.local_timestamp(values)
    try:
        return pc.cast(pc.cast(values, pa.string()), pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _stored_watermark(feed: Feed) -> datetime | None:
    with feed.engine.connect() as conn:
        value = conn.execute(
            sa.select(watermark_table.c.value).where(watermark_table.c.feed == feed.name)
        ).scalar_one_or_none()
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _central(feed: Feed, day_field: str | None, tokenized: bool, bucket_of) -> tuple[np.ndarray, ...]:  # type: ignore[no-untyped-def]
    """Live rows of the dataset that this feed's batches wrote (another feed of the same contract is not ours)."""
    t = dataset_table(feed.contract, sa.MetaData())
    key_col = t.c[feed.contract.key_columns()[0]]
    cols = [key_col, t.c._row_digest] + ([t.c[day_field]] if day_field else [])
    ours = sa.select(batch_table.c.batch_id).where(batch_table.c.feed == feed.name)
    query = sa.select(*cols).where(t.c._retired_batch.is_(None), batch_text(t.c._batch_id).in_(ours))
    side = _Side()
    with feed.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=50_000).execute(query)
        for part in result.partitions(50_000):
            keys = pa.array([r[0] for r in part], pa.string())
            k64 = _key64(keys, tokenized)
            days = _days(pa.array([r[2] for r in part])) if day_field else None
            side.add(k64, _h64(pa.array([r[1] for r in part], pa.string())), bucket_of(k64, days))
    return side.arrays()


def _open_quarantine(feed: Feed) -> np.ndarray:
    q = quarantine_table
    with feed.engine.connect() as conn:
        digests = conn.execute(
            sa.select(q.c.row_digest)
            .where(q.c.feed == feed.name, q.c.resolved_batch.is_(None), q.c.row_digest.is_not(None))
            .distinct()
        ).scalars()
        return _h64(pa.array(list(digests), pa.string()))


def _record(feed: Feed, r: Reconciliation) -> None:
    detail = [asdict(b) for b in r.buckets[:500]]
    with feed.engine.begin() as conn:
        conn.execute(
            reconcile_table.insert().values(
                run_id=r.run_id,
                feed=r.feed,
                checked_at=r.checked_at,
                status=r.status,
                bucket_kind=r.bucket_kind,
                source_rows=r.source_rows,
                central_rows=r.central_rows,
                quarantined=r.quarantined,
                missing=r.missing,
                extra=r.extra,
                changed=r.changed,
                detail=json.dumps(detail),
            )
        )
    if r.status != "ok":
        log.warning(
            "feed %s: reconciliation found %d missing, %d extra, %d changed rows in %d %s(s)",
            r.feed,
            r.missing,
            r.extra,
            r.changed,
            len(r.buckets),
            "day" if r.bucket_kind == "day" else "key range",
        )


def last_reconciliation(conn: sa.Connection, feed: str) -> dict | None:
    """The newest recorded result for a feed (status, counts, differing buckets), for status pages."""
    t = reconcile_table
    row = conn.execute(sa.select(t).where(t.c.feed == feed).order_by(t.c.checked_at.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    return dict(row) | {"detail": json.loads(row["detail"] or "[]")}
