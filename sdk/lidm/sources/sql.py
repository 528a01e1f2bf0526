"""SQL sources: ODBC (bulk through arrow-odbc, pyodbc for everything small) or any SQLAlchemy URL.

A connection value starting with `odbc:` is an ODBC connection string (DRIVER=…;SERVER=…); anything
else is a SQLAlchemy URL. Incremental extracts read from `last watermark - lookback`, so rows that share
the boundary timestamp, late commits and back-dated entries inside the window are never missed; re-read rows
are recognised by their keyed digest and change nothing. Reads stop at the source's own clock: a row dated
after it (a clock ahead, a typing error) is held back, counted and read once its time comes, so it can never
move the watermark past rows entered later with the right time. Rows without a watermark value are read on
every run.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lidm.errors import ConfigError, SourceError
from lidm.sources.base import ReadOptions, SourceBatch

if TYPE_CHECKING:
    import pyarrow as pa

ROW = "__row"
MAX_TEXT = 4096  # bytes of one text value in transit; a longer value fails the read, naming its column
MAX_BATCH_BYTES = 16 << 20  # transit buffers per ODBC batch: bounds memory whatever the column widths
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class SqlSource:
    """A table or query in a department database, optionally with a watermark column."""

    connection: str
    table: str | None = None
    query: str | None = None
    watermark: str | None = None
    # Read a full snapshot in pages ordered by this unique column (keyset paging): for drivers that hold a whole
    # result set in client memory (MariaDB Connector/ODBC 3.1 does), memory then follows the page, not the table.
    # Needs SQL:2008 OFFSET … FETCH (PostgreSQL, MariaDB 10.6+, SQL Server 2012+, Oracle 12c+, DM); not SQLite.
    page_by: str | None = None
    page_rows: int = 200_000
    # Incremental reads start this far before the stored watermark (re-read rows change nothing).
    lookback: dt.timedelta = dt.timedelta(days=1)
    # The watermark is a timestamp: bound each read by the source's own clock. False for a sequence number.
    clock: bool = True
    # The query that asks the source for its local time, where the dialect's default does not fit (Oracle:
    # "SELECT LOCALTIMESTAMP FROM DUAL").
    clock_query: str | None = None
    # A table in the source database where the department reads what was quarantined (lidm.sources.feedback).
    feedback_table: str | None = None

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise ConfigError("SqlSource needs exactly one of table= or query=")
        for name in (self.table, self.watermark, self.page_by, self.feedback_table):
            if name is not None and not _IDENT.match(name):
                raise ConfigError(f"SqlSource: {name!r} is not a plain identifier")
        if self.page_by and self.watermark:
            raise ConfigError(
                "SqlSource: page_by= reads a full snapshot; an incremental source (watermark=) is not paged"
            )
        if self.page_rows < 1:
            raise ConfigError("SqlSource: page_rows must be positive")
        if self.lookback < dt.timedelta(0):
            raise ConfigError("SqlSource: lookback must not be negative")

    delivers_files = False  # a read leaves the table as it was: nothing to settle
    rereadable = True  # rows can be read again, to reconcile the central table with the source

    @property
    def incremental(self) -> bool:
        return bool(self.watermark)

    @contextmanager
    def read(self, url: str, settings: Any, options: ReadOptions) -> Iterator[Iterator[SourceBatch]]:
        """One extract: the whole table, or what changed since the watermark."""
        yield iter([self.batch(url, options.watermark, options.chunk_rows, incremental=options.incremental)])

    def sample(self, url: str, settings: Any, rows: int) -> pa.Table | None:
        return next(iter(self.batch(url, None, rows).chunks()), None)

    def lineage(self, kind: str, host: str | None, port: int | None, schema: str | None, extra: dict) -> tuple:
        scheme = {"postgres": "postgres", "odbc": "odbc", "sqlite": "sqlite"}.get(kind, kind)
        where = f"{scheme}://{host or ''}:{port or ''}".rstrip(":") if host else f"{scheme}://{self.connection}"
        return where, (f"{schema}.{self.table}" if schema and self.table else self.table or "query")

    def describe(self) -> str:
        what = self.table or "query"
        return (
            f"sql {what} on connection {self.connection}"
            + (f", watermark {self.watermark}" if self.watermark else "")
            + (f", paged by {self.page_by}" if self.page_by else "")
        )

    def select_all(self) -> str:
        """Every row of the table or query, unfiltered."""
        return f"SELECT * FROM {self.table}" if self.table else f"SELECT * FROM ({self.query}) src"

    def sql(self, has_watermark: bool, has_clock: bool = False) -> str:
        """The extract: everything, or (incremental) from a watermark up to the source's clock."""
        base = self.select_all()
        if not self.watermark:
            return base
        wm = self.watermark
        where = []
        if has_watermark:
            where.append(f"{wm} >= ?")
        if has_clock:
            where.append(f"{wm} <= ?")
        if not where:
            return f"{base} ORDER BY {wm}"
        # A row without a watermark value would never be read again: read it on every run (it changes nothing).
        return f"SELECT * FROM ({base}) lidm_src WHERE ({' AND '.join(where)}) OR {wm} IS NULL ORDER BY {wm}"

    def read_from(self, watermark: Any) -> Any:
        """Where an incremental read starts: the stored watermark less the lookback window."""
        if watermark is None or not self.lookback:
            return watermark
        when = _as_datetime(watermark)
        if when is None:
            return watermark  # not a timestamp (a sequence number): no window
        return (when - self.lookback).isoformat(sep=" ")

    def source_clock(self, url: str) -> dt.datetime:
        """The source database's own local time: a watermark is never stored beyond it."""
        sql = self.clock_query or _clock_query(url)
        read = _reader(url)
        try:
            (col,) = next(iter(read(url, sql, [], 1))).columns
        except (StopIteration, ValueError):
            raise SourceError(f"SqlSource {self.table or 'query'}: the source did not say its time ({sql})") from None
        when = _as_datetime(col[0].as_py())
        if when is None:
            raise ConfigError(
                f"SqlSource {self.table or 'query'}: the clock query returned no timestamp; set clock_query= or "
                "clock=False"
            )
        return when

    def held_back(self, url: str, clock: dt.datetime) -> tuple[int, dt.datetime | None]:
        """Rows dated after the source's clock (count, latest date): not read now, read once their time comes."""
        read = _reader(url)
        wm = self.watermark
        sql = f"SELECT COUNT(*) AS n, MAX({wm}) AS latest FROM ({self.select_all()}) lidm_ahead WHERE {wm} > ?"
        table = next(iter(read(url, sql, [clock.isoformat(sep=" ")], 1)))
        n, latest = table.column(0)[0].as_py(), table.column(1)[0].as_py()
        return int(n or 0), _as_datetime(latest)

    def batch(self, url: str, watermark: Any, chunk_rows: int, *, incremental: bool = False) -> SourceBatch:
        """One extract as a batch; its upper watermark is known once the chunks are read.

        A full snapshot reads every row; an incremental read starts at `watermark` less the lookback and stops
        at the source's clock.
        """
        state: dict[str, Any] = {"max": None}
        incremental = incremental and bool(self.watermark)
        clock = self.source_clock(url) if incremental and self.clock else None
        start = self.read_from(watermark) if incremental else None
        sql = self.sql(start is not None, clock is not None)
        params = ([] if start is None else [start]) + ([] if clock is None else [clock.isoformat(sep=" ")])
        meta: dict[str, Any] = {"file": self.table or "query"}
        if clock is not None:
            deferred, latest = self.held_back(url, clock)
            meta |= {"clock": clock, "deferred": deferred, "deferred_latest": latest}

        def chunks() -> Iterator[pa.Table]:
            import pyarrow as pa
            import pyarrow.compute as pc

            read = _reader(url)
            first = 1
            tables = self._pages(read, url, chunk_rows) if self.page_by else read(url, sql, params, chunk_rows)
            wm = (self.watermark or "").lower()
            for tbl in tables:
                tbl = tbl.rename_columns([c.lower() for c in tbl.column_names])
                if wm and wm in tbl.column_names and tbl.num_rows:
                    top = pc.max(tbl[wm]).as_py()  # nulls sort first or last by database: never take the last row
                    if top is not None and (state["max"] is None or top > state["max"]):
                        state["max"] = top
                yield tbl.append_column(ROW, pa.array(range(first, first + tbl.num_rows), type=pa.int64()))
                first += tbl.num_rows

        return SourceBatch(
            name=self.table or "query",
            chunks=chunks,
            watermark_from=watermark,
            watermark_to=lambda: _later(watermark, state["max"]),
            meta=meta,
        )

    def _pages(self, read, url: str, chunk_rows: int) -> Iterator[pa.Table]:  # type: ignore[no-untyped-def]
        """The snapshot page by page: `page_by > last` in key order, page_rows at a time (standard SQL:2008)."""
        key = (self.page_by or "").lower()
        last: Any = None
        total = 0
        while True:
            where = "" if last is None else f" WHERE {self.page_by} > ?"
            sql = (
                f"SELECT * FROM ({self.select_all()}) lidm_page{where} ORDER BY {self.page_by} "
                f"OFFSET 0 ROWS FETCH NEXT {self.page_rows} ROWS ONLY"
            )
            got = 0
            for tbl in read(url, sql, [] if last is None else [last], chunk_rows):
                if tbl.num_rows:
                    names = [c.lower() for c in tbl.column_names]
                    if key not in names:
                        raise ConfigError(f"SqlSource: page_by column {self.page_by} is not in the result")
                    last = tbl.column(names.index(key))[-1].as_py()
                    got += tbl.num_rows
                yield tbl
            total += got
            if got < self.page_rows:
                break
        # A null or repeated page_by value, or rows changing under the read, would lose or repeat rows silently.
        (count,) = next(iter(read(url, f"SELECT COUNT(*) AS n FROM ({self.select_all()}) lidm_count", [], 1)))
        if int(count[0].as_py()) != total:
            raise SourceError(
                f"SqlSource {self.table or 'query'}: the paged read returned {total} rows but the source has "
                f"{count[0].as_py()}; page_by {self.page_by} must be unique and never null, and the source must not "
                "change during the read. Nothing was loaded; retry, or fix page_by"
            )


