"""Answers the way an office sends them: Excel's CSV (GBK, labels, slash dates), the answer workbook, corrections.

The reading rules run alone first (no database). Then a small synthetic city is monitored once per backend
(SQLite, and PostgreSQL where marked) with its warnings raised on the evening of the day evaluated; each test
pushes to a folder channel, drops answer files into the department's inbox and collects them, and reads what the
department reads: ``outbox/result_<file>.csv``, Chinese first, never a value it typed.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa
from _city import city_bureaus_only, monitored_city, private_copy
from _city import rows as _rows
from lidm_samples.demo import demo_settings

from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.errors import RejectedBatch
from lidm.keys import load_keyring
from lidm.monitor.answers import ACK_COLUMNS, contract_columns, parse_when, read_answer, sniff_encoding
from lidm.monitor.channels import PLATFORM_ISSUED, disposition_table_for
from lidm.monitor.feedback import REQUIRED_COLUMNS, collect_dispositions
from lidm.monitor.ordering import schedule
from lidm.monitor.push import push_warnings
from lidm.protect import Protector

PUSHED_AT = datetime(2026, 11, 28, 9, 0, 0)
COLLECTED_AT = datetime(2026, 12, 6, 18, 0, 0)
DEPT = "medical_insurance"
CONTRACT = load_catalog()["platform.disposition"]
COLUMNS = contract_columns(CONTRACT, PLATFORM_ISSUED)
ZH = {f.name: f.business_name for f in CONTRACT.fields}
FIELDS = ["warning_id", "outcome", "assistance_kind", "amount", "granted_on", "reason", "handler", "disposed_at"]
FIELDS += ["id_number", "notes"]
ZH_HEADER = [ZH[n] for n in FIELDS]  # 预警编号, 处置结果, ... 备注: the header Excel users write


# ------------------------------------------------------------------------------------------ reading, alone


_bureaus = pytest.fixture(scope="module", autouse=True)(city_bureaus_only)  # one bureau's channel


def _read(data: bytes, name: str = "disposition_x.csv", encoding: str = "auto"):
    return read_answer(
        data,
        name=name,
        source=f"inbox/{name}",
        columns=COLUMNS,
        required=REQUIRED_COLUMNS,
        encoding=encoding,
        identifying=("warning_id", "id_number"),
    )


def test_the_encoding_is_told_by_the_bytes() -> None:
    text = "预警编号,处置结果\r\nW1,已纳入\r\n"
    assert sniff_encoding(text.encode("utf-8"), "f") == "utf-8"
    assert sniff_encoding(b"\xef\xbb\xbf" + text.encode("utf-8"), "f") == "utf-8"
    assert sniff_encoding(text.encode("gbk"), "f") == "gb18030"
    assert sniff_encoding(b"\xef\xbb\xbf" + text.encode("gbk"), "f") == "gb18030"  # an editor's BOM on GBK text
    with pytest.raises(RejectedBatch, match="UTF-8 but line 3 is not") as mixed:
        sniff_encoding(text.encode("utf-8") + "王".encode("gbk"), "f")
    assert "文件大部分是 UTF-8 编码" in mixed.value.zh  # type: ignore[attr-defined]
    with pytest.raises(RejectedBatch, match="UTF-16"):
        sniff_encoding(text.encode("utf-16"), "f")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026/12/4", datetime(2026, 12, 4)),
        ("2026-12-4", datetime(2026, 12, 4)),
        ("2026.12.04", datetime(2026, 12, 4)),
        ("2026年12月4日", datetime(2026, 12, 4)),
        ("２０２６／１２／４", datetime(2026, 12, 4)),  # full-width, as a Chinese IME types it
        ("2026-12-4 9:05", datetime(2026, 12, 4, 9, 5)),
        ("2026/12/4 10:30:15", datetime(2026, 12, 4, 10, 30, 15)),
        ("2026年12月4日 10:30", datetime(2026, 12, 4, 10, 30)),
        ("2026年12月4日10时30分", datetime(2026, 12, 4, 10, 30)),
        ("2026-12-04T10:30:00", datetime(2026, 12, 4, 10, 30)),
        ("2026/2/30", None),  # refused, never moved to March
        ("2026/12/4/5", None),
        ("12月4日", None),
        ("46360", None),  # a serial only counts in a workbook
    ],
)
def test_chinese_date_forms(text: str, expected: datetime | None) -> None:
    assert parse_when(text) == expected


def test_excel_serials_count_in_a_workbook() -> None:
    serial = (date(2026, 12, 4) - date(1899, 12, 30)).days
    assert parse_when(str(serial), xlsx=True) == datetime(2026, 12, 4)
    assert parse_when(f"{serial}.4375", xlsx=True) == datetime(2026, 12, 4, 10, 30)


def test_headers_labels_dates_and_what_is_left_aside() -> None:
    rows = [
        [*ZH_HEADER, "姓名"],
        [*FIELDS, "name"],  # the workbook's second header row
        ["W1", "已给予救助", "医疗救助", "3,000.50", "2026/12/4", "", "经办甲", "2026/12/4 10:30", "X", "备", "甲"],
        ["W2", "提交县级协调(一事一议)", "", "", "", "说明", "经办乙", "2026年12月4日", "X", "", "乙"],
        ["W3", "", "", "", "", "", "", "", "X", "", "丙"],  # only the warning's identifiers: not answered yet
        ["", "", "", "", "", "", "", "", "", "", ""],
        ["W4", "已救助", "", "", "", "", "经办丁", "明天", "X", "", "丁"],
        ["W5", "已纳入", "低保金", "", "2026-12-1", "两行\r\n说明", "经办戊", "2026-12-1 8:00", "X", "", "戊"],
    ]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    body = buf.getvalue() + "W6,已终止\r\n,,,\r\n,,,,,,,,,,\r\n"  # too few fields; Excel's comma-only lines
    answer = _read(body.encode("gbk"))
    assert answer.read_as == "gb18030"
    assert answer.ignored == ["姓名"]
    by_id = {r["warning_id"]: r for r in answer.rows}
    assert [r["warning_id"] for r in answer.rows] == ["W1", "W2", "W4", "W5"]
    assert (by_id["W1"]["outcome"], by_id["W1"]["assistance_kind"]) == ("granted", "medical_assistance")
    assert by_id["W1"]["amount"] == "3000.50" and by_id["W1"]["notes"] == "备"
    assert (by_id["W1"]["granted_on"], by_id["W1"]["disposed_at"]) == ("2026-12-04", "2026-12-04 10:30:00")
    assert by_id["W2"]["outcome"] == "referred" and by_id["W2"]["disposed_at"] == "2026-12-04 00:00:00"
    assert (by_id["W4"]["outcome"], by_id["W4"]["disposed_at"]) == ("已救助", "明天")  # as written: refused later
    assert by_id["W5"]["reason"] == "两行\r\n说明"
    assert answer.skipped == 4  # W3, the empty row and two comma-only lines; the names row is no row at all
    assert answer.unanswered == 1  # W3
    assert [m["row"] for m in answer.malformed] == [8]  # W6: too few fields
    # Rows as Excel shows them: the header is row 1; the cell on two lines stays one row.
    assert [answer.sheet_rows[n] for n in answer.numbers] == [3, 4, 7, 8]
    assert answer.sheet_rows[8] == 9


def test_a_file_refused_whole_says_what_to_do_in_chinese() -> None:
    with pytest.raises(RejectedBatch) as missing:
        _read("预警编号,处置结果,经办人,处置时间\r\nW1,已纳入,甲,2026/12/4\r\n".encode())
    assert missing.value.reason == "missing_column" and "id_number (公民身份号码)" in str(missing.value)
    assert "表头缺少必需的列：公民身份号码（id_number）" in missing.value.zh  # type: ignore[attr-defined]
    with pytest.raises(RejectedBatch) as twice:
        _read("预警编号,warning_id,处置结果,经办人,处置时间,公民身份号码\r\n".encode())
    assert twice.value.reason == "duplicate_column" and "第 1 列和第 2 列" in twice.value.zh  # type: ignore[attr-defined]
    with pytest.raises(RejectedBatch) as declared:
        _read("预警编号,处置结果,经办人,处置时间,公民身份号码\r\n".encode("gbk"), encoding="utf-8")
    assert declared.value.reason == "encoding"
    assert "channel's encoding setting" in str(declared.value) and "adapter" not in str(declared.value)


def test_answers_for_one_warning_run_oldest_first_in_few_steps() -> None:
    d = datetime
    files = [
        [("W1", d(2026, 12, 5)), ("W2", d(2026, 12, 1))],  # arrived first
        [("W1", d(2026, 12, 4)), ("W3", None)],  # arrived later, but holds W1's older answer
    ]
    assert schedule(files) == [(0, [1]), (1, [0, 1]), (0, [0])]
    assert schedule([[("W1", d(2026, 12, 4))], [("W1", d(2026, 12, 4))]]) == [(0, [0]), (1, [0])]  # then arrival
    assert schedule([[("W1", d(2026, 12, 5)), ("W2", d(2026, 12, 5))], [("W3", d(2026, 12, 1))]]) == [
        (0, [0, 1]),
        (1, [0]),
    ]


# ------------------------------------------------------------------------------------------ a monitored city


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("answers-city")
    monitored_city(home)
    return home


@pytest.fixture
def home(city: Path, tmp_path: Path) -> Path:
    """A private copy of the city's central database and keyring."""
    return private_copy(city, tmp_path)


