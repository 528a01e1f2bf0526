"""Feed health for operators: per feed the newest delivery with its own counts and reasons (a rejected one's
rejection, a loaded one's top quarantine reasons), the newest loaded one, freshness against the contract; per
department the open and overdue warnings. Counts only, never a person's data.

The Feeds page of the Airflow plugin and `lidm status` both render what this module returns; `feed_row` and
`warning_row` are the one JSON shape of both (`lidm status --json`, /lidm/api/feeds).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from lidm.central import db
from lidm.central.schema import batch as batch_table
from lidm.central.schema import dataset_table
from lidm.central.schema import quarantine as quarantine_table
from lidm.central.schema import reconcile as reconcile_table
from lidm.central.schema import watermark as watermark_table
from lidm.config import Settings, duration
from lidm.contracts import Contract, load_catalog
from lidm.registry import adapters

WARNING_CONTRACT = "platform.warning"
# What each state is called where people read it (the CLI's table, the Feeds page); `state` stays the code.
STATE_LABEL = {"fresh": "on time", "late": "LATE", "never": "no data yet", "failing": "REJECTED"}
OPEN_WARNING = ("raised", "pushed", "acknowledged", "overdue")
DELIVERED = ("loaded", "rejected")  # a recalled batch was withdrawn: it is no delivery of the feed's any more


@dataclass
class Delivery:
    """One batch of a feed as an operator reads it: its own counts, its own reasons."""

    batch_id: str
    source: str  # the drop file or the database read it came from
    status: str  # loaded | rejected
    contract_version: str
    started: datetime
    finished: datetime | None
    extracted: int
    loaded: int
    quarantined: int
    reason: str | None = None  # why it was rejected: "[code] what, where and what to do"
    top_reasons: list[tuple[str, int]] = field(default_factory=list)  # its quarantine reasons, most rows first
    newest_record: str | None = None  # the newest record time among the rows it loaded (the source's own clock)

    @property
    def at(self) -> datetime:
        return self.finished or self.started

    @property
    def reason_code(self) -> str | None:
        """The rejection's code, e.g. empty_file (None for a loaded batch)."""
        if not self.reason:
            return None
        return self.reason.removeprefix("[").split("]", 1)[0] if self.reason.startswith("[") else self.reason


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
    last: Delivery | None = None  # the newest delivery, loaded or rejected: what the counts and reasons are of
    last_good: Delivery | None = None  # the newest loaded delivery (``last`` itself when that loaded)
    rejected_since_load: int = 0  # deliveries rejected after the newest loaded one
    open_quarantine: int = 0  # quarantined rows of the feed no corrected re-delivery has resolved yet
    deferred: int = 0  # source rows dated after the source's clock at the last read (held back)
    reconciled: str | None = None  # ok | mismatch: the last `lidm reconcile`
    reconciled_at: datetime | None = None
    reconcile_summary: str | None = None  # e.g. "12 missing on 2026-11-30"; counts and buckets only

    @property
    def last_status(self) -> str | None:
        return self.last.status if self.last else None

    @property
    def last_version(self) -> str | None:
        """The contract version the newest delivery was read under."""
        return self.last.contract_version if self.last else None

    @property
    def last_loaded(self) -> datetime | None:
        """When data last arrived."""
        return self.last_good.at if self.last_good else None

    @property
    def newest_record(self) -> str | None:
        """How new the loaded data is by the source's own record times: a snapshot loaded today may hold nothing
        changed in a week, which the load time alone hides."""
        return None if self.last_good is None else self.last_good.newest_record

    @property
    def extracted(self) -> int:
        return self.last.extracted if self.last else 0

    @property
    def loaded(self) -> int:
        return self.last.loaded if self.last else 0

    @property
    def quarantined(self) -> int:
        return self.last.quarantined if self.last else 0

    @property
    def reason(self) -> str | None:
        """Why the newest delivery was rejected (None when it loaded)."""
        return self.last.reason if self.last else None

    @property
    def top_reasons(self) -> list[tuple[str, int]]:
        return self.last.top_reasons if self.last else []

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


@dataclass
class DistrictWarnings:
    """Open and overdue warnings of one district: the code for machines, the name (consumers.yaml) for people."""

    district_code: str
    district: str
    open: int
    overdue: int


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
    """One entry per registered feed, in name order; a central database nothing has set up is refused."""
    now = now or datetime.now(UTC)
    catalog = load_catalog(settings.contracts_dir)
    registered = adapters()
    names = sorted(feeds) if feeds is not None else list(registered)
    engine = db.connect_existing(settings)
    out: list[FeedStatus] = []
    try:
        checked = sa.inspect(engine).has_table(reconcile_table.name)  # 0011: held rows and reconciliation kept
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
        raise db.unreachable(exc) from None
    finally:
        engine.dispose()
    return out


