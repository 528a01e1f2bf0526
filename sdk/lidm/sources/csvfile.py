"""Delimited text in any declared encoding, read as Arrow chunks with line numbers for errors."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lidm.errors import RejectedBatch
from lidm.sources.base import column_names
from lidm.validate import LINE

# GB18030 is a superset of GBK and GB2312: reading with it accepts rare characters in names that a
# strict GBK decoder refuses, and decodes every valid GBK file identically.
ENCODING_ALIASES = {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030", "utf8": "utf-8"}
ROW = "__row"
HEADER_LIMIT = 64 << 10  # no header of a real export is longer; past this, line 1 is not a header
NUL_RUN = 64  # this many NUL bytes in a row are never text: a sparse, truncated or binary file
_NULS = b"\x00" * NUL_RUN
_EOL = re.compile(rb"\r\n|\r|\n")
_OTHER_DELIMITERS = {"\t": ("tab", "\\t"), ";": ("semicolon", ";"), "|": ("'|' character", "|")}


class TranscodingReader(io.RawIOBase):
    """Decode a byte stream strictly, hand Arrow UTF-8, hash the raw bytes, and know where it failed."""

    def __init__(self, raw: BinaryIO, encoding: str, file: str, block: int = 1 << 20) -> None:
        self.raw = raw
        self.file = file
        self.encoding = ENCODING_ALIASES.get(encoding.lower(), encoding.lower())
        self.declared = encoding
        self.decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        self.utf16 = codecs.lookup(self.encoding).name.startswith("utf-16")
        self.sha256 = hashlib.sha256()
        self.block = block
        self.lines_before = 0
        self.pending = b""
        self.held = ""  # a final Ctrl-Z (and line breaks after it) held back until the file is known to end there
        self.eof = False
        self.error: RejectedBatch | None = None
        self.first = True
        self.started = False
        self.offset = 0  # raw bytes read so far
        self.nul_from: int | None = None  # where the NUL bytes ending what was read so far begin
        self.nul_at_line_start = False
        self.last_byte = b"\n"
        # What Arrow was handed after the header: quotes and line breaks counted, blank lines found (Arrow skips
        # them, so a row's line needs them). Each blank line is stored as its line minus the blank lines before it.
        self.feeding = False
        self.fed_quotes = 0
        self.fed_lines = 0
        self.fed_last = b"\n"
        self.blanks: list[int] = []

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Decode the next block onto `pending`; False once the file is exhausted."""
        if self.eof:
            return False
        chunk = self.raw.read(self.block)
        if not chunk:
            self.eof = True
            if self.nul_from is not None and self.nul_at_line_start and not self.utf16:
                self._refuse_nul(self.nul_from, self.lines_before + 1)
            text = self._decode(b"", final=True)
            self.held = ""  # a Ctrl-Z at the very end marks the end of an old DOS/Windows text file: not data
        else:
            self.sha256.update(chunk)
            self._check_nul(chunk)
            self.offset += len(chunk)
            body = chunk if self.started else self._first_block(chunk)
            self.started = True
            text = self.held + self._decode(body, final=False)
            self.held = ""
            self.lines_before += chunk.count(b"\n")
            tail = text[-8:]
            z = tail.rfind("\x1a")
            if z >= 0 and not tail[z + 1 :].strip("\r\n"):
                self.held, text = text[len(text) - len(tail) + z :], text[: len(text) - len(tail) + z]
        if self.first and text:
            self.first = False
            text = text.removeprefix("\ufeff")
        self.pending += text.encode("utf-8")
        return True

    def _check_nul(self, chunk: bytes) -> None:
        """Refuse a run of NUL bytes (a hole in a sparse file, a copy that never finished) as soon as it is read."""
        start = self.offset
        if self.nul_from is not None and chunk[:1] == b"\x00":
            lead = len(chunk) - len(chunk.lstrip(b"\x00"))
            if start + lead - self.nul_from >= NUL_RUN:
                self._refuse_nul(self.nul_from, self.lines_before + 1)
            if lead == len(chunk):
                return
        at = chunk.find(_NULS)
        if at >= 0:
            self._refuse_nul(start + at, self.lines_before + chunk.count(b"\n", 0, at) + 1)
        if chunk[-1:] == b"\x00":
            tail = len(chunk) - len(chunk.rstrip(b"\x00"))
            before = chunk[-tail - 1 : -tail] if tail < len(chunk) else self.last_byte
            self.nul_from, self.nul_at_line_start = start + len(chunk) - tail, before in (b"\n", b"\r")
        else:
            self.nul_from = None
        self.last_byte = chunk[-1:]

    def _refuse_nul(self, offset: int, line: int) -> None:
        self.error = RejectedBatch(
            "nul_bytes",
            f"the file has a run of NUL bytes from byte offset {offset} (line {line}): a sparse or truncated file "
            "(a copy or export that did not finish); export and drop it again",
            file=self.file,
        )
        raise self.error

    def _first_block(self, chunk: bytes) -> bytes:
        """Strip a UTF-8 BOM whatever the declared encoding (editors prepend one to GBK text too), recognise
        UTF-16, and refuse a UTF-8 file declared as GBK: GB18030 would decode it without error, into nonsense."""
        chunk = chunk.removeprefix(b"\xef\xbb\xbf")
        utf16 = _utf16(chunk)
        if self.utf16:
            if utf16 is None:
                self._refuse_encoding(
                    f"the adapter declares {self.declared} but the file has neither a UTF-16 byte-order mark nor "
                    "the NUL bytes of UTF-16 text: declare the encoding it was exported in (utf-8 or gbk)"
                )
            if self.encoding in ("utf-16", "utf16") and not chunk.startswith((b"\xff\xfe", b"\xfe\xff")):
                order = "utf-16-le" if "little" in utf16 else "utf-16-be"  # no BOM: the NULs tell the byte order
                self.decoder = codecs.getincrementaldecoder(order)(errors="strict")
            return chunk
        if utf16 is not None:
            self._refuse_encoding(
                f"this looks like UTF-16 ({utf16}), not {self.declared}: export as UTF-8 or GBK, "
                "or declare encoding='utf-16' in the adapter"
            )
        if self.encoding == "gb18030":
            head = chunk.split(b"\n", 1)[0]
            try:
                utf8 = not head.isascii() and bool(head.decode("utf-8"))
            except UnicodeDecodeError:
                utf8 = False
            if utf8:
                self._refuse_encoding(
                    f"line 1 is UTF-8 but the adapter declares {self.declared}: declare encoding='utf-8'"
                )
        return chunk

    def _refuse_encoding(self, message: str) -> None:
        self.error = RejectedBatch("encoding", message, file=self.file, row=1)
        raise self.error

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        # Fill the whole request: Arrow sizes its chunks by what one read returns, and small chunks cost
        # a round of per-chunk work each.
        while len(self.pending) < len(buffer) and self._fill():
            pass
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        if self.feeding and n:
            self._feed(self.pending[:n])
        self.pending = self.pending[n:]
        return n

    def _feed(self, piece: bytes) -> None:
        """Count what Arrow is handed: quotes, line breaks, and (rarely there) blank lines outside quotes."""
        prev, first = self.fed_last, piece[:1]
        joined = prev == b"\r" and first == b"\n"  # a CRLF split between two reads is one line break
        # numpy counts a block several times faster than bytes.count, and this runs on every block
        a = np.frombuffer(piece, dtype=np.uint8)
        lf, cr = a == 10, a == 13
        crs = np.count_nonzero(cr)
        blank = bool((lf[:-1] & (lf[1:] | cr[1:])).any()) or bool(crs and (cr[:-1] & cr[1:]).any())
        blank = blank or (first in (b"\n", b"\r") and prev in (b"\n", b"\r") and not joined)
        if not blank:
            self.fed_quotes += int(np.count_nonzero(a == 34))
            crlf = int(np.count_nonzero(cr[:-1] & lf[1:])) if crs else 0
            self.fed_lines += int(np.count_nonzero(lf)) + int(crs) - crlf - joined
        else:
            pos, last = 0, prev
            for m in _EOL.finditer(piece):
                s, e = m.span()
                self.fed_quotes += piece.count(b'"', pos, s)
                if s == 0 and joined:
                    pos, last = e, b"\n"
                    continue
                if s == pos and last in (b"\n", b"\r") and self.fed_quotes % 2 == 0:
                    # line 1 is the header, so data line k (0-based) is line k + 2
                    self.blanks.append(self.fed_lines + 2 - len(self.blanks))
                self.fed_lines += 1
                pos, last = e, piece[e - 1 : e]
            self.fed_quotes += piece.count(b'"', pos)
        self.fed_last = piece[-1:]

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
        """True when nothing but whitespace follows what was read so far (looking no further than the limit)."""
        while not self.pending.strip() and len(self.pending) < HEADER_LIMIT and self._fill():
            pass
        return not self.pending.strip() and self.eof

    def drain(self) -> None:
        """Read what Arrow left unread so the digest covers the whole file."""
        while self._fill():
            self.pending = b""
        self.pending = b""


