"""A department's channel: where its warnings go and its acknowledgements and dispositions come from.

Three kinds, chosen by the URL in ``settings.channels[department]``:

- ``file:///dir``: a folder (a mounted share); unset departments use ``home/channels/<department>``.
- ``sftp://user@host:port/dir?key=PATH&known_hosts=PATH``: a folder on the department's SFTP server, with the
  drops' conventions (host key always verified, ``key`` or ``key_file``, paths relative to the login folder).
- a SQLAlchemy database URL with ``#[schema.]table[,[schema.]disposition_table]``: tables in the department's own
  database (``odbc:DRIVER=...;#table`` too, for MariaDB/MySQL and SQL Server drivers). The disposition table
  defaults to ``<table>_disposition``.

A folder channel has ``outbox/`` (the platform writes warning files, each with a ``.manifest.json``) and
``inbox/`` (the department writes ``ack_*.csv`` and ``disposition_*.csv``; the platform moves what it took to
``inbox/done/`` and what it could not read to ``inbox/rejected/``). Every write is atomic (hidden ``.part`` name,
then rename). A table channel's layout is defined here too, so the platform and a department agree on it.

Credentials never leave this module: ``where`` names host, port, folder or table only, and errors say what
failed without driver messages (which can quote rows).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, quote_plus, unquote, urlencode, urlsplit, urlunsplit

import paramiko
import sqlalchemy as sa

from lidm.config import Settings
from lidm.contracts.model import Contract, Field, GrantLevel, LogicalType
from lidm.errors import ConfigError, SourceError
from lidm.sources.sftp import SftpStore, SftpTarget

OUTBOX, INBOX = "outbox", "inbox"
DONE, REJECTED = "inbox/done", "inbox/rejected"
# Columns of a department's warning table besides the granted fields: when we pushed, and when they took it.
ACK_COLUMN = "acknowledged_at"
# Columns of a department's disposition table the platform fills in once it has taken a row.
RESULT_COLUMNS = ("lidm_status", "lidm_reason", "lidm_disposition_id", "lidm_collected_at")
# Disposition fields the platform issues itself; a department does not send them.
PLATFORM_ISSUED = ("disposition_id", "updated_at")

_SQL_TYPES = {
    LogicalType.STRING: sa.Text,
    LogicalType.DATE: sa.Date,
    LogicalType.TIMESTAMP: sa.DateTime,
    LogicalType.NUMBER: lambda: sa.Numeric(18, 2),
    LogicalType.INTEGER: sa.BigInteger,
    LogicalType.BOOLEAN: sa.Boolean,
}


class ChannelError(SourceError):
    """A department's channel cannot be reached, read or written (worth a retry once the cause is fixed)."""


def default_url(settings: Settings, department: str) -> str:
    """The folder a department without a configured channel uses: home/channels/<department>."""
    return (settings.home / "channels" / department).resolve().as_uri()


def open_channel(settings: Settings, department: str) -> FileChannel | TableChannel:
    """The channel of a department, from settings.channels or the default folder; not yet connected."""
    url = settings.channels.get(department) or default_url(settings, department)
    if url.startswith("file://") or url.startswith("/"):
        parts = urlsplit(url if url.startswith("file://") else Path(url).as_uri())
        root = Path(unquote(parts.path))
        return FileChannel(department, "folder", str(root), _encoding(parts.query), _LocalFolder(root))
    if url.startswith("sftp://"):
        return _sftp_channel(settings, department, url)
    if "#" not in url:
        raise ConfigError(
            f"channel of {department}: a database channel names its table after '#', e.g. "
            "postgresql+psycopg://user@host/db#schema.lidm_warning; folders are file:///dir or sftp://..."
        )
    return _table_channel(department, url)


def _encoding(query: str) -> str:
    return {k: v[-1] for k, v in parse_qs(query).items()}.get("encoding", "utf-8")


# ----------------------------------------------------------------------------------------------- folders


class _Folder(Protocol):
    def list(self, folder: str) -> list[str]: ...
    def read(self, rel: str) -> bytes: ...
    def put(self, folder: str, name: str, data: bytes) -> None: ...
    def move(self, rel: str, folder: str) -> None: ...
    def makedirs(self, folder: str) -> None: ...
    def close(self) -> None: ...


