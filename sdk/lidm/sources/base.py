"""What every source hands the pipeline: batches of columnar chunks with their provenance."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lidm.errors import RejectedBatch

if TYPE_CHECKING:
    import pyarrow as pa

MERGED_CELLS = ("refuse", "fill")  # what an XLSX drop may do with a merged range in its data


def column_names(header: list[str], file: str) -> list[str]:
    """Header cells as column names (trimmed, lower-case); an unnamed or repeated column refuses the file."""
    names = [h.strip().lower() for h in header]
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty and len(names) > 1:
        filled = len(names) - len(empty)
        if filled <= 1:
            raise RejectedBatch(
                "header",
                f"the header was not found in the first line: line 1 has {filled} filled and {len(empty)} empty cells "
                "and looks like a title; the header must be the first line (remove the lines above it)",
                file=file,
                row=1,
            )
        where = ", ".join(str(i) for i in empty[:5]) + (", ..." if len(empty) > 5 else "")
        raise RejectedBatch(
            "header",
            f"line 1 (the header) has {len(empty)} empty cells (column {where}): every column needs a name, and "
            "the header must be the first line",
            file=file,
            row=1,
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RejectedBatch("duplicate_column", "header repeats a column", file=file, row=1, field=dupes[0])
    return names


def _noop(*_: Any) -> None:
    return None


@dataclass
class SourceBatch:
    """One unit of delivery: a drop file, or one extract of a query.

    chunks() yields Arrow tables with lower-case source column names plus the row-number column;
    source_digest() is final once chunks() is exhausted. on_loaded / on_rejected let the source
    settle the delivery (archive or reject a drop) after the central database has committed.
    """

    name: str
    chunks: Callable[[], Iterator[pa.Table]]
    source_digest: Callable[[], str | None] = lambda: None
    watermark_from: Any = None
    watermark_to: Callable[[], Any] = lambda: None
    on_loaded: Callable[[str, str], None] = _noop
    on_rejected: Callable[[str], None] = _noop
    # After a load that quarantined rows: the reasons (CSV: row, line, field, reason, message; no values) for the
    # department, next to its archived delivery.
    on_feedback: Callable[[str], None] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadOptions:
    """What a run asks of a source: where the last read ended, how big a piece to hand over, whose signature counts."""

    watermark: Any = None  # the stored read position of an incremental source
    chunk_rows: int = 100_000
    incremental: bool = False  # the contract's update mode: read only what changed since `watermark`
    trust: Any = None  # the producers' keys a signed drop must verify against (lidm.producers.DropTrust)


class Source(Protocol):
    """What every kind of source offers the pipeline, the test kit and the Airflow integration.

    Callers ask for a capability, never for the class: a drop delivers files (each batch is settled after
    loading: archived or set aside), a database can be read again (to reconcile), an incremental source reads
    what changed since a watermark."""

    connection: str

    @property
    def delivers_files(self) -> bool: ...

    @property
    def rereadable(self) -> bool: ...

    @property
    def incremental(self) -> bool: ...

    def describe(self) -> str: ...

    def read(self, url: str, settings: Any, options: ReadOptions) -> AbstractContextManager[Iterator[SourceBatch]]:
        """The batches waiting, within an open connection that is closed when the block ends."""
        ...

    def sample(self, url: str, settings: Any, rows: int) -> pa.Table | None:
        """The first `rows` rows of what is waiting, for the test kit: None when no delivery waits, no rows when it
        is empty."""
        ...

    def lineage(self, kind: str, host: str | None, port: int | None, schema: str | None, extra: dict) -> tuple:
        """(namespace, name) of what the feed reads, for OpenLineage, from its connection's parts."""
        ...
