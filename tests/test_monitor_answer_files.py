"""The files a folder push writes for people beside the machine file: the warnings in Chinese, the answer
workbook and the answer template, on a small synthetic city (SQLite central, folder channel). PostgreSQL and
SFTP runs of the same push are in test_monitor_notices.py."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from _city import city_bureaus_only, fed_city, private_copy
from lidm_samples.demo import demo_settings

from lidm.central import db
from lidm.contracts.load import load_catalog
from lidm.contracts.model import GrantLevel
from lidm.keys import load_keyring
from lidm.monitor.feedback import collect_dispositions
from lidm.monitor.lifecycle import run_monitor
from lidm.monitor.push import granted_fields, push_warnings, warning_grant, warnings_csv
from lidm.monitor.readable import Readable, due_in_words
from lidm.monitor.rules import load_rules
from lidm.monitor.workbook import (
    ANSWER_SHEET,
    GUIDE_SHEET,
    WARNINGS_SHEET,
    answer_columns,
    answer_csv,
    answer_workbook,
)

AS_OF = date(2026, 11, 27)
RAISED_AT = datetime(2026, 11, 27, 6, 0, 0)
PUSHED_AT = datetime(2026, 11, 28, 9, 0, 0)
BOM = b"\xef\xbb\xbf"
CATALOG = load_catalog()
WARNING = CATALOG["platform.warning"]
DISPOSITION = CATALOG["platform.disposition"]


_bureaus = pytest.fixture(scope="module", autouse=True)(city_bureaus_only)  # one bureau's channel


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One monitored city for the module (about 60 warnings for seven departments)."""
    home = tmp_path_factory.mktemp("city")
    settings = fed_city(home)
    catalog = load_catalog(settings.contracts_dir)
    engine = db.connect(settings)
    try:
        rules = load_rules(settings.rules_dir, catalog=catalog, params=settings.rule_params)
        run_monitor(
            engine,
            rules,
            catalog,
            as_of=AS_OF,
            now=RAISED_AT,
            keyring=load_keyring(settings),
            levels=settings.routing_levels,
        )
    finally:
        engine.dispose()
    return home


@pytest.fixture
def home(city: Path, tmp_path: Path) -> Path:
    return private_copy(city, tmp_path)


def _csv(data: bytes) -> list[list[str]]:
    assert data.startswith(BOM)
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def _labels(field: str, contract=WARNING) -> dict[str, str]:
    f = contract.field(field)
    return dict(zip(f.enum, f.enum_labels, strict=True))