class _LocalFolder:
    def __init__(self, root: Path) -> None:
        self.root = root

    def list(self, folder: str) -> list[str]:
        base = self.root / folder
        return sorted(p.name for p in base.iterdir() if p.is_file()) if base.is_dir() else []

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def put(self, folder: str, name: str, data: bytes) -> None:
        base = self.root / folder
        base.mkdir(parents=True, exist_ok=True)
        part = base / f".{name}.part"
        with part.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(part, base / name)

    def move(self, rel: str, folder: str) -> None:
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        os.replace(self.root / rel, self.root / folder / posixpath.basename(rel))

    def makedirs(self, folder: str) -> None:
        (self.root / folder).mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        return None


class _SftpFolder:
    """Folders under the channel's root on an SFTP server; the connection and host-key policy are the drops'."""

    def __init__(self, target: SftpTarget) -> None:
        self.store = SftpStore(target)
        self.root = target.path

    def _p(self, rel: str) -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def list(self, folder: str) -> list[str]:
        try:
            attrs = self.store.connect().listdir_attr(self._p(folder))
        except FileNotFoundError:
            return []
        return sorted(a.filename for a in attrs if stat.S_ISREG(a.st_mode or 0))

    def read(self, rel: str) -> bytes:
        with self.store.connect().open(self._p(rel), "rb") as fh:
            fh.prefetch()
            return fh.read()

    def _replace(self, src: str, dest: str) -> None:
        sftp = self.store.connect()
        try:
            sftp.posix_rename(src, dest)  # atomic replace on OpenSSH servers
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(dest)
            sftp.rename(src, dest)

    def put(self, folder: str, name: str, data: bytes) -> None:
        self.makedirs(folder)
        part = self._p(posixpath.join(folder, f".{name}.part"))
        with self.store.connect().open(part, "wb") as fh:
            fh.write(data)
        self._replace(part, self._p(posixpath.join(folder, name)))

    def move(self, rel: str, folder: str) -> None:
        self.makedirs(folder)
        self._replace(self._p(rel), self._p(posixpath.join(folder, posixpath.basename(rel))))

    def makedirs(self, folder: str) -> None:
        """The channel's root and ``folder`` under it, one level at a time (SFTP has no mkdir -p)."""
        sftp = self.store.connect()
        path = "/" if self.root.startswith("/") else ""
        for part in [p for p in f"{self.root}/{folder}".split("/") if p and p != "."]:
            path = posixpath.join(path, part) if path else part
            try:
                sftp.stat(path)
            except FileNotFoundError:
                sftp.mkdir(path)

    def close(self) -> None:
        self.store.close()


def _sftp_channel(settings: Settings, department: str, url: str) -> FileChannel:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if "key" in query and "key_file" not in query:  # the channel URL's short form
        query["key_file"] = query.pop("key")
    clean = urlunsplit(parts._replace(query=urlencode({k: v[-1] for k, v in query.items()})))
    try:
        target = SftpTarget.from_url(clean, settings.known_hosts)
    except ValueError:
        raise ConfigError(f"channel of {department}: malformed sftp:// URL (bad port?)") from None
    # As in the URL: a path relative to the login folder, or '//' for an absolute one. No user, no key.
    where = f"sftp://{target.host}:{target.port}/{target.path}"
    return FileChannel(department, "sftp", where, _encoding(parts.query), _SftpFolder(target))


