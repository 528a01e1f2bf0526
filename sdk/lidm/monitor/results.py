"""The result a department reads for each answer file it sent: ``outbox/result_<file>.csv``, Chinese first.

One line per row as the department sees it in its spreadsheet (the row number Excel shows), the field, the
verdict (已采纳 applied, 未采纳 refused, 重复 unchanged, 已签收 acknowledged) and, for a refusal, what was expected:
the allowed values as Chinese labels and codes, the accepted date forms, the check that failed and what to do.
A file refused whole gets one too, saying why and what to do. Lines carry codes, ids, dates and field names only,
never a value the department typed: a shifted column could put a person's data anywhere. UTF-8 with a BOM, so
Excel opens it as it is. (``inbox/done/*.result.json`` stays the machines' version.)
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from lidm.cells import csv_cell
from lidm.contracts.model import Contract, Field, LogicalType
from lidm.errors import RejectedBatch
from lidm.monitor.answers import DATE_FORMS, TIME_FORMS, Answer, AnswerRefused
from lidm.monitor.dispositions import Decision

HEADER = ("行号 row", "预警编号 warning_id", "字段 field", "结果 verdict", "原因代码 code", "说明", "explanation")
VERDICTS = {
    "applied": "已采纳 applied",
    "refused": "未采纳 refused",
    "unchanged": "重复 unchanged",
    "acknowledged": "已签收 acknowledged",
    "unknown_warning": "未采纳 refused",
    "other_department": "未采纳 refused",
    "note": "提示 note",
    "summary": "汇总 summary",
    "file": "整份未采纳 file refused",
}
# The field a refusal is about, when its code says it.
_CODE_FIELD = {
    "unknown_warning": "warning_id",
    "other_department": "warning_id",
    "closed": "warning_id",
    "department_mismatch": "department",
    "inconsistent_outcome": "outcome",
    "follow_up_date_missing": "follow_up_date",
    "follow_up_not_case_by_case": "outcome",
    "id_number_mismatch": "id_number",
    "duplicate": "disposed_at",
    "superseded": "disposed_at",
    "before_warning": "disposed_at",
    "unknown_transfer_to": "transfer_to",
    "transfer_to_self": "transfer_to",
    "wrong_area": "transfer_to",
    "cannot_return": "outcome",
    "no_handover": "outcome",
}
_WHOLE_FILE = {
    "encoding": "文件编码无法识别。请在 Excel 中“另存为”“CSV UTF-8（逗号分隔）”后重新报送。",
    "header": "第 1 行应为表头（字段名或中文名），请删去表头上方的标题行后重新报送。",
    "empty_file": "文件是空的（没有表头），请填写后重新报送。",
    "duplicate_column": "表头中有重复的列，请只保留一列后重新报送。",
    "delimiter": "文件不是用英文逗号分隔的，请在 Excel 中另存为“CSV（逗号分隔）”后重新报送。",
    "malformed_file": "文件无法读取（不是有效的 CSV 或 XLSX 文件），请重新导出后报送。",
    "merged_cells": "表格中有合并单元格，请取消合并并在每一行填写完整后重新报送。",
    "missing_sheet": "找不到要读取的工作表，请在“答复”工作表中填写后重新报送。",
    "ambiguous_sheet": "无法确定要读取哪个工作表，请在“答复”工作表中填写，并保存时停留在该工作表。",
    "nul_bytes": "文件不完整（导出或复制未完成），请重新导出后报送。",
    "field_too_large": "某一行过大，不是正常的处置反馈，请检查导出后重新报送。",
}
_DATE_ZH = "、".join(DATE_FORMS)
_TIME_ZH = "、".join(TIME_FORMS)
_DATE_IN = re.compile(r"\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}:\d{2})?")


def result_name(answer_name: str) -> str:
    """The result file's name for an answer file: never one of the platform's push files (result_ prefix)."""
    stem = answer_name.rsplit(".", 1)[0] if "." in answer_name else answer_name
    return f"result_{stem}.csv"


def render(lines: Iterable[Sequence[object]]) -> bytes:
    """The lines as CSV, UTF-8 with a BOM; cells a spreadsheet would run as formulas are escaped."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(HEADER)
    for line in lines:
        writer.writerow([csv_cell(v) for v in line])
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