def _pushed(settings: Settings, dept: str = DEPT) -> list[dict[str, str]]:
    """The warnings as the department received them (the push's machine file)."""
    push_warnings(settings, departments=[dept], now=PUSHED_AT)
    (target,) = _rows(settings, "SELECT target FROM lidm_push WHERE department = :d", d=dept)[0]
    return list(csv.DictReader(io.StringIO(Path(target).read_bytes().decode("utf-8-sig"))))


def _answer(w: dict[str, str], **kw: str) -> dict[str, str]:
    base = {
        "warning_id": w["warning_id"],
        "outcome": "已给予救助",
        "assistance_kind": "医疗救助",
        "amount": "3000",
        "granted_on": "2026/12/4",
        "reason": "",
        "handler": "王敏",
        "disposed_at": "2026/12/4 10:30",
        "id_number": w["id_number"],
        "notes": "",
    }
    return base | kw


def _csv(rows: list[dict[str, str]], encoding: str = "utf-8", tail: str = "") -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(ZH_HEADER)
    for r in rows:
        writer.writerow([r[n] for n in FIELDS])
    return (buf.getvalue() + tail).encode(encoding)


def _drop(home: Path, name: str, data: bytes, mtime: float | None = None, dept: str = DEPT) -> None:
    path = home / "channels" / dept / "inbox" / name
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def _result(home: Path, name: str, dept: str = DEPT) -> tuple[str, list[dict[str, str]]]:
    """The department's result file: its text and its lines by column (Chinese column names first)."""
    data = (home / "channels" / dept / "outbox" / name).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8
    text = data.decode("utf-8-sig")
    return text, list(csv.DictReader(io.StringIO(text)))