def _reader(url: str):  # type: ignore[no-untyped-def]
    """How to read a query on this connection: arrow-odbc for `odbc:` strings, SQLAlchemy for URLs."""
    return _odbc_chunks if url.startswith("odbc:") else _sqlalchemy_chunks


def _as_datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _later(stored: Any, seen: Any) -> Any:
    """The new watermark: the latest value read, never behind the stored one (the lookback re-reads older rows)."""
    if seen is None or stored is None:
        return seen if seen is not None else stored
    a, b = _as_datetime(stored), _as_datetime(seen)
    if a is not None and b is not None:
        if a.tzinfo is not None and b.tzinfo is None:
            b = b.replace(tzinfo=a.tzinfo)
        elif b.tzinfo is not None and a.tzinfo is None:
            a = a.replace(tzinfo=b.tzinfo)
        return seen if b > a else stored
    try:
        return seen if seen > type(seen)(stored) else stored
    except (TypeError, ValueError):
        return seen


def _clock_query(url: str) -> str:
    """Each dialect's way to ask for the session's local time (the time the watermark column is written in)."""
    if url.startswith("odbc:"):
        return "SELECT {fn NOW()} AS now"  # the ODBC escape every driver translates
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    return {
        "sqlite": "SELECT datetime('now', 'localtime') AS now",
        "postgresql": "SELECT LOCALTIMESTAMP AS now",
        "mysql": "SELECT NOW() AS now",
        "mariadb": "SELECT NOW() AS now",
        "mssql": "SELECT SYSDATETIME() AS now",
        "oracle": "SELECT LOCALTIMESTAMP AS now FROM DUAL",
    }.get(scheme, "SELECT CURRENT_TIMESTAMP AS now")


