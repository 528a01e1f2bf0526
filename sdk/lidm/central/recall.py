"""Recall a loaded batch: take back what it put into the central database, in one transaction, audited.

What a recall does to the batch's dataset table and bookkeeping:

- rows the batch **inserted or updated** (``_batch_id`` = the batch) are deleted. A row the batch *updated*
  replaced an earlier version in place (the upsert keeps no history), so that earlier version is gone and a
  recall cannot bring it back: deleting the row removes the key until the department delivers it again. The
  batch's ``updated`` count says how many such rows it wrote, so a recall of a batch with ``updated > 0`` is
  REFUSED unless ``force=True`` (``--force``); forced, those rows are deleted too and the result and the audit
  entry carry their count (``overwritten``). Rows a later batch rewrote belong to that batch and are kept;
  rows the batch saw unchanged keep their earlier batch id and are kept.
- rows the batch **retired** (``_retired_batch`` = the batch, a full snapshot's missing rows) are un-retired.
- the batch's **quarantine** rows are deleted (a re-delivery quarantines its bad rows again).
- the batch is marked ``status = recalled`` with ``recalled_at`` and ``recall_reason``; its counts, manifest
  and signature stay as the record of what was loaded.
- the feed's **watermark**, when it points at this batch, is rewound to the previous loaded batch's
  ``watermark_to`` (or removed when there is none), so an incremental source is read again from there.
  When it points at a later batch it is left alone and the result says so.
- the consumers whose grants cover the dataset (with their row scope) are listed in the result and in the
  ``batch.recall`` audit entry: the grants of the current catalogue, i.e. who could read the rows while they
  were loaded (grant changes since then show in the audit log's ``grants.apply`` entries).

A full-snapshot batch can be recalled only while it is the feed's latest loaded batch: a later snapshot
restated the whole dataset on top of it (recall the later ones first). The replay guard and the
unchanged-snapshot check consider only ``loaded`` batches, so the same drop or content can be delivered again
after a recall.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from lidm.central import audit, db, release
from lidm.central.schema import batch as batch_table
from lidm.central.schema import dataset_table
from lidm.central.schema import quarantine as quarantine_table
from lidm.central.schema import watermark as watermark_table
from lidm.config import Settings
from lidm.contracts import Contract, UpdateMode, load_catalog
from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import RowScope
from lidm.errors import LidmError
from lidm.keys import load_keyring_or_none


@dataclass
class RecallResult:
    """What a recall did: counts, the watermark and who could read the rows; never a personal value."""

    batch_id: str
    feed: str
    contract: str
    table: str
    reason: str
    removed: int = 0  # rows of the batch deleted from the dataset table
    overwritten: int = 0  # of the batch's rows, those that had replaced an earlier version (now lost)
    unretired: int = 0  # rows the batch had retired, current again
    quarantine_removed: int = 0
    watermark: str = "unchanged"  # rewound | removed | unchanged | kept_later (points at a later batch)
    watermark_value: str | None = None  # the feed's watermark after the recall
    consumers: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def readers(catalog: ContractCatalog, contract: Contract) -> list[dict[str, Any]]:
    """Consumers whose grant covers the dataset, with the fields and the rows (scope) it lets them read."""
    from lidm.central.grants import deciding_grant

    if catalog.consumers is None:
        return []
    out = []
    for consumer in catalog.consumers.members.values():
        grants = [g for c, g in catalog.grants_for(consumer.id) if c.id == contract.id]
        if not grants:
            continue
        grant = deciding_grant(consumer.id, contract, grants)
        entry: dict[str, Any] = {"consumer": consumer.id, "rows": grant.rows.value, "fields": sorted(grant.fields)}
        if RowScope.OWN_DISTRICTS in (grant.rows, RowScope.OWN_DEPARTMENT_DISTRICTS):
            entry["districts"] = list(consumer.districts or ())
        if RowScope.OWN_DEPARTMENT in (grant.rows, RowScope.OWN_DEPARTMENT_DISTRICTS):
            entry["department"] = consumer.acts_for
        if grant.rows is RowScope.OWN_STREETS:
            entry["streets"] = list(consumer.streets)
        out.append(entry)
    return sorted(out, key=lambda e: e["consumer"])


def recall_batch(settings: Settings, batch_id: str, *, reason: str, force: bool = False) -> RecallResult:
    """Take a loaded batch back out of the central database in one transaction (see the module doc)."""
    if not reason or not reason.strip():
        raise LidmError("recall: say why (--reason); it is recorded with the batch and in the audit log")
    catalog = load_catalog(settings.contracts_dir)
    keyring = load_keyring_or_none(settings)
    engine = db.connect_current(settings)
    b = batch_table
    try:
        with engine.begin() as conn:
            row = conn.execute(sa.select(b).where(b.c.batch_id == batch_id)).first()
            if row is None:
                raise LidmError(f"recall: no batch {batch_id}; `lidm batch list` shows the batches")
            if row.status != "loaded":
                raise LidmError(f"recall: batch {batch_id} is {row.status}, not loaded; nothing to recall")
            contract = catalog[row.contract_id]
            later = (
                conn.execute(
                    sa.select(b.c.batch_id)
                    .where(b.c.feed == row.feed, b.c.status == "loaded", b.c.started_at > row.started_at)
                    .order_by(b.c.started_at)
                )
                .scalars()
                .all()
            )
            if later and contract.update_mode is UpdateMode.FULL:
                raise LidmError(
                    f"recall: {row.feed} is a full snapshot and later batch(es) {', '.join(later)} restated it "
                    "on top of this one; recall those first (newest first)"
                )
            if row.updated and not force:
                raise LidmError(
                    f"recall: batch {batch_id} overwrote {row.updated} row(s) loaded by earlier batches; their "
                    "earlier versions are not kept, so a recall deletes those keys until the department delivers "
                    "them again. Re-run with --force to recall it anyway"
                )
            result = RecallResult(batch_id, row.feed, contract.id, contract.table, reason.strip())
            t = dataset_table(contract, sa.MetaData())
            result.removed = conn.execute(t.delete().where(t.c._batch_id == batch_id)).rowcount
            result.overwritten = min(int(row.updated or 0), result.removed)
            result.unretired = conn.execute(
                t.update().where(t.c._retired_batch == batch_id).values(_retired_batch=None)
            ).rowcount
            q = quarantine_table
            result.quarantine_removed = conn.execute(q.delete().where(q.c.batch_id == batch_id)).rowcount
            _rewind(conn, row, result)
            conn.execute(
                b.update()
                .where(b.c.batch_id == batch_id)
                .values(status="recalled", recalled_at=datetime.now(UTC), recall_reason=result.reason)
            )
            result.consumers = readers(catalog, contract)
            release.sync(conn, keyring)
            audit.append(
                conn,
                actor="recall",
                action="batch.recall",
                subject=batch_id,
                detail={k: v for k, v in result.as_dict().items() if k not in ("batch_id", "watermark_value")}
                | {"operator": audit.operator(), "forced": bool(force and row.updated)},
                keyring=keyring,
            )
    finally:
        engine.dispose()
    return result


def _rewind(conn: sa.Connection, row: Any, result: RecallResult) -> None:
    """Point the feed's watermark back at the previous loaded batch when it points at the recalled one."""
    w, b = watermark_table, batch_table
    current = conn.execute(sa.select(w).where(w.c.feed == row.feed)).first()
    if current is None:
        return
    if current.batch_id != row.batch_id:
        result.watermark, result.watermark_value = "kept_later", current.value
        return
    previous = conn.execute(
        sa.select(b.c.batch_id, b.c.watermark_to)
        .where(
            b.c.feed == row.feed,
            b.c.status == "loaded",
            b.c.batch_id != row.batch_id,
            b.c.started_at < row.started_at,
            b.c.watermark_to.is_not(None),
        )
        .order_by(b.c.started_at.desc())
        .limit(1)
    ).first()
    if previous is None:
        conn.execute(w.delete().where(w.c.feed == row.feed))
        result.watermark = "removed"
        return
    conn.execute(
        w.update()
        .where(w.c.feed == row.feed)
        .values(value=previous.watermark_to, batch_id=previous.batch_id, updated_at=datetime.now(UTC))
    )
    result.watermark, result.watermark_value = "rewound", previous.watermark_to


def list_batches(settings: Settings, *, feed: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest batches (of one feed), with status, counts and recall details; from a database already set up."""
    b = batch_table
    cols = [
        b.c.batch_id,
        b.c.feed,
        b.c.source_name,
        b.c.status,
        b.c.reason,
        b.c.started_at,
        b.c.finished_at,
        b.c.extracted,
        b.c.loaded,
        b.c.quarantined,
        b.c.inserted,
        b.c.updated,
        b.c.retired,
        b.c.watermark_to,
        b.c.recalled_at,
        b.c.recall_reason,
    ]
    query = sa.select(*cols).order_by(b.c.started_at.desc()).limit(limit)
    if feed:
        query = query.where(b.c.feed == feed)
    engine = db.connect_existing(settings)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()