def _no_personal_values(text: str, warnings: list[dict[str, str]], *typed: str) -> None:
    values = {w["id_number"] for w in warnings} | {w["name"] for w in warnings if w.get("name")} | set(typed)
    leaked = sorted(v for v in values if v and v in text)
    assert not leaked, f"{len(leaked)} personal or typed value(s) in the result"


def _collect(settings: Settings, now: datetime = COLLECTED_AT):
    return collect_dispositions(settings, departments=[DEPT], now=now)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_excel_csv_in_gbk_with_labels_slash_dates_and_notes_is_taken_whole(
    backend: str, request, home: Path, tmp_path: Path
) -> None:
    if backend == "postgres":
        settings = monitored_city(tmp_path / "pg-city", request.getfixturevalue("pg_clean_url"))
        home = tmp_path / "pg-city"
    else:
        settings = demo_settings(home)
    w = _pushed(settings)
    rows = [
        _answer(w[0], amount="3,000", notes="已电话告知本人"),
        _answer(w[1], outcome="不符合条件", assistance_kind="", amount="", granted_on="", reason="收入超过认定标准"),
        _answer(
            w[2],
            outcome="提交县级协调（一事一议）",
            assistance_kind="",
            amount="",
            granted_on="",
            reason="困难情形复杂",
            disposed_at="2026年12月4日 14:00",
            notes="待县级协调",
        ),
        _answer(
            w[3],
            outcome="已纳入",
            assistance_kind="低保金",
            amount="",
            granted_on="2026-12-3",
            disposed_at="2026-12-4 9:05",
        ),
    ]
    # Excel's "CSV (comma delimited)" on a Chinese Windows: GBK, no BOM, and a comma-only line at the end.
    _drop(home, "disposition_gbk.csv", _csv(rows, "gbk", tail=",,,,,,,,,\r\n"))
    result = _collect(settings)
    totals = result.totals()
    assert (totals["rows"], totals["applied"], totals["refused"], totals["rejected_files"]) == (4, 4, 0, 0)
    assert result.refused_files() == []

    stored = {
        r.warning_id: r
        for r in _rows(
            settings,
            "SELECT warning_id, outcome, assistance_kind, amount, granted_on, disposed_at, _sealed "
            "FROM platform_disposition",
        )
    }
    first = stored[w[0]["warning_id"]]
    assert (first.outcome, first.assistance_kind, float(first.amount)) == ("granted", "medical_assistance", 3000.0)
    assert str(first.granted_on)[:10] == "2026-12-04" and str(first.disposed_at)[:16] == "2026-12-04 10:30"
    assert [stored[x["warning_id"]].outcome for x in w[:4]] == ["granted", "not_eligible", "referred", "included"]
    protector = Protector(CONTRACT, load_keyring(settings))
    assert protector.decrypt(first._sealed, "notes") == "已电话告知本人"  # kept, encrypted like reason
    assert protector.decrypt(stored[w[1]["warning_id"]]._sealed, "notes") is None
    assert "电话".encode() not in b" ".join(bytes(r._sealed or b"") for r in stored.values())

    text, lines = _result(home, "result_disposition_gbk.csv")
    assert list(lines[0])[:4] == ["行号 row", "预警编号 warning_id", "字段 field", "结果 verdict"]
    assert lines[0]["结果 verdict"] == "汇总 summary" and lines[0]["说明"].startswith("共 4 行：已采纳 4，未采纳 0")
    assert [(x["行号 row"], x["结果 verdict"]) for x in lines[1:]] == [(str(n), "已采纳 applied") for n in (2, 3, 4, 5)]
    assert [x["预警编号 warning_id"] for x in lines[1:]] == [x["warning_id"] for x in w[:4]]
    _no_personal_values(text, w, "王敏", "已电话告知本人", "收入超过认定标准")
    assert (home / "channels" / DEPT / "inbox" / "done" / "disposition_gbk.csv.result.json").exists()


