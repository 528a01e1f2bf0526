"""What a failure while loading one delivery means: the central database gone (retry), its schema behind the
contracts or a privilege missing (fix), or this delivery's data (set it aside with the reason, so the next one loads).

Driver messages can quote the offending row: what this module says names the error class and SQLSTATE, never a
value.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import sqlalchemy as sa

from lidm.central.revision import missing_table
from lidm.config import Settings
from lidm.contracts import Contract
from lidm.errors import CentralSchemaBehind, CentralUnavailable, ConfigError, RejectedBatch

log = logging.getLogger("lidm.pipeline")


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, raised by the driver itself (COPY) or wrapped by SQLAlchemy."""
    for err in (getattr(exc, "orig", None), exc):
        code = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
        if code:
            return str(code)
    return None


def connection_lost(exc: BaseException, code: str | None = None) -> bool:
    """Whether a database error means the session is gone (killed, disconnected, the server shutting down)."""
    orig = getattr(exc, "orig", None) or exc
    lost = isinstance(exc, sa.exc.DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError)
    )
    code = code or sqlstate(exc) or ""
    return lost or type(orig).__name__ in ("OperationalError", "InterfaceError") or code.startswith(("08", "57P"))


def transient(exc: BaseException, code: str | None = None) -> bool:
    """Whether the central database's state, not the delivery, stopped a statement: a lost session, a conflict
    with another transaction, a lock not granted, or resources short (connections, memory, disk)."""
    code = code or sqlstate(exc) or ""
    return connection_lost(exc, code) or code in ("40001", "40P01", "55P03") or code.startswith("53")


def refusal(
    feed: str, contract: Contract, settings: Settings, batch_id: str, exc: Exception, file: str
) -> RejectedBatch:
    """Classify a failure while loading one delivery: raise what to retry or fix; return why to set it aside."""
    code = sqlstate(exc)
    orig = getattr(exc, "orig", None) or exc
    name = type(orig).__name__
    if code is None and "no such table" in str(orig):  # SQLite says it in words, without a SQLSTATE
        code = "42P01"
    if code == "42P01":
        raise CentralSchemaBehind(f"feed {feed}: {missing_table(contract, settings)}") from None
    if transient(exc, code):
        raise CentralUnavailable(
            f"feed {feed}: the central database connection was lost during batch {batch_id} "
            f"({name}, SQLSTATE {code or '-'}); nothing was written, the run can be retried."
        ) from None
    if code == "42501":  # a privilege, not the schema: e.g. a released table made since the loader's grants
        raise ConfigError(
            f"feed {feed}: the central database refused batch {batch_id} a privilege ({name}); nothing was "
            "written. The owner should run `lidm grants apply` (it gives the loader what loading needs)."
        ) from None
    if code and code[:2] in ("42", "3F", "0A"):
        raise CentralSchemaBehind(
            f"feed {feed}: central database refused batch {batch_id} ({name}, SQLSTATE {code}); nothing was "
            f"written. Its table {contract.table} does not match the contract: `lidm db upgrade` applies the "
            f'migrations there are; a changed contract needs one more, from `lidm db revision -m "{contract.id}"`.'
        ) from None
    if code:
        return RejectedBatch(
            "central_refused",
            f"the central database refused this delivery's data ({name}, SQLSTATE {code}); nothing was loaded, "
            "the delivery was set aside and the feed's next delivery is loaded",
            file=file,
        )
    # The message may quote data: log where it failed (innermost frame), never what it said.
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    log.error("feed %s: batch %s failed with %s at %s", feed, batch_id, name, _frame(frame))
    return RejectedBatch(
        "load_error",
        f"loading this delivery failed ({name}); nothing was loaded, the delivery was set aside and the feed's "
        "next delivery is loaded. Report it with the batch id",
        file=file,
    )


def _frame(frame: traceback.FrameSummary | None) -> str:
    return f"{Path(frame.filename).name}:{frame.lineno} ({frame.name})" if frame else "-"
