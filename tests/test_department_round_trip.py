"""The department's side of the loop, end to end, as a caseworker does it (issue 22): warnings pushed with their
answer workbook; one department fills the workbook in Excel's way (labels from the drop-down lists, dates typed
as 2026/12/4, a note, a row left empty at the end) and puts it back; another saves its filled workbook as Excel's
"CSV (comma delimited)" on a Chinese Windows (GBK, no BOM, both header rows, a comma-only line at the end). Both
are collected on SQLite and PostgreSQL: every answered row is applied, and each department reads so in its
outbox, in Chinese first."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa
from _city import monitored_city

from lidm.contracts.load import load_catalog
from lidm.keys import load_keyring
from lidm.monitor.feedback import collect_dispositions
from lidm.monitor.push import push_warnings
from lidm.monitor.workbook import ANSWER_SHEET
from lidm.protect import Protector

PUSHED_AT = datetime(2026, 11, 28, 9, 0, 0)
COLLECTED_AT = datetime(2026, 12, 6, 18, 0, 0)
DISPOSITION = load_catalog()["platform.disposition"]
XLSX_DEPT = "medical_insurance"  # a city bureau; the CSV comes from a county bureau of HR and social security


def _label(field: str, code: str) -> str:
    f = DISPOSITION.field(field)
    return dict(zip(f.enum, f.enum_labels, strict=True))[code]


def _fill(ws, rows: int) -> list[str]:
    """A caseworker's answers to the first `rows` warnings of the sheet: granted, not eligible, granted, …; returns
    the warning ids answered. Dates are typed as text the way people type them, not picked from a calendar."""
    column = {c.value: c.column for c in ws[2]}
    answered = []
    for i, row in enumerate(range(3, 3 + rows)):
        answered.append(ws.cell(row, column["warning_id"]).value)
        granted = i % 2 == 0
        values = {
            "outcome": _label("outcome", "granted" if granted else "not_eligible"),
            "assistance_kind": _label("assistance_kind", "temporary_assistance") if granted else None,
            "amount": 1200 if granted else None,
            "granted_on": "2026/12/4" if granted else None,
            "reason": None if granted else "经核查收入超过认定标准",
            "handler": "经办人甲",
            "disposed_at": f"2026/12/{4 + i % 2} 9:{10 + i:02d}",
            "notes": "已电话告知本人" if i == 0 else None,
        }
        for code, value in values.items():
            ws.cell(row, column[code]).value = value
    return answered


def _sql(settings, text: str) -> list[sa.Row]:
    engine = sa.create_engine(settings.effective_central_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(text)).all()
    finally:
        engine.dispose()


def _pushed_workbook(home: Path, dept: str) -> openpyxl.Workbook:
    (path,) = (home / "channels" / dept / "outbox").glob("*.answer.xlsx")
    return openpyxl.load_workbook(path)


def _as_excel_csv(ws) -> bytes:
    """What Excel writes for "CSV (comma delimited)" on a Chinese Windows: every row of the sheet as shown, GBK,
    no BOM, CRLF, and the trailing line of commas it leaves for a row once touched."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in ws.iter_rows(values_only=True):
        if all(v is None for v in row):
            continue
        writer.writerow(["" if v is None else f"{v:%Y/%-m/%-d}" if isinstance(v, datetime) else v for v in row])
    out.write("," * (ws.max_column - 1) + "\r\n")
    return out.getvalue().encode("gbk")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_filled_answer_workbook_and_its_gbk_csv_come_back_applied_row_for_row(backend, request, tmp_path):
    home = tmp_path / "city"
    url = request.getfixturevalue("pg_clean_url") if backend == "postgres" else None
    settings = monitored_city(home, url)
    [(CSV_DEPT,)] = _sql(
        settings,
        "SELECT target_consumer FROM platform_warning WHERE target_department = 'hr_social_security' "
        "GROUP BY target_consumer ORDER BY count(*) DESC, target_consumer LIMIT 1",
    )
    assert CSV_DEPT.startswith("hr_social_security.")
    push_warnings(settings, departments=[XLSX_DEPT, CSV_DEPT], now=PUSHED_AT)

    book = _pushed_workbook(home, XLSX_DEPT)
    ws = book[ANSWER_SHEET]
    by_xlsx = _fill(ws, min(4, ws.max_row - 2))
    ws.cell(ws.max_row + 1, 1).value = None  # a row touched and left empty below the answers
    book.save(home / "channels" / XLSX_DEPT / "inbox" / "disposition_医保局_20261205.xlsx")

    book = _pushed_workbook(home, CSV_DEPT)
    ws = book[ANSWER_SHEET]
    by_csv = _fill(ws, min(3, ws.max_row - 2))
    gbk = _as_excel_csv(ws)
    assert not gbk.startswith(b"\xef\xbb\xbf") and gbk.endswith(b",,\r\n")
    (home / "channels" / CSV_DEPT / "inbox" / "disposition_人社局_20261205.csv").write_bytes(gbk)

    result = collect_dispositions(settings, departments=[XLSX_DEPT, CSV_DEPT], now=COLLECTED_AT)
    assert result.refused_files() == []
    for dept, answered in ((XLSX_DEPT, by_xlsx), (CSV_DEPT, by_csv)):
        totals = result.totals(dept)
        assert (totals["applied"], totals["refused"]) == (len(answered), 0), (dept, totals)
        (path,) = (home / "channels" / dept / "outbox").glob("result_*.csv")
        lines = list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
        verdicts = {x["预警编号 warning_id"]: x["结果 verdict"] for x in lines[1:] if x["结果 verdict"] != "提示 note"}
        assert verdicts == dict.fromkeys(answered, "已采纳 applied"), (dept, verdicts)
        # the warnings left for later are said to be unanswered; the workbook's own reference columns go unremarked
        notes = {x["原因代码 code"] for x in lines[1:] if x["结果 verdict"] == "提示 note"}
        assert notes <= {"unanswered_rows"}, notes
        assert lines[0]["说明"].startswith(f"共 {len(answered)} 行：已采纳 {len(answered)}，未采纳 0")

    engine = sa.create_engine(settings.effective_central_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                sa.text("SELECT warning_id, outcome, granted_on, disposed_at, _sealed FROM platform_disposition")
            ).all()
            states = dict(conn.execute(sa.text("SELECT warning_id, status FROM platform_warning")).all())
    finally:
        engine.dispose()
    assert sorted(r.warning_id for r in stored) == sorted(by_xlsx + by_csv)
    assert {states[w] for w in by_xlsx + by_csv} == {"disposed"}
    first = next(r for r in stored if r.warning_id == by_xlsx[0])
    assert (first.outcome, str(first.granted_on)[:10], str(first.disposed_at)[:16]) == (
        "granted",
        "2026-12-04",
        "2026-12-04 09:10",
    )
    notes = Protector(DISPOSITION, load_keyring(settings)).decrypt(first._sealed, "notes")
    assert notes == "已电话告知本人"  # kept with the disposition, encrypted like other free text