def refused_file(exc: RejectedBatch) -> bytes:
    """The result of a file refused whole: why, and what to do."""
    zh = exc.zh if isinstance(exc, AnswerRefused) else _WHOLE_FILE.get(exc.reason, "文件未能读取，详见英文说明。")
    en = f"the whole file was refused: {exc.message}; send it again once corrected"
    return render([(exc.row or "", "", exc.field or "", VERDICTS["file"], exc.reason, zh, en)])


def disposition_result(contract: Contract, department: str, answer: Answer, decisions: Sequence[Decision]) -> bytes:
    """The result of a disposition file: a summary, one line per row (per field for a refused row), then notes."""
    fields = {f.name: f for f in contract.fields}
    lines: list[tuple[object, ...]] = []
    for d in sorted(decisions, key=lambda d: d.row_number or 0):
        row = answer.sheet_rows.get(d.row_number or 0, (d.row_number or 0) + 1)
        verdict = d.earlier or d.status  # a row decided before (the file read again) keeps its verdict
        code = d.code or _code(d.reason)
        if verdict == "refused":
            for name, check in _problems(d, code, fields):
                zh, en = _explain(check, fields.get(name or ""), fields, department, d.reason or "")
                lines.append((row, d.warning_id or "", _field(fields, name), VERDICTS["refused"], check, zh, en))
        elif verdict == "applied":
            corrected = (d.reason or "").startswith("correction of")
            zh = f"已采纳，更正了此前报送的处置反馈（{d.disposition_id}）。" if corrected else "已采纳。"
            en = f"applied as disposition {d.disposition_id}" + (", correcting the earlier answer" if corrected else "")
            lines.append((row, d.warning_id or "", "", VERDICTS["applied"], "", zh, en))
        else:
            zh, en = "与此前报送并已处理的内容相同，无需重复报送。", "the same answer was taken before; nothing changed"
            lines.append((row, d.warning_id or "", "", VERDICTS["unchanged"], "", zh, en))
    counts = Counter(d.earlier or d.status for d in decisions)
    summary = (
        "",
        "",
        "",
        VERDICTS["summary"],
        "",
        f"共 {len(decisions)} 行：已采纳 {counts['applied']}，未采纳 {counts['refused']}，重复 {counts['unchanged']}。"
        + ("未采纳的行请按说明改正后重新报送。" if counts["refused"] else ""),
        f"{len(decisions)} rows: {counts['applied']} applied, {counts['refused']} refused, {counts['unchanged']} "
        "unchanged" + ("; correct the refused rows as explained and send them again" if counts["refused"] else ""),
    )
    return render([summary, *lines, *notes(answer, "处置反馈", "platform.disposition")])


def ack_result(answer: Answer, report: Sequence[dict[str, object]]) -> bytes:
    """The result of an acknowledgement file: one line per row."""
    words = {
        "acknowledged": ("已签收。", "acknowledged"),
        "unchanged": ("此前已签收，或预警已办结、已关闭，无需处理。", "acknowledged before, or the warning is closed"),
        "unknown_warning": ("预警编号不存在：请从推送的预警文件中复制预警编号。", "no warning with this warning_id"),
        "other_department": ("该预警不是推送给本部门的。", "the warning was not sent to this department"),
    }
    lines = []
    for r in report:
        number = int(str(r["row"]))
        status = str(r["status"])
        zh, en = words.get(status, ("", status))
        verdict = VERDICTS.get(status, status)
        code = status if verdict == VERDICTS["refused"] else ""
        field = "预警编号 warning_id" if code else ""
        lines.append((answer.sheet_rows.get(number, number + 1), "", field, verdict, code, zh, en))
    return render([*lines, *notes(answer, "签收", "acknowledgements")])


