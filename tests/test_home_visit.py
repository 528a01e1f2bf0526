"""What a home visit finds (走访, civil_affairs.home_visit): a street's drop, as the XLSX template or a GBK CSV from
its own system, loads with the template's Chinese headers and labels, bad rows held back naming file, row and field;
a visit's finding raises a warning, and a later visit that no longer finds it closes the warning. SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _db import query
from lidm_samples import ROSTER_HEADER, generate_people, generate_roster, roster_rows
from lidm_samples.departments.civil_affairs.home_visit import HEADER
from lidm_samples.people import make_id_number
from lidm_samples.sources import csv_bytes, xlsx_bytes

from lidm.contracts import load_catalog
from lidm.keys import load_keyring
from lidm.monitor import monitor
from lidm.pipeline import run_feed
from lidm.protect import Protector
from lidm.sources.localstore import LocalStore

FEED = "civil_affairs.home_visit"
AS_OF = date(2026, 11, 27)


def _drop(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    LocalStore(folder).put(name, data)
    LocalStore(folder).put(name + ".ok", b"")


INCOME = "家庭人均月收入（元）"


def _row(n: int, id_number: str, income: Decimal | None = Decimal("650"), **values: Any) -> dict[str, Any]:
    """One row of the template as a street fills it in (labels, not codes)."""
    return {
        "走访记录编号": f"ZF430112101{n:06d}",
        "身份证号": id_number,
        "姓名": f"测试{n}",
        "家庭编号": None,
        "区县代码": "430112",
        "街道代码": "430112101",
        "村（社区）代码": "430112101201",
        "城乡类别": "农村",
        "走访日期": date(2026, 11, 20),
        "走访人": "网格员甲",
        "现家庭人口数": 3,
        "家庭人口增减": -1,
        INCOME: income,
        "收入变化": "减少",
        "健康状况变化": "新患重病",
        "住房状况变化": "无变化",
        "就业状况变化": "失业",
        "服务需求": "医疗、生活照料",
        "走访情况说明": "户主住院，家中无人照料",
        "录入时间": datetime(2026, 11, 21, 9, 30),
    } | values


def _ids(n: int) -> list[str]:
    return [make_id_number("430112", date(1960 + i, 3, 1 + i), 11 + 2 * i) for i in range(n)]


def _with_bad_rows() -> list[dict[str, Any]]:
    good = _ids(4)
    wrong = good[3][:17] + ("0" if good[3][17] != "0" else "1")
    return [
        _row(1, good[0]),
        _row(2, good[1], None, 城乡类别="城镇", 服务需求=None, 走访情况说明=None),
        _row(3, good[2], 健康状况变化="无变化", 就业状况变化="新就业", 收入变化="增加"),
        _row(4, wrong),  # a typo the check character catches
        _row(5, _ids(6)[4], 健康状况变化="骨折"),  # not one of the template's labels
        _row(6, _ids(6)[5], 街道代码="4301"),  # not a 9-digit street code
    ]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_a_streets_drop_loads_and_bad_rows_are_held_naming_file_row_and_field(
    kind: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    gateway = request.getfixturevalue("gateway_pg" if backend == "postgres" else "gateway_sqlite")
    rows = _with_bad_rows()
    name = f"home_visit_20261121.{kind}"
    # the template as Excel saves it, or the street system's export in GBK (Excel's "CSV (逗号分隔)" on Chinese Windows)
    data = xlsx_bytes(HEADER, rows) if kind == "xlsx" else csv_bytes(HEADER, rows, "gbk")
    _drop(tmp_path / "drops", name, data)
    [r] = run_feed(FEED, gateway.settings, connections={"home_visit_drop": (tmp_path / "drops").as_uri()})
    assert (r.status, r.extracted, r.loaded, r.quarantined) == ("loaded", 6, 3, 3)

    url = gateway.settings.effective_central_url
    held = query(
        url,
        "SELECT b.source_name, q.row_number, q.field, q.reason, q.message, q.locator FROM lidm_quarantine q "
        "JOIN lidm_batch b ON b.batch_id = q.batch_id ORDER BY q.row_number",
    )
    assert [(h.source_name, h.row_number, h.field) for h in held] == [
        (name, 4, "id_number"),
        (name, 5, "health_change"),
        (name, 6, "street_code"),
    ]
    text = " ".join(f"{h.message} {h.locator}" for h in held)
    assert _ids(6)[4] not in text and "测试5" not in text  # held rows are named masked, never in clear
    assert "身份证号=" in text  # under the street's own column name

    stored = {
        r.visit_id: r
        for r in query(
            url,
            "SELECT visit_id, area_kind, health_change, employment_change, income_change, needs,"
            " household_size_change, monthly_income_per_capita, _sealed, visitor_masked, visit_date, entered_at"
            " FROM civil_affairs_home_visit",
        )
    }
    first, second, third = (stored[f"ZF430112101{n:06d}"] for n in (1, 2, 3))
    assert (first.area_kind, first.health_change, first.employment_change) == (
        "rural",
        "new_serious_illness",
        "lost_job",
    )
    assert (first.needs, first.household_size_change, Decimal(first.monthly_income_per_capita)) == (
        "medical,care",
        -1,
        Decimal("650"),
    )
    sealed = Protector(load_catalog()[FEED], load_keyring(gateway.settings))
    assert bytes(first._sealed) and "住院".encode() not in bytes(first._sealed)  # kept only encrypted
    assert "住院" in sealed.decrypt(first._sealed, "notes")
    assert first.visitor_masked and first.visitor_masked != "网格员甲"
    assert str(first.visit_date)[:10] == "2026-11-20" and str(first.entered_at).startswith("2026-11-21 09:30")
    assert (
        second.area_kind,
        second.needs,
        sealed.decrypt(second._sealed, "notes"),
        second.monthly_income_per_capita,
    ) == (
        "urban",
        None,
        None,
        None,
    )
    assert (third.income_change, third.employment_change, third.health_change) == ("rose", "found_job", "none")


def _roster(tmp_path: Path) -> tuple[Path, str]:
    """A small roster drop; returns its folder and the ID number of an active dibao household head."""
    members = generate_roster(generate_people(400, seed=19), share=0.2, seed=19)
    head = next(m for m in members if m.status == "active" and m.category == "dibao" and m.relation_to_head == "head")
    _drop(tmp_path / "roster", "roster_1.csv", csv_bytes(ROSTER_HEADER, roster_rows(members).rows, "gb18030"))
    return tmp_path / "roster", head.person.id_number


def _warnings(url: str) -> list[Any]:
    return query(
        url, "SELECT rule_id, status FROM platform_warning WHERE rule_id = 'visit_income_above_dibao_standard'"
    )


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_later_visit_that_no_longer_finds_the_change_closes_the_warning(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    gateway = request.getfixturevalue("gateway_pg" if backend == "postgres" else "gateway_sqlite")
    settings = gateway.settings
    url = settings.effective_central_url
    roster, head = _roster(tmp_path)
    visits = tmp_path / "visits"
    connections = {"civil_affairs_drop": roster.as_uri(), "home_visit_drop": visits.as_uri()}
    [r] = run_feed("civil_affairs.low_income_roster", settings, connections=connections)
    assert r.status == "loaded"

    # a visit finds the household's income per member at 1500 yuan, over the 700 of the dibao standard
    rose = _row(1, head, Decimal("1500"), 收入变化="增加", 健康状况变化="无变化", 就业状况变化="新就业")
    _drop(visits, "home_visit_20261101.xlsx", xlsx_bytes(HEADER, [rose]))
    [r] = run_feed(FEED, settings, connections=connections)
    assert (r.status, r.loaded) == ("loaded", 1)
    result = monitor(settings, as_of=AS_OF, rule_ids=["visit_income_above_dibao_standard"])
    assert result.counts["visit_income_above_dibao_standard"].raised == 1
    assert [w.status for w in _warnings(url)] == ["raised"]

    # the same finding again changes nothing: one open warning
    monitor(settings, as_of=AS_OF, rule_ids=["visit_income_above_dibao_standard"])
    assert [w.status for w in _warnings(url)] == ["raised"]

    # a later visit (a GBK CSV from the street's system) finds the job lost again and the income back under the line
    later = _row(
        2,
        head,
        Decimal("520"),
        收入变化="减少",
        走访日期=date(2026, 11, 25),
        录入时间=datetime(2026, 11, 25, 16, 0),
    )
    _drop(visits, "home_visit_20261125.csv", csv_bytes(HEADER, [later], "gbk"))
    [r] = run_feed(FEED, settings, connections=connections)
    assert (r.status, r.loaded, r.updated) == ("loaded", 1, 1)  # the person's row replaced: the latest visit
    result = monitor(settings, as_of=AS_OF, rule_ids=["visit_income_above_dibao_standard"])
    assert result.counts["visit_income_above_dibao_standard"].closed == 1
    assert [w.status for w in _warnings(url)] == ["closed"]
    [(reason,)] = query(url, "SELECT close_reason FROM lidm_warning_state")
    assert "civil_affairs.home_visit" in reason


TEMPLATE = Path(__file__).resolve().parents[1] / "adapters" / "civil_affairs" / "home_visit_template"


def test_the_committed_template_carries_the_headers_the_adapter_reads_and_no_personal_data() -> None:
    from openpyxl import load_workbook

    from lidm.registry import get_adapter

    read = {m if isinstance(m, str) else m.column for m in get_adapter(FEED).mapping.values() if m is not None}
    csv_header = (TEMPLATE / "走访情况登记表.csv").read_bytes().decode("gbk").strip().split(",")
    book = load_workbook(TEMPLATE / "走访情况登记表.xlsx")
    assert book.sheetnames[0] == "走访情况"  # the adapter reads the first sheet
    sheet = book["走访情况"]
    xlsx_header = [c.value for c in sheet[1]]
    assert csv_header == xlsx_header == list(HEADER) and set(HEADER) == read
    assert all(c.value is None for row in sheet.iter_rows(min_row=2) for c in row)  # no rows: no personal data
    lists = {str(v.sqref).split(":")[0][:-1]: v.formula1 for v in sheet.data_validations.dataValidation}
    assert "农村" in lists[sheet.cell(row=1, column=HEADER.index("城乡类别") + 1).column_letter]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_template_filled_in_by_a_street_loads(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    gateway = request.getfixturevalue("gateway_pg" if backend == "postgres" else "gateway_sqlite")
    book = load_workbook(TEMPLATE / "走访情况登记表.xlsx")
    sheet = book["走访情况"]
    for n, id_number in enumerate(_ids(2), 1):
        row = _row(n, id_number)
        for col, header in enumerate(HEADER, 1):
            sheet.cell(row=n + 1, column=col, value=row[header])
    (tmp_path / "drops").mkdir()
    book.save(tmp_path / "drops" / "home_visit_430112101_20261121.xlsx")
    LocalStore(tmp_path / "drops").put("home_visit_430112101_20261121.xlsx.ok", b"")
    [r] = run_feed(FEED, gateway.settings, connections={"home_visit_drop": (tmp_path / "drops").as_uri()})
    assert (r.status, r.extracted, r.loaded, r.quarantined) == ("loaded", 2, 2, 0)
