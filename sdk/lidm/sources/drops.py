"""File drops (SFTP or a local folder): pick up complete drops only, settle each after the load.

Layout of a drop folder: data files with a marker next to them (`roster_20261127.csv` +
`roster_20261127.csv.ok`, written after the data). The marker may carry a manifest line
`sha256=<hex>` that the file must match. Loaded drops move to archive/ with a receipt; rejected
ones to rejected/ with a reason file.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from lidm.config import Settings
from lidm.errors import ConfigError, RejectedBatch
from lidm.producers import MANIFEST_SUFFIX, SIGNATURE_SUFFIX, DropTrust, verify_drop
from lidm.sources.base import SourceBatch
from lidm.sources.csvfile import read_csv_chunks
from lidm.sources.localstore import LocalStore
from lidm.sources.sftp import SftpStore, SftpTarget
from lidm.sources.xlsxfile import read_xlsx_chunks

ARCHIVE, REJECTED = "archive", "rejected"
FORMATS = ("csv", "xlsx")


class DropStore(Protocol):
    where: str

    def connect(self) -> object: ...
    def close(self) -> None: ...
    def list(self, folder: str = "") -> list[str]: ...
    def open(self, name: str): ...
    def read_text(self, name: str) -> str: ...
    def write_text(self, name: str, text: str) -> None: ...
    def move(self, name: str, folder: str) -> None: ...
    def put(self, name: str, data: bytes) -> None: ...


def open_store(url: str, settings: Settings) -> DropStore:
    """sftp://… for an SFTP drop, file:///… or a plain path for a local folder."""
    if url.startswith("sftp://"):
        return SftpStore(SftpTarget.from_url(url, settings.known_hosts), timeout=settings.sftp_timeout_seconds)
    if url.startswith("file://"):
        return LocalStore(Path(unquote(urlsplit(url).path)))
    return LocalStore(Path(url))


@dataclass(frozen=True)
class DropSource:
    """Files a department drops: pattern, format, encoding and the completeness marker."""

    connection: str
    pattern: str = "*.csv"
    encoding: str = "utf-8"
    delimiter: str = ","
    marker: str = ".ok"
    format: str = "csv"
    sheet: str | int = 0
    signed: bool = False  # require a producer signature (FILE.manifest.json + .manifest.sig), see lidm.producers

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"DropSource format {self.format!r}: use one of {', '.join(FORMATS)}")

    def describe(self) -> str:
        what = self.encoding if self.format == "csv" else f"sheet {self.sheet}"
        return f"drop {self.pattern} ({self.format}, {what}) on connection {self.connection}"

    def pending(self, store: DropStore) -> list[str]:
        """Complete drops waiting, oldest name first; a file without its marker is still being written."""
        names = store.list()
        have = set(names)
        return [n for n in names if fnmatch.fnmatch(n, self.pattern) and n + self.marker in have]

    def batches(
        self, store: DropStore, chunk_bytes: int = 1 << 20, trust: DropTrust | None = None
    ) -> Iterator[SourceBatch]:
        for name in self.pending(store):
            yield self._batch(store, name, chunk_bytes, trust)

    def _batch(self, store: DropStore, name: str, chunk_bytes: int, trust: DropTrust | None = None) -> SourceBatch:
        state: dict[str, object] = {}
        expected = _manifest_digest(store.read_text(name + self.marker))
        where = f"{store.where}/{name}"

        def chunks() -> Iterator[pa.Table]:
            # The producer's signature, its key and the file's size and sha256 are checked before a row is read.
            signed = verify_drop(store, name, trust, where) if trust else None
            if signed:
                state["producer"] = {"key_id": signed["producer_key_id"], "sha256": signed["sha256"]}
            if self.format == "xlsx":
                with store.open(name) as fh:
                    data = fh.read()
                _names, it, digest = read_xlsx_chunks(data, file=where, sheet=self.sheet)
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

        def on_loaded(batch_id: str, receipt: str) -> None:
            store.move(name, ARCHIVE)
            for extra in signature_files():
                store.move(extra, ARCHIVE)
            store.move(name + self.marker, ARCHIVE)
            store.write_text(f"{ARCHIVE}/{name}.receipt.json", receipt)

        def on_rejected(reason: str) -> None:
            store.move(name, REJECTED)
            for extra in signature_files():
                store.move(extra, REJECTED)
            store.move(name + self.marker, REJECTED)
            store.write_text(f"{REJECTED}/{name}.reason.txt", reason + "\n")

        return SourceBatch(
            name=name,
            chunks=chunks,
            source_digest=lambda: state.get("digest"),  # type: ignore[arg-type, return-value]
            on_loaded=on_loaded,
            on_rejected=on_rejected,
            meta={"file": where, "state": state},
        )


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