def notes(answer: Answer, what_zh: str, what_en: str) -> list[tuple[object, ...]]:
    """What was left aside of a file, said once: columns that are no field, rows naming a warning but no answer."""
    out: list[tuple[object, ...]] = []
    if answer.ignored:
        cols = "、".join(answer.ignored)
        out.append(
            (
                "",
                "",
                "",
                VERDICTS["note"],
                "ignored_columns",
                f"以下列不是{what_zh}的字段，已忽略：{cols}。",
                f"columns that are no field of {what_en} were ignored: {', '.join(answer.ignored)}",
            )
        )
    if answer.unanswered:  # (empty and comma-only rows are no rows: not mentioned)
        out.append(
            (
                "",
                "",
                "",
                VERDICTS["note"],
                "unanswered_rows",
                f"{answer.unanswered} 行只有预警编号等标识，没有填写处置内容，未处理，也不计入行数。",
                f"{answer.unanswered} rows name a warning but answer nothing yet: not taken, not counted",
            )
        )
    return out


def _code(reason: str | None) -> str:
    m = re.match(r"\[([\w.]+)\]", reason or "")
    return m.group(1) if m else "refused"


def _problems(d: Decision, code: str, fields: dict[str, Field]) -> list[tuple[str | None, str]]:
    """(field, code) of each thing wrong with a refused row."""
    if d.problems:
        return [(name, f"invalid.{check}") for name, check in d.problems]
    if code.startswith("invalid."):
        # read again after a crash: the fields are named at the start of each message
        message = (d.reason or "").split("] ", 1)[-1]
        named = [part.split(" ", 1)[0] for part in message.split("; ")]
        return [(n, code) for n in dict.fromkeys(named) if n in fields] or [(None, code)]
    return [(_CODE_FIELD.get(code), code)]


def _field(fields: dict[str, Field], name: str | None) -> str:
    f = fields.get(name or "")
    return f"{f.business_name or f.name} {f.name}" if f else (name or "")


def _label(f: Field | None) -> str:
    return f"“{f.business_name or f.name}”" if f else "该字段"


def _allowed(f: Field) -> tuple[str, str]:
    labels = f.enum_labels or ((None,) * len(f.enum or ()))
    pairs = list(zip(f.enum or (), labels, strict=False))
    zh = "、".join(f"{label}（{code}）" if label else code for code, label in pairs)
    en = ", ".join(f"{label} ({code})" if label else code for code, label in pairs)
    return zh, en


