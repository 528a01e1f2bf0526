"""Read a department's answer file the way an office writes it, into rows of contract field names.

Departments answer from a spreadsheet, so the platform takes what Excel saves:

- CSV in UTF-8 with or without a BOM, or GBK/GB18030 (Excel's "CSV" on a Chinese Windows), told apart by the
  bytes; the channel's ``encoding`` setting overrides the guess. A file that is UTF-8 but for a few lines is
  refused: GB18030 would read it without an error, into nonsense.
- XLSX (the answer workbook): the sheet ``答复`` when there is one, else the sheet the workbook opens on, read like
  an XLSX drop (sources.xlsxfile).
- A header cell may be a field name or the contract's Chinese name (businessName); a row repeating the field
  names (the workbook's second header row) is skipped, and so are empty rows, Excel's comma-only lines and rows
  that carry no answer yet (only the warning's own identifiers filled in). Columns that are no field (context the
  workbook shows beside the answer) are ignored and named once in the result.
- Codes or the contract's Chinese labels for coded fields (已给予救助 -> granted); the usual Chinese date and
  time forms, real date cells and Excel serial numbers for dates and times; ``3,000.00`` for a number.

A value that fits none of this is handed on as written, so the contract's checks refuse it with its field named.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lidm.cells import text_value
from lidm.contracts.model import Contract, LogicalType
from lidm.errors import RejectedBatch
from lidm.sources.csvfile import read_csv_chunks
from lidm.sources.xlsxfile import read_xlsx_chunks
from lidm.validate import LINE, ROW

ANSWER_SHEET = "答复"
AUTO = "auto"  # the channel's encoding when it names none
DATE_FORMS = ("2026-12-04", "2026/12/4", "2026-12-4", "2026.12.4", "2026年12月4日")
TIME_FORMS = ("2026-12-04 10:30", "2026/12/4 10:30:00", "2026-12-4 9:05", "2026年12月4日 10:30")
# Fields that identify the warning (the workbook fills them in): a row with nothing else is not answered yet.
IDENTIFYING = ("warning_id", "department", "id_number", "household_id", "district_code")

_BOM = b"\xef\xbb\xbf"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_DATE = r"(?P<y>\d{4})(?:(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})|年(?P<m2>\d{1,2})月(?P<d2>\d{1,2})日?)"
_TIME = r"(?P<H>\d{1,2})(?::(?P<M>\d{1,2})(?::(?P<S>\d{1,2})(?:\.\d{1,6})?)?|时(?P<M2>\d{1,2})分(?:(?P<S2>\d{1,2})秒)?)"
_WHEN = re.compile(rf"{_DATE}(?:(?:\s+|T|(?<=日)){_TIME})?")
_SERIAL = re.compile(r"\d{2,7}(\.\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
_EXCEL_EPOCH = datetime(1899, 12, 30)  # Excel's 1900 date system (see lidm.dates)


class AnswerRefused(RejectedBatch):
    """An answer file refused whole, with what to tell the department in Chinese (``zh``)."""

    def __init__(self, reason: str, message: str, zh: str, **where: Any) -> None:
        super().__init__(reason, message, **where)
        self.zh = zh


@dataclass(frozen=True)
class Column:
    """A field an answer file may carry: its name, Chinese name, type, and its codes by code or label."""

    name: str
    business_name: str | None
    type: LogicalType
    codes: dict[str, str] | None = None  # key(code) and key(label) -> code


def contract_columns(contract: Contract, leave_out: Sequence[str] = ()) -> list[Column]:
    """The columns a department may send for a contract's fields (the platform's own fields left out)."""
    out = []
    for f in contract.fields:
        if f.name in leave_out:
            continue
        codes = None
        if f.enum is not None:
            codes = {_key(code): code for code in f.enum}
            for code, label in zip(f.enum, f.enum_labels or (), strict=False):
                if label:
                    codes.setdefault(_key(label), code)
        out.append(Column(f.name, f.business_name, f.type, codes))
    return out


ACK_COLUMNS = [
    Column("warning_id", "预警编号", LogicalType.STRING),
    Column("acknowledged_at", "签收时间", LogicalType.TIMESTAMP),
]


@dataclass
class Answer:
    """One answer file, read: rows of field names, where each row is, and what was left aside."""

    rows: list[dict[str, str | None]]
    numbers: list[int]  # the reader's row numbers (1 = first row under the header): what the platform records
    sheet_rows: dict[int, int]  # reader's row number -> the row as the department sees it in a spreadsheet
    malformed: list[dict[str, Any]]
    ignored: list[str] = field(default_factory=list)  # header cells that name no field, as shown
    skipped: int = 0  # rows with no answer in them (empty, comma-only, identifiers only): not counted
    unanswered: int = 0  # of those, rows naming a warning but answering nothing (yet)
    read_as: str = ""  # utf-8 | gb18030 | the channel's encoding | xlsx


def read_answer(
    data: bytes,
    *,
    name: str,
    source: str,
    columns: Sequence[Column],
    required: Sequence[str],
    encoding: str = AUTO,
    identifying: Sequence[str] = (),
) -> Answer:
    """Read one answer file (CSV or XLSX, by its name); RejectedBatch when it cannot be taken at all."""
    if name.lower().endswith(".xlsx"):
        header, records, malformed, read_as = _xlsx(data, source)
    else:
        header, records, malformed, read_as = _csv(data, source, encoding)
    mapped, ignored = _map_header(header, columns, source)
    have = {c.name for c in mapped.values()}
    missing = [n for n in required if n not in have]
    if missing:
        shown = {c.name: f"{c.name} ({c.business_name})" if c.business_name else c.name for c in columns}
        raise AnswerRefused(
            "missing_column",
            f"the header lacks {', '.join(shown[n] for n in missing)}; the first row names each column by its field "
            "name or its Chinese name",
            "表头缺少必需的列："
            + "、".join(f"{_zh_name(columns, n)}（{n}）" for n in missing)
            + "。请在第一行用字段名或中文名标明各列，例如“预警编号”或“warning_id”。",
            file=source,
            row=1,
        )
    sheet_rows = _sheet_rows(records, malformed) if read_as != "xlsx" else {}
    answer = Answer([], [], sheet_rows, [], ignored=ignored, read_as=read_as)
    for m in malformed:
        if m["text"].strip(" ,;\t\"'\r\n"):
            answer.malformed.append(m)
        else:
            answer.skipped += 1  # Excel's comma-only line
    names_row = [{_key(c.name) for c in mapped.values()}, {_key(c.business_name or "") for c in mapped.values()}]
    by_name = {c.name: c for c in mapped.values()}
    for record in records:
        number = record[ROW]
        if read_as == "xlsx":
            answer.sheet_rows[number] = number + 1
        raw = {c.name: _clean(record[header[i]]) for i, c in mapped.items()}
        filled = {k: v for k, v in raw.items() if v is not None}
        if len(filled) >= 2 and any({_key(v) for v in filled.values()} <= names for names in names_row):
            continue  # the workbook's second header row (field names): no row of data
        if set(filled) <= set(identifying):  # nothing filled, or only what identifies the warning
            answer.skipped += 1
            answer.unanswered += bool(filled)
            continue
        answer.rows.append({k: _normalise(v, by_name[k], read_as == "xlsx") for k, v in raw.items()})
        answer.numbers.append(number)
    return answer


def normalise_row(row: dict[str, str | None], columns: Sequence[Column]) -> dict[str, str | None]:
    """A row from a department's table, its labels and date forms read as a file's are."""
    by_name = {c.name: c for c in columns}
    return {k: _normalise(v, by_name[k], False) if k in by_name else v for k, v in row.items()}


def answer_time(text: str | None) -> datetime | None:
    """A normalised time of an answer (disposed_at), for ordering; None when it does not read as one."""
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------- reading


def sniff_encoding(data: bytes, source: str) -> str:
    """utf-8 when the bytes are UTF-8 (a BOM or not), else gb18030 (every GBK file reads the same with it)."""
    body = data.removeprefix(_BOM)
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise AnswerRefused(
            "encoding",
            "the file is UTF-16 (Excel's 'Unicode text'): save it as 'CSV UTF-8 (comma delimited)' or 'CSV (comma "
            "delimited)'",
            _ZH_SAVE_AS,
            file=source,
            row=1,
        )
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
    text = body.decode("utf-8", errors="replace")
    utf8 = len(re.sub(r"[\x00-\x7f\ufffd]", "", text).encode("utf-8"))
    other = len(body.translate(None, bytes(range(128))))  # the non-ASCII bytes
    if utf8 * 2 > other:
        raise AnswerRefused(
            "encoding",
            f"the file is UTF-8 but line {line} is not (pasted from a file in another encoding?): save the whole file "
            "again as 'CSV UTF-8', or, if it really is GBK, set the channel's encoding=gbk",
            "文件大部分是 UTF-8 编码，但第 " + str(line) + " 行不是（可能从其他编码的文件粘贴而来）。" + _ZH_SAVE_AS,
            file=source,
            row=line,
        )
    try:
        body.decode("gb18030")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise AnswerRefused(
            "encoding",
            f"the file is neither UTF-8 nor GBK/GB18030 (line {line}): save it as 'CSV UTF-8 (comma delimited)', "
            "or set the channel's encoding to the one it was saved in",
            "文件编码无法识别（第 " + str(line) + " 行）。" + _ZH_SAVE_AS,
            file=source,
            row=line,
        ) from None
    return "gb18030"


_ZH_SAVE_AS = (
    "请在 Excel 中“另存为”“CSV UTF-8（逗号分隔）”或“CSV（逗号分隔）”后重新报送；"
    "如渠道设置了 encoding，请核对该设置与文件一致。"
)


def _csv(data: bytes, source: str, encoding: str) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]], str]:
    enc = sniff_encoding(data, source) if encoding.lower() in (AUTO, "") else encoding
    try:
        header, chunks, _reader, malformed = read_csv_chunks(io.BytesIO(data), file=source, encoding=enc)
        records = [r for chunk in chunks for r in chunk.to_pylist()]
    except LookupError:
        raise AnswerRefused(
            "encoding",
            f"the channel's encoding setting names no known encoding ({encoding[:20]}): use gbk or utf-8, or remove it",
            "渠道设置的 encoding 不是可识别的编码，请平台管理员改为 gbk 或 utf-8，或删除该设置。",
            file=source,
        ) from None
    except RejectedBatch as exc:
        if exc.reason != "encoding":
            raise
        message = re.sub(
            r"declare encoding='([^']*)'( in the adapter)?",
            r"remove the channel's encoding setting (lidm tells UTF-8 from GBK itself) or set encoding=\1",
            exc.message,
        ).replace("the adapter declares", "the channel's encoding setting says")
        zh = "文件编码与渠道设置不一致。" + _ZH_SAVE_AS
        raise AnswerRefused("encoding", message, zh, file=source, row=exc.row) from None
    return header, records, malformed, enc


def _xlsx(data: bytes, source: str) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]], str]:
    """The answer sheet when the workbook has one, else the sheet it opens on."""
    try:
        header, chunks, _digest = read_xlsx_chunks(data, file=source, sheet=ANSWER_SHEET)
    except RejectedBatch as exc:
        if exc.reason != "missing_sheet":
            raise
        header, chunks, _digest = read_xlsx_chunks(data, file=source)
    return header, [r for chunk in chunks for r in chunk.to_pylist()], [], "xlsx"


def _sheet_rows(records: list[dict[str, Any]], malformed: list[dict[str, Any]]) -> dict[int, int]:
    """Each CSV row as a spreadsheet shows it: its line, less the line breaks inside quoted cells above it."""
    items = [(r[ROW], r[LINE], sum(_breaks(v) for v in r.values() if isinstance(v, str))) for r in records]
    items += [(m["row"], m.get("line") or m["row"] + 1, _breaks(m["text"])) for m in malformed]
    out: dict[int, int] = {}
    inside = 0
    for number, line, breaks in sorted(items):
        out[number] = line - inside
        inside += breaks
    return out


def _breaks(text: str) -> int:
    return len(_LINE_BREAK.findall(text))


def _map_header(header: list[str], columns: Sequence[Column], source: str) -> tuple[dict[int, Column], list[str]]:
    """Header cells to columns, by field name or Chinese name; the others are context, named as shown."""
    by_key: dict[str, Column] = {}
    for c in columns:
        by_key.setdefault(_key(c.name), c)
        if c.business_name:
            by_key.setdefault(_key(c.business_name), c)
    mapped: dict[int, Column] = {}
    seen: dict[str, int] = {}
    ignored: list[str] = []
    for i, cell in enumerate(header):
        c = by_key.get(_key(cell))
        if c is None:
            # A header cell with a long run of digits may be a value (no header row at all): not repeated.
            ignored.append(f"column {i + 1}" if re.search(r"\d{6}", cell) else cell[:40])
            continue
        if c.name in seen:
            raise AnswerRefused(
                "duplicate_column",
                f"columns {seen[c.name] + 1} and {i + 1} both hold {c.name}: keep one of them",
                f"第 {seen[c.name] + 1} 列和第 {i + 1} 列都是“{c.business_name or c.name}”（{c.name}），请只保留一列。",
                file=source,
                row=1,
                field=c.name,
            )
        seen[c.name] = i
        mapped[i] = c
    return mapped, ignored


def _zh_name(columns: Sequence[Column], name: str) -> str:
    return next((c.business_name for c in columns if c.name == name and c.business_name), name)


# ---------------------------------------------------------------------------------------------- values


def _key(text: str) -> str:
    """How header cells and labels are compared: full-width forms folded, case and spaces ignored."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _normalise(value: str | None, column: Column, xlsx: bool) -> str | None:
    """A value in the form the contract's checks read; a value that fits no accepted form is kept as written."""
    if value is None:
        return None
    if column.codes is not None:
        return column.codes.get(_key(value), value)
    if column.type in (LogicalType.DATE, LogicalType.TIMESTAMP):
        when = parse_when(value, xlsx=xlsx)
        if when is None:
            return value
        if column.type is LogicalType.DATE:
            return when.date().isoformat() if when.time() == datetime.min.time() else value
        return text_value(when)
    if column.type is LogicalType.NUMBER:
        folded = unicodedata.normalize("NFKC", value).strip()
        return folded.replace(",", "") if _THOUSANDS.fullmatch(folded) else folded
    return value


def parse_when(text: str, *, xlsx: bool = False) -> datetime | None:
    """A date or time in one of the accepted forms (DATE_FORMS, TIME_FORMS; Excel serials from XLSX), else None."""
    folded = unicodedata.normalize("NFKC", text).strip()
    m = _WHEN.fullmatch(folded)
    if m is not None:
        try:
            return datetime(
                int(m["y"]),
                int(m["m"] or m["m2"]),
                int(m["d"] or m["d2"]),
                int(m["H"] or 0),
                int(m["M"] or m["M2"] or 0),
                int(m["S"] or m["S2"] or 0),
            )
        except ValueError:
            return None  # 2026/2/30: refused by the checks, never moved to another day
    if xlsx and _SERIAL.fullmatch(folded) and 61 <= float(folded) <= 2958465:
        return _EXCEL_EPOCH + timedelta(seconds=round(float(folded) * 86400))
    return None
