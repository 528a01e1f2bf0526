"""What the gateway held back, for operators: quarantined rows (open and resolved) and held batches.

A full snapshot that would retire too much is held (rejected as `suspicious_shrink`) until an operator accepts
that very content with `lidm batch accept`; the acceptance is recorded and audited, and the next run of the feed
loads it. Quarantine rows are listed and exported by place (row, line, field) and reason, never by value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from lidm.central import audit, db
from lidm.central.schema import acceptance as acceptance_table
from lidm.central.schema import batch as batch_table
from lidm.central.schema import quarantine as quarantine_table
from lidm.config import Settings
from lidm.errors import LidmError
from lidm.keys import load_keyring

ACCEPTABLE = ("suspicious_shrink",)
QUARANTINE_COLUMNS = (
    "batch_id", "source", "row_number", "line_number", "locator", "field", "reason", "message", "resolved_batch",
)  # fmt: skip


@dataclass
class Acceptance:
    id: int
    batch_id: str
    feed: str
    reason_code: str
    source: str


def accept_batch(settings: Settings, batch_id: str, *, note: str, actor: str = "operator") -> Acceptance:
    """Let a held batch's exact content through on the feed's next run; audited."""
    if not note.strip():
        raise LidmError("say why the held batch is accepted (--reason); it is kept in the audit log")
    engine = db.connect_current(settings)
    try:
        with engine.begin() as conn:
            b = conn.execute(sa.select(batch_table).where(batch_table.c.batch_id == batch_id)).mappings().first()
            if b is None:
                raise LidmError(f"no batch {batch_id}; `lidm batch list` shows the batch ids")
            code = (b["reason"] or "").removeprefix("[").split("]", 1)[0]
            if b["status"] != "rejected" or code not in ACCEPTABLE:
                raise LidmError(
                    f"batch {batch_id} is {b['status']}{f' [{code}]' if code else ''}: only a batch held as "
                    f"{' or '.join(ACCEPTABLE)} can be accepted"
                )
            if not (b["content_digest"] or b["source_digest"]):
                raise LidmError(f"batch {batch_id} kept no digest of its content; run the feed again to hold it anew")
            a = acceptance_table
            new_id = conn.execute(
                a.insert()
                .values(
                    feed=b["feed"],
                    batch_id=batch_id,
                    reason_code=code,
                    content_digest=b["content_digest"],
                    source_digest=b["source_digest"],
                    actor=actor,
                    note=note,
                    accepted_at=datetime.now(UTC),
                )
                .returning(a.c.id)
            ).scalar_one()
            audit.append(
                conn,
                actor=actor,
                action="batch.accept",
                subject=batch_id,
                detail={"feed": b["feed"], "reason": code, "note": note, "acceptance": new_id},
                keyring=load_keyring(settings),
            )
            return Acceptance(new_id, batch_id, b["feed"], code, b["source_name"])
    finally:
        engine.dispose()


def list_quarantine(
    settings: Settings, feed: str | None = None, *, include_resolved: bool = False, limit: int | None = 200
) -> list[dict[str, Any]]:
    """Quarantined rows, newest batch first: where (source, row, line, the row's key and record time, field), why,
    and whether resolved."""
    q, b = quarantine_table, batch_table
    query = (
        sa.select(
            q.c.batch_id,
            b.c.feed,
            b.c.source_name.label("source"),
            b.c.started_at,
            q.c.row_number,
            q.c.line_number,
            q.c.locator,
            q.c.field,
            q.c.reason,
            q.c.message,
            q.c.resolved_batch,
        )
        .join(b, b.c.batch_id == q.c.batch_id)
        .order_by(b.c.started_at.desc(), q.c.row_number)
    )
    if feed:
        query = query.where(q.c.feed == feed)
    if not include_resolved:
        query = query.where(q.c.resolved_batch.is_(None))
    if limit:
        query = query.limit(limit)
    engine = db.connect_existing(settings)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
    finally:
        engine.dispose()


HELD_COLUMNS = ("row_number", "line_number", "locator", "field", "reason", "message")


def held_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """A batch's held rows as the department gets them back beside its delivery: where (row, line, the locator: key
    masked and record time) and why, never another value; with a BOM, so a spreadsheet opens it right."""
    out = io.StringIO()
    writer = csv.writer(out)
    columns = HELD_COLUMNS
    writer.writerow(["row", "line", "locator", "field", "reason", "message"])
    writer.writerows(["" if r[c] is None else r[c] for c in columns] for r in rows)
    return "\ufeff" + out.getvalue()


def quarantine_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (UTF-8 with BOM, so a department's spreadsheet opens it right)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(QUARANTINE_COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r[c] for c in QUARANTINE_COLUMNS])
    return "\ufeff" + out.getvalue()
