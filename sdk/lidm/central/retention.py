"""Retention: delete what has been kept longer than its contract allows, and old quarantine rows; audited.

A contract states its retention in ``customProperties``: ``lidmRetention`` (an ISO 8601 duration such as
``P5Y`` or ``P90D``; a year counts 365 days, a month 30) and, optionally, ``lidmRetentionField`` naming a date
or timestamp field stored clear by which a row ages. A contract without ``lidmRetention`` is never purged.

How a row ages, without ``lidmRetentionField``:

- a retired row (a full snapshot no longer held it) by the ``finished_at`` of the batch that retired it;
- a current row of an *incremental* contract by the ``finished_at`` of the batch that last wrote it;
- a current row of a *full-snapshot* contract never: the latest snapshot still holds it (a row re-delivered
  unchanged keeps its first batch id, so its batch says nothing about whether the data is still current).

With ``lidmRetentionField`` a row expires when that field is before the cutoff, retired or not.

Quarantine rows expire by their batch's ``finished_at`` after ``LIDM_QUARANTINE_RETENTION`` (default P1Y).
The cutoff is today's midnight (UTC) minus the retention. Batch records (counts, manifests) are kept. One
transaction; a purge that deleted something is recorded as ``retention.purge`` in the audit log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa

from lidm.central import audit, db, release
from lidm.central.schema import batch as batch_table
from lidm.central.schema import batch_text, dataset_table
from lidm.central.schema import quarantine as quarantine_table
from lidm.config import Settings, duration
from lidm.contracts import Contract, UpdateMode, load_catalog
from lidm.contracts.model import LogicalType, Protection
from lidm.errors import ConfigError
from lidm.keys import load_keyring_or_none


@dataclass
class PurgeResult:
    """Rows deleted (or, on a dry run, that would be) per dataset and from the quarantine; counts only."""

    today: date
    dry_run: bool
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)  # contract id -> {rows, cutoff, by}
    quarantine: int = 0
    quarantine_cutoff: str | None = None

    @property
    def total(self) -> int:
        return sum(d["rows"] for d in self.datasets.values()) + self.quarantine

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"total": self.total}


def _cutoff(today: date, text: str, what: str) -> datetime:
    limit = duration(text)
    if limit is None:
        raise ConfigError(f"{what}: retention {text} is not an ISO 8601 duration such as P1Y or P90D")
    return datetime.combine(today, time(), UTC) - limit


def _expired(contract: Contract, t: sa.Table, cutoff: datetime) -> tuple[sa.ColumnElement[bool], str]:
    """The rows of a dataset older than the cutoff, and what they were aged by."""
    b = batch_table
    if contract.retention_field:
        f = contract.field(contract.retention_field)
        if Protection.CLEAR not in f.protection or f.type not in (LogicalType.DATE, LogicalType.TIMESTAMP):
            raise ConfigError(
                f"{contract.id}: lidmRetentionField {f.name} must be a date or timestamp field stored clear"
            )
        value: Any = cutoff.date() if f.type is LogicalType.DATE else cutoff.replace(tzinfo=None)
        return t.c[f.name] < value, f"field {f.name}"
    old = sa.select(b.c.batch_id).where(b.c.finished_at < cutoff)
    expired = sa.and_(t.c._retired_batch.is_not(None), t.c._retired_batch.in_(old))
    if contract.update_mode is UpdateMode.INCREMENTAL:
        expired = sa.or_(expired, sa.and_(t.c._retired_batch.is_(None), batch_text(t.c._batch_id).in_(old)))
    return expired, "batch finished_at"


def purge_expired(settings: Settings, *, today: date | None = None, dry_run: bool = False) -> PurgeResult:
    """Delete rows past their contract's retention and quarantine rows past LIDM_QUARANTINE_RETENTION."""
    today = today or datetime.now(UTC).date()
    result = PurgeResult(today, dry_run)
    catalog = load_catalog(settings.contracts_dir)
    q_text = settings.quarantine_retention
    q_cutoff = _cutoff(today, q_text, "LIDM_QUARANTINE_RETENTION")
    result.quarantine_cutoff = q_cutoff.isoformat()
    engine = db.connect_current(settings)
    try:
        with engine.begin() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            for contract in catalog:
                if not contract.retention or contract.table not in tables:
                    continue
                cutoff = _cutoff(today, contract.retention, contract.id)
                t = dataset_table(contract, sa.MetaData())
                where, by = _expired(contract, t, cutoff)
                n = conn.execute(sa.select(sa.func.count()).select_from(t).where(where)).scalar_one()
                if n and not dry_run:
                    conn.execute(t.delete().where(where))
                result.datasets[contract.id] = {"rows": n, "cutoff": cutoff.isoformat(), "by": by}
            q, b = quarantine_table, batch_table
            old = q.c.batch_id.in_(sa.select(b.c.batch_id).where(b.c.finished_at < q_cutoff))
            result.quarantine = conn.execute(sa.select(sa.func.count()).select_from(q).where(old)).scalar_one()
            if result.quarantine and not dry_run:
                conn.execute(q.delete().where(old))
            if result.total and not dry_run:
                release.sync(conn, load_keyring_or_none(settings))
                audit.append(
                    conn,
                    actor="retention",
                    action="retention.purge",
                    subject=today.isoformat(),
                    detail={
                        "datasets": {k: v for k, v in result.datasets.items() if v["rows"]},
                        "quarantine": result.quarantine,
                        "quarantine_retention": q_text,
                        "operator": audit.operator(),
                    },
                    keyring=load_keyring_or_none(settings),
                )
    finally:
        engine.dispose()
    return result
