"""The monthly statistical workbook (lidm report --format xlsx) against the database it was made from.

A small monitored city in SQLite and PostgreSQL; in it, for November 2026, members who entered and left the roster,
one member whose urban/rural is unknown and one in a district outside the city, warnings pushed, acknowledged,
disposed on time and late, left overdue or closed, and the happiness list. Every total of every sheet is read back
with openpyxl and compared with the same figure from an independent query of the database (counted in Python from
plain rows where the module would count in SQL).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import sqlalchemy as sa
from _city import monitored_city
from conftest import _throwaway_pg_database
from typer.testing import CliRunner

from lidm import cli
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.monitor.happiness import build_assistance_records
from lidm.monitor.monthly import Month, MonthError
from lidm.monitor.monthly_sheets import SHEETS, write_monthly

MONTH = Month(2026, 11)
FIRST, LAST = date(2026, 11, 1), date(2026, 11, 30)
NOW = datetime(2026, 12, 3, 10, 0)
CATALOG = load_catalog()
DISTRICTS = CATALOG.consumers.districts
ROSTER = "civil_affairs_low_income_roster"
ON_ROSTER = (
    "_retired_batch IS NULL AND approval_date <= :last "
    "AND ((termination_date IS NULL AND status <> 'terminated') OR termination_date > :last)"
)


def _q(engine: sa.Engine, sql: str, **params) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), {"first": FIRST, "last": LAST} | params).all()


def _plant(engine: sa.Engine) -> None:
    """The month's events, written where the loaders and the loop write them."""
    with engine.begin() as conn:
        on = sa.text(f"SELECT id_number_token FROM {ROSTER} WHERE {ON_ROSTER} ORDER BY id_number_token")
        ids = [r[0] for r in conn.execute(on, {"last": LAST})]

        def roster(i: int, sql: str, **p) -> None:
            conn.execute(sa.text(f"UPDATE {ROSTER} SET {sql} WHERE id_number_token = :t"), {"t": ids[i]} | p)

        roster(0, "urban_rural = NULL")  # a source that did not say: 未标注
        roster(1, "district_code = '440103'")  # a district outside the city: 其他
        for i in (2, 3, 4):
            roster(i, "approval_date = :d, termination_date = NULL, status = 'active'", d=date(2026, 11, 5 + i))
        for i, reason in ((5, "employed"), (6, None), (7, "deceased")):
            roster(i, "termination_date = :d, status = 'terminated', exit_reason = :r", d=date(2026, 11, 20), r=reason)
        roster(8, "termination_date = :d, status = 'gradual_exit', exit_reason = 'income_improved'", d=date(2027, 2, 1))
        warnings = [r[0] for r in conn.execute(sa.text("SELECT warning_id FROM platform_warning ORDER BY warning_id"))]
        assert len(warnings) >= 30, "the city raised too few warnings for this test"
        for i, wid in enumerate(warnings):
            due = (date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 10))[i % 3]
            conn.execute(
                sa.text("UPDATE platform_warning SET due_date = :d WHERE warning_id = :w"), {"d": due, "w": wid}
            )
            state = {
                "pushed_at": None if i % 7 == 6 else datetime(2026, 11, 28, 9, 0),
                "acknowledged_at": datetime(2026, 11, 28, 15, 0) if i % 3 != 2 else None,
                # on the due day late in the evening (on time), the day after (late), or not yet
                "disposed_at": (datetime(2026, 11, 30, 23, 30), datetime(2026, 12, 1, 0, 30), None, None)[i % 4],
                "overdue_at": datetime(2026, 12, 1, 1, 0) if i % 4 == 2 else None,
                "closed_at": datetime(2026, 11, 29, 8, 0) if i % 4 == 3 and i % 5 == 0 else None,
            }
            sets = ", ".join(f"{k} = :{k}" for k in state)
            conn.execute(sa.text(f"UPDATE lidm_warning_state SET {sets} WHERE warning_id = :w"), state | {"w": wid})
    build_assistance_records(engine, CATALOG, now=datetime(2026, 11, 27, 12, 0))
    with engine.begin() as conn:  # one record revoked: it no longer counts
        conn.execute(
            sa.text(
                "UPDATE platform_assistance_record SET disbursement_status = 'revoked' WHERE record_id = "
                "(SELECT min(record_id) FROM platform_assistance_record WHERE amount > 0 AND period_start = :first)"
            ),
            {"first": FIRST},
        )


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def city(request, tmp_path_factory) -> Iterator[tuple[Settings, sa.Engine, Path]]:
    """The city, its events planted, and the workbook of November 2026 written from it."""
    home = tmp_path_factory.mktemp(f"monthly-{request.param}")
    with _throwaway_pg_database() if request.param == "postgres" else _nothing() as url:
        settings = monitored_city(home / "city", url)
        engine = sa.create_engine(settings.effective_central_url)
        _plant(engine)
        book = write_monthly(engine, CATALOG, MONTH, home / "monthly.xlsx", now=NOW)
        yield settings, engine, book
        engine.dispose()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


