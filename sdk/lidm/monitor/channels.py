"""A department's channel: where its warnings go and its acknowledgements and dispositions come from.

Three kinds, chosen by the URL in ``settings.channels[department]``:

- ``file:///dir``: a folder (a mounted share); unset departments use ``home/channels/<department>``.
- ``sftp://user@host:port/dir?key=PATH&known_hosts=PATH``: a folder on the department's SFTP server, with the
  drops' conventions (host key always verified, ``key`` or ``key_file``, paths relative to the login folder).
- a SQLAlchemy database URL with ``#[schema.]table[,[schema.]disposition_table]``: tables in the department's own
  database (``odbc:DRIVER=...;#table`` too, for MariaDB/MySQL and SQL Server drivers). The disposition table
  defaults to ``<table>_disposition``.

A folder channel has ``outbox/`` (the platform writes warning files, each with a ``.manifest.json`` and, beside
it, files for people and an answer workbook; ``notices_*`` of closed and overdue warnings (lidm.monitor.push); and a
``result_*.csv`` per answer it took) and ``inbox/`` (the department writes ``ack_*`` and ``disposition_*`` files,
CSV or XLSX; the platform moves what it took to ``inbox/done/`` and what it could not read to ``inbox/rejected/``).
A folder URL's ``?encoding=gbk`` (or any codec) says how the department's CSV files are encoded; without it
the platform tells UTF-8 (with or without BOM) from GB18030/GBK itself. Every write is atomic (hidden ``.part`` name,
then rename). A table channel's layout is defined here too, so the platform and a department agree on it.

Credentials never leave this module: ``where`` names host, port, folder or table only, and errors say what
failed without driver messages (which can quote rows).
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import paramiko
import sqlalchemy as sa

from lidm.config import Settings
from lidm.contracts.model import Contract, Field, GrantLevel, LogicalType
from lidm.errors import ChannelError, ConfigError, SourceError
from lidm.sources.sftp import SftpTarget
from lidm.sources.stores import Store, open_store
from lidm.sources.tables import Database, TableName, qualified, table_name

__all__ = [
    "ACK_COLUMN",
    "DONE",
    "INBOX",
    "LATER_FIELDS",
    "OUTBOX",
    "PLATFORM_ISSUED",
    "REASON_COLUMNS",
    "REJECTED",
    "ChannelError",
    "FileChannel",
    "TableChannel",
    "default_url",
    "disposition_table_for",
    "has_channel",
    "open_channel",
    "warning_table_for",
]

OUTBOX, INBOX = "outbox", "inbox"
DONE, REJECTED = "inbox/done", "inbox/rejected"
# Columns of a department's warning table besides the granted fields: when we pushed, and when they took it.
ACK_COLUMN = "acknowledged_at"
# Why a warning row's status changed (closed, overdue), re-upserted with the notice; tables laid out before
# these columns existed are still used, without them.
REASON_COLUMNS = ("status_reason_code", "status_reason")
# Columns of a department's disposition table the platform fills in once it has taken a row.
RESULT_COLUMNS = ("lidm_status", "lidm_reason", "lidm_disposition_id", "lidm_collected_at")
# Disposition fields the platform issues itself; a department does not send them.
PLATFORM_ISSUED = ("disposition_id", "updated_at")
# Disposition fields added after departments' tables were laid out: a table without their columns is still read.
LATER_FIELDS = ("notes", "follow_up_date", "follow_up_result", "transfer_to", "handover_reason")

_SQL_TYPES = {
    LogicalType.STRING: sa.Text,
    LogicalType.DATE: sa.Date,
    LogicalType.TIMESTAMP: sa.DateTime,
    LogicalType.NUMBER: lambda: sa.Numeric(18, 2),
    LogicalType.INTEGER: sa.BigInteger,
    LogicalType.BOOLEAN: sa.Boolean,
}


def default_url(settings: Settings, department: str) -> str:
    """The folder a department without a configured channel uses: home/channels/<department>."""
    return (settings.home / "channels" / department).resolve().as_uri()


def has_channel(settings: Settings, holder: str) -> bool:
    """Whether an office has a channel to read: configured, or its default folder made by an earlier push.
    A county or street office never pushed to has nothing to collect; its folder is not created by looking."""
    return holder in settings.channels or Path(unquote(urlsplit(default_url(settings, holder)).path)).is_dir()


def open_channel(settings: Settings, department: str) -> FileChannel | TableChannel:
    """The channel of a department, from settings.channels or the default folder; not yet connected."""
    url = settings.channels.get(department) or default_url(settings, department)
    who = f"channel of {department}"
    if url.startswith("file://") or url.startswith("/"):
        parts = urlsplit(url if url.startswith("file://") else Path(url).as_uri())
        root = Path(unquote(parts.path))
        return FileChannel(department, "folder", str(root), _encoding(parts.query), open_store(root.as_uri(), settings))
    if url.startswith("sftp://"):
        return _sftp_channel(settings, department, url)
    if "#" not in url:
        raise ConfigError(
            f"{who}: a database channel names its table after '#', e.g. "
            "postgresql+psycopg://user@host/db#schema.lidm_warning; folders are file:///dir or sftp://..."
        )
    raw, _, fragment = url.rpartition("#")
    names = [n for n in fragment.split(",") if n.strip()]
    if not names or len(names) > 2:
        raise ConfigError(f"{who}: name the table after '#': #[schema.]table[,[schema.]table]")
    warnings = table_name(who, names[0])
    dispositions = table_name(who, names[1]) if len(names) > 1 else (warnings[0], warnings[1] + "_disposition")
    return TableChannel(department, Database.of(who, raw), warnings, dispositions)


def _encoding(query: str) -> str:
    """The channel's ``encoding`` setting; "auto" (the default) tells UTF-8 from GB18030 by the bytes."""
    return {k: v[-1] for k, v in parse_qs(query).items()}.get("encoding", "auto")


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
    return FileChannel(department, "sftp", where, _encoding(parts.query), open_store(clean, settings))


