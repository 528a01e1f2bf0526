"""The transport layer for tables in a department's own database: one translation of its connection.

A department names its database by a SQLAlchemy URL or by an ODBC connection string (``odbc:DRIVER=...``, for the
MariaDB/MySQL and SQL Server drivers); either becomes one engine here, and what is shown of it (``shown``) is
backend, host, port and database: never a user, a password or a DSN's secrets. Failures name the table and the
SQLSTATE, never a driver's message (which can quote a row).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote_plus

import sqlalchemy as sa

from lidm.errors import ChannelError, ConfigError

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
TableName = tuple[str | None, str]


def table_name(who: str, text: str) -> TableName:
    """``[schema.]table`` as (schema, table), each part a plain SQL identifier."""
    schema, _, name = text.strip().rpartition(".")
    for part in (schema, name) if schema else (name,):
        if not _TABLE_NAME.match(part):
            raise ConfigError(f"{who}: {text!r} is not a [schema.]table name")
    return (schema or None), name


def qualified(name: TableName) -> str:
    return f"{name[0]}.{name[1]}" if name[0] else name[1]


def odbc_pairs(conn_str: str) -> dict[str, str]:
    pairs = {}
    for item in conn_str.split(";"):
        key, _, value = item.partition("=")
        if key.strip():
            pairs[key.strip().upper()] = value.strip().strip("{}")
    return pairs


def _odbc_shown(pairs: dict[str, str]) -> str:
    """An ODBC connection as server:port/database (or the DSN): never UID or PWD."""
    if "SERVER" not in pairs and "DSN" in pairs:
        return f"odbc:dsn={pairs['DSN']}"
    port = f":{pairs['PORT']}" if pairs.get("PORT") else ""
    return f"odbc://{pairs.get('SERVER', '')}{port}/{pairs.get('DATABASE', '')}"


def database_url(who: str, url: str) -> tuple[str, str]:
    """A department's connection as (SQLAlchemy URL, display form); ODBC strings get the dialect of their driver."""
    if url.startswith("odbc:"):
        conn_str = url.removeprefix("odbc:")
        pairs = odbc_pairs(conn_str)
        driver = pairs.get("DRIVER", pairs.get("DSN", "")).lower()
        dialect = next((d for name, d in _ODBC_DIALECTS if name in driver), None)
        if dialect is None:
            raise ConfigError(
                f"{who}: cannot tell the database of ODBC driver {driver or '(none)'!r}; "
                "use a SQLAlchemy URL (e.g. postgresql+psycopg://...#table) for this channel"
            )
        return f"{dialect}:///?odbc_connect={quote_plus(conn_str)}", _odbc_shown(pairs)
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigError(f"{who}: not a file://, sftp:// or database URL") from None
    if parsed.get_backend_name() == "sqlite":
        return url, f"sqlite:///{parsed.database or ''}"
    if "odbc_connect" in parsed.query:
        odbc = parsed.query["odbc_connect"]
        return url, _odbc_shown(odbc_pairs(odbc if isinstance(odbc, str) else odbc[-1]))
    port = f":{parsed.port}" if parsed.port else ""
    return url, f"{parsed.get_backend_name()}://{parsed.host or ''}{port}/{parsed.database or ''}"


_ODBC_DIALECTS = (("mariadb", "mariadb+pyodbc"), ("mysql", "mysql+pyodbc"), ("sql server", "mssql+pyodbc"))


@dataclass
class Database:
    """A department's database, connected on first use; `who` starts every message ("channel of education")."""

    who: str
    shown: str  # backend://host:port/database, no credentials
    _url: str = field(repr=False)
    _engine: sa.Engine | None = field(default=None, repr=False)

    @classmethod
    def of(cls, who: str, url: str) -> Database:
        sa_url, shown = database_url(who, url)
        return cls(who, shown, sa_url)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            try:
                self._engine = sa.create_engine(self._url, pool_pre_ping=True)
            except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
                raise ConfigError(
                    f"{self.who} at {self.shown}: cannot use this database URL ({type(exc).__name__}); "
                    "is its driver installed?"
                ) from None
        return self._engine

    @contextlib.contextmanager
    def begin(self, where: str, action: str) -> Iterator[sa.Connection]:
        """A transaction; failures name ``where`` and the SQLSTATE, never a row or a credential."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "-"
            raise ChannelError(
                f"{self.who} at {where}: cannot {action} ({type(exc.orig).__name__}, SQLSTATE {code}); "
                "nothing was written there"
            ) from None
        except sa.exc.SQLAlchemyError as exc:
            raise ChannelError(f"{self.who} at {where}: cannot {action} ({type(exc).__name__})") from None