def _table(book: Path, sheet: str, labels: int) -> tuple[dict[tuple[str, ...], list], list[list]]:
    """The sheet's data rows by their label cells (merged labels carried down) and its header rows."""
    ws = openpyxl.load_workbook(book)[sheet]
    head = [[c.value for c in row] for row in ws.iter_rows(min_row=3, max_row=4)]
    out: dict[tuple[str, ...], list] = {}
    carried = [None] * labels
    for row in ws.iter_rows(min_row=4, values_only=True):
        if not any(isinstance(v, int | float) for v in row[1 + labels :]):
            continue
        carried = [v if v is not None else carried[i] for i, v in enumerate(row[1 : 1 + labels])]
        out[tuple(carried)] = list(row[1 + labels :])
    return out, head


def _representatives(rows: list[sa.Row]) -> dict[str, sa.Row]:
    """One row per household: the head, else the member with the smallest token (the workbook's rule)."""
    best: dict[str, sa.Row] = {}
    for r in rows:
        key = (r.relation_to_head != "head", r.id_number_token)
        cur = best.get(r.household_id_token)
        if cur is None or key < (cur.relation_to_head != "head", cur.id_number_token):
            best[r.household_id_token] = r
    return best


CODES = CATALOG["civil_affairs.low_income_roster"].field("category").enum
CATEGORY = ("低保", "特困", "低保边缘", "刚性支出困难", "防返贫监测", "其他困难")


def _dt(value: datetime | str | None) -> datetime | None:
    """A timestamp as the wall-clock time the database keeps (text in SQLite, zone-aware in PostgreSQL)."""
    if value is None:
        return None
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value.replace(tzinfo=None)


def _name(code: str | None) -> str:
    return DISTRICTS.get(code or "", "其他")