def test_the_answer_workbook_is_read_from_its_answer_sheet(home: Path) -> None:
    settings = demo_settings(home)
    w = _pushed(settings)
    book = openpyxl.Workbook()
    guide = book.active
    guide.title = "说明"
    guide.append(["请在“答复”工作表填写"])
    sheet = book.create_sheet("答复")
    book.create_sheet("预警明细").append(["预警编号"])
    sheet.append([*ZH_HEADER, "姓名", "预警事由", "走访人"])
    sheet.append([*FIELDS, "name", "summary", ""])
    serial = (date(2026, 12, 3) - date(1899, 12, 30)).days
    first = [w[0]["warning_id"], "已给予救助", "医疗救助", 3000, date(2026, 12, 4), None, "李静"]
    sheet.append([*first, datetime(2026, 12, 4, 10, 30), w[0]["id_number"], "已入户核实", w[0]["name"], "事由甲"])
    second = [w[1]["warning_id"], "已纳入", "低保金", None, serial, None, "张伟"]
    sheet.append([*second, "2026/12/4 11:00", w[1]["id_number"], None, w[1]["name"], "事由乙"])
    sheet.append([w[2]["warning_id"], None, None, None, None, None, None, None, w[2]["id_number"], None, "丙"])
    sheet.append([None] * 12)
    sheet.cell(row=sheet.max_row + 1, column=2).number_format = "@"  # a formatted empty row Excel keeps
    book.active = 0  # the workbook opens on 说明: the answer sheet is read all the same
    buf = io.BytesIO()
    book.save(buf)
    _drop(home, "disposition_20261204.xlsx", buf.getvalue())

    result = _collect(settings)
    assert (result.totals()["applied"], result.totals()["refused"], result.totals()["rows"]) == (2, 0, 2)
    stored = dict(_rows(settings, "SELECT warning_id, granted_on FROM platform_disposition"))
    assert str(stored[w[0]["warning_id"]])[:10] == "2026-12-04"
    assert str(stored[w[1]["warning_id"]])[:10] == "2026-12-03"  # an Excel serial in a date column
    text, lines = _result(home, "result_disposition_20261204.csv")
    assert [(x["行号 row"], x["结果 verdict"]) for x in lines if x["行号 row"]] == [
        ("3", "已采纳 applied"),
        ("4", "已采纳 applied"),
    ]
    notes = {x["原因代码 code"]: x for x in lines if x["结果 verdict"] == "提示 note"}
    # the workbook's own reference columns (the warning's) go unremarked; a column of the office's own is named
    assert notes["ignored_columns"]["说明"] == "以下列不是处置反馈的字段，已忽略：走访人。"
    assert notes["unanswered_rows"]["说明"].startswith("1 行只有预警编号等标识，没有填写处置内容")
    _no_personal_values(text, w, "李静", "张伟", "已入户核实")