def test_a_folder_push_writes_the_files_for_people_beside_the_machine_file(home: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    settings = demo_settings(home)
    results = {
        r.department: r
        for r in push_warnings(settings, departments=["civil_affairs", "medical_insurance"], now=PUSHED_AT)
    }
    clear_ids: set[str] = set()
    for dept, result in results.items():
        assert result.status == "pushed" and result.notices == 0
        outbox = home / "channels" / dept / "outbox"
        (manifest_path,) = outbox.glob("*.manifest.json")
        stem = manifest_path.name.removesuffix(".manifest.json")
        assert re.fullmatch(rf"warnings_{dept}_\d{{8}}T\d{{6}}_[0-9a-f]{{8}}", stem)
        # Every file of the push shares its stem, so they sort together; the manifest still names the machine file.
        suffixes = [".answer.csv", ".answer.xlsx", ".csv", ".manifest.json", ".zh.csv"]
        assert sorted(p.name for p in outbox.iterdir()) == [stem + s for s in suffixes]
        manifest = json.loads(manifest_path.read_text())
        machine = (outbox / manifest["file"]).read_bytes()
        assert manifest["file"] == f"{stem}.csv" and manifest["sha256"] == hashlib.sha256(machine).hexdigest()
        assert set(manifest) == {
            "push_id", "department", "contract", "contract_version", "file", "rows", "sha256", "encoding",
            "fields", "key", "pushed_at",
        }  # fmt: skip
        grant = warning_grant(CATALOG, dept)
        fields = granted_fields(WARNING, grant)
        rows = _csv(machine)
        assert rows[0] == [f.name for f, _ in fields]  # codes and field names, as systems read them
        body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
        assert machine == warnings_csv(rows[0], body)  # byte for byte what the push always wrote
        assert len(body) == manifest["rows"] == result.warnings

        # The same warnings for people: Chinese headers, labels for codes, the due date in words.
        zh = _csv((outbox / f"{stem}.zh.csv").read_bytes())
        assert zh[0] == [f.business_name for f, _ in fields]
        people = [dict(zip(rows[0], r, strict=True)) for r in zh[1:]]
        assert [p["warning_id"] for p in people] == [b["warning_id"] for b in body]
        for machine_row, person_row in zip(body, people, strict=True):
            assert person_row["status"] == "已推送" and machine_row["status"] == "pushed"
            assert person_row["hardship_type"] == _labels("hardship_type")[machine_row["hardship_type"]]
            assert person_row["target_department"] == _labels("target_department")[dept]
            colour = {"high": "红", "medium": "橙", "low": "黄"}[machine_row["urgency"]]
            assert person_row["urgency"] == f"{_labels('urgency')[machine_row['urgency']]}（{colour}）"
            if machine_row["low_income_category"]:
                assert (
                    person_row["low_income_category"]
                    == _labels("low_income_category")[machine_row["low_income_category"]]
                )
            due = date.fromisoformat(machine_row["due_date"])
            assert person_row["due_date"] == due_in_words(due, PUSHED_AT.date())
            assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日（还剩\d+天）", person_row["due_date"])
            assert person_row["id_number"] == machine_row["id_number"]  # the grant gives it in clear
            assert person_row["name"] == machine_row["name"]
            if machine_row["household_id"]:
                assert person_row["household_id"] == machine_row["household_id"][:8] + "…（化名）"
        clear_ids |= {b["id_number"] for b in body}

        _check_workbook(outbox / f"{stem}.answer.xlsx", dept, body, fields, home)
        template = _csv((outbox / f"{stem}.answer.csv").read_bytes())
        answer_fields = [
            "warning_id", "id_number", "outcome", "assistance_kind", "amount", "granted_on", "follow_up_date",
            "follow_up_result", "transfer_to", "handover_reason", "reason", "handler", "disposed_at", "notes",
        ]  # fmt: skip
        assert template[0] == answer_fields  # one header row of field names
        assert [r[:2] for r in template[1:]] == [[b["warning_id"], b["id_number"]] for b in body]
        assert all(not any(r[2:]) for r in template[1:])
    names = {r["name"] for r in _read(home, "civil_affairs")} | clear_ids
    leaked = [v for v in names if v and v in caplog.text]
    assert not leaked, f"{len(leaked)} personal value(s) in the log"


def _read(home: Path, dept: str) -> list[dict[str, str]]:
    outbox = home / "channels" / dept / "outbox"
    (manifest,) = outbox.glob("*.manifest.json")
    data = (outbox / json.loads(manifest.read_text())["file"]).read_bytes()
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def _check_workbook(path: Path, dept: str, body: list[dict[str, str]], fields, home: Path) -> None:
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == [ANSWER_SHEET, GUIDE_SHEET, WARNINGS_SHEET] and book.active.title == ANSWER_SHEET
    ws = book[ANSWER_SHEET]
    header = [c.value for c in ws[1]]
    codes = [c.value for c in ws[2]]
    answers = codes[: codes.index("notes") + 1]
    assert answers == [
        "warning_id", "id_number", "outcome", "assistance_kind", "amount", "granted_on", "follow_up_date",
        "follow_up_result", "transfer_to", "handover_reason", "reason", "handler", "disposed_at", "notes",
    ]  # fmt: skip
    # Row 1: the disposition contract's Chinese names (备注 for notes); row 2: the field names, in grey.
    by_name = {f.name: f.business_name for f in DISPOSITION.fields}
    assert header[: len(answers)] == [by_name.get(n, "备注") for n in answers]
    assert header[answers.index("notes")] == "备注"
    assert all(c.font.color is not None and c.font.color.rgb.endswith("808080") for c in ws[2])
    # Then the context columns, under the warning contract's names; the reader ignores them.
    context = codes[len(answers) :]
    assert context == ["name", "due_date", "summary"]
    assert header[len(answers) :] == [WARNING.field(n).business_name for n in context]
    data = [[c.value for c in row] for row in ws.iter_rows(min_row=3)]
    assert len(data) == len(body)
    for row, warning in zip(data, body, strict=True):
        values = dict(zip(codes, row, strict=True))
        assert (values["warning_id"], values["id_number"]) == (warning["warning_id"], warning["id_number"])
        assert all(values[n] is None for n in answers[2:])
        assert values["name"] == warning["name"] and values["summary"] == warning["summary"]
        assert values["due_date"] == due_in_words(date.fromisoformat(warning["due_date"]), PUSHED_AT.date())
    column = {code: openpyxl.utils.get_column_letter(i) for i, code in enumerate(codes, start=1)}
    assert ws[f"{column['id_number']}3"].number_format == "@"
    assert ws[f"{column['granted_on']}3"].number_format == "yyyy-mm-dd"
    assert ws[f"{column['follow_up_date']}3"].number_format == "yyyy-mm-dd"  # 一事一议's follow-up date
    assert ws[f"{column['disposed_at']}3"].number_format == "yyyy-mm-dd hh:mm"
    lists = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}
    for code in ("outcome", "assistance_kind", "follow_up_result"):
        dv = lists[f"{column[code]}3:{column[code]}1048576"]
        assert dv.type == "list" and dv.showErrorMessage
        assert dv.formula1 == '"' + ",".join(_labels(code, DISPOSITION).values()) + '"'
    assert lists[f"{column['amount']}3:{column['amount']}1048576"].type == "decimal"
    # The instructions: Chinese, then English, with where the file goes back and the code table.
    guide = "\n".join(str(c.value) for row in book[GUIDE_SHEET].iter_rows() for c in row if c.value)
    inbox = str(home / "channels" / dept / "inbox") + "/"
    assert guide.index("填写说明") < guide.index("How to fill in this workbook")
    assert guide.count(inbox) == 2 and "disposition_<任意名称>.xlsx" in guide and "disposition_<anything>.csv" in guide
    for code, label in _labels("outcome", DISPOSITION).items():
        assert label in guide and code in guide
    assert "2026年12月4日" in guide and "2026-12-04 10:30" in guide
    # The warnings as people read them, on the third sheet.
    sheet = [[c.value for c in row] for row in book[WARNINGS_SHEET].iter_rows()]
    assert sheet[0] == [f.business_name for f, _ in fields]
    assert [r[0] for r in sheet[1:]] == [b["warning_id"] for b in body]


