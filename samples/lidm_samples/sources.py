"""Sample sources: each department dataset's rows in the department's own shape, written where its
adapter reads them (a SQL table on MariaDB, PostgreSQL or SQLite; a CSV or XLSX drop on SFTP or disk).

A department module under ``lidm_samples.departments`` declares its ``SOURCES`` (a dataset new to the gateway
declares its source as data beside its adapter instead: ``lidm_samples.declared``); ``write_sources`` writes them
all for one world, either to files (the embedded default) or to the real servers, and
returns the connections the adapters need plus how many faulty rows of each kind went in.
"""

from __future__ import annotations

import csv
import io
import random
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from lidm.errors import ConfigError
from lidm_samples.people import REFERENCE_DATE, REFERENCE_TIME, id_check_char
from lidm_samples.world import World

# --- column types a department table is declared with -------------------------------------------------


def text(length: int = 100) -> sa.types.TypeEngine:
    return sa.String(length)


def code(length: int) -> sa.types.TypeEngine:
    return sa.CHAR(length)


def day() -> sa.types.TypeEngine:
    return sa.Date()


def timestamp() -> sa.types.TypeEngine:
    """Sub-second precision everywhere (MariaDB's DATETIME drops fractions unless told otherwise)."""
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def timestamp_tz() -> sa.types.TypeEngine:
    """A zone-aware timestamp (PostgreSQL timestamptz): the watermark must survive the offset."""
    return sa.DateTime(timezone=True)


def money() -> sa.types.TypeEngine:
    return sa.Numeric(14, 2)


def integer() -> sa.types.TypeEngine:
    return sa.Integer()


def big_integer() -> sa.types.TypeEngine:
    return sa.BigInteger()


# --- rows and faults -----------------------------------------------------------------------------------

Alter = Callable[[random.Random, dict[str, Any]], None]
MAX_BAD_SHARE = 5
DUPLICATE = "duplicate_key"


@dataclass
class SampleTable:
    """What a department system holds for one dataset, with the faults that were put in."""

    columns: dict[str, sa.types.TypeEngine]  # ordered; a drop uses the names as its header
    rows: list[dict[str, Any]]
    bad_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def expected_quarantine(self) -> int:
        """Rows the gateway must quarantine: each fault once, and both copies of a duplicated key."""
        return sum(self.bad_kinds.values()) + self.bad_kinds.get(DUPLICATE, 0)


def wrong_check_char(column: str) -> Alter:
    """An ID number whose check character is wrong (a typo the checksum catches)."""

    def alter(rng: random.Random, row: dict[str, Any]) -> None:
        value = str(row[column])
        right = id_check_char(value[:17])
        row[column] = value[:17] + rng.choice([c for c in "0123456789X" if c != right])

    return alter


def set_value(column: str, value: Any) -> Alter:
    """A value outside the contract: an unknown code, an impossible date, a negative amount, a null."""

    def alter(_rng: random.Random, row: dict[str, Any]) -> None:
        row[column] = value

    return alter


