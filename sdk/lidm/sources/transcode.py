"""A byte stream decoded from a department's declared encoding and re-encoded as UTF-8, in bounded pieces.

The CSV reader (lidm.sources.csvfile) parses what this yields: NUL runs, undecodable bytes and UTF-16 files are
refused here, with the byte offset, before any row is parsed.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
from typing import BinaryIO

import numpy as np

from lidm.errors import RejectedBatch

# GB18030 is a superset of GBK and GB2312: reading with it accepts rare characters in names that a
# strict GBK decoder refuses, and decodes every valid GBK file identically.
ENCODING_ALIASES = {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030", "utf8": "utf-8"}
HEADER_LIMIT = 64 << 10  # no header of a real export is longer; past this, line 1 is not a header
NUL_RUN = 64  # this many NUL bytes in a row are never text: a sparse, truncated or binary file
_NULS = b"\x00" * NUL_RUN
EOL = re.compile(rb"\r\n|\r|\n")


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
            for m in EOL.finditer(piece):
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
