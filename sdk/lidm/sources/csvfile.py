"""Delimited text in any declared encoding, read as Arrow chunks with line numbers for errors."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lidm.errors import RejectedBatch
from lidm.sources.base import column_names
from lidm.sources.transcode import EOL, HEADER_LIMIT, NUL_RUN, TranscodingReader
from lidm.validate import LINE

ROW = "__row"
__all__ = ["HEADER_LIMIT", "NUL_RUN", "ROW", "TranscodingReader", "read_csv_chunks", "read_header"]
# Rows with the wrong number of fields kept at once (until the pipeline takes them, at its next chunk): past this a
# file is refused whole, so a systematically broken export cannot fill the loading process's memory.
MALFORMED_HELD = 50_000
_OTHER_DELIMITERS = {"\t": ("tab", "\\t"), ";": ("semicolon", ";"), "|": ("'|' character", "|")}


def read_header(reader: TranscodingReader, delimiter: str) -> list[str]:
    """The header row, decoded, so every column can be read as text (ID numbers are not integers)."""
    buf = b""
    while b"\n" not in buf and len(buf) <= HEADER_LIMIT:
        part = reader.read(64 * 1024)
        if not part:
            break
        buf += part
    line, _, rest = buf.partition(b"\n")
    if len(line) > HEADER_LIMIT:
        raise RejectedBatch(
            "header",
            f"line 1 runs past {HEADER_LIMIT >> 10} KiB: it is not a header row (a file "
            "without line breaks, or not text); the header must be the first line",
            file=reader.file,
            row=1,
        )
    reader.pending = rest + reader.pending
    reader.feeding = True
    if not line.strip():
        if reader.at_end():
            raise RejectedBatch("empty_file", "the file is empty (no header row)", file=reader.file, row=1)
        raise RejectedBatch("header", "line 1 is empty: the header must be the first line", file=reader.file, row=1)
    text = line.decode("utf-8").rstrip("\r")
    header = next(csv.reader([text], delimiter=delimiter))
    if len(header) == 1:
        _single_cell(text, rest, delimiter, reader.file)
    return column_names(header, reader.file)


def _single_cell(text: str, rest: bytes, delimiter: str, file: str) -> None:
    """Line 1 has one cell: another delimiter in it, or a title above the real header, is named here."""
    counts = {d: text.count(d) for d in _OTHER_DELIMITERS if d != delimiter}
    other = max(counts, key=counts.__getitem__, default=None)
    if other and counts[other]:
        what, literal = _OTHER_DELIMITERS[other]
        raise RejectedBatch(
            "delimiter",
            f"the header has no {delimiter!r} but {counts[other]} {what}{'s' * (counts[other] > 1)}: "
            f"the file looks {_separated(other)}; "
            f"declare delimiter='{literal}' in the adapter",
            file=file,
            row=1,
        )
    for number, later in enumerate(rest.split(b"\n")[:10], start=2):
        cells = later.decode("utf-8", "replace").count(delimiter)
        if cells:
            raise RejectedBatch(
                "header",
                f"the header was not found in the first line: line 1 has one cell and no {delimiter!r}, line {number} "
                f"has {cells + 1} columns (a title above the header?); the header must be the first line",
                file=file,
                row=1,
            )


def _separated(delimiter: str) -> str:
    return {"\t": "tab-separated", ";": "semicolon-separated"}.get(delimiter, f"{delimiter!r}-separated")


def _line_breaks(batch: pa.RecordBatch) -> np.ndarray:
    """Line breaks inside each row's quoted fields (CRLF, LF or CR each one); columns without any cost one scan."""
    total: pa.Array | None = None
    for column in batch.columns:
        data = column.buffers()[2]
        if data is None:
            continue
        raw = data.to_pybytes()
        if b"\n" not in raw and b"\r" not in raw:
            continue
        n = pc.subtract(
            pc.add(pc.count_substring(column, "\n"), pc.count_substring(column, "\r")),
            pc.count_substring(column, "\r\n"),
        )
        n = pc.fill_null(n, 0)
        total = n if total is None else pc.add(total, n)
    if total is None:
        return np.zeros(batch.num_rows, dtype=np.int64)
    return total.to_numpy(zero_copy_only=False).astype(np.int64)