@dataclass
class FileChannel:
    """A folder channel, local or on SFTP: outbox/ for warnings, inbox/ for what the department returns."""

    department: str
    kind: str  # folder | sftp
    where: str  # for records, logs and errors: never a credential
    encoding: str  # of the files the department writes
    _folder: _Folder = field(repr=False)

    def __enter__(self) -> FileChannel:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._folder.close()

    def name_of(self, folder: str, name: str) -> str:
        """A file's name for records (lidm_push.target, lidm_disposition_result.source_name)."""
        return f"{self.where}/{folder}/{name}"[:300]

    def prepare(self) -> None:
        """Make outbox/, inbox/, inbox/done/ and inbox/rejected/ so the department sees the layout."""
        with self._errors("create the channel folders"):
            for folder in (OUTBOX, INBOX, DONE, REJECTED):
                self._folder.makedirs(folder)

    def list(self, folder: str) -> list[str]:
        """Complete files of a folder: hidden names (a .part upload in progress) are not listed."""
        with self._errors(f"list {folder}/"):
            return [n for n in self._folder.list(folder) if not n.startswith(".")]

    def read(self, folder: str, name: str) -> bytes:
        with self._errors(f"read {folder}/{name}"):
            return self._folder.read(posixpath.join(folder, name))

    def put(self, folder: str, name: str, data: bytes) -> str:
        """Write a file atomically; returns its name for records."""
        with self._errors(f"write {folder}/{name}"):
            self._folder.put(folder, name, data)
        return self.name_of(folder, name)

    def move(self, folder: str, name: str, dest: str) -> None:
        with self._errors(f"move {folder}/{name} to {dest}/"):
            self._folder.move(posixpath.join(folder, name), dest)

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except SourceError:
            raise
        except (OSError, paramiko.SSHException) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ChannelError(f"channel of {self.department} at {self.where}: cannot {action}: {reason}") from None


# ----------------------------------------------------------------------------------------------- tables


_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _table_name(department: str, text: str) -> tuple[str | None, str]:
    schema, _, name = text.strip().rpartition(".")
    for part in (schema, name) if schema else (name,):
        if not _TABLE_NAME.match(part):
            raise ConfigError(f"channel of {department}: {text!r} is not a [schema.]table name")
    return (schema or None), name


def _odbc_url(department: str, conn_str: str) -> tuple[str, str]:
    """An ODBC connection string as a SQLAlchemy URL (dialect from the driver name) and its display form."""
    pairs = _odbc_pairs(conn_str)
    driver = pairs.get("DRIVER", pairs.get("DSN", "")).lower()
    shown = _odbc_shown(pairs)
    if "mariadb" in driver:
        dialect = "mariadb+pyodbc"
    elif "mysql" in driver:
        dialect = "mysql+pyodbc"
    elif "sql server" in driver:
        dialect = "mssql+pyodbc"
    else:
        raise ConfigError(
            f"channel of {department}: cannot tell the database of ODBC driver {driver or '(none)'!r}; "
            "use a SQLAlchemy URL (e.g. postgresql+psycopg://...#table) for this channel"
        )
    return f"{dialect}:///?odbc_connect={quote_plus(conn_str)}", shown


def _odbc_pairs(conn_str: str) -> dict[str, str]:
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


def _table_channel(department: str, url: str) -> TableChannel:
    raw, _, fragment = url.rpartition("#")
    names = [n for n in fragment.split(",") if n.strip()]
    if not names or len(names) > 2:
        raise ConfigError(f"channel of {department}: name the table after '#': #[schema.]table[,[schema.]table]")
    warnings = _table_name(department, names[0])
    dispositions = _table_name(department, names[1]) if len(names) > 1 else (warnings[0], warnings[1] + "_disposition")
    if raw.startswith("odbc:"):
        sa_url, shown = _odbc_url(department, raw.removeprefix("odbc:"))
    else:
        sa_url = raw
        try:
            parsed = sa.engine.make_url(raw)
        except (sa.exc.ArgumentError, ValueError):
            raise ConfigError(f"channel of {department}: not a file://, sftp:// or database URL") from None
        if parsed.get_backend_name() == "sqlite":
            shown = f"sqlite:///{parsed.database or ''}"
        elif "odbc_connect" in parsed.query:
            odbc = parsed.query["odbc_connect"]
            shown = _odbc_shown(_odbc_pairs(odbc if isinstance(odbc, str) else odbc[-1]))
        else:
            port = f":{parsed.port}" if parsed.port else ""
            shown = f"{parsed.get_backend_name()}://{parsed.host or ''}{port}/{parsed.database or ''}"
    return TableChannel(department, shown, sa_url, warnings, dispositions)


def _qualified(name: tuple[str | None, str]) -> str:
    return f"{name[0]}.{name[1]}" if name[0] else name[1]


