"""Consumers' reads of their views, from pgaudit's object-audit lines in the PostgreSQL server log.

`lidm grants apply` gives the auditor role (``lidm_auditor``) SELECT on every consumer view when the pgaudit
extension is in the database; with ``pgaudit.role = 'lidm_auditor'`` set on the database (a superuser's step,
README), PostgreSQL logs every statement that reads one of those views, whoever runs it, as a line like::

    2026-12-04 10:00:01.123 UTC [4242] alice@central LOG:  AUDIT: OBJECT,1,1,READ,SELECT,VIEW,lidm_education.x,"…",…

The server writes those lines, not the gateway, so a consumer cannot leave them out; the gateway only reads the log
(LIDM_PGAUDIT_LOG, a file or glob readable where `lidm audit reads` runs) and summarises per consumer, view and
login: how many reads, first and last. The statement text stays in the server log and is never printed here (a
consumer's WHERE clause may hold a value it typed). The prefix is PostgreSQL's default on Debian (``%m [%p] %q%u@%d``);
other prefixes still parse as long as they keep ``user@database`` before ``LOG:``.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lidm.errors import ConfigError

_LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.\d+)?(?: \S+)?\b.*?(?P<user>[^\s@\[\]]*)@(?P<db>[^\s@\[\]]*)\s+"
    r"LOG:\s+AUDIT: OBJECT,\d+,\d+,(?P<cls>[A-Z]+),(?P<command>[A-Z ]+),(?P<kind>[A-Z ]*),(?P<object>[^,]*),"
)
_SCHEMA_PREFIX = "lidm_"


@dataclass(frozen=True)
class Read:
    """One statement that read a consumer view (the statement itself left in the server log)."""

    at: str  # the server's timestamp, to the second
    user: str  # the LOGIN user
    database: str
    schema: str
    view: str
    command: str


@dataclass
class ReadSummary:
    schema: str  # lidm_<consumer>: whose view
    view: str
    user: str
    reads: int
    first: str
    last: str

    @property
    def consumer(self) -> str:
        return self.schema.removeprefix(_SCHEMA_PREFIX).replace("__", ".")


def parse(lines: Iterable[str], database: str | None = None) -> Iterator[Read]:
    """The reads of consumer views in log lines (of one database, when named)."""
    for line in lines:
        if "AUDIT: OBJECT," not in line:
            continue
        m = _LINE.match(line)
        if m is None or m["cls"] != "READ":
            continue
        schema, _, view = m["object"].partition(".")
        if not schema.startswith(_SCHEMA_PREFIX) or not view or (database and m["db"] != database):
            continue
        yield Read(m["at"], m["user"], m["db"], schema, view, m["command"])


def log_files(pattern: str | None) -> list[Path]:
    """The server log files named by LIDM_PGAUDIT_LOG (a path or a glob), oldest first."""
    if not pattern:
        raise ConfigError(
            "LIDM_PGAUDIT_LOG is unset: name the PostgreSQL server log holding pgaudit's lines (a path or a glob, "
            "e.g. /var/log/postgresql/postgresql-15-main.log*)"
        )
    files = sorted((Path(p) for p in glob.glob(pattern)), key=lambda p: p.stat().st_mtime)
    if not files:
        raise ConfigError(f"LIDM_PGAUDIT_LOG: no file matches {pattern}")
    return files


def summarise_reads(found: Iterable[Read], since: str | None = None) -> list[ReadSummary]:
    """Reads per consumer view and login user (from `since`, an ISO date or time, on)."""
    out: dict[tuple[str, str, str], ReadSummary] = {}
    for r in found:
        if since and r.at < since:
            continue
        s = out.get((r.schema, r.view, r.user))
        if s is None:
            out[(r.schema, r.view, r.user)] = ReadSummary(r.schema, r.view, r.user, 1, r.at, r.at)
        else:
            s.reads += 1
            s.first, s.last = min(s.first, r.at), max(s.last, r.at)
    return sorted(out.values(), key=lambda s: (s.schema, s.view, s.user))


def _lines(files: Iterable[Path]) -> Iterator[str]:
    for path in files:
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                yield from fh
        except OSError as exc:
            raise ConfigError(f"LIDM_PGAUDIT_LOG: cannot read {path} ({exc.strerror})") from None


def summarise(files: Iterable[Path], database: str | None = None, since: str | None = None) -> list[ReadSummary]:
    """Reads per consumer view and login user, from every log file (of one database, when named)."""
    return summarise_reads(parse(_lines(files), database), since)
