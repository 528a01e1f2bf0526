"""Feed health for operators: per feed the last batch and its counts, top quarantine reasons, freshness
against the contract; per department the open and overdue warnings. Counts only, never a person's data.

The Feeds page of the Airflow plugin and `lidm status` both render what this module returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from lidm.central import db
from lidm.central.schema import batch as batch_table
from lidm.central.schema import dataset_table
from lidm.central.schema import quarantine as quarantine_table
from lidm.central.schema import reconcile as reconcile_table
from lidm.central.schema import watermark as watermark_table
from lidm.config import Settings, duration
from lidm.contracts import Contract, load_catalog
from lidm.errors import LidmError
from lidm.registry import adapters

WARNING_CONTRACT = "platform.warning"
OPEN_WARNING = ("raised", "pushed", "acknowledged", "overdue")


@dataclass
class FeedStatus:
    feed: str
    contract: str
    title: str
    department: str
    contract_version: str
    source: str
    freshness: str | None  # ISO 8601 duration from the contract, e.g. P1D
    state: str  # fresh | late | never | failing
    last_status: str | None = None  # loaded | rejected
    last_version: str | None = None  # contract version the last batch was loaded under
    last_started: datetime | None = None
    last_loaded: datetime | None = None  # when data last arrived
    extracted: int = 0
    loaded: int = 0
    quarantined: int = 0
    reason: str | None = None  # why the last batch was rejected
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    open_quarantine: int = 0  # quarantined rows of the feed no corrected re-delivery has resolved yet
    deferred: int = 0  # source rows dated after the source's clock at the last read (held back)
    reconciled: str | None = None  # ok | mismatch: the last `lidm reconcile`
    reconciled_at: datetime | None = None
    reconcile_summary: str | None = None  # e.g. "12 missing on 2026-11-30"; counts and buckets only

    @property
    def notes(self) -> list[str]:
        """What an operator should look at besides the state: held rows and reconciliation."""
        out = []
        if self.deferred:
            out.append(f"{self.deferred:,} row(s) dated after the source's clock held back")
        if self.reconciled == "mismatch":
            out.append(f"reconcile: {self.reconcile_summary}")
        return out

    @property
    def age(self) -> timedelta | None:
        return None if self.last_loaded is None else datetime.now(UTC) - self.last_loaded


@dataclass
class WarningStatus:
    department: str
    open: int
    overdue: int


def _unreachable(exc: sa.exc.DBAPIError) -> LidmError:
    """Say which database and what kind of fault, never the URL (it may carry a password)."""
    return LidmError(
        f"the central database could not be read ({type(exc.orig).__name__}); check LIDM_CENTRAL_URL and that "
        "the database is up"
    )


def freshness_limit(contract: Contract) -> timedelta | None:
    """The contract's freshness as a duration (None when it has none or it does not parse)."""
    return duration(contract.freshness)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite hands timezone-aware columns back naive, in UTC


def feed_status(
    settings: Settings, now: datetime | None = None, feeds: Iterable[str] | None = None
) -> list[FeedStatus]:
    """One entry per registered feed, in name order."""
    now = now or datetime.now(UTC)
    catalog = load_catalog(settings.contracts_dir)
    registered = adapters()
    names = sorted(feeds) if feeds is not None else list(registered)
    engine = db.connect(settings)
    out: list[FeedStatus] = []
    try:
        insp = sa.inspect(engine)
        ready = insp.has_table(batch_table.name)  # a central database nothing has run against yet
        checked = insp.has_table(reconcile_table.name)  # migrated to 0011: held rows and reconciliation kept
        with engine.connect() as conn:
            for name in names:
                adapter = registered[name]
                contract = catalog[adapter.contract]
                status = FeedStatus(
                    feed=name,
                    contract=contract.id,
                    title=contract.title,
                    department=contract.department,
                    contract_version=contract.version,
                    source=adapter.source.describe(),
                    freshness=contract.freshness,
                    state="never",
                )
                if ready:
                    _fill(conn, status)
                if checked:
                    _fill_checks(conn, status)
                limit = freshness_limit(contract)
                if status.last_loaded is not None:
                    late = limit is not None and now - status.last_loaded > limit
                    status.state = "late" if late else "fresh"
                if status.last_status == "rejected":
                    status.state = "failing"
                out.append(status)
    except sa.exc.DBAPIError as exc:
        raise _unreachable(exc) from None
    finally:
        engine.dispose()
    return out