def inject(rows: list[dict[str, Any]], bad: int, seed: object, kinds: Mapping[str, Alter | None]) -> dict[str, int]:
    """Make ``bad`` distinct rows faulty, round-robin over ``kinds``; returns counts per kind.

    At most one row in MAX_BAD_SHARE is made faulty, so a small source stays mostly valid (as real ones are).

    A kind named ``duplicate_key`` (alter None) appends a copy of an untouched row, so the key repeats.
    """
    if bad < 0:
        raise ValueError("bad must not be negative")
    bad = min(bad, len(rows) // MAX_BAD_SHARE)
    rng = random.Random(f"{seed}:bad")
    names = list(kinds)
    counts: dict[str, int] = {}
    copies = []
    for i, index in enumerate(rng.sample(range(len(rows)), bad)):
        kind = names[i % len(names)]
        counts[kind] = counts.get(kind, 0) + 1
        alter = kinds[kind]
        if alter is None:
            copies.append(index)
        else:
            alter(rng, rows[index])
    rows.extend(dict(rows[index]) for index in copies)
    return counts


def moment(rng: random.Random, days: int = 30) -> datetime:
    """A time in the last ``days`` days before the reference time, with microseconds (sub-second sources)."""
    return REFERENCE_TIME - timedelta(seconds=rng.randrange(1, days * 86400), microseconds=rng.randrange(10**6))


def a_day(rng: random.Random, start: date, end: date = REFERENCE_DATE) -> date:
    """A day in [start, end]."""
    return start + timedelta(days=rng.randrange(max(1, (end - start).days + 1)))


def tie_at_boundary(rows: list[dict[str, Any]], column: str, ties: int = 3) -> None:
    """Give the latest ``ties`` rows the same watermark value, as batch jobs do when they stamp many
    rows in one transaction: the incremental boundary must neither miss nor double-load them."""
    stamped = [r for r in rows if isinstance(r.get(column), datetime)]
    if len(stamped) < ties:
        return
    stamped.sort(key=lambda r: r[column])
    top = stamped[-1][column]
    for row in stamped[-ties:]:
        row[column] = top


def bank_card(rng: random.Random) -> str:
    """A 19-digit UnionPay-style card number with a valid Luhn digit (what the PII scanner must catch)."""
    body = "62" + "".join(str(rng.randrange(10)) for _ in range(16))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def yuan(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


# --- declarations --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSource:
    """One dataset's synthetic source: what to build and where its adapter reads it."""

    dataset: str
    connection: str
    build: Callable[[World, int], SampleTable]  # (world, faulty rows wanted)
    table: str | None = None  # a SQL source's table
    server: str = "sqlite"  # where the table lives with real servers: mariadb | postgres | sqlite
    file: str | None = None  # a drop's file name (.csv or .xlsx)
    encoding: str = "utf-8"  # CSV drops: gb18030 (GBK), utf-8, utf-8-sig (with BOM)
    serial_dates: tuple[str, ...] = ()  # XLSX columns whose dates are typed as plain serial numbers

    def __post_init__(self) -> None:
        if (self.table is None) == (self.file is None):
            raise ConfigError(f"sample source {self.dataset}: give exactly one of table= or file=")
        if self.server not in SERVERS:
            raise ConfigError(f"sample source {self.dataset}: server is one of {', '.join(SERVERS)}")

    @property
    def kind(self) -> str:
        if self.table:
            return f"sql/{self.server}"
        return "xlsx" if self.file and self.file.endswith(".xlsx") else f"csv/{self.encoding}"


SERVERS = ("mariadb", "postgres", "sqlite")


# --- encoders ------------------------------------------------------------------------------------------


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f" if value.microsecond else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def csv_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], encoding: str) -> bytes:
    """CRLF CSV as department exports write it; ``gb18030`` for GBK (a superset that keeps rare names)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_plain(row.get(c)) for c in columns])
    return out.getvalue().encode(encoding)


_EXCEL_EPOCH = date(1899, 12, 30)


def xlsx_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], serial_dates: Sequence[str] = ()) -> bytes:
    """A one-sheet workbook; dates are date cells unless their column is listed in ``serial_dates``."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Sheet1")
    sheet.append(list(columns))
    serial = set(serial_dates)
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            if isinstance(value, Decimal):
                value = float(value)
            elif c in serial and isinstance(value, date) and not isinstance(value, datetime):
                value = (value - _EXCEL_EPOCH).days
            cells.append(value)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- targets -------------------------------------------------------------------------------------------


@dataclass
class Written:
    dataset: str
    kind: str
    connection: str
    where: str
    rows: int
    bad_kinds: dict[str, int]
    expected_quarantine: int


@dataclass
class SampleReport:
    """What was written: the adapters' connections and, per dataset, rows and faults."""

    connections: dict[str, str]
    written: list[Written]

    def by_dataset(self) -> dict[str, Written]:
        return {w.dataset: w for w in self.written}


@dataclass
class Servers:
    """The real servers to write to; a kind left unset falls back to a SQLite file under ``root``."""

    root: Path
    mariadb_odbc: str | None = None  # DRIVER={MariaDB Unicode};SERVER=…;PORT=…;UID=…;PWD=…
    postgres_url: str | None = None  # postgresql+psycopg://user@host:port/any_database
    sftp_url: str | None = None  # sftp://user@host:port/dir?key_file=…&known_hosts=…
    database_prefix: str = "lidm_src_"

    def __post_init__(self) -> None:
        # Given as every source connection is (odbc:DRIVER=…), or as the bare connection string.
        if self.mariadb_odbc:
            self.mariadb_odbc = self.mariadb_odbc.removeprefix("odbc:")

    def sql_url(self, source: SampleSource) -> tuple[str, str]:
        """(URL to write with, connection value for the adapter)."""
        name = f"{self.database_prefix}{source.connection}"
        if source.server == "mariadb" and self.mariadb_odbc:
            _create_mariadb_database(self.mariadb_odbc, name)
            odbc = f"{self.mariadb_odbc.rstrip(';')};DATABASE={name}"
            return "mariadb+pyodbc:///?odbc_connect=" + urllib.parse.quote_plus(odbc), f"odbc:{odbc}"
        if source.server == "postgres" and self.postgres_url:
            url = _create_postgres_database(self.postgres_url, name)
            return url, url
        path = (self.root / f"{source.connection}.db").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}", f"sqlite:///{path}"

    def drop_url(self, source: SampleSource) -> str:
        if self.sftp_url:
            parts = urllib.parse.urlsplit(self.sftp_url)
            path = parts.path.rstrip("/") + "/" + source.connection
            return urllib.parse.urlunsplit(parts._replace(path=path))
        return (self.root / source.connection).resolve().as_uri()