def _newest(conn: sa.Connection, feed: str, statuses: tuple[str, ...]) -> Delivery | None:
    b, q = batch_table, quarantine_table
    row = (
        conn.execute(
            sa.select(b).where(b.c.feed == feed, b.c.status.in_(statuses)).order_by(b.c.started_at.desc()).limit(1)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    reasons = conn.execute(
        sa.select(q.c.reason, sa.func.count())
        .where(q.c.batch_id == row["batch_id"])
        .group_by(q.c.reason)
        .order_by(sa.func.count().desc(), q.c.reason)
        .limit(3)
    )
    return Delivery(
        batch_id=row["batch_id"],
        source=row["source_name"],
        status=row["status"],
        contract_version=row["contract_version"],
        started=_aware(row["started_at"]),  # type: ignore[arg-type]
        finished=_aware(row["finished_at"]),
        extracted=row["extracted"],
        loaded=row["loaded"],
        quarantined=row["quarantined"],
        reason=row["reason"] if row["status"] == "rejected" else None,
        top_reasons=[(reason, n) for reason, n in reasons],
        newest_record=row["newest_record"],
    )


def _fill(conn: sa.Connection, status: FeedStatus) -> None:
    status.last = _newest(conn, status.feed, DELIVERED)
    if status.last is None:
        return
    status.last_good = status.last if status.last.status == "loaded" else _newest(conn, status.feed, ("loaded",))
    if status.last.status == "rejected":
        b = batch_table
        since = [b.c.feed == status.feed, b.c.status == "rejected"]
        if status.last_good is not None:
            since.append(b.c.started_at > status.last_good.started)
        status.rejected_since_load = conn.execute(sa.select(sa.func.count()).where(*since)).scalar_one()


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
    catalog = load_catalog(settings.contracts_dir)
    rows = _open_and_overdue(settings, catalog, "target_department", today)
    return [WarningStatus(dept, o, d) for dept, o, d in sorted(rows)]


def district_warnings(settings: Settings, today: date | None = None) -> list[DistrictWarnings]:
    """Open and overdue warnings per district in division-code order, named as the city names them."""
    catalog = load_catalog(settings.contracts_dir)
    names = catalog.consumers.districts if catalog.consumers is not None else {}
    found = [(code or "", o, d) for code, o, d in _open_and_overdue(settings, catalog, "district_code", today)]
    return [DistrictWarnings(c, names.get(c, c or "（空）"), o, d) for c, o, d in sorted(found)]


def _open_and_overdue(settings: Settings, catalog: Any, column: str, today: date | None) -> list[tuple[Any, int, int]]:
    """(value of ``column``, open, overdue) of the current warnings, for the values with any open."""
    today = today or datetime.now(UTC).date()
    table = dataset_table(catalog[WARNING_CONTRACT], sa.MetaData())
    is_open = table.c.status.in_(OPEN_WARNING)
    overdue = sa.and_(is_open, sa.or_(table.c.status == "overdue", table.c.due_date < today))
    engine = db.connect_existing(settings)
    try:
        if not sa.inspect(engine).has_table(table.name):
            return []
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c[column], sa.func.count().filter(is_open), sa.func.count().filter(overdue))
                .where(table.c._retired_batch.is_(None))
                .group_by(table.c[column])
            ).all()
    except sa.exc.DBAPIError as exc:
        raise db.unreachable(exc) from None
    finally:
        engine.dispose()
    return [(key, int(o or 0), int(d or 0)) for key, o, d in rows if o]


def feed_row(s: FeedStatus) -> dict[str, Any]:
    """One feed as plain JSON values: a line of `lidm status --json`, an entry of the Feeds page's /api/feeds.

    Keys are stable; times are ISO 8601 with their zone, counts are numbers; codes, counts and names only."""
    return {
        "kind": "feed",
        "feed": s.feed,
        "contract": s.contract,
        "title": s.title,
        "department": s.department,
        "contract_version": s.contract_version,
        "source": s.source,
        "freshness": s.freshness,
        "state": s.state,
        "last_data_at": _iso(s.last_loaded),
        "newest_record_at": s.newest_record,
        "last_batch": _delivery_row(s.last),
        "last_loaded_batch": _delivery_row(s.last_good),
        "rejected_since_load": s.rejected_since_load,
        "open_quarantine": s.open_quarantine,
        "deferred": s.deferred,
        "reconciled": s.reconciled,
        "reconciled_at": _iso(s.reconciled_at),
        "reconcile_summary": s.reconcile_summary,
    }


def warning_row(w: WarningStatus) -> dict[str, Any]:
    """One department's open and overdue warnings as plain JSON values (`lidm status --json`, /api/feeds)."""
    return {"kind": "warnings", "department": w.department, "open": w.open, "overdue": w.overdue}


def _delivery_row(d: Delivery | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "batch_id": d.batch_id,
        "source": d.source,
        "status": d.status,
        "contract_version": d.contract_version,
        "started_at": _iso(d.started),
        "finished_at": _iso(d.finished),
        "extracted": d.extracted,
        "loaded": d.loaded,
        "quarantined": d.quarantined,
        "reason_code": d.reason_code,
        "reason": d.reason,
        "top_reasons": [{"reason": reason, "rows": n} for reason, n in d.top_reasons],
        "newest_record_at": d.newest_record,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