def _fill(conn: sa.Connection, status: FeedStatus) -> None:
    b = batch_table
    last = (
        conn.execute(sa.select(b).where(b.c.feed == status.feed).order_by(b.c.started_at.desc()).limit(1))
        .mappings()
        .first()
    )
    if last is None:
        return
    status.last_status = last["status"]
    status.last_version = last["contract_version"]
    status.last_started = _aware(last["started_at"])
    status.reason = last["reason"]
    loaded = (
        conn.execute(
            sa.select(b).where(b.c.feed == status.feed, b.c.status == "loaded").order_by(b.c.started_at.desc()).limit(1)
        )
        .mappings()
        .first()
    )
    if loaded is None:
        return
    status.last_loaded = _aware(loaded["finished_at"] or loaded["started_at"])
    status.extracted, status.loaded, status.quarantined = loaded["extracted"], loaded["loaded"], loaded["quarantined"]
    q = quarantine_table
    status.top_reasons = [
        (reason, n)
        for reason, n in conn.execute(
            sa.select(q.c.reason, sa.func.count())
            .where(q.c.batch_id == loaded["batch_id"])
            .group_by(q.c.reason)
            .order_by(sa.func.count().desc(), q.c.reason)
            .limit(3)
        )
    ]


def _fill_checks(conn: sa.Connection, status: FeedStatus) -> None:
    w, r, q = watermark_table, reconcile_table, quarantine_table
    status.deferred = conn.execute(sa.select(w.c.deferred).where(w.c.feed == status.feed)).scalar_one_or_none() or 0
    status.open_quarantine = conn.execute(
        sa.select(sa.func.count()).where(q.c.feed == status.feed, q.c.resolved_batch.is_(None))
    ).scalar_one()
    last = (
        conn.execute(sa.select(r).where(r.c.feed == status.feed).order_by(r.c.checked_at.desc()).limit(1))
        .mappings()
        .first()
    )
    if last is None:
        return
    status.reconciled, status.reconciled_at = last["status"], _aware(last["checked_at"])
    if last["status"] != "ok":
        buckets = json.loads(last["detail"] or "[]")
        where = ", ".join(b["bucket"] for b in buckets[:3]) + (
            f" and {len(buckets) - 3} more" if len(buckets) > 3 else ""
        )
        counts = [f"{last[k]:,} {k}" for k in ("missing", "extra", "changed") if last[k]]
        status.reconcile_summary = f"{', '.join(counts)} in {where}"


def warning_status(settings: Settings, today: date | None = None) -> list[WarningStatus]:
    """Open and overdue warnings per target department (empty until the monitoring loop raises any)."""
    today = today or datetime.now(UTC).date()
    contract = load_catalog(settings.contracts_dir)[WARNING_CONTRACT]
    table = dataset_table(contract, sa.MetaData())
    is_open = table.c.status.in_(OPEN_WARNING)
    overdue = sa.and_(is_open, sa.or_(table.c.status == "overdue", table.c.due_date < today))
    engine = db.connect(settings)
    try:
        if not sa.inspect(engine).has_table(table.name):
            return []
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    table.c.target_department,
                    sa.func.count().filter(is_open),
                    sa.func.count().filter(overdue),
                )
                .where(table.c._retired_batch.is_(None))
                .group_by(table.c.target_department)
                .order_by(table.c.target_department)
            ).all()
    except sa.exc.DBAPIError as exc:
        raise _unreachable(exc) from None
    finally:
        engine.dispose()
    return [WarningStatus(dept, int(o or 0), int(d or 0)) for dept, o, d in rows if o]