@dataclass
class TableChannel:
    """Two tables in a department's own database: warnings we upsert, dispositions they insert."""

    department: str
    base: str  # backend://host:port/database, no credentials
    _url: str = field(repr=False)
    warnings_name: tuple[str | None, str]
    dispositions_name: tuple[str | None, str]
    kind: str = "table"
    _engine: sa.Engine | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return self.name_of(self.warnings_name)

    def name_of(self, table: tuple[str | None, str]) -> str:
        return f"{self.base}#{_qualified(table)}"[:300]

    def __enter__(self) -> TableChannel:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

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
                    f"channel of {self.department} at {self.base}: cannot use this database URL "
                    f"({type(exc).__name__}); is its driver installed?"
                ) from None
        return self._engine

    @contextlib.contextmanager
    def begin(self, action: str) -> Iterator[sa.Connection]:
        """A transaction on the department's database; failures name the table, never a row or credential."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "-"
            raise ChannelError(
                f"channel of {self.department} at {self.where}: cannot {action} "
                f"({type(exc.orig).__name__}, SQLSTATE {code}); nothing was written there"
            ) from None
        except sa.exc.SQLAlchemyError as exc:
            raise ChannelError(
                f"channel of {self.department} at {self.where}: cannot {action} ({type(exc).__name__})"
            ) from None

    def warning_table(self, fields: Sequence[tuple[Field, GrantLevel]]) -> sa.Table:
        """The department's warning table: the granted fields (clear ones typed), then push and ack columns."""
        return warning_table_for(self.warnings_name, fields)

    def disposition_table(self, contract: Contract) -> sa.Table:
        return disposition_table_for(self.dispositions_name, contract)

    def ensure(self, conn: sa.Connection, table: sa.Table) -> None:
        """Create a missing table; refuse one that lacks columns we need (we never alter theirs)."""
        inspector = sa.inspect(conn)
        if not inspector.has_table(table.name, schema=table.schema):
            table.create(conn)
            return
        have = {c["name"].lower() for c in inspector.get_columns(table.name, schema=table.schema)}
        missing = [c.name for c in table.columns if c.name.lower() not in have]
        if missing:
            raise ChannelError(
                f"channel of {self.department}: table {_qualified((table.schema, table.name))} lacks column(s) "
                f"{', '.join(missing)}; add them, or drop the table and lidm creates it at the next push"
            )


def _column_type(f: Field, level: GrantLevel | None) -> sa.types.TypeEngine[Any]:
    if level is not None and level is not GrantLevel.CLEAR:
        return sa.Text()
    return _SQL_TYPES[f.type]()


def warning_table_for(name: tuple[str | None, str], fields: Sequence[tuple[Field, GrantLevel]]) -> sa.Table:
    """Layout of a department's warning table: warning_id key, granted fields, push_id, pushed_at, acknowledged_at."""
    cols = [sa.Column("warning_id", sa.String(40), primary_key=True)]
    cols += [sa.Column(f.name, _column_type(f, level)) for f, level in fields if f.name != "warning_id"]
    cols += [
        sa.Column("push_id", sa.String(36)),
        sa.Column("pushed_at", sa.DateTime),
        sa.Column(ACK_COLUMN, sa.DateTime),  # the department fills it in: the platform then marks acknowledged
    ]
    return sa.Table(name[1], sa.MetaData(schema=name[0]), *cols)


def disposition_table_for(name: tuple[str | None, str], contract: Contract) -> sa.Table:
    """Layout of a department's disposition table: a row id, the fields it sends, then the platform's verdict."""
    cols = [sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True)]
    for f in contract.fields:
        if f.name in PLATFORM_ISSUED:
            continue
        ctype = sa.String(40) if f.name == "warning_id" else _column_type(f, None)
        cols.append(sa.Column(f.name, ctype, nullable=f.name != "warning_id"))
    cols += [
        sa.Column("lidm_status", sa.String(20)),  # applied | refused | unchanged; empty until taken
        sa.Column("lidm_reason", sa.Text),
        sa.Column("lidm_disposition_id", sa.String(40)),
        sa.Column("lidm_collected_at", sa.DateTime),
    ]
    return sa.Table(name[1], sa.MetaData(schema=name[0]), *cols)