def _create_mariadb_database(odbc: str, name: str) -> None:
    import pyodbc

    with pyodbc.connect(odbc, autocommit=True, timeout=10) as conn:
        conn.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")


def _create_postgres_database(url: str, name: str) -> str:
    target = sa.engine.make_url(url)
    engine = sa.create_engine(target, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return target.set(database=name).render_as_string(hide_password=False)


def _bindable(engine: sa.Engine, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows as the driver will store them faithfully: pyodbc drops the microseconds of a datetime
    parameter on MariaDB, so there timestamps travel as text, which DATETIME(6) parses exactly."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return [dict(r) for r in rows]
    return [
        {k: (v.isoformat(sep=" ", timespec="microseconds") if isinstance(v, datetime) else v) for k, v in r.items()}
        for r in rows
    ]


def write_table(url: str, name: str, table: SampleTable, batch: int = 2000) -> None:
    """Drop, create and fill one department table in one transaction."""
    target = sa.Table(name, sa.MetaData(), *(sa.Column(c, t) for c, t in table.columns.items()))
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            target.drop(conn, checkfirst=True)
            target.create(conn)
            for start in range(0, len(table.rows), batch):
                conn.execute(target.insert(), _bindable(engine, table.rows[start : start + batch]))
    finally:
        engine.dispose()


def append_rows(url: str, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add rows to an existing department table (late arrivals, in tests), keeping sub-second times."""
    engine = sa.create_engine(url)
    try:
        target = sa.Table(name, sa.MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(target.insert(), _bindable(engine, rows))
    finally:
        engine.dispose()


def write_drop(url: str, name: str, data: bytes) -> None:
    """Put the file, then its ``.ok`` marker carrying the file's sha256: a complete drop, never half of one."""
    import hashlib

    from lidm.config import Settings
    from lidm.sources.stores import open_store

    store = open_store(url, Settings())  # an sftp:// URL carries its own known_hosts
    try:
        if url.startswith("sftp://"):
            _sftp_makedirs(store)
        store.put(name, data)
        store.put(name + ".ok", f"sha256={hashlib.sha256(data).hexdigest()}\n".encode())
    finally:
        store.close()


def _sftp_makedirs(store: Any) -> None:
    """Create the drop folder and its parents on the SFTP server (a fresh account has none)."""
    sftp = store.connect()
    current = "/" if store.root.startswith("/") else ""
    for part in [p for p in store.root.split("/") if p]:
        current = f"{current}{part}" if current in ("", "/") else f"{current}/{part}"
        try:
            sftp.stat(current)
        except FileNotFoundError:
            sftp.mkdir(current)