# ------------------------------------------------------------------------------------------ refused rows


def _refusal(home: Path, name: str) -> tuple[str, list[dict[str, str]]]:
    text, lines = _result(home, f"result_{name.rsplit('.', 1)[0]}.csv")
    return text, [x for x in lines if x["结果 verdict"] == "未采纳 refused"]


def test_an_unknown_label_is_refused_with_the_allowed_labels_and_codes(home: Path) -> None:
    settings = demo_settings(home)
    w = _pushed(settings)
    _drop(home, "disposition_label.csv", _csv([_answer(w[0], outcome="已救助")]))
    assert _collect(settings).totals()["refused"] == 1
    text, (line,) = _refusal(home, "disposition_label.csv")
    assert (line["行号 row"], line["字段 field"], line["原因代码 code"]) == ("2", "处置结果 outcome", "invalid.enum")
    outcome = load_catalog()["platform.disposition"].field("outcome")
    codes = list(zip(outcome.enum, outcome.enum_labels, strict=True))
    assert len(codes) >= 7  # every outcome the contract lists, each as label and code, in contract order
    assert line["说明"] == (
        "“处置结果”的值不在允许范围内。可填："
        + "、".join(f"{label}（{code}）" for code, label in codes)
        + "；中文或代码均可。"
    )
    assert line["explanation"] == "outcome must be one of: " + ", ".join(f"{label} ({code})" for code, label in codes)
    _no_personal_values(text, w, "已救助", "王敏")


def test_a_date_not_understood_is_refused_with_the_accepted_forms(home: Path) -> None:
    settings = demo_settings(home)
    w = _pushed(settings)
    _drop(home, "disposition_dates.csv", _csv([_answer(w[0], granted_on="2026/2/30", disposed_at="12月4日上午")]))
    assert _collect(settings).refusals == {"invalid.type": 1}
    text, lines = _refusal(home, "disposition_dates.csv")
    by_field = {x["字段 field"]: x for x in lines}
    assert set(by_field) == {"救助日期 granted_on", "处置时间 disposed_at"}  # one line per field, same row
    assert {x["行号 row"] for x in lines} == {"2"}
    granted = by_field["救助日期 granted_on"]
    assert granted["说明"] == (
        "“救助日期”不是可识别的日期。可用格式：2026-12-04、2026/12/4、2026-12-4、2026.12.4、2026年12月4日，"
        "或 Excel 的日期单元格。"
    )
    assert granted["explanation"] == (
        "granted_on is not a date in an accepted form: 2026-12-04, 2026/12/4, 2026-12-4, 2026.12.4, 2026年12月4日, "
        "or an Excel date cell"
    )
    disposed = by_field["处置时间 disposed_at"]
    assert "可用格式：2026-12-04 10:30、2026/12/4 10:30:00、2026-12-4 9:05、2026年12月4日 10:30" in disposed["说明"]
    assert disposed["explanation"].startswith(
        "disposed_at is not a date and time in an accepted form: 2026-12-04 10:30"
    )
    _no_personal_values(text, w, "2026/2/30", "12月4日上午")


def test_a_disposition_dated_before_its_warning_is_refused(home: Path) -> None:
    settings = demo_settings(home)
    w = _pushed(settings)
    _drop(home, "disposition_early.csv", _csv([_answer(w[0], granted_on="2026/11/20", disposed_at="2026/11/20 9:00")]))
    assert _collect(settings).refusals == {"before_warning": 1}
    text, (line,) = _refusal(home, "disposition_early.csv")
    assert (line["字段 field"], line["原因代码 code"], line["预警编号 warning_id"]) == (
        "处置时间 disposed_at",
        "before_warning",
        w[0]["warning_id"],
    )
    assert line["说明"] == "处置时间（2026-11-20）早于预警生成日期（2026-11-27），请核对处置时间。"
    assert line["explanation"] == "disposed_at 2026-11-20 is before the warning was raised on 2026-11-27"
    assert _rows(settings, "SELECT count(*) FROM platform_disposition")[0][0] == 0
    # The day the warning was raised counts, whatever the hour: a date typed without a time is taken.
    _drop(home, "disposition_sameday.csv", _csv([_answer(w[0], granted_on="2026/11/27", disposed_at="2026/11/27")]))
    assert _collect(settings).totals()["applied"] == 1
    _no_personal_values(text, w, "王敏")


