"""SQL sources: ODBC (bulk through arrow-odbc, pyodbc for everything small) or any SQLAlchemy URL.

A connection value starting with `odbc:` is an ODBC connection string (DRIVER=…;SERVER=…); anything
else is a SQLAlchemy URL. Incremental extracts read `watermark >= last` so rows that share the
boundary timestamp are never missed; re-read rows are recognised by their digest and change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lidm.errors import ConfigError, SourceError
from lidm.sources.base import SourceBatch

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

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise ConfigError("SqlSource needs exactly one of table= or query=")
        for name in (self.table, self.watermark, self.page_by):
            if name is not None and not _IDENT.match(name):
                raise ConfigError(f"SqlSource: {name!r} is not a plain identifier")
        if self.page_by and self.watermark:
            raise ConfigError(
                "SqlSource: page_by= reads a full snapshot; an incremental source (watermark=) is not paged"
            )
        if self.page_rows < 1:
            raise ConfigError("SqlSource: page_rows must be positive")

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

    def sql(self, has_watermark: bool) -> str:
        base = self.select_all()
        if self.watermark and has_watermark:
            return f"{base} WHERE {self.watermark} >= ? ORDER BY {self.watermark}"
        return base + (f" ORDER BY {self.watermark}" if self.watermark else "")

    def batch(self, url: str, watermark: Any, chunk_rows: int) -> SourceBatch:
        """One extract as a batch; its upper watermark is known once the chunks are read."""
        state: dict[str, Any] = {"max": None}
        sql = self.sql(watermark is not None)
        params = [] if watermark is None else [watermark]

        def chunks() -> Iterator[pa.Table]:
            read = _odbc_chunks if url.startswith("odbc:") else _sqlalchemy_chunks
            first = 1
            tables = self._pages(read, url, chunk_rows) if self.page_by else read(url, sql, params, chunk_rows)
            for tbl in tables:
                tbl = tbl.rename_columns([c.lower() for c in tbl.column_names])
                if self.watermark and self.watermark.lower() in tbl.column_names and tbl.num_rows:
                    state["max"] = tbl[self.watermark.lower()][-1].as_py()
                yield tbl.append_column(ROW, pa.array(range(first, first + tbl.num_rows), type=pa.int64()))
                first += tbl.num_rows

        return SourceBatch(
            name=self.table or "query",
            chunks=chunks,
            watermark_from=watermark,
            watermark_to=lambda: state["max"],
            meta={"file": self.table or "query"},
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


def _odbc_chunks(url: str, sql: str, params: list[Any], chunk_rows: int) -> Iterator[pa.Table]:
    import arrow_odbc

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
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"not a usable SQLAlchemy URL for a source: {type(exc).__name__}") from None
    text = sql.replace("?", ":wm") if params else sql
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(
                sa.text(text), {"wm": params[0]} if params else {}
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
