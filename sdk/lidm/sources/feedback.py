"""Tell the department what was held back, where it reads: a table in its own database (database sources).

After a batch commits, each quarantined row becomes one row of the adapter's `feedback_table` in the source
database, through the feed's own connection: which feed and batch, the department's own key value of the row
(what it sent; nothing else of the row), the field, the reason code and the message. A drop's department gets a
reasons file next to the archived delivery instead (lidm.sources.drops).

Writing feedback never fails a load: the rows are in the central database already, so a department database that
refuses the write (read-only account) is logged and the operator exports with `lidm quarantine export`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger("lidm.feedback")

COLUMNS = ("feed", "batch_id", "reported_at", "row_key", "source_row", "field", "reason", "message")
# Portable DDL: every database the departments run (MariaDB, SQL Server, PostgreSQL, Oracle, DM, Kingbase) has it.
DDL = (
    "CREATE TABLE {table} (feed VARCHAR(100) NOT NULL, batch_id VARCHAR(36) NOT NULL, reported_at VARCHAR(32) NOT "
    "NULL, row_key VARCHAR(64), source_row INTEGER, field VARCHAR(100), reason VARCHAR(50) NOT NULL, "
    "message VARCHAR(500))"
)


@dataclass(frozen=True)
class FeedbackRow:
    feed: str
    batch_id: str
    reported_at: datetime
    row_key: str | None
    row_number: int | None
    field: str | None
    reason: str
    message: str

    def values(self) -> tuple:
        return (
            self.feed,
            self.batch_id,
            self.reported_at.isoformat(sep=" ", timespec="seconds"),
            self.row_key,
            self.row_number,
            self.field,
            self.reason,
            self.message[:500],
        )


def write_feedback(url: str, table: str, rows: Sequence[FeedbackRow]) -> int:
    """Append the rows to `table` in the source database (created on first use); returns how many were written."""
    if not rows:
        return 0
    if url.startswith("odbc:"):
        return _odbc(url.removeprefix("odbc:"), table, rows)
    return _sqlalchemy(url, table, rows)


def _odbc(conn_str: str, table: str, rows: Sequence[FeedbackRow]) -> int:
    import pyodbc

    with pyodbc.connect(conn_str, timeout=20) as conn:
        cur = conn.cursor()
        try:
            cur.execute(f"SELECT 1 FROM {table} WHERE 1 = 0")
        except pyodbc.Error:
            conn.rollback()
            cur.execute(DDL.format(table=table))
        cur.executemany(
            f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
            [r.values() for r in rows],
        )
        conn.commit()
    return len(rows)


def _sqlalchemy(url: str, table: str, rows: Sequence[FeedbackRow]) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if not sa.inspect(conn).has_table(table):
                conn.execute(sa.text(DDL.format(table=table)))
            conn.execute(
                sa.text(f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"),
                [dict(zip(COLUMNS, r.values(), strict=True)) for r in rows],
            )
    finally:
        engine.dispose()
    return len(rows)