def test_an_answer_older_than_one_taken_is_superseded_never_applied_over_it(home: Path) -> None:
    settings = demo_settings(home)
    w = _pushed(settings)
    referred = _answer(
        w[0], outcome="提交县级协调（一事一议）", assistance_kind="", amount="", granted_on="", reason="一事一议"
    )
    _drop(home, "disposition_1205.csv", _csv([referred | {"disposed_at": "2026/12/5 10:00"}]))
    assert _collect(settings).totals()["applied"] == 1
    # Arriving later, an answer dated the day before: it would close the warning over the newer referral.
    _drop(home, "disposition_1204.csv", _csv([_answer(w[0], disposed_at="2026/12/4 9:00")]))
    result = _collect(settings, COLLECTED_AT.replace(hour=19))
    assert result.refusals == {"superseded": 1} and result.totals()["applied"] == 0
    (status,) = _rows(settings, "SELECT status FROM platform_warning WHERE warning_id = :w", w=w[0]["warning_id"])[0]
    assert status == "acknowledged"  # still the referral: open for the county
    assert [r.outcome for r in _rows(settings, "SELECT outcome FROM platform_disposition")] == ["referred"]
    text, (line,) = _refusal(home, "disposition_1204.csv")
    assert (line["行号 row"], line["字段 field"], line["原因代码 code"]) == ("2", "处置时间 disposed_at", "superseded")
    assert line["说明"] == (
        "该预警已采纳一条更新的处置反馈（处置时间 2026-12-05 10:00:00），本条（处置时间 2026-12-04 09:00:00）更早，"
        "未采纳；如本条才是最新情况，请按实际处置时间填写后重新报送。"
    )
    assert line["explanation"].startswith(
        "a newer answer for this warning, dated 2026-12-05 10:00:00, was already taken; this one (dated "
        "2026-12-04 09:00:00) is older"
    )
    _no_personal_values(text, w, "王敏")


# ------------------------------------------------------------------------------------------ order, corrections


def test_a_correction_sorting_before_its_original_still_wins(home: Path) -> None:
    settings = demo_settings(home)
    w = _pushed(settings)
    t0 = datetime(2026, 12, 4, 17, 0).timestamp()
    # Windows names the corrected copy "… (1).csv", which sorts before its original; it was saved a minute later.
    _drop(home, "disposition_20261204.csv", _csv([_answer(w[0], amount="3000")]), t0)
    _drop(home, "disposition_20261204 (1).csv", _csv([_answer(w[0], amount="3500")]), t0 + 60)
    # And a file arriving later with an older answer for another warning: applied first, by its own time.
    _drop(home, "disposition_b.csv", _csv([_answer(w[1], disposed_at="2026/12/5 10:00")]), t0)
    early = _answer(
        w[1], outcome="提交县级协调（一事一议）", assistance_kind="", amount="", granted_on="", reason="一事一议"
    )
    _drop(home, "disposition_c.csv", _csv([early | {"disposed_at": "2026/12/3 10:00"}]), t0 + 120)
    result = _collect(settings)
    assert (result.totals()["applied"], result.totals()["refused"]) == (4, 0)
    amounts = _rows(settings, "SELECT amount FROM platform_disposition WHERE warning_id = :w", w=w[0]["warning_id"])
    assert [float(a.amount) for a in amounts] == [3500.0]
    outcomes = _rows(
        settings,
        "SELECT outcome FROM platform_disposition WHERE warning_id = :w ORDER BY disposed_at",
        w=w[1]["warning_id"],
    )
    assert [o.outcome for o in outcomes] == ["referred", "granted"]
    (status,) = _rows(settings, "SELECT status FROM platform_warning WHERE warning_id = :w", w=w[1]["warning_id"])[0]
    assert status == "disposed"

    _, original = _result(home, "result_disposition_20261204.csv")
    _, corrected = _result(home, "result_disposition_20261204 (1).csv")
    assert original[1]["说明"] == "已采纳。"  # the first answer is no correction of anything
    assert corrected[1]["说明"].startswith("已采纳，更正了此前报送的处置反馈（D20261204-")
    assert corrected[1]["explanation"].endswith("correcting the earlier answer")

    # The same answer again, now with codes instead of labels: the same answer, not a correction.
    again = _answer(w[0], amount="3500", outcome="granted", assistance_kind="medical_assistance")
    _drop(home, "disposition_again.csv", _csv([again]))
    assert _collect(settings, COLLECTED_AT.replace(hour=19)).totals()["unchanged"] == 1
    _, lines = _result(home, "result_disposition_again.csv")
    assert lines[1]["结果 verdict"] == "重复 unchanged"