def test_roster_by_category_urban_rural_and_district_equals_the_database(city) -> None:
    _, engine, book = city
    table, head = _table(book, SHEETS[0], 2)
    cats = [c for c in head[0][5:] if c]
    assert cats[:3] == ["低保", "特困", "低保边缘"] and head[1][3:5] == ["户数", "人数"]
    rows = _q(
        engine,
        f"SELECT household_id_token, id_number_token, relation_to_head, category, district_code, urban_rural "
        f"FROM {ROSTER} WHERE {ON_ROSTER}",
    )
    (persons,) = _q(engine, f"SELECT count(*) FROM {ROSTER} WHERE {ON_ROSTER}")[0]
    (households,) = _q(engine, f"SELECT count(DISTINCT household_id_token) FROM {ROSTER} WHERE {ON_ROSTER}")[0]
    assert len(rows) == persons > 40
    assert table["全市合计", "小计"][:2] == [households, persons]
    # urban + rural + unknown = the total, per district and for the city, households and persons
    for (district, part), values in table.items():
        if part == "小计":
            parts = [table[district, p] for p in ("城镇", "农村", "未标注")]
            assert [sum(v[i] for v in parts) for i in range(len(values))] == values, district
            # and the categories add up to the 合计 columns
            assert sum(values[2::2]) == values[0] and sum(values[3::2]) == values[1], district
    unknown = [r for r in rows if r.urban_rural is None]
    assert len(unknown) == 1 and table["全市合计", "未标注"][1] == 1
    assert table[_name(unknown[0].district_code), "未标注"][1] == 1
    assert table["全市合计", "城镇"][1] == sum(r.urban_rural == "urban" for r in rows) > 0
    assert table["全市合计", "农村"][1] == sum(r.urban_rural == "rural" for r in rows) > 0
    # persons per district name and category; households by their representative member
    labels = {v: k for k, v in zip(CODES, cats, strict=True)}
    people = Counter((_name(r.district_code), r.category) for r in rows)
    homes = Counter((_name(r.district_code), r.category) for r in _representatives(rows).values())
    for (district, part), values in table.items():
        if part == "小计" and district != "全市合计":
            for i, label in enumerate(cats):
                assert values[2 + 2 * i : 4 + 2 * i] == [
                    homes[district, labels[label]],
                    people[district, labels[label]],
                ]
    assert table["其他", "小计"][1] == 1  # the member outside the city's districts, counted, not dropped
    assert next(iter(DISTRICTS.values())) in {d for d, _ in table} and not any(d.isdigit() for d, _ in table)


def test_new_and_exited_this_month_by_category_and_reason(city) -> None:
    _, engine, book = city
    table, head = _table(book, SHEETS[1], 2)
    live = f"SELECT district_code, category, exit_reason FROM {ROSTER} WHERE _retired_batch IS NULL AND"
    new = _q(engine, f"{live} approval_date BETWEEN :first AND :last")
    gone = _q(engine, f"{live} termination_date BETWEEN :first AND :last")
    assert len(new) >= 3 and len(gone) >= 3
    assert table["全市合计", "小计"][1] == len(new) and table["全市合计", "小计"][3] == len(gone)
    reasons = CATALOG["civil_affairs.low_income_roster"].field("exit_reason").enum
    assert head[1][7:] == [*CATALOG["civil_affairs.low_income_roster"].field("exit_reason").enum_labels, "未填写"]
    assert table["全市合计", "小计"][4:] == [sum(r.exit_reason == code for r in gone) for code in [*reasons, None]]
    assert table["全市合计", "小计"][4 + reasons.index("income_improved")] == 0  # leaving in February, not now
    assert table["全市合计", "小计"][-1] >= 1  # an exit without a reason, counted as 未填写
    for district, n in Counter(_name(r.district_code) for r in new).items():
        assert table[district, "小计"][1] == n
    for (district, category), n in Counter((_name(r.district_code), r.category) for r in gone).items():
        label = dict(zip(CODES, CATEGORY, strict=True))
        assert table[district, label[category]][3] == n, district


def test_assistance_amounts_by_programme_equal_the_happiness_list(city) -> None:
    _, engine, book = city
    table, head = _table(book, SHEETS[2], 2)
    where = (
        "_retired_batch IS NULL AND disbursement_status <> 'revoked' "
        "AND COALESCE(period_start, granted_on) BETWEEN :first AND :last"
    )
    rows = _q(
        engine,
        f"SELECT district_code, department, assistance_kind, count(*) AS n, sum(amount) AS s "
        f"FROM platform_assistance_record WHERE {where} GROUP BY district_code, department, assistance_kind",
    )
    total = round(sum(float(r.s) for r in rows), 2)
    assert total > 0
    columns = head[1][4:]  # 全市合计, then the districts by name
    assert columns[0] == "全市合计" and columns[1:10] == list(DISTRICTS.values())
    (city_row,) = [v for (dept, _), v in table.items() if dept == "全市合计"]  # 部门 and 项目 merged
    assert city_row[:2] == [sum(r.n for r in rows), pytest.approx(total, abs=0.005)]
    per_district: dict[str, float] = defaultdict(float)
    for r in rows:
        per_district[_name(r.district_code)] += float(r.s)
    for district, amount in per_district.items():
        assert city_row[1 + columns.index(district)] == pytest.approx(amount, abs=0.005), district
    assert sum(city_row[2:]) == pytest.approx(total, abs=0.01)  # the districts add up to the city
    dibao = [r for r in rows if r.assistance_kind == "dibao_allowance"]
    got = table["市民政局", "低保金"]
    assert got[:2] == [sum(r.n for r in dibao), pytest.approx(sum(float(r.s) for r in dibao), abs=0.005)]
    programmes = [v for (dept, kind), v in table.items() if dept != "全市合计" and kind != "小计"]
    assert sum(v[1] for v in programmes) == pytest.approx(total, abs=0.01)  # programmes add up to the total
    revoked = "disbursement_status = 'revoked' AND COALESCE(period_start, granted_on) BETWEEN :first AND :last"
    (n, amount) = _q(engine, f"SELECT count(*), sum(amount) FROM platform_assistance_record WHERE {revoked}")[0]
    assert n >= 1 and float(amount) > 0  # revoked money of the month, left out of the totals above