def test_the_answer_template_comes_back_as_dispositions(home: Path) -> None:
    """The template for systems, filled in with codes and put in the inbox, is taken as it is."""
    settings = demo_settings(home)
    dept = "hr_social_security"
    push_warnings(settings, departments=[dept], now=PUSHED_AT)
    outbox = home / "channels" / dept / "outbox"
    (template,) = outbox.glob("*.answer.csv")
    rows = list(csv.DictReader(io.StringIO(template.read_text(encoding="utf-8-sig"))))
    filled = [
        rows[0] | {"outcome": "granted", "assistance_kind": "employment_assistance", "amount": "800",
                   "granted_on": "2026-11-30", "handler": "王敏", "disposed_at": "2026-11-30 10:00:00",
                   "notes": "已上门核实"},
        rows[1] | {"outcome": "not_eligible", "reason": "经核查已就业", "handler": "王敏",
                   "disposed_at": "2026-11-30 11:00:00"},
    ]  # fmt: skip
    (home / "channels" / dept / "inbox" / "disposition_template.csv").write_bytes(warnings_csv(list(rows[0]), filled))
    result = collect_dispositions(settings, departments=[dept], now=datetime(2026, 12, 1, 18, 0, 0))
    assert (result.totals()["applied"], result.totals()["refused"]) == (2, 0)


