"""The watermark check: the stored watermark is the source's newest value exactly, ties are re-read."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lidm.central.schema import watermark as watermark_table
from lidm.contracts import UpdateMode
from lidm.sources import Source
from lidm.testkit.report import FAIL, PASS, SKIP, WARN

if TYPE_CHECKING:
    from lidm.testkit.verifier import VerifierBase


def check_boundary(v: VerifierBase) -> None:
    source = v.adapter.source
    if v.contract.update_mode is not UpdateMode.INCREMENTAL:
        v._record("watermark_boundary", SKIP, "full snapshot: no watermark")
        return
    if not source.incremental:
        v._record("watermark_boundary", SKIP, "drops are delivered per file: replay detection covers re-delivery")
        return
    engine = v._engine()
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(watermark_table.c.value).where(watermark_table.c.feed == v.adapter.name)
            ).scalar_one_or_none()
    finally:
        engine.dispose()
    newest, at_or_after = _source_boundary(source, v.sandbox.connections[source.connection], stored)
    if stored is None:
        v._record("watermark_boundary", FAIL, "no watermark was stored after a successful load")
        return
    kept = _as_datetime(stored)
    truth = _as_datetime(newest)
    if kept is None or truth is None:
        v._record("watermark_boundary", WARN, "watermark is not a timestamp; compared as text only")
        return
    if (kept.tzinfo is None) != (truth.tzinfo is None):
        v._record(
            "watermark_boundary",
            FAIL,
            "the stored watermark and the source column disagree on time zone (one has an offset, one not)",
        )
        return
    if kept > truth:
        v._record("watermark_boundary", FAIL, "stored watermark is after the newest source row: rows would be skipped")
        return
    if kept < truth:
        v._record(
            "watermark_boundary",
            WARN,
            "stored watermark is before the newest source row (precision lost?): rows are re-read, none missed",
        )
        return
    ties = at_or_after
    v._record(
        "watermark_boundary",
        PASS,
        f"watermark kept exactly (sub-second{', with offset' if kept.tzinfo else ''}); {ties} row(s) at the "
        "boundary are re-read next time (>=), so ties are never missed",
        ties=ties,
    )


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _source_boundary(source: Source, url: str, stored: str | None) -> tuple[Any, int]:
    """(newest watermark value in the source, rows at or after the stored watermark), read-only."""
    base = source.select_all()
    newest_sql = f"SELECT MAX({source.watermark}) FROM ({base}) b"
    count_sql = f"SELECT COUNT(*) FROM ({base}) b WHERE {source.watermark} >= ?"
    if url.startswith("odbc:"):
        import pyodbc

        with pyodbc.connect(url.removeprefix("odbc:"), timeout=10) as conn:
            newest = conn.execute(newest_sql).fetchone()[0]
            ties = conn.execute(count_sql, stored).fetchone()[0] if stored is not None else 0
        return newest, int(ties)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            newest = conn.execute(sa.text(newest_sql)).scalar()
            ties = (
                conn.execute(sa.text(count_sql.replace("?", ":wm")), {"wm": stored}).scalar()
                if stored is not None
                else 0
            )
    finally:
        engine.dispose()
    return newest, int(ties or 0)