def test_acceptance_on_time_and_overdue_rates_per_department_and_district(city) -> None:
    _, engine, book = city
    table, head = _table(book, SHEETS[3], 2)
    assert head[0][3:11] == [
        "本月推送",
        "已签收",
        "签收率",
        "本月到期应办结",
        "按时办结",
        "按时办结率",
        "逾期",
        "逾期率",
    ]
    rows = _q(
        engine,
        "SELECT w.target_department, w.district_code, w.due_date, s.pushed_at, s.acknowledged_at, s.disposed_at, "
        "s.overdue_at, s.closed_at FROM platform_warning w JOIN lidm_warning_state s ON s.warning_id = w.warning_id",
    )
    expect: dict[tuple[str, str], Counter] = defaultdict(Counter)
    names = {"": "全部部门"}
    for row in rows:
        times = ("pushed_at", "acknowledged_at", "disposed_at")
        r = SimpleNamespace(**(row._asdict() | {k: _dt(getattr(row, k)) for k in times}))
        due_day = r.due_date if isinstance(r.due_date, date) else date.fromisoformat(r.due_date)
        pushed = r.pushed_at is not None and datetime(2026, 11, 1) <= r.pushed_at < datetime(2026, 12, 1)
        skip = r.closed_at is not None and r.disposed_at is None and r.overdue_at is None
        due = r.pushed_at is not None and FIRST <= due_day <= LAST and not skip
        on_time = due and r.disposed_at is not None and r.disposed_at.date() <= due_day
        late = due and not on_time and (r.overdue_at is not None or r.disposed_at is not None)
        c = Counter(pushed=pushed, ack=pushed and (r.acknowledged_at or r.disposed_at) is not None)
        c.update(due=due, on_time=on_time, late=late)
        for dept in ("", r.target_department):
            expect[dept, "小计"].update(c)
            expect[dept, _name(r.district_code)].update(c)
    assert expect["", "小计"]["late"] > 0 and expect["", "小计"]["on_time"] > 0 and expect["", "小计"]["due"] > 0
    department_names = {
        cid: c.name.split(" / ")[0] for cid, c in CATALOG.consumers.members.items() if c.kind == "department"
    }
    names |= {d: department_names[d] for d, _ in expect if d}
    for (dept, district), c in expect.items():
        if not any(c.values()) and dept:
            continue
        got = table[names[dept], district]
        assert got[0:2] == [c["pushed"], c["ack"]] and got[3:5] == [c["due"], c["on_time"]] and got[6] == c["late"]
        for value, num, den in ((got[2], "ack", "pushed"), (got[5], "on_time", "due"), (got[7], "late", "due")):
            assert value == (pytest.approx(c[num] / c[den]) if c[den] else "—"), (dept, district)
    ws = openpyxl.load_workbook(book)[SHEETS[3]]
    assert {ws.cell(r, 6).number_format for r in range(5, ws.max_row + 1)} == {"0.0%"}
    assert ws.column_dimensions["A"].hidden and ws.page_setup.orientation == "landscape" and ws.freeze_panes