# ------------------------------------------------------------------------------------------ files refused whole


def test_collect_exits_non_zero_naming_a_file_refused_whole(home: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from lidm import cli

    settings = demo_settings(home)
    w = _pushed(settings)
    _drop(home, "disposition_good.csv", _csv([_answer(w[0])]))
    _drop(home, "disposition_noid.csv", "预警编号,处置结果,经办人,处置时间\r\nW1,已纳入,甲,2026/12/4\r\n".encode())
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    monkeypatch.setattr(cli.console, "width", 200)
    out = CliRunner().invoke(cli.app, ["monitor", "collect", "--department", DEPT])
    assert out.exit_code == 1, out.output
    assert "disposition_noid.csv refused whole" in out.output and "1 file(s) refused whole" in out.output
    assert _rows(settings, "SELECT count(*) FROM platform_disposition")[0][0] == 1  # the good file was taken
    _, (line,) = _result(home, "result_disposition_noid.csv")
    assert (line["结果 verdict"], line["原因代码 code"]) == ("整份未采纳 file refused", "missing_column")
    assert line["说明"].startswith("表头缺少必需的列：公民身份号码（id_number）。")
    assert line["explanation"].startswith("the whole file was refused: the header lacks id_number (公民身份号码)")
    assert (home / "channels" / DEPT / "inbox" / "rejected" / "disposition_noid.csv.reason.txt").exists()


def test_the_channel_encoding_setting_overrides_the_guess(home: Path) -> None:
    settings = demo_settings(home)
    w = _pushed(settings)
    folder = (home / "channels" / DEPT).resolve().as_uri()
    settings = settings.model_copy(update={"channels": {DEPT: f"{folder}?encoding=utf-8"}})
    _drop(home, "disposition_gbk.csv", _csv([_answer(w[0])], "gbk"))
    result = _collect(settings)
    (refused,) = result.refused_files()
    assert refused.reason and "channel's encoding setting" in refused.reason and "adapter" not in refused.reason
    _, (line,) = _result(home, "result_disposition_gbk.csv")
    assert line["原因代码 code"] == "encoding" and "另存为" in line["说明"]
    settings = settings.model_copy(update={"channels": {DEPT: f"{folder}?encoding=gbk"}})
    rejected = home / "channels" / DEPT / "inbox" / "rejected" / "disposition_gbk.csv"
    rejected.rename(home / "channels" / DEPT / "inbox" / "disposition_gbk.csv")
    assert _collect(settings, COLLECTED_AT.replace(hour=19)).totals()["applied"] == 1


@pytest.mark.airflow
def test_the_airflow_collect_task_fails_on_a_file_refused_whole(home: Path, monkeypatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    import lidm.config
    from lidm.integrations.airflow import tasks

    settings = demo_settings(home)
    w = _pushed(settings)
    _drop(home, "disposition_good.csv", _csv([_answer(w[0])]))
    _drop(home, "disposition_empty.xlsx", b"")
    monkeypatch.setattr(lidm.config, "get_settings", lambda: settings)
    monkeypatch.setattr(tasks, "settings_with_channel", lambda s, _d, _scratch: s)
    with pytest.raises(AirflowFailException, match=r"1 file\(s\) refused whole.*disposition_empty\.xlsx"):
        tasks.collect_task(DEPT)
    assert _rows(settings, "SELECT count(*) FROM platform_disposition")[0][0] == 1


# ------------------------------------------------------------------------------------------ table channel


def test_a_table_channel_takes_notes_and_reads_a_table_laid_out_before_them(home: Path, tmp_path: Path) -> None:
    settings = demo_settings(home)
    url = f"sqlite:///{tmp_path / 'dept.db'}"
    settings = settings.model_copy(update={"channels": {DEPT: f"{url}#lidm_warning"}})
    engine = sa.create_engine(url)
    layout = disposition_table_for((None, "lidm_warning_disposition"), CONTRACT)
    old = sa.Table(
        layout.name,
        sa.MetaData(),
        *[sa.Column(c.name, c.type, primary_key=c.primary_key) for c in layout.columns if c.name != "notes"],
    )
    old.create(engine)  # laid out before notes existed
    (pushed,) = push_warnings(settings, departments=[DEPT], now=PUSHED_AT)
    assert pushed.status == "pushed"
    with engine.begin() as conn:
        w = conn.execute(sa.text("SELECT warning_id, id_number FROM lidm_warning ORDER BY warning_id")).all()
        row = {
            "warning_id": w[0].warning_id,
            "outcome": "已给予救助",
            "assistance_kind": "medical_assistance",
            "amount": 3000,
            "granted_on": date(2026, 12, 4),
            "handler": "王敏",
            "disposed_at": datetime(2026, 12, 4, 10, 30),
            "id_number": w[0].id_number,
        }
        conn.execute(sa.insert(old).values(row))
        # One warning's answers in the wrong row order: the referral of 12-03 goes before the grant of 12-05.
        later = row | {"warning_id": w[2].warning_id, "id_number": w[2].id_number}
        conn.execute(sa.insert(old).values(later | {"disposed_at": datetime(2026, 12, 5, 10, 0)}))
        referred = {"outcome": "referred", "assistance_kind": None, "amount": None, "granted_on": None}
        referred |= {"reason": "一事一议", "disposed_at": datetime(2026, 12, 3)}
        conn.execute(sa.insert(old).values(later | referred))
    assert _collect(settings).totals()["applied"] == 3
    sql = "SELECT outcome FROM platform_disposition WHERE warning_id = :w ORDER BY disposed_at"
    assert [r.outcome for r in _rows(settings, sql, w=w[2].warning_id)] == ["referred", "granted"]
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE lidm_warning_disposition ADD COLUMN notes TEXT"))
        conn.execute(
            sa.text(
                "INSERT INTO lidm_warning_disposition (warning_id, outcome, reason, handler, disposed_at, id_number, "
                "notes) VALUES (:w, '不符合条件', '收入超标', '李静', '2026-12-04 11:00:00', :i, '已告知')"
            ),
            {"w": w[1].warning_id, "i": w[1].id_number},
        )
    assert _collect(settings, COLLECTED_AT.replace(hour=19)).totals()["applied"] == 1
    with engine.connect() as conn:
        verdicts = conn.execute(sa.text("SELECT lidm_status FROM lidm_warning_disposition")).scalars().all()
    engine.dispose()
    assert verdicts == ["applied"] * 4
    (notes,) = _rows(settings, "SELECT _sealed FROM platform_disposition WHERE outcome = 'not_eligible'")[0]
    assert Protector(CONTRACT, load_keyring(settings)).decrypt(notes, "notes") == "已告知"


def test_acknowledgements_read_the_same_way(home: Path) -> None:
    settings = demo_settings(home)
    w = _pushed(settings)
    body = "预警编号,签收时间\r\n" + "".join(f"{x['warning_id']},2026/11/29 9:00\r\n" for x in w[:2]) + ",\r\n"
    _drop(home, "ack_20261129.csv", body.encode("gbk"))
    result = _collect(settings)
    assert result.totals()["acknowledged"] == 2
    _, lines = _result(home, "result_ack_20261129.csv")
    assert [(x["行号 row"], x["结果 verdict"]) for x in lines if x["行号 row"]] == [
        ("2", "已签收 acknowledged"),
        ("3", "已签收 acknowledged"),
    ]
    assert ACK_COLUMNS[0].business_name == "预警编号"


@pytest.mark.airflow
def test_an_airflow_channel_connection_carries_the_encoding_setting(tmp_path: Path, monkeypatch) -> None:
    from lidm.integrations.airflow.hooks import Scratch, settings_with_channel
    from lidm.monitor.channels import open_channel

    folder = tmp_path / "health"
    conn = {"conn_type": "fs", "extra": {"path": str(folder), "encoding": "gbk"}}
    monkeypatch.setenv("AIRFLOW_CONN_LIDM_CHANNEL_HEALTH", json.dumps(conn))
    settings = settings_with_channel(Settings(home=tmp_path), "health", Scratch(tmp_path / "scratch"))
    with open_channel(settings, "health") as channel:
        assert (channel.where, channel.encoding) == (str(folder), "gbk")
