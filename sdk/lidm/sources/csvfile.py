"""Delimited text in any declared encoding, read as Arrow chunks with line numbers for errors."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from lidm.errors import RejectedBatch
from lidm.sources.base import column_names

# GB18030 is a superset of GBK and GB2312: reading with it accepts rare characters in names that a
# strict GBK decoder refuses, and decodes every valid GBK file identically.
ENCODING_ALIASES = {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030", "utf8": "utf-8"}
ROW = "__row"


class TranscodingReader(io.RawIOBase):
    """Decode a byte stream strictly, hand Arrow UTF-8, hash the raw bytes, and know where it failed."""

    def __init__(self, raw: BinaryIO, encoding: str, file: str, block: int = 1 << 20) -> None:
        self.raw = raw
        self.file = file
        self.encoding = ENCODING_ALIASES.get(encoding.lower(), encoding.lower())
        self.declared = encoding
        self.decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        self.sha256 = hashlib.sha256()
        self.block = block
        self.lines_before = 0
        self.pending = b""
        self.eof = False
        self.error: RejectedBatch | None = None
        self.first = True
        self.started = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Decode the next block onto `pending`; False once the file is exhausted."""
        if self.eof:
            return False
        chunk = self.raw.read(self.block)
        if not chunk:
            self.eof = True
            text = self._decode(b"", final=True)
        else:
            self.sha256.update(chunk)
            body = chunk if self.started else self._first_block(chunk)
            self.started = True
            text = self._decode(body, final=False)
            self.lines_before += chunk.count(b"\n")
        if self.first and text:
            self.first = False
            text = text.removeprefix("\ufeff")
        self.pending += text.encode("utf-8")
        return True

    def _first_block(self, chunk: bytes) -> bytes:
        """Strip a UTF-8 BOM whatever the declared encoding (editors prepend one to GBK text too), and
        refuse a UTF-8 file declared as GBK: GB18030 would decode it without error, into nonsense."""
        chunk = chunk.removeprefix(b"\xef\xbb\xbf")
        if self.encoding == "gb18030":
            head = chunk.split(b"\n", 1)[0]
            try:
                utf8 = not head.isascii() and bool(head.decode("utf-8"))
            except UnicodeDecodeError:
                utf8 = False
            if utf8:
                self.error = RejectedBatch(
                    "encoding",
                    f"line 1 is UTF-8 but the adapter declares {self.declared}: declare encoding='utf-8'",
                    file=self.file,
                    row=1,
                )
                raise self.error
        return chunk

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        # Fill the whole request: Arrow sizes its chunks by what one read returns, and small chunks cost
        # a round of per-chunk work each.
        while len(self.pending) < len(buffer) and self._fill():
            pass
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def _decode(self, chunk: bytes, final: bool) -> str:
        try:
            return self.decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            line = self.lines_before + chunk[: exc.start].count(b"\n") + 1
            hint = ""
            if self.encoding == "utf-8":
                try:
                    chunk.decode("gb18030")
                    hint = " The bytes read as GBK/GB18030: declare encoding='gbk' in the adapter."
                except UnicodeDecodeError:
                    pass
            self.error = RejectedBatch(
                "encoding",
                f"line {line} is not valid {self.declared} (byte offset {exc.start}).{hint}",
                file=self.file,
            )
            raise self.error from None

    def at_end(self) -> bool:
        """True when nothing but whitespace follows what was read so far."""
        while not self.pending.strip() and self._fill():
            pass
        return not self.pending.strip()

    def drain(self) -> None:
        """Read what Arrow left unread so the digest covers the whole file."""
        while self._fill():
            self.pending = b""
        self.pending = b""


def read_header(reader: TranscodingReader, delimiter: str) -> list[str]:
    """The header row, decoded, so every column can be read as text (ID numbers are not integers)."""
    buf = b""
    while b"\n" not in buf:
        part = reader.read(64 * 1024)
        if not part:
            break
        buf += part
    line, _, rest = buf.partition(b"\n")
    reader.pending = rest + reader.pending
    if not line.strip():
        raise RejectedBatch("empty_file", "the file is empty (no header row)", file=reader.file, row=1)
    header = next(csv.reader([line.decode("utf-8").rstrip("\r")], delimiter=delimiter))
    return column_names(header, reader.file)