def _utf16(chunk: bytes) -> str | None:
    """Which UTF-16 the first block looks like (a BOM, or a NUL in every other byte of ASCII), else None."""
    if chunk.startswith(b"\xff\xfe"):
        return "little-endian, with a byte-order mark"
    if chunk.startswith(b"\xfe\xff"):
        return "big-endian, with a byte-order mark"
    sample = chunk[:4096]
    half = len(sample) // 2
    if half < 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= half * 0.2 and even <= half * 0.02:
        return "little-endian, a NUL byte after each ASCII character"
    if even >= half * 0.2 and odd <= half * 0.02:
        return "big-endian, a NUL byte before each ASCII character"
    return None


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

    def __init__(self, reader: TranscodingReader, malformed: list[dict], breaks: list[int]) -> None:
        self.reader, self.malformed, self.breaks = reader, malformed, breaks
        self.done = 0  # malformed rows already placed
        self.next_row = 1
        self.next_line = 2  # where the next row starts, not counting blank lines (line 1 is the header)

    def place(self, rows: int, breaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and lines of the next `rows` good rows (and the lines of malformed rows among them)."""
        pending = self.malformed[self.done :]
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
        inside[bad] = self.breaks[self.done : self.done + int(bad.sum())]
        starts = self.next_line + np.arange(len(span), dtype=np.int64) + np.cumsum(inside) - inside
        lines = self._unblank(starts)
        for m, line in zip(pending, lines[bad].tolist(), strict=False):
            m["line"] = line
        self.done += int(bad.sum())
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
    "row", "line", "text", "expected" and "actual".
    """
    reader = TranscodingReader(raw, encoding, file)
    names = read_header(reader, delimiter)
    malformed: list[dict] = []
    breaks: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append(
            {"row": row.number, "text": row.text, "expected": row.expected_columns, "actual": row.actual_columns}
        )
        breaks.append(len(_EOL.findall(row.text.encode("utf-8"))))
        return "skip"

    def chunks() -> Iterator[pa.Table]:
        if reader.at_end():
            reader.drain()
            return  # a header-only file: no rows, which the pipeline judges by the feed's update mode
        lines = _Lines(reader, malformed, breaks)
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
            if "straddl" in str(exc):  # one row is larger than the read block
                reader.eof = True  # Arrow's read-ahead must not read on while the file is read again
                if stream is not None:
                    stream.close()
                raise _oversized(raw, encoding, file, delimiter, chunk_bytes) from None
            raise RejectedBatch(
                "malformed_file", f"cannot parse as delimited text: {type(exc).__name__}", file=file
            ) from None
        reader.drain()

    return names, chunks(), reader, malformed


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