class _Lines:
    """Row numbers and file lines of the rows Arrow returns, given the malformed rows it skipped."""

    def __init__(self, reader: TranscodingReader, malformed: list[dict], breaks: list[int], placed: list[dict]) -> None:
        # malformed/breaks: rows Arrow skipped whose lines are not known yet; placed: theirs are, for the caller (who
        # may take them as the file is read, so a file of nothing but bad rows is held back in bounded memory)
        self.reader, self.malformed, self.breaks, self.placed = reader, malformed, breaks, placed
        self.next_row = 1
        self.next_line = 2  # where the next row starts, not counting blank lines (line 1 is the header)

    def place(self, rows: int, breaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and lines of the next `rows` good rows (and the lines of malformed rows among them)."""
        pending = self.malformed
        if not pending and rows:  # the good path: no row skipped, nothing to merge
            numbers = np.arange(self.next_row, self.next_row + rows, dtype=np.int64)
            starts = self.next_line + np.arange(rows, dtype=np.int64) + np.cumsum(breaks) - breaks
            self.next_row, self.next_line = int(numbers[-1]) + 1, int(starts[-1] + 1 + breaks[-1])
            return numbers, self._unblank(starts)
        skipped = np.fromiter((m["row"] for m in pending), dtype=np.int64, count=len(pending))
        span = np.arange(self.next_row, self.next_row + rows + len(pending), dtype=np.int64)
        bad = np.isin(span, skipped)
        if rows:
            keep = span <= span[~bad][rows - 1]
            span, bad = span[keep], bad[keep]
        inside = np.zeros(len(span), dtype=np.int64)
        inside[~bad] = breaks
        done = int(bad.sum())
        inside[bad] = self.breaks[:done]
        starts = self.next_line + np.arange(len(span), dtype=np.int64) + np.cumsum(inside) - inside
        lines = self._unblank(starts)
        for m, line in zip(pending, lines[bad].tolist(), strict=False):
            m["line"] = line
        self.placed.extend(pending[:done])
        del self.malformed[:done], self.breaks[:done]
        if len(span):
            self.next_row = int(span[-1]) + 1
            self.next_line = int(starts[-1] + 1 + inside[-1])
        return span[~bad], lines[~bad]

    def _unblank(self, starts: np.ndarray) -> np.ndarray:
        """Lines counted without blank lines, moved past the blank lines before them."""
        if not self.reader.blanks:
            return starts
        return starts + np.searchsorted(np.asarray(self.reader.blanks), starts, side="right")


def read_csv_chunks(
    raw: BinaryIO, *, file: str, encoding: str, delimiter: str = ",", chunk_bytes: int = 1 << 20
) -> tuple[list[str], Iterator[pa.Table], TranscodingReader, list[dict]]:
    """Column names, a chunk iterator (all text, plus row numbers and file lines), the reader, and malformed rows.

    Malformed rows (wrong number of fields) are collected, not raised, so they reach the quarantine; each has
    "row", "line", "text", "expected" and "actual". The list fills as the chunks are read, and a caller may empty
    it as it goes.
    """
    reader = TranscodingReader(raw, encoding, file)
    names = read_header(reader, delimiter)
    malformed: list[dict] = []  # skipped, line not known yet
    breaks: list[int] = []
    placed: list[dict] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        if len(malformed) + len(placed) >= MALFORMED_HELD:
            return "error"  # a file this broken is refused, not held back row by row (see chunks())
        malformed.append(
            {"row": row.number, "text": row.text, "expected": row.expected_columns, "actual": row.actual_columns}
        )
        breaks.append(len(EOL.findall(row.text.encode("utf-8"))))
        return "skip"

    def chunks() -> Iterator[pa.Table]:
        if reader.at_end():
            reader.drain()
            return  # a header-only file: no rows, which the pipeline judges by the feed's update mode
        lines = _Lines(reader, malformed, breaks, placed)
        stream = None
        try:
            stream = pacsv.open_csv(
                reader,
                # Sequential parsing keeps physical row numbers exact for quarantine and error messages.
                read_options=pacsv.ReadOptions(column_names=names, block_size=chunk_bytes, use_threads=False),
                # A quoted line break (an address on two lines) may cross a block boundary: the chunker must
                # follow quotes, or it cuts the row in two.
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=True
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
            for batch in stream:
                if batch.num_rows == 0:
                    continue
                numbers, starts = lines.place(batch.num_rows, _line_breaks(batch))
                table = pa.Table.from_batches([batch]).append_column(ROW, pa.array(numbers, type=pa.int64()))
                yield table.append_column(LINE, pa.array(starts, type=pa.int64()))
            lines.place(0, np.zeros(0, dtype=np.int64))  # malformed rows after the last good one
        except (pa.ArrowInvalid, RejectedBatch, UnicodeError) as exc:
            if reader.error:
                raise reader.error from None
            if isinstance(exc, RejectedBatch):
                raise
            if len(malformed) + len(placed) >= MALFORMED_HELD:
                reader.eof = True
                if stream is not None:
                    stream.close()
                raise _too_many_malformed(placed or malformed, file) from None
            if "straddl" in str(exc):  # one row is larger than the read block
                reader.eof = True  # Arrow's read-ahead must not read on while the file is read again
                if stream is not None:
                    stream.close()
                raise _oversized(raw, encoding, file, delimiter, chunk_bytes) from None
            raise RejectedBatch(
                "malformed_file", f"cannot parse as delimited text: {type(exc).__name__}", file=file
            ) from None
        reader.drain()

    return names, chunks(), reader, placed


def _too_many_malformed(held: list[dict], file: str) -> RejectedBatch:
    first = held[0]
    return RejectedBatch(
        "malformed_file",
        f"at least {MALFORMED_HELD:,} rows have {first['actual']} fields where the header has {first['expected']}, "
        f"from row {first['row']} on: the file's delimiter or quoting is probably wrong (a delimiter inside an "
        "unquoted value?); fix the export and drop the file again",
        file=file,
        row=first["row"],
    )


def _oversized(raw: BinaryIO, encoding: str, file: str, delimiter: str, chunk_bytes: int) -> RejectedBatch:
    """Name the row and field that outgrew the read block: read the file again in blocks (an error path), keeping
    no more than one block of the row, and stop there."""
    limit = f"{chunk_bytes / (1 << 20):g} MiB"
    if not raw.seekable():
        return RejectedBatch("field_too_large", f"a row is larger than the {limit} the reader takes at once", file=file)
    raw.seek(0)
    again = TranscodingReader(raw, encoding, file)
    names = read_header(again, delimiter)
    special = re.compile(b'["\\r\\n' + re.escape(delimiter.encode("utf-8")) + b"]")
    # Offsets count from the first byte after the header; nothing of the row is kept, only where things start.
    base, number, line, row_line, row_start, field_start = 0, 0, 2, 2, 0, 0
    quoted, column, widest, widest_at, last = False, 0, 0, 0, b"\n"

    def refuse() -> RejectedBatch:
        name = names[widest_at] if widest_at < len(names) else f"column {widest_at + 1}"
        return RejectedBatch(
            "field_too_large",
            f"the row (from line {row_line}) is more than the {limit} the reader takes at once, at least "
            f"{widest / (1 << 20):.1f} MB of it in this field; no contract field is that long, so the delivery "
            "is refused whole (the department should check its export)",
            file=file,
            row=number + 1,
            field=name,
        )

    while piece := again.read(1 << 20):
        for m in special.finditer(piece):
            ch, at = m.group(), base + m.start()
            if ch == b'"':
                quoted = not quoted
            elif ch in (b"\r", b"\n"):
                crlf = ch == b"\n" and (piece[m.start() - 1 : m.start()] if m.start() else last) == b"\r"
                if crlf:  # the second half of one line break
                    if row_start == at and not quoted:
                        row_start = field_start = at + 1
                    continue
                line += 1
                if quoted:
                    continue
                if at - field_start > widest:
                    widest, widest_at = at - field_start, column
                if at - row_start >= chunk_bytes:
                    return refuse()
                if at > row_start:  # a blank line is no row, for Arrow either
                    number += 1
                row_start = field_start = at + 1
                row_line, column, widest, widest_at = line, 0, 0, 0
            elif not quoted:  # the delimiter
                if at - field_start > widest:
                    widest, widest_at = at - field_start, column
                column, field_start = column + 1, at + 1
        base += len(piece)
        last = piece[-1:]
        if base - field_start > widest:
            widest, widest_at = base - field_start, column
        if base - row_start >= chunk_bytes:
            return refuse()
    return RejectedBatch("field_too_large", f"a row is larger than the {limit} the reader takes at once", file=file)