def read_csv_chunks(
    raw: BinaryIO, *, file: str, encoding: str, delimiter: str = ",", chunk_bytes: int = 1 << 20
) -> tuple[list[str], Iterator[pa.Table], TranscodingReader, list[dict]]:
    """Column names, a chunk iterator (all text, plus row numbers), the reader, and malformed rows.

    Malformed rows (wrong number of fields) are collected, not raised, so they reach the quarantine.
    """
    reader = TranscodingReader(raw, encoding, file)
    names = read_header(reader, delimiter)
    malformed: list[dict] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append(
            {"row": row.number, "text": row.text, "expected": row.expected_columns, "actual": row.actual_columns}
        )
        return "skip"

    def chunks() -> Iterator[pa.Table]:
        if reader.at_end():
            reader.drain()
            return  # a header-only file: no rows, which the pipeline judges by the feed's update mode
        next_row, skipped_seen = 1, 0
        stream = None
        try:
            stream = pacsv.open_csv(
                reader,
                # Sequential parsing keeps physical row numbers exact for quarantine and error messages.
                read_options=pacsv.ReadOptions(column_names=names, block_size=chunk_bytes, use_threads=False),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
            for batch in stream:
                if batch.num_rows == 0:
                    continue
                skipped = {m["row"] for m in malformed[skipped_seen:]}
                skipped_seen = len(malformed)
                numbers = [r for r in range(next_row, next_row + batch.num_rows + len(skipped)) if r not in skipped]
                numbers = numbers[: batch.num_rows]
                next_row = numbers[-1] + 1
                yield pa.Table.from_batches([batch]).append_column(ROW, pa.array(numbers, type=pa.int64()))
        except pa.ArrowInvalid as exc:
            if reader.error:
                raise reader.error from None
            if "straddl" in str(exc):  # one row is larger than the read block
                reader.eof = True  # Arrow's read-ahead must not read on while the file is read again
                if stream is not None:
                    stream.close()
                raise _oversized(raw, encoding, file, delimiter, chunk_bytes) from None
            raise RejectedBatch(
                "malformed_file", f"cannot parse as delimited text: {type(exc).__name__}", file=file
            ) from None
        except UnicodeDecodeError:
            raise reader.error from None  # type: ignore[misc]
        reader.drain()

    return names, chunks(), reader, malformed


def _oversized(raw: BinaryIO, encoding: str, file: str, delimiter: str, chunk_bytes: int) -> RejectedBatch:
    """Name the row and field that outgrew the read block: read the file again, row by row (an error path)."""
    limit = f"{chunk_bytes / (1 << 20):g} MiB"
    if not raw.seekable():
        return RejectedBatch("field_too_large", f"a row is larger than the {limit} the reader takes at once", file=file)
    raw.seek(0)
    again = TranscodingReader(raw, encoding, file)
    names = read_header(again, delimiter)
    text = io.TextIOWrapper(io.BufferedReader(again, 1 << 20), encoding="utf-8", newline="")
    previous = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        for number, row in enumerate(csv.reader(text, delimiter=delimiter), start=1):
            sizes = [len(v.encode("utf-8")) for v in row]
            if sum(sizes) >= chunk_bytes:
                widest = max(range(len(sizes)), key=sizes.__getitem__)
                field = names[widest] if widest < len(names) else f"column {widest + 1}"
                return RejectedBatch(
                    "field_too_large",
                    f"the row is {sum(sizes) / (1 << 20):.1f} MB, {sizes[widest] / (1 << 20):.1f} MB of it in this "
                    f"field, more than the {limit} the reader takes at once; no contract field is that long, so "
                    "the delivery is refused whole (the department should check its export)",
                    file=file,
                    row=number,
                    field=field,
                )
    finally:
        csv.field_size_limit(previous)
    return RejectedBatch("field_too_large", f"a row is larger than the {limit} the reader takes at once", file=file)