def test_notes_define_every_figure_and_say_when_and_by_what(city) -> None:
    _, _, book = city
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames == list(SHEETS)
    notes = {r[0]: r[1] for r in wb[SHEETS[4]].iter_rows(min_row=3, values_only=True) if r[0]}
    for figure in (
        "签收率",
        "按时办结率",
        "逾期率",
        "本月新增",
        "本月退出",
        "救助资金",
        "类别",
        "户数",
        "名单数据截至",
    ):
        assert figure in notes
    assert "lidm " in notes["生成程序"] and notes["统计月份"] == "2026年11月"
    (loaded,) = _q(city[1], "SELECT max(finished_at) FROM lidm_batch WHERE feed = 'civil_affairs.low_income_roster'")[0]
    loaded = _dt(loaded) if isinstance(loaded, str) or loaded.tzinfo is None else loaded.astimezone(UTC)
    in_city = loaded.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai"))  # the ledger keeps UTC
    assert f"{in_city:%Y-%m-%d %H:%M}" in notes["名单数据截至"]
    title = wb[SHEETS[0]]
    assert title.cell(1, 2).value.endswith("低收入人口分类统计表") and "填报单位" in title.cell(2, 2).value


def test_the_cli_writes_the_workbook_for_the_month_asked(city, tmp_path, monkeypatch) -> None:
    settings, engine, _ = city
    if engine.dialect.name != "sqlite":
        pytest.skip("the CLI is the same on both; once is enough")
    home = tmp_path / "home"
    shutil.copytree(settings.home, home, ignore=shutil.ignore_patterns("sources", "channels"))
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(home=home, keyring=home / "keyring.json"))
    out = tmp_path / "nov.xlsx"
    runner = CliRunner()
    result = runner.invoke(cli.app, ["report", "--format", "xlsx", "--month", "2026-11", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert openpyxl.load_workbook(out)[SHEETS[4]]["B4"].value == "2026年11月"
    result = runner.invoke(cli.app, ["report", "--format", "xlsx", "--month", "2026-13", "--out", str(out)])
    assert result.exit_code != 0 and "2026-13" in result.output
    result = runner.invoke(cli.app, ["report", "--format", "xlsx", "--no-rebuild"])
    assert result.exit_code == 0, result.output
    assert list((home / "reports").glob("lidm-monthly-*.xlsx"))
    with pytest.raises(MonthError):
        Month.parse("November")


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_converts_the_workbook_to_pdf(city, tmp_path) -> None:
    import subprocess

    _, engine, book = city
    if engine.dialect.name != "sqlite":
        pytest.skip("one conversion is enough")
    subprocess.run(
        ["soffice", "--headless", "--convert-to", "pdf", "--outdir", str(tmp_path), str(book)],
        check=True,
        capture_output=True,
        timeout=120,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    pdf = tmp_path / "monthly.pdf"
    assert pdf.exists() and pdf.read_bytes().startswith(b"%PDF")


def test_the_html_report_names_districts(city, tmp_path) -> None:
    """Where a person reads a district (chart axis, needs list, happiness list), the report gives its name."""
    import re

    from lidm.monitor.report import write_report

    _, engine, _ = city
    page = write_report(engine, CATALOG, tmp_path / "r.html", now=NOW).read_text("utf-8")
    cells = re.findall(r"<td>(\d{6})</td>", page)
    assert cells == []  # no bare division code in a table cell
    (code,) = _q(engine, "SELECT min(district_code) FROM platform_warning")[0]
    assert f"<td>{DISTRICTS[code]}</td>" in page
    chart = page[page.index('id="chart-warnings-district"') :]
    chart = chart[: chart.index("</script>")]
    name = DISTRICTS[code]
    assert (name in chart or json.dumps(name)[1:-1] in chart) and code not in chart  # plotly escapes non-ASCII
