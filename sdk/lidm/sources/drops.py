"""File drops (SFTP or a local folder): pick up complete drops only, settle each after the load.

Layout of a drop folder: data files with a marker next to them (`roster_20261127.csv` +
`roster_20261127.csv.ok`, written after the data). The marker may carry a manifest line
`sha256=<hex>` that the file must match. Loaded drops move to archive/ with a receipt; rejected
ones to rejected/ with a reason file.

The stores never follow a link out of the folder and carry file names as their raw bytes (see
localstore); what reaches a message, the batch record or a receipt is the name's printable display form.
Settling is idempotent: a drop another run already moved is logged, never an error.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lidm.config import Settings
from lidm.errors import ConfigError, RejectedBatch, SourceError
from lidm.producers import MANIFEST_SUFFIX, SIGNATURE_SUFFIX, DropTrust, verify_drop
from lidm.sources.base import MERGED_CELLS, ReadOptions, SourceBatch
from lidm.sources.names import display_name
from lidm.sources.stores import open_store

if TYPE_CHECKING:
    import pyarrow as pa

    from lidm.sources.stores import Store

log = logging.getLogger("lidm.sources")

ARCHIVE, REJECTED = "archive", "rejected"
FORMATS = ("csv", "xlsx", "auto")  # auto: by each file's name, .xlsx a workbook, anything else delimited text
DEFAULT_MAX_BYTES = 4 << 30  # 4 GiB: far above any department's roster, far below a runaway export


@dataclass(frozen=True)
class DropSource:
    """Files a department drops: pattern, format, encoding and the completeness marker."""

    connection: str
    pattern: str = "*.csv"
    encoding: str = "utf-8"
    delimiter: str = ","
    marker: str = ".ok"
    format: str = "csv"
    # XLSX: a sheet name, an index among the visible sheets, or None for the sheet the workbook opens on.
    sheet: str | int | None = None
    merged_cells: str = "refuse"  # XLSX: refuse a merged range in the data, or "fill" it with its top-left value
    max_bytes: int = DEFAULT_MAX_BYTES  # a larger drop is rejected whole before a byte is read
    signed: bool = False  # require a producer signature (FILE.manifest.json + .manifest.sig), see lidm.producers

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"DropSource format {self.format!r}: use one of {', '.join(FORMATS)}")
        if self.merged_cells not in MERGED_CELLS:
            raise ConfigError(f"DropSource merged_cells {self.merged_cells!r}: use one of {', '.join(MERGED_CELLS)}")
        if self.max_bytes <= 0:
            raise ConfigError(f"DropSource max_bytes {self.max_bytes}: give the largest drop to accept, in bytes")

    delivers_files = True  # each batch is a delivery, archived or set aside once the central database decided
    rereadable = False  # a loaded drop is archived: it is checked when it loads (its receipt), not re-read
    incremental = False

    @contextmanager
    def read(self, url: str, settings: Settings, options: ReadOptions) -> Iterator[Iterator[SourceBatch]]:
        """The complete drops waiting, oldest first, over one connection to the store."""
        store = open_store(url, settings)
        try:
            yield self.batches(store, trust=options.trust)
        finally:
            store.close()

    def sample(self, url: str, settings: Settings, rows: int) -> pa.Table | None:
        import pyarrow as pa

        from lidm.sources.csvfile import ROW

        store = open_store(url, settings)
        try:
            first = next(self.batches(store), None)
            if first is None:
                return None  # no complete drop waiting
            chunk = next(first.chunks(), None)
            return pa.table({ROW: pa.array([], pa.int64())}) if chunk is None else chunk.slice(0, rows)
        finally:
            store.close()

    def lineage(self, kind: str, host: str | None, port: int | None, schema: str | None, extra: dict) -> tuple:
        folder = str(extra.get("path", "")).strip("/")
        if kind in ("sftp", "ssh"):
            return f"sftp://{host}:{port or 22}", f"{folder}/{self.pattern}".lstrip("/")
        return "file", f"{folder}/{self.pattern}"

    def describe(self) -> str:
        sheet = "the active sheet" if self.sheet is None else f"sheet {self.sheet}"
        what = {"csv": self.encoding, "xlsx": sheet}.get(self.format, f"xlsx: {sheet}, csv: {self.encoding}")
        return f"drop {self.pattern} ({self.format}, {what}) on connection {self.connection}"

    def format_of(self, name: str) -> str:
        """The format one file is read in: the declared one, or with ``auto`` the file's own (.xlsx a workbook, else
        delimited text), for a drop folder where each office saves the template or its own system's CSV export."""
        if self.format != "auto":
            return self.format
        return "xlsx" if display_name(name).lower().endswith(".xlsx") else "csv"

    def return_delivery(self, store: Store, shown: str, folder: str = REJECTED) -> list[str]:
        """Put a set-aside delivery back into the drop folder (found by the name its batch shows), so the feed's
        next run reads it again: data file and signature files first, the marker last. Returns what moved."""
        have = store.list(folder)
        match = [n for n in have if display_name(n) == shown and not n.endswith(self.marker)]
        if len(match) != 1:
            raise SourceError(f"{store.where}/{folder}: no single file {shown} to return (moved or deleted meanwhile?)")
        name = match[0]
        moved = []
        for part in (name, name + MANIFEST_SUFFIX, name + SIGNATURE_SUFFIX, name + self.marker):
            if part in have:
                store.restore(part, folder)
                moved.append(part)
        return moved

    def pending(self, store: Store) -> list[str]:
        """Complete drops waiting, oldest name first; a file without its marker is still being written.

        Names are the files' raw names; the pattern may match either those or the readable form."""
        names = store.list()
        have = set(names)
        return [
            n
            for n in names
            if (fnmatch.fnmatch(n, self.pattern) or fnmatch.fnmatch(display_name(n), self.pattern))
            and n + self.marker in have
        ]

    def batches(
        self, store: Store, chunk_bytes: int = 1 << 20, trust: DropTrust | None = None
    ) -> Iterator[SourceBatch]:
        names = self.pending(store)
        if names:
            # Before anything loads: a drop is settled into these, and they must not lead out of the folder.
            store.check_folder(ARCHIVE)
            store.check_folder(REJECTED)
        for name in names:
            try:
                batch = self._batch(store, name, chunk_bytes, trust)
            except FileNotFoundError:
                log.info("%s/%s: taken by another run meanwhile; skipped", store.where, display_name(name))
                continue
            yield batch

    def _batch(self, store: Store, name: str, chunk_bytes: int, trust: DropTrust | None = None) -> SourceBatch:
        state: dict[str, object] = {}
        expected = _manifest_digest(store.read_text(name + self.marker))
        shown = display_name(name)
        where = f"{store.where}/{shown}"

        def chunks() -> Iterator[pa.Table]:
            # The readers (pyarrow, openpyxl) load when a drop is read, not when a feed is declared.
            from lidm.sources.csvfile import read_csv_chunks
            from lidm.sources.xlsxfile import read_xlsx_chunks

            size = store.size(name)
            if size > self.max_bytes:
                raise RejectedBatch(
                    "file_too_large",
                    f"the file is {_size(size)} ({size} bytes), over this feed's limit of {_size(self.max_bytes)}; "
                    "split the delivery, or ask the gateway team to raise the feed's max_bytes",
                    file=where,
                )
            # The producer's signature, its key and the file's size and sha256 are checked before a row is read.
            signed = verify_drop(store, name, trust, where) if trust else None
            if signed:
                state["producer"] = {"key_id": signed["producer_key_id"], "sha256": signed["sha256"]}
            if self.format_of(name) == "xlsx":
                with store.open(name) as fh:
                    data = fh.read(self.max_bytes + 1)
                if len(data) > self.max_bytes:
                    raise RejectedBatch(
                        "file_too_large", f"the file grew past this feed's limit of {_size(self.max_bytes)}", file=where
                    )
                _names, it, digest = read_xlsx_chunks(
                    data, file=where, sheet=self.sheet, merged_cells=self.merged_cells
                )
                state["malformed"] = []
                yield from it
            else:
                with store.open(name) as fh:
                    _names, it, reader, malformed = read_csv_chunks(
                        fh, file=where, encoding=self.encoding, delimiter=self.delimiter, chunk_bytes=chunk_bytes
                    )
                    state["reader"], state["malformed"] = reader, malformed
                    yield from it
                digest = reader.sha256.hexdigest()
            state["digest"] = digest
            if expected and expected != digest:
                raise RejectedBatch(
                    "digest_mismatch",
                    "file does not match the sha256 in its marker (truncated or changed after the marker was written)",
                    file=where,
                )
            if signed and signed["sha256"] != digest:
                raise RejectedBatch(
                    "digest_mismatch", "file changed while it was read; drop it again, freshly signed", file=where
                )

        def signature_files() -> list[str]:
            have = set(store.list())
            return [n for n in (name + MANIFEST_SUFFIX, name + SIGNATURE_SUFFIX) if n in have]

        def settle(folder: str, note: str, text: str) -> None:
            # Idempotent: a file another run already moved is logged and skipped, never an error.
            moved = _move(store, name, folder, where)
            for extra in signature_files():
                _move(store, extra, folder, where)
            _move(store, name + self.marker, folder, where)
            if not moved and note in store.list(folder):
                log.info(
                    "%s: already settled into %s/ by another run; its %s is kept", where, folder, display_name(note)
                )
                return
            store.write_text(f"{folder}/{note}", text)

        def on_loaded(batch_id: str, receipt: str) -> None:
            settle(ARCHIVE, f"{name}.receipt.json", receipt)

        def on_rejected(reason: str) -> None:
            settle(REJECTED, f"{name}.reason.txt", reason + "\n")

        def on_feedback(reasons: str) -> None:
            store.write_text(f"{ARCHIVE}/{name}.quarantine.csv", reasons)

        return SourceBatch(
            name=shown,
            chunks=chunks,
            source_digest=lambda: state.get("digest"),  # type: ignore[arg-type, return-value]
            on_loaded=on_loaded,
            on_rejected=on_rejected,
            on_feedback=on_feedback,
            meta={"file": where, "state": state},
        )


def _move(store: Store, name: str, folder: str, where: str) -> bool:
    """Move one file of a drop; False when it is already gone (another run settled the drop)."""
    try:
        store.move(name, folder)
    except FileNotFoundError:
        log.info("%s: %s was already moved (another run settled this drop)", where, display_name(name))
        return False
    return True


def _size(n: int) -> str:
    """Bytes as a person reads them (binary units, one decimal)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def _manifest_digest(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            return json.loads(text).get("sha256")
        except json.JSONDecodeError:
            return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip().lower() == "sha256":
            return value.strip().lower()
    return None