@dataclass
class FileChannel:
    """A folder channel, local or on SFTP: outbox/ for warnings, inbox/ for what the department returns.

    Each folder is a store of the transport layer (sources.stores), so a channel has the drops' guarantees: only
    regular files are read, never a link out of the folder, names keep their bytes, writes are atomic.
    """

    department: str
    kind: str  # folder | sftp
    where: str  # for records, logs and errors: never a credential
    encoding: str  # of the CSV files the department writes; "auto": UTF-8 or GB18030, told by the bytes
    _root: Store = field(repr=False)

    def __enter__(self) -> FileChannel:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._root.close()

    def name_of(self, folder: str, name: str) -> str:
        """A file's name for records (lidm_push.target, lidm_disposition_result.source_name)."""
        return f"{self.where}/{folder}/{name}"[:300]

    def prepare(self) -> None:
        """Make outbox/, inbox/, inbox/done/ and inbox/rejected/ so the department sees the layout."""
        with self._errors("create the channel folders"):
            for folder in (OUTBOX, INBOX, DONE, REJECTED):
                self._root.child(folder).create()

    def list(self, folder: str) -> list[str]:
        """Complete files of a folder: hidden names (a .part upload in progress) are not listed."""
        with self._errors(f"list {folder}/"):
            store = self._root.child(folder)
            return [n for n in store.list() if not n.startswith(".")] if store.exists() else []

    def read(self, folder: str, name: str) -> bytes:
        with self._errors(f"read {folder}/{name}"), self._root.child(folder).open(name) as fh:
            return fh.read()

    def put(self, folder: str, name: str, data: bytes) -> str:
        """Write a file atomically; returns its name for records."""
        with self._errors(f"write {folder}/{name}"):
            self._root.child(folder).put(name, data)
        return self.name_of(folder, name)

    def arrived(self, folder: str, name: str) -> float:
        """When a file was last written (seconds since the epoch): the order a department's answers arrived in."""
        with self._errors(f"read the time of {folder}/{name}"):
            return self._root.child(folder).mtime(name)

    def move(self, folder: str, name: str, dest: str) -> None:
        """Move a file into a folder inside its own (inbox/ to inbox/done/, outbox/ to outbox/received/)."""
        inner = posixpath.relpath(dest, folder)
        if inner.startswith("..") or "/" in inner:
            raise ConfigError(f"channel of {self.department}: {dest}/ is not a folder inside {folder}/")
        with self._errors(f"move {folder}/{name} to {dest}/"):
            self._root.child(folder).move(name, inner)

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


@dataclass
class TableChannel:
    """Two tables in a department's own database: warnings we upsert, dispositions they insert."""

    department: str
    database: Database = field(repr=False)
    warnings_name: TableName
    dispositions_name: TableName
    kind: str = "table"

    @property
    def base(self) -> str:
        """backend://host:port/database, no credentials."""
        return self.database.shown

    @property
    def where(self) -> str:
        return self.name_of(self.warnings_name)

    def name_of(self, table: TableName) -> str:
        return f"{self.base}#{qualified(table)}"[:300]

    def __enter__(self) -> TableChannel:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.database.close()

    @property
    def engine(self) -> sa.Engine:
        return self.database.engine

    def begin(self, action: str) -> contextlib.AbstractContextManager[sa.Connection]:
        """A transaction on the department's database; failures name the table, never a row or credential."""
        return self.database.begin(self.where, action)

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
        later = (*LATER_FIELDS, *REASON_COLUMNS)
        missing = [c.name for c in table.columns if c.name.lower() not in have and c.name not in later]
        if missing:
            raise ChannelError(
                f"channel of {self.department}: table {qualified((table.schema, table.name))} lacks column(s) "
                f"{', '.join(missing)}; add them, or drop the table and lidm creates it at the next push"
            )


def _column_type(f: Field, level: GrantLevel | None) -> sa.types.TypeEngine[Any]:
    if level is not None and level is not GrantLevel.CLEAR:
        return sa.Text()
    return _SQL_TYPES[f.type]()


def warning_table_for(name: TableName, fields: Sequence[tuple[Field, GrantLevel]]) -> sa.Table:
    """Layout of a department's warning table: warning_id key, granted fields, push_id, pushed_at, acknowledged_at,
    and the status reason columns a notice fills in."""
    cols = [sa.Column("warning_id", sa.String(40), primary_key=True)]
    cols += [sa.Column(f.name, _column_type(f, level)) for f, level in fields if f.name != "warning_id"]
    cols += [
        sa.Column("push_id", sa.String(36)),
        sa.Column("pushed_at", sa.DateTime),
        sa.Column(ACK_COLUMN, sa.DateTime),  # the department fills it in: the platform then marks acknowledged
        sa.Column(REASON_COLUMNS[0], sa.String(40)),  # a closure or overdue notice's reason code
        sa.Column(REASON_COLUMNS[1], sa.Text),  # and its Chinese wording
    ]
    return sa.Table(name[1], sa.MetaData(schema=name[0]), *cols)


def disposition_table_for(name: TableName, contract: Contract) -> sa.Table:
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
