"""Spreadsheet drops (XLSX), read with python-calamine and handed on as all-text Arrow chunks.

Every cell becomes text the way a person reads it in Excel, so the adapter's conversions and the
validator treat a spreadsheet exactly like a CSV: dates formatted as dates arrive as ISO text, a date
typed as a plain number arrives as its serial number (the adapter decides, with
``date(..., excel_serial=True)``), and an ID number typed as a number keeps the digits Excel kept.

Which sheet: the one the adapter names (it must be visible), the n-th *visible* sheet for an index, else
the sheet the workbook opens on (its active tab) when that sheet is visible; anything else is ambiguous
and refused, so a hidden sheet of stale rows is never read by accident. Merged cells are refused with
their range named, or (``merged_cells="fill"``) every cell of a range gets its top-left value, as Excel
shows it; a merge touching the header row is always refused.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

import pyarrow as pa

from lidm.errors import RejectedBatch
from lidm.sources.base import column_names

ROW = "__row"
_WORKBOOK_XML_LIMIT = 8 << 20  # workbook.xml lists sheets and views; a larger one is not trusted for the view


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
    data: bytes,
    *,
    file: str,
    sheet: str | int | None = None,
    merged_cells: str = "refuse",
    chunk_rows: int = 50_000,
) -> tuple[list[str], Iterator[pa.Table], str]:
    """Column names, chunks (text columns plus data-row numbers, 1 = first row under the header), sha256."""
    from python_calamine import CalamineError, CalamineWorkbook, PasswordError, XmlError, ZipError

    digest = hashlib.sha256(data).hexdigest()
    if not data:
        raise RejectedBatch("empty_file", "the file is empty (no header row)", file=file, row=1)
    _refuse_zip_bomb(data, file)
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        ws = book.get_sheet_by_name(_choose_sheet(book.sheets_metadata, _active_tab(data), sheet, file))
        merged = list(ws.merged_cell_ranges or [])
        start = ws.start
        rows = ws.iter_rows()
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
    # iter_rows starts at the sheet's first row but at its first used column: merged ranges are absolute.
    col0 = start[1] if start and first is not None and len(first) == ws.width else 0
    spans = _merged_spans(merged, col0, len(header), merged_cells, file)
    if None in header:
        raise RejectedBatch(
            "malformed_file", f"header cell {header.index(None) + 1} is empty", file=file, row=1, field=None
        )
    names = column_names(header, file)  # type: ignore[arg-type]
    width = len(names)

    def chunks() -> Iterator[pa.Table]:
        cols: list[list[str | None]] = [[] for _ in range(width)]
        numbers: list[int] = []
        tops: dict[int, str | None] = {}
        for number, row in enumerate(rows, start=1):
            values = [cell_text(v) for v in row]
            for i, (r0, r1, c0, c1) in enumerate(spans):  # merged_cells="fill": Excel's displayed value
                if r0 <= number <= r1:
                    values += [None] * (c1 + 1 - len(values))
                    if number == r0:
                        tops[i] = values[c0]
                    values[c0 : c1 + 1] = [tops.get(i)] * (c1 + 1 - c0)
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


def _cell(row: int, col: int) -> str:
    """A0-based (row, column) as Excel names the cell: (2, 1) -> B3."""
    letters, n = "", col + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters}{row + 1}"


def _merged_spans(
    merged: list[tuple[tuple[int, int], tuple[int, int]]], col0: int, width: int, mode: str, file: str
) -> list[tuple[int, int, int, int]]:
    """Merged ranges over the table as (first, last data row, first, last column index); refuses what must be."""
    spans, named = [], []
    for (r0, c0), (r1, c1) in sorted(merged):
        ref = f"{_cell(r0, c0)}:{_cell(r1, c1)}"
        if c1 < col0 or c0 >= col0 + width:
            continue  # beside the table: holds nothing it reads (a value there is refused as beyond the header)
        if r0 == 0:
            raise RejectedBatch(
                "merged_cells",
                f"cells {ref} are merged in the header row: give every column its own header cell, unmerged",
                file=file,
                row=1,
            )
        spans.append((r0, r1, max(c0 - col0, 0), min(c1 - col0, width - 1)))
        named.append(ref)
    if spans and mode != "fill":
        more = f" and {len(named) - 5} more" if len(named) > 5 else ""
        raise RejectedBatch(
            "merged_cells",
            f"cells {', '.join(named[:5])}{more} are merged, so only the first cell of each range holds a value: "
            "unmerge them and repeat the value in every row, or ask the gateway team to read this feed with "
            'merged_cells="fill"',
            file=file,
            row=spans[0][0],
        )
    return spans


def _choose_sheet(metas: list[Any], active: int | None, sheet: str | int | None, file: str) -> str:
    """The name of the sheet to read (see the module's docstring); RejectedBatch when it is missing or unclear."""
    from python_calamine import SheetTypeEnum, SheetVisibleEnum

    def visible(m: Any) -> bool:
        return m.visible == SheetVisibleEnum.Visible and m.typ == SheetTypeEnum.WorkSheet

    shown = [m.name for m in metas if visible(m)]
    listed = ", ".join(shown) or "none"
    if isinstance(sheet, str):
        [match] = [m for m in metas if m.name == sheet] or [None]
        if match is None:
            all_names = ", ".join(m.name for m in metas)
            raise RejectedBatch("missing_sheet", f"no sheet named {sheet!r} (sheets: {all_names})", file=file)
        if not visible(match):
            raise RejectedBatch(
                "ambiguous_sheet",
                f"sheet {sheet!r} is hidden in this workbook (visible sheets: {listed}); show it if it is the "
                "current data, or drop the workbook with the current data on that sheet",
                file=file,
            )
        return sheet
    if isinstance(sheet, int):
        if not 0 <= sheet < len(shown):
            raise RejectedBatch(
                "missing_sheet",
                f"the workbook has {len(shown)} visible sheet(s) ({listed}), not {sheet + 1}",
                file=file,
            )
        return shown[sheet]
    if active is not None and 0 <= active < len(metas):
        if visible(metas[active]):
            return metas[active].name
        raise RejectedBatch(
            "ambiguous_sheet",
            f"the workbook opens on sheet {metas[active].name!r}, which is hidden or not a worksheet (visible "
            f"sheets: {listed}); save it with the sheet to load active and visible",
            file=file,
        )
    if len(shown) == 1:
        return shown[0]
    raise RejectedBatch(
        "ambiguous_sheet",
        f"the workbook does not say which of its visible sheets ({listed}) is current; save it with the sheet "
        "to load active, or keep only that sheet",
        file=file,
    )


def _active_tab(data: bytes) -> int | None:
    """The workbook's active tab (index among all its sheets) from its workbook part, or None if not recorded.

    calamine does not expose the workbook view, so the part is read with the standard library; the zip has
    passed the bomb check already."""
    import xml.etree.ElementTree as ET

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            part = _workbook_part(z)
            if part is None or z.getinfo(part).file_size > _WORKBOOK_XML_LIMIT:
                return None
            root = ET.fromstring(z.read(part))
    except (zipfile.BadZipFile, KeyError, ET.ParseError, OSError, ValueError):
        return None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "workbookView":
            try:
                return int(el.get("activeTab", "0"))
            except ValueError:
                return None
    return None


def _workbook_part(z: zipfile.ZipFile) -> str | None:
    """The workbook part's path, as the package's root relationships name it (xl/workbook.xml in practice)."""
    import xml.etree.ElementTree as ET

    names = set(z.namelist())
    if "_rels/.rels" in names and z.getinfo("_rels/.rels").file_size <= _WORKBOOK_XML_LIMIT:
        for el in ET.fromstring(z.read("_rels/.rels")).iter():
            if el.get("Type", "").endswith("/officeDocument"):
                target = posixpath.normpath(el.get("Target", "").lstrip("/"))
                if target in names:
                    return target
    return "xl/workbook.xml" if "xl/workbook.xml" in names else None


def _table(names: list[str], cols: list[list[str | None]], numbers: list[int]) -> pa.Table:
    data = {n: pa.array(c, type=pa.string()) for n, c in zip(names, cols, strict=True)}
    data[ROW] = pa.array(numbers, type=pa.int64())
    return pa.table(data)
