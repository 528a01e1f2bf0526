"""Spreadsheet drops (XLSX), read with python-calamine and handed on as all-text Arrow chunks.

Every cell becomes text the way a person reads it in Excel, so the adapter's conversions and the
validator treat a spreadsheet exactly like a CSV: dates formatted as dates arrive as ISO text, a date
typed as a plain number arrives as its serial number (the adapter decides, with
``date(..., excel_serial=True)``), and an ID number typed as a number keeps the digits Excel kept.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

import pyarrow as pa

from lidm.errors import RejectedBatch
from lidm.sources.base import column_names

ROW = "__row"


def cell_text(value: Any) -> str | None:
    """Excel's displayed value as text; an empty cell is null."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds" if value.microsecond else "seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    text = str(value).strip()
    return text or None


# A workbook is a zip: refuse one that would inflate beyond these before any part is decompressed.
MAX_UNCOMPRESSED_BYTES = 512 << 20
MAX_COMPRESSION_RATIO = 200


def _refuse_zip_bomb(data: bytes, file: str) -> None:
    """Read the zip's directory only (sizes as declared) and refuse a decompression bomb."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except zipfile.BadZipFile:
        return  # not a zip at all: calamine says so with its own reason
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos) or 1
    if total > MAX_UNCOMPRESSED_BYTES or (total > (64 << 20) and total / packed > MAX_COMPRESSION_RATIO):
        raise RejectedBatch(
            "malformed_file",
            f"the workbook would expand to {total >> 20} MB uncompressed ({total // packed}x its size): refused "
            "as a possible zip bomb; export the sheet again or split it",
            file=file,
        )


def read_xlsx_chunks(
    data: bytes, *, file: str, sheet: str | int = 0, chunk_rows: int = 50_000
) -> tuple[list[str], Iterator[pa.Table], str]:
    """Column names, chunks (text columns plus data-row numbers, 1 = first row under the header), sha256."""
    from python_calamine import CalamineError, CalamineWorkbook, PasswordError, XmlError, ZipError

    digest = hashlib.sha256(data).hexdigest()
    if not data:
        raise RejectedBatch("empty_file", "the file is empty (no header row)", file=file, row=1)
    _refuse_zip_bomb(data, file)
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheets = book.sheet_names
        if isinstance(sheet, int):
            if sheet >= len(sheets):
                raise RejectedBatch(
                    "missing_sheet", f"the workbook has {len(sheets)} sheet(s), not {sheet + 1}", file=file
                )
            rows = book.get_sheet_by_index(sheet).iter_rows()
        else:
            if sheet not in sheets:
                raise RejectedBatch(
                    "missing_sheet", f"no sheet named {sheet!r} (sheets: {', '.join(sheets)})", file=file
                )
            rows = book.get_sheet_by_name(sheet).iter_rows()
        first = next(rows, None)
    except PasswordError:
        raise RejectedBatch(
            "malformed_file", "the workbook is password-protected; drop it unprotected", file=file
        ) from None
    except (CalamineError, XmlError, ZipError, ValueError, OSError) as exc:
        raise RejectedBatch(
            "malformed_file", f"not a readable XLSX workbook: {type(exc).__name__}", file=file
        ) from None
    header = [cell_text(c) for c in (first or [])]
    while header and header[-1] is None:
        header.pop()
    if not header:
        raise RejectedBatch("empty_file", "the sheet is empty (no header row)", file=file, row=1)
    if None in header:
        raise RejectedBatch(
            "malformed_file", f"header cell {header.index(None) + 1} is empty", file=file, row=1, field=None
        )
    names = column_names(header, file)  # type: ignore[arg-type]
    width = len(names)

    def chunks() -> Iterator[pa.Table]:
        cols: list[list[str | None]] = [[] for _ in range(width)]
        numbers: list[int] = []
        for number, row in enumerate(rows, start=1):
            values = [cell_text(v) for v in row]
            if all(v is None for v in values):
                continue  # Excel keeps formatted blank rows at the end of a sheet; they hold nothing
            extra = [v for v in values[width:] if v is not None]
            if extra:
                raise RejectedBatch(
                    "malformed_file", f"row has values beyond the {width} header columns", file=file, row=number
                )
            values = (values + [None] * width)[:width]
            for col, value in zip(cols, values, strict=True):
                col.append(value)
            numbers.append(number)
            if len(numbers) >= chunk_rows:
                yield _table(names, cols, numbers)
                cols, numbers = [[] for _ in range(width)], []
        if numbers:
            yield _table(names, cols, numbers)

    return names, chunks(), digest


def _table(names: list[str], cols: list[list[str | None]], numbers: list[int]) -> pa.Table:
    data = {n: pa.array(c, type=pa.string()) for n, c in zip(names, cols, strict=True)}
    data[ROW] = pa.array(numbers, type=pa.int64())
    return pa.table(data)