def test_the_answer_columns_follow_the_grant_and_the_contract() -> None:
    """id_number is filled in only when granted in clear; the name column only when granted; notes is written
    (as 备注) even while the disposition contract lacks it."""
    granted = {"warning_id": GrantLevel.CLEAR, "id_number": GrantLevel.TOKEN, "summary": GrantLevel.CLEAR}
    without_notes = DISPOSITION.model_copy(update={"fields": tuple(f for f in DISPOSITION.fields if f.name != "notes")})
    columns = answer_columns(without_notes, WARNING, granted)
    assert [c.name for c in columns if not c.context][-1] == "notes"
    assert [(c.header, c.field) for c in columns if c.name == "notes"] == [("备注", None)]
    assert [c.name for c in columns if c.context] == ["summary"]
    body = _csv(answer_csv(columns, [{"warning_id": "W1", "id_number": "a1b2c3"}], granted))
    assert body[1][:2] == ["W1", ""]  # a pseudonym is no id number: the department types it


def test_a_due_date_in_words() -> None:
    today = date(2026, 12, 6)
    assert due_in_words(date(2026, 12, 11), today) == "2026年12月11日（还剩5天）"
    assert due_in_words(date(2026, 12, 6), today) == "2026年12月6日（今天到期）"
    assert due_in_words(date(2026, 12, 3), today) == "2026年12月3日（已逾期3天）"


def test_a_drop_down_list_too_long_to_write_inline_points_at_the_code_table() -> None:
    """Excel takes 255 characters of an inline list; a longer one is the code table's range on 说明."""
    kind = DISPOSITION.field("assistance_kind")
    long = kind.model_copy(
        update={"enum_labels": tuple(f"{label}（长名称，示例用）" * 3 for label in kind.enum_labels)}
    )
    fields = tuple(long if f.name == "assistance_kind" else f for f in DISPOSITION.fields)
    granted = {"warning_id": GrantLevel.CLEAR, "id_number": GrantLevel.CLEAR}
    columns = answer_columns(DISPOSITION.model_copy(update={"fields": fields}), WARNING, granted)
    readable = Readable(WARNING, date(2026, 12, 6))
    book = openpyxl.load_workbook(io.BytesIO(answer_workbook(columns, [{"warning_id": "W1"}], [], readable, inbox="x")))
    lists = {dv.formula1 for dv in book[ANSWER_SHEET].data_validations.dataValidation if dv.type == "list"}
    (ranged,) = [f for f in lists if f.startswith(f"'{GUIDE_SHEET}'!")]
    cells = [c.value for row in book[GUIDE_SHEET][ranged.split("!")[1].replace("$", "")] for c in row]
    assert cells == list(long.enum_labels)


def test_the_answer_workbook_filled_in_comes_back_as_dispositions(home: Path) -> None:
    """What an officer does: pick labels from the lists, type dates into the date cells, save as disposition_*."""
    settings = demo_settings(home)
    dept = "hr_social_security"
    push_warnings(settings, departments=[dept], now=PUSHED_AT)
    (path,) = (home / "channels" / dept / "outbox").glob("*.answer.xlsx")
    book = openpyxl.load_workbook(path)
    ws = book[ANSWER_SHEET]
    column = {c.value: c.column for c in ws[2]}
    answers = {
        3: {"outcome": "已给予救助", "assistance_kind": "就业援助", "amount": 800, "granted_on": datetime(2026, 11, 30),
            "handler": "王敏", "disposed_at": datetime(2026, 11, 30, 10, 0), "notes": "已上门核实"},
        4: {"outcome": "不符合条件", "reason": "经核查已就业", "handler": "王敏",
            "disposed_at": datetime(2026, 11, 30, 11, 0)},
    }  # fmt: skip
    for row, values in answers.items():
        for code, value in values.items():
            ws.cell(row, column[code]).value = value
    filled = io.BytesIO()
    book.save(filled)
    (home / "channels" / dept / "inbox" / "disposition_20261130.xlsx").write_bytes(filled.getvalue())
    result = collect_dispositions(settings, departments=[dept], now=datetime(2026, 12, 1, 18, 0, 0))
    assert (result.totals()["applied"], result.totals()["refused"]) == (2, 0)