def _explain(code: str, f: Field | None, fields: dict[str, Field], department: str, reason: str) -> tuple[str, str]:
    """What was expected, in Chinese and in English, for one refusal code (and field)."""
    label, name = _label(f), f.name if f else "the field"
    message = reason.split("] ", 1)[-1]
    dates = _DATE_IN.findall(message)
    if code == "invalid.enum" and f is not None:
        zh, en = _allowed(f)
        return f"{label}的值不在允许范围内。可填：{zh}；中文或代码均可。", f"{name} must be one of: {en}"
    if code == "invalid.type" and f is not None and f.type is LogicalType.DATE:
        return (
            f"{label}不是可识别的日期。可用格式：{_DATE_ZH}，或 Excel 的日期单元格。",
            f"{name} is not a date in an accepted form: {', '.join(DATE_FORMS)}, or an Excel date cell",
        )
    if code == "invalid.type" and f is not None and f.type is LogicalType.TIMESTAMP:
        return (
            f"{label}不是可识别的日期时间。可用格式：{_TIME_ZH}；"
            f"也可只填日期（{_DATE_ZH}），或用 Excel 的日期时间单元格。",
            f"{name} is not a date and time in an accepted form: {', '.join(TIME_FORMS)}; a date alone "
            f"({', '.join(DATE_FORMS)}) or an Excel date cell also does",
        )
    if code == "invalid.type":
        return f"{label}应为数字，例如 3000 或 3000.50，不带单位。", f"{name} must be a number, e.g. 3000 or 3000.50"
    if code == "invalid.required":
        return f"{label}为必填项，不能为空。", f"{name} is required: fill it in"
    if code == "invalid.length" and f is not None:
        if f.min_length and f.min_length == f.max_length:
            return f"{label}应为 {f.max_length} 位。", f"{name} must have exactly {f.max_length} characters"
        return f"{label}不能超过 {f.max_length} 个字。", f"{name} must not be longer than {f.max_length} characters"
    if code == "invalid.pattern" and f is not None:
        return f"{label}的格式不对（应为 6 位数字）。", f"{name} does not have the required form ({f.pattern})"
    if code == "invalid.range" and f is not None:
        bounds = f"{f.minimum if f.minimum is not None else ''}～{f.maximum if f.maximum is not None else ''}"
        return f"{label}超出允许范围（{bounds}）。", f"{name} is outside the allowed range ({bounds})"
    if code.startswith("invalid.id_number"):
        return {
            "invalid.id_number.format": (
                f"{label}应为 18 位：17 位数字加 1 位校验码（数字或 X）。",
                f"{name} must be 17 digits and a check character (a digit or X)",
            ),
            "invalid.id_number.birth_date": (
                f"{label}中的出生日期不存在，请核对号码。",
                f"{name} holds an impossible birth date: check the number",
            ),
        }.get(code, (f"{label}的校验码（第 18 位）不正确，请核对号码。", f"{name}: the check character is wrong"))
    if code == "invalid.division_code":
        return (
            f"{label}不是本市的区县代码：请填写预警中的区县代码，或留空由平台按预警填写。",
            f"{name} is not a district of the city: use the warning's district_code, or leave it empty",
        )
    if code == "invalid.nul_character":
        return f"{label}含有不可见的空字符（NUL），请删除后重新报送。", f"{name} contains a NUL character: remove it"
    if code == "department_mismatch":
        dept = fields.get("department")
        own = dict(zip(dept.enum or (), dept.enum_labels or (), strict=False)).get(department) if dept else None
        return (
            f"处置部门与报送渠道的部门不一致：请填写本部门（{own or department}，{department}）或留空。",
            f"department must be this channel's department ({department}) or empty; {message}",
        )
    if code == "inconsistent_outcome":
        return (
            "处置结果与救助信息不一致：“已给予救助”须填救助项目、救助金额和救助日期；“已纳入”须填救助项目和救助日期；"
            "其余结果（不符合条件、已终止、提交县级协调、一事一议、比对数据有误等）须填处置说明，且不填救助项目和救助金额。",
            message,
        )
    if code == "superseded":
        newer, this = [*dates, "", ""][:2]
        return (
            f"该预警已采纳一条更新的处置反馈（处置时间 {newer}），本条（处置时间 {this}）更早，未采纳；"
            "如本条才是最新情况，请按实际处置时间填写后重新报送。",
            message,
        )
    if code == "before_warning":
        this, raised = [*dates, "", ""][:2]
        return f"处置时间（{this}）早于预警生成日期（{raised}），请核对处置时间。", message
    fixed = {
        "unknown_warning": "预警编号不存在：请从推送的预警文件中复制预警编号。",
        "other_department": "该预警不由本单位承办（未推送给本单位，或已转办、退回给其他单位），本单位不能反馈。",
        "unknown_transfer_to": (
            "“转办至”应填部门代码（如 hr_social_security）或承办单位编号（如 education.yuelu），请核对。"
        ),
        "transfer_to_self": "“转办至”就是本单位，请填写应承办的其他部门或单位。",
        "wrong_area": "“转办至”的承办单位不管辖该对象所在区县，请填写部门代码，由平台按辖区转办。",
        "cannot_return": "市民政局牵头低收入人口动态监测，不能退回预警；请转办给应承办的部门，或办结。",
        "no_handover": "该预警已办结或已转办、退回 3 次，不能再转办、退回；请办结或提交一事一议。",
        "closed": "该预警已关闭（困难情形已消除），不再接收处置反馈。",
        "id_number_mismatch": "公民身份号码与该预警的对象不一致，请核对。",
        "follow_up_date_missing": (
            "处置结果为“一事一议”时须填写一事一议跟进日期（县级协调机制跟进该案的日期），请补填后重新报送。"
        ),
        "follow_up_not_case_by_case": (
            "一事一议跟进日期和一事一议结果只用于处置结果为“一事一议”的反馈，其他处置结果请留空。"
        ),
        "duplicate": "该预警已有办结反馈，不再接收新的办结反馈；如需更正原反馈，请沿用原反馈的处置时间重新报送。",
        "malformed_row": (
            "该行的列数与表头不一致，常见原因是单元格中有未加引号的英文逗号；请用 Excel 另存为 CSV 后重新报送。"
        ),
    }
    return fixed.get(code, "未采纳，详见英文说明。"), message
