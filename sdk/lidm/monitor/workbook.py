"""The answer template pushed beside each warning file, so a department answers without knowing the codes.

``files_for_people`` makes what a folder push writes beside its machine CSV: the warnings in Chinese
(lidm.monitor.readable), the answer workbook and the answer template. ``answer_workbook`` writes an .xlsx of
three sheets. ``答复``: row 1 the platform.disposition contract's Chinese
name of each column, row 2 its field name in grey (the reader skips a row equal to the field names), from row 3
one row per pushed warning with warning_id and id_number filled in (id_number only where the grant gives it in
clear), drop-down lists of outcome and assistance_kind in the contract's Chinese labels, date formats on
granted_on and disposed_at, a ``notes`` (备注) column, then context columns the reader ignores (the name as
granted, the due date, the warning's summary) under the warning contract's names. ``说明``: how to fill each
column, the allowed values, the date forms, where to put the file back, in Chinese then English, and the code
table. ``预警明细``: the warnings as people read them. ``answer_csv`` is the same template for systems.

openpyxl is imported inside the functions: nothing that only imports this module loads it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import Contract, Field, GrantLevel, LogicalType
from lidm.monitor.lifecycle import WARNING_CONTRACT
from lidm.monitor.readable import Readable, readable_csv

ANSWER_SHEET, GUIDE_SHEET, WARNINGS_SHEET = "答复", "说明", "预警明细"
# Name endings of the files beside a push's machine CSV (lidm.monitor.push): for people, and to answer with.
READABLE_SUFFIX, ANSWER_XLSX_SUFFIX, ANSWER_CSV_SUFFIX = ".zh.csv", ".answer.xlsx", ".answer.csv"
DISPOSITION_CONTRACT = "platform.disposition"
NOTES, NOTES_HEADER = "notes", "备注"  # written even before the contract has the field
PREFILLED = ("warning_id", "id_number")
# Disposition fields a department does not fill in: the platform issues them, or the channel (department) and
# the warning (district_code, household_id, which the department only knows as a pseudonym) supply them.
NOT_ASKED = ("disposition_id", "updated_at", "department", "district_code", "household_id")
# Warning fields shown beside the answers, for the person filling in; the long summary last, and not printed (the
# 预警明细 sheet prints it), so a printed answer sheet stays legible.
CONTEXT = ("name", "due_date", "summary")
DATE_FORMATS = {LogicalType.DATE: "yyyy-mm-dd", LogicalType.TIMESTAMP: "yyyy-mm-dd hh:mm"}
# Column widths (characters) that fit their values, so the sheet prints one page wide and stays legible.
WIDTHS = {"warning_id": 21, "id_number": 20, "outcome": 14, "assistance_kind": 13, "amount": 9, "granted_on": 11}
WIDTHS |= {
    "follow_up_date": 11,
    "follow_up_result": 12,
    "reason": 20,
    "handler": 8,
    "disposed_at": 15,
    "notes": 12,
    "summary": 30,
    "name": 8,
    "due_date": 23,
}
_LIST_LIMIT = 255  # characters of an inline drop-down list (Excel's limit); longer lists point at the code table
_GREY, _FILLED, _ASK, _CONTEXT = "808080", "F2F2F2", "DDEBF7", "EDEDED"
_URGENCY_FILL = {"high": "F8CBAD", "medium": "FCE4D6", "low": "FFF2CC"}

# How to fill each column, Chinese then English; the rules are those monitor.dispositions applies.
HOW = {
    "warning_id": ("已预填，请勿修改。", "Filled in; do not change."),
    "id_number": (
        "已预填；为空时填写 18 位公民身份号码。",
        "Filled in where your grant shows it; otherwise type the 18-digit id number.",
    ),
    "outcome": ("必填，从下拉列表中选择。", "Required: choose from the list."),
    "assistance_kind": (
        "处置结果为“已纳入”“已给予救助”时必填，从下拉列表中选择；其他结果留空。",
        "Required when the outcome is included or granted (choose from the list); empty otherwise.",
    ),
    "amount": (
        "处置结果为“已给予救助”时必填，单位元，只填数字；其他结果（如“不符合条件”“已告知政策，本人未申请”）留空。",
        "Required when granted: yuan, digits only; empty for every other outcome (not eligible, informed, …).",
    ),
    "granted_on": (
        "处置结果为“已纳入”“已给予救助”时必填，填日期。",
        "Required when included or granted: a date.",
    ),
    "follow_up_date": (
        "处置结果为“一事一议”时必填：县级协调机制跟进该案的日期；其他结果留空。",
        "Required when the outcome is case_by_case (一事一议): the date the county will follow the case up; empty "
        "otherwise.",
    ),
    "follow_up_result": (
        "选填，仅用于“一事一议”：研究结果；可在之后新增一行“一事一议”（新的处置时间）补报。给予的救助由发放部门按“已给予救助”报送。",
        "Optional, case_by_case only: what the 一事一议 decided; may be sent later in a new case_by_case row (a new "
        "disposed_at). The assistance itself is reported as granted by the paying department.",
    ),
    "reason": (
        "处置结果不是“已纳入”“已给予救助”时必填（如不符合条件、已终止、一事一议、已告知政策本人未申请、比对数据有误），"
        "写明原因、告知情况或哪项共享数据有误；请勿写入身份证号、电话等个人信息。",
        "Required for any outcome but included and granted (not eligible, terminated, referred, case_by_case,"
        " informed and not applied, data_error): why, how the person was informed, or which shared data was wrong."
        " Write no id number, phone or other personal data.",
    ),
    "handler": ("必填，经办人姓名。", "Required: the handling officer's name."),
    "disposed_at": (
        "必填，处置的日期和时间。更正已报送的处置结果时，须与原处置时间相同。",
        "Required: date and time of the disposition. A correction repeats the disposed_at it corrects.",
    ),
    NOTES: ("选填，其他需要说明的情况。", "Optional: anything else to say."),
}
CONTEXT_HOW = ("仅供参考，平台不读取。", "For reference; the platform does not read it.")


def files_for_people(
    catalog: ContractCatalog,
    fields: Sequence[tuple[Field, GrantLevel]],
    records: Sequence[Mapping[str, Any]],
    today: date,
    *,
    inbox: str,
) -> dict[str, bytes]:
    """What goes beside a push's machine CSV, by name ending: the warnings in Chinese, the answer workbook, and
    the answer template for systems."""
    readable = Readable(catalog[WARNING_CONTRACT], today, catalog.consumers)
    granted = {f.name: level for f, level in fields}
    columns = answer_columns(catalog[DISPOSITION_CONTRACT], catalog[WARNING_CONTRACT], granted)
    return {
        READABLE_SUFFIX: readable_csv(*readable.table(fields, records)),
        ANSWER_XLSX_SUFFIX: answer_workbook(columns, records, fields, readable, inbox=inbox),
        ANSWER_CSV_SUFFIX: answer_csv(columns, records, granted),
    }


@dataclass(frozen=True)
class Column:
    """One column of the answer sheet: its field name (row 2), Chinese header (row 1) and contract field."""

    name: str
    header: str
    field: Field | None  # None: notes, before the contract has it
    context: bool = False


def answer_columns(disposition: Contract, warning: Contract, granted: Mapping[str, GrantLevel]) -> list[Column]:
    """The answer columns (prefilled first, then the contract's order, notes last if the contract lacks it),
    then the context columns the grant allows."""
    asked = [f for f in disposition.fields if f.name not in NOT_ASKED]
    first = [f for name in PREFILLED for f in asked if f.name == name]
    cols = [Column(f.name, f.business_name or f.name, f) for f in first + [f for f in asked if f not in first]]
    if NOTES not in {c.name for c in cols}:
        cols.append(Column(NOTES, NOTES_HEADER, None))
    warning_fields = {f.name: f for f in warning.fields}
    for name in CONTEXT:
        if name in granted and name in warning_fields:
            f = warning_fields[name]
            cols.append(Column(name, f.business_name or name, f, context=True))
    return cols


def _prefill(col: Column, record: Mapping[str, Any], granted: Mapping[str, GrantLevel]) -> Any:
    """What a row starts with: warning_id, and id_number when the department received it in clear."""
    if col.name == "warning_id":
        return record.get("warning_id")
    if col.name == "id_number" and granted.get("id_number") is GrantLevel.CLEAR:
        return record.get("id_number")
    return None


def answer_csv(
    columns: Sequence[Column], records: Sequence[Mapping[str, Any]], granted: Mapping[str, GrantLevel]
) -> bytes:
    """The template for systems: UTF-8 with BOM, one header row of field names, one row per warning."""
    answers = [c for c in columns if not c.context]
    return readable_csv([c.name for c in answers], [[_prefill(c, r, granted) for c in answers] for r in records])


def answer_workbook(
    columns: Sequence[Column],
    records: Sequence[Mapping[str, Any]],
    warning_fields: Sequence[tuple[Field, GrantLevel]],
    readable: Readable,
    *,
    inbox: str,
) -> bytes:
    """The .xlsx a department fills in and puts back into its inbox (sheets 答复, 说明, 预警明细)."""
    from openpyxl import Workbook

    granted = {f.name: level for f, level in warning_fields}
    book = Workbook()
    answers = book.active
    answers.title = ANSWER_SHEET
    guide = book.create_sheet(GUIDE_SHEET)
    lists = _guide(guide, columns, inbox)
    _answers(answers, columns, records, granted, readable, lists)
    _warnings(book.create_sheet(WARNINGS_SHEET), warning_fields, records, readable)
    book.active = 0
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _text(cell: Any, value: Any) -> None:
    """A value that a spreadsheet must show as typed: text stays text (never a formula), None stays empty."""
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"


def _answers(
    ws: Any,
    columns: Sequence[Column],
    records: Sequence[Mapping[str, Any]],
    granted: Mapping[str, GrantLevel],
    readable: Readable,
    lists: Mapping[str, str],
) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    last = len(records) + 2
    # One style object per kind, shared by its cells: a new one per cell costs three times the time.
    fills = {c: PatternFill("solid", fgColor=c) for c in (_CONTEXT, _FILLED, _ASK)}
    bold, grey = Font(bold=True), Font(color=_GREY, size=10)
    wrap = Alignment(wrap_text=True, vertical="center")
    for i, col in enumerate(columns, start=1):
        letter = get_column_letter(i)
        head = ws.cell(1, i)
        _text(head, col.header)
        head.font, head.alignment = bold, wrap
        head.fill = fills[_CONTEXT if col.context else _FILLED if col.name in PREFILLED else _ASK]
        code = ws.cell(2, i)
        _text(code, col.name)
        code.font = grey
        ws.column_dimensions[letter].width = WIDTHS.get(col.name, 12)
        for row, record in enumerate(records, start=3):
            cell = ws.cell(row, i)
            if col.context:
                f = col.field
                _text(cell, readable.value(f, granted[col.name], record.get(col.name)) if f else None)
                cell.fill = fills[_CONTEXT]
                continue
            _text(cell, _prefill(col, record, granted))
            if col.name in PREFILLED:
                cell.fill = fills[_FILLED]
                cell.number_format = "@"  # an 18-digit number must never become 1.1E+17
            elif col.field is not None and col.field.type in DATE_FORMATS:
                cell.number_format = DATE_FORMATS[col.field.type]
        if col.context or col.field is None:
            continue
        cells = f"{letter}3:{letter}1048576"  # rows a department adds (a final answer after 一事一议) too
        if col.field.enum:
            dv = DataValidation(type="list", formula1=lists[col.name], allow_blank=not col.field.required)
            dv.error, dv.errorTitle = f"请从下拉列表中选择{col.header}。", "无效的值"
            dv.prompt, dv.promptTitle = "请从下拉列表中选择。", col.header
            dv.showErrorMessage = dv.showInputMessage = True
            dv.add(cells)
            ws.add_data_validation(dv)
        elif col.field.type is LogicalType.NUMBER:
            low, high = col.field.minimum or 0, col.field.maximum or 1_000_000_000
            dv = DataValidation(type="decimal", operator="between", formula1=str(low), formula2=str(high))
            dv.error, dv.errorTitle = f"{col.header}只填数字（{low}–{high}）。", "无效的值"
            dv.showErrorMessage = True
            dv.add(cells)
            ws.add_data_validation(dv)
    ws.freeze_panes = "C3"
    ws.row_dimensions[1].height = 30
    printed = len(columns) - (columns[-1].name == "summary")
    _print_setup(ws, f"A1:{get_column_letter(printed)}{last}", "A:B", "1:2")


def _print_setup(ws: Any, area: str, columns: str, rows: str) -> None:
    """Landscape A4, one page wide, the identifying columns and header rows repeated on every page."""
    ws.print_area = area
    ws.print_title_cols, ws.print_title_rows = columns, rows
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.page_margins.left = ws.page_margins.right = 0.3


def _how(col: Column) -> tuple[str, str]:
    """How to fill a column in, Chinese and English; a field added to the contract later says whether it must be."""
    if col.context:
        return CONTEXT_HOW
    required = col.field is not None and col.field.required
    return HOW.get(col.name, ("必填。", "Required.") if required else ("选填。", "Optional."))


def _guide(ws: Any, columns: Sequence[Column], inbox: str) -> dict[str, str]:
    """Write the instructions; returns each drop-down column's list formula (inline, or its code-table range)."""
    from openpyxl.styles import Alignment, Font

    bold = Font(bold=True)
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 18
    ws.column_dimensions["C"].width = 70
    ws.column_dimensions["D"].width = 60
    row = 1

    def line(*values: Any, font: Any = None) -> None:
        nonlocal row
        for i, v in enumerate(values, start=1):
            cell = ws.cell(row, i)
            _text(cell, v)
            cell.alignment = Alignment(wrap_text=True, vertical="top")
            if font is not None:
                cell.font = font
        row += 1

    def labels(f: Field | None) -> list[tuple[str, str]]:
        if f is None or not f.enum:
            return []
        return [(lab or code, code) for code, lab in zip(f.enum, f.enum_labels or (None,) * len(f.enum), strict=True)]

    place = f"{inbox.rstrip('/')}/"
    zh = [
        "1. 「答复」页每条预警一行，预警编号和公民身份号码已预先填好。第 1 行是列名，第 2 行灰色是字段代码，"
        "请勿修改或删除；从第 3 行起填写。",
        "2. 一条预警可先报送“提交县级协调（一事一议）”或“一事一议”（须填跟进日期），县级决定后再新增一行报送最终结果或"
        "一事一议结果（处置时间不同）。共享数据本身有误时选“比对数据有误”，不要选“不符合条件”。",
        "3. 日期填日期单元格，或写作 2026-12-04、2026/12/4、2026年12月4日；处置时间再写上时间，如 2026-12-04 10:30。"
        "CSV 文件同样可用这些写法；处置结果和救助项目可填中文（如“已给予救助”）或代码（见下方代码对照表）。",
        f"4. 填好后将本文件命名为 disposition_<任意名称>.xlsx（或另存为 CSV：disposition_<任意名称>.csv），"
        f"放入本通道的 inbox/ 文件夹：{place}",
        "5. 平台读取后在 outbox/ 写出处理结果 result_<文件名>.csv（逐行：已采纳、未采纳及应当怎样填写），原文件移到 "
        "inbox/done/；无法读取的文件移到 inbox/rejected/，结果文件说明原因。未采纳的行改正后可放入新文件重新报送。",
        "6. 预警关闭（条件消失）或逾期时，平台在 outbox/ 发出 notices_*.csv 通知；已关闭的预警不再接收处置结果。",
    ]
    en = [
        "1. Sheet 答复 has one row per warning with warning_id and id_number filled in. Row 1 names the columns, "
        "grey row 2 holds the field names: change or delete neither; answers start on row 3.",
        "2. A warning may first be referred to the county (referred, or case_by_case with a follow-up date) and "
        "answered finally, or the 一事一议's result sent, later in a new row with a different disposed_at. When the "
        "shared data itself was wrong choose data_error (比对数据有误), not not_eligible.",
        "3. Dates as date cells, or written 2026-12-04, 2026/12/4 or 2026年12月4日; disposed_at with the time too, "
        "e.g. 2026-12-04 10:30. A CSV file takes the same forms; outcome and assistance_kind in Chinese (e.g. "
        "已给予救助) or as codes (code table below).",
        f"4. Name the file disposition_<anything>.xlsx (or save it as CSV: disposition_<anything>.csv) and put it "
        f"in the channel's inbox/ folder: {place}",
        "5. The platform writes what became of each row to outbox/result_<file>.csv (applied, or refused and what was "
        "expected) and moves the file to inbox/done/; a file it cannot read goes to inbox/rejected/, its result file "
        "saying why. Correct refused rows and send them in a new file.",
        "6. When a warning closes (its condition went away) or goes overdue, a notices_*.csv in outbox/ says so; a "
        "closed warning takes no answer.",
    ]
    line("预警处置答复表填写说明", font=Font(bold=True, size=14))
    for text in zh:
        line(text)
    row += 1
    line("列名", "字段代码", "填写说明", "可选值", font=bold)
    for col in columns:
        how = _how(col)[0]
        line(col.header, col.name, how, "、".join(lab for lab, _ in labels(None if col.context else col.field)))
    row += 1
    line("How to fill in this workbook", font=Font(bold=True, size=14))
    for text in en:
        line(text)
    row += 1
    line("Column", "Field", "How to fill it in", "Allowed values", font=bold)
    for col in columns:
        how = _how(col)[1]
        line(col.header, col.name, how, ", ".join(code for _, code in labels(None if col.context else col.field)))
    row += 1
    line("代码对照表 / Code table", font=Font(bold=True, size=14))
    formulas: dict[str, str] = {}
    for col in columns:
        pairs = labels(None if col.context else col.field)
        if not pairs:
            continue
        line(f"{col.header}（{col.name}）", "代码 / code", font=bold)
        first = row
        for lab, code in pairs:
            line(lab, code)
        inline = ",".join(lab for lab, _ in pairs)
        fits = len(inline) + 2 <= _LIST_LIMIT and not any("," in lab or '"' in lab for lab, _ in pairs)
        formulas[col.name] = f'"{inline}"' if fits else f"'{GUIDE_SHEET}'!$A${first}:$A${row - 1}"
        row += 1
    return formulas


def _warnings(
    ws: Any, fields: Sequence[tuple[Field, GrantLevel]], records: Sequence[Mapping[str, Any]], readable: Readable
) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    headers, rows = readable.table(fields, records)
    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="center")
    fills = {code: PatternFill("solid", fgColor=colour) for code, colour in _URGENCY_FILL.items()}
    urgency = next((i for i, (f, _) in enumerate(fields, start=1) if f.name == "urgency"), None)
    for i, text in enumerate(headers, start=1):
        cell = ws.cell(1, i)
        _text(cell, text)
        cell.font, cell.alignment = bold, wrap
        name = fields[i - 1][0].name
        ws.column_dimensions[get_column_letter(i)].width = 40 if name == "summary" else 24 if name == "due_date" else 14
    for r, (record, values) in enumerate(zip(records, rows, strict=True), start=2):
        for i, value in enumerate(values, start=1):
            cell = ws.cell(r, i)
            _text(cell, value)
            if i == urgency and record.get("urgency") in fills:
                cell.fill = fills[record["urgency"]]
    ws.freeze_panes = "B2"
    _print_setup(ws, f"A1:{get_column_letter(max(len(headers), 1))}{len(rows) + 1}", "A:A", "1:1")