def _odbc_chunks(url: str, sql: str, params: list[Any], chunk_rows: int) -> Iterator[pa.Table]:
    import arrow_odbc
    import pyarrow as pa

    conn_str = url.removeprefix("odbc:")
    try:
        reader = arrow_odbc.read_arrow_batches_from_odbc(
            query=sql,
            connection_string=conn_str,
            batch_size=chunk_rows,
            parameters=[None if p is None else str(p) for p in params] or None,
            max_text_size=MAX_TEXT,
            max_bytes_per_batch=MAX_BATCH_BYTES,
        )
    except arrow_odbc.Error as exc:
        raise SourceError(f"ODBC source: {_scrub(str(exc))}") from None
    if reader is None:
        return
    batches = iter(reader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except arrow_odbc.Error as exc:
            # The driver's text can quote the offending value: name the column, never the value.
            raise SourceError(f"ODBC source: reading failed: {_odbc_cause(exc, conn_str, sql, params)}") from None
        yield pa.Table.from_batches([batch])


def _odbc_cause(exc: Exception, conn_str: str, sql: str, params: list[Any]) -> str:
    text = str(exc)
    if "invalid UTF-8" in text or "Lossy" in text:
        wide = _wide_text_columns(conn_str, sql, params)
        where = f" in column {', '.join(wide)} (declared wider than that)" if wide else ""
        return (
            f"a text value{where} is longer than the reader's {MAX_TEXT}-byte buffer, or not valid UTF-8; "
            "nothing was loaded. Have the department trim the column to the contract's maxLength, or cast it "
            "to a bounded VARCHAR in the adapter's query"
        )
    return type(exc).__name__


def _wide_text_columns(conn_str: str, sql: str, params: list[Any]) -> list[str]:
    """Text columns whose declared size exceeds the reader's buffer: the ones a cut value can come from."""
    import pyodbc

    try:
        with pyodbc.connect(conn_str, timeout=10) as conn:
            cur = conn.execute(f"SELECT * FROM ({sql}) lidm_probe WHERE 1 = 0", *[str(p) for p in params])
            return [
                name
                for name, kind, _display, size, *_ in cur.description
                if kind is str and (not size or size > MAX_TEXT // 4)  # up to 4 bytes a character in UTF-8
            ]
    except pyodbc.Error:
        return []


def _sqlalchemy_chunks(url: str, sql: str, params: list[Any], chunk_rows: int) -> Iterator[pa.Table]:
    import pyarrow as pa
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"not a usable SQLAlchemy URL for a source: {type(exc).__name__}") from None
    # This module's placeholders come after the adapter's table or query: bind the last len(params) '?'.
    parts = sql.rsplit("?", len(params)) if params else [sql]
    text = parts[0] + "".join(f":p{i}{rest}" for i, rest in enumerate(parts[1:]))
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(
                sa.text(text), {f"p{i}": v for i, v in enumerate(params)}
            )
            names = list(result.keys())
            for part in result.partitions(chunk_rows):
                cols = list(zip(*part, strict=True)) if part else [[] for _ in names]
                yield pa.table({n: pa.array(list(c)) for n, c in zip(names, cols, strict=True)})
    except sa.exc.OperationalError as exc:
        raise SourceError(f"SQL source unreachable or failed: {type(exc.orig).__name__}") from None
    except sa.exc.DBAPIError as exc:
        # A missing table or column is the department's side: say which query, never a value.
        raise SourceError(
            f"SQL source query failed ({type(exc.orig).__name__}): {_scrub(sql)[:200]}; check the adapter's "
            "table and columns against the department database"
        ) from None
    finally:
        engine.dispose()


def _scrub(message: str) -> str:
    """Drop credentials an ODBC driver may echo back."""
    return re.sub(r"(?i)(pwd|password)=[^;]*", r"\1=***", message)


def ping_odbc(conn_str: str) -> str:
    """Open a pyodbc connection and name the server: the cheap check before a bulk read."""
    import pyodbc

    try:
        with pyodbc.connect(conn_str.removeprefix("odbc:"), timeout=10) as conn:
            return f"{conn.getinfo(pyodbc.SQL_DBMS_NAME)} {conn.getinfo(pyodbc.SQL_DBMS_VER)}"
    except pyodbc.Error as exc:
        raise SourceError(f"ODBC source: {_scrub(str(exc))}") from None
