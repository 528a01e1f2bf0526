"""Closure and overdue notices reach the department once, through its channel, over real parts: a folder
channel with the central database on SQLite and on PostgreSQL, a table channel in a department's PostgreSQL
database, an SFTP channel against a real OpenSSH sshd. Warnings close the way the monitor closes them (the
person leaves the roster) and go overdue by a monitoring run past their due date."""

from __future__ import annotations

import csv
import io
import json
import logging
import secrets
import shutil
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlencode

import openpyxl
import pytest
import sqlalchemy as sa
from _city import city_bureaus_only, fed_city
from _city import rows as _rows

from lidm import workdays
from lidm.central import db
from lidm.central.schema import dataset_table
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.keys import load_keyring
from lidm.monitor.feedback import collect_dispositions
from lidm.monitor.lifecycle import run_monitor
from lidm.monitor.notices import NOTICE_COLUMNS
from lidm.monitor.push import push_warnings, warnings_csv
from lidm.monitor.rules import load_rules

AS_OF = date(2026, 11, 27)
RAISED_AT = datetime(2026, 11, 27, 6, 0, 0)
PUSHED_AT = datetime(2026, 11, 28, 9, 0, 0)
COLLECTED_AT = datetime(2026, 12, 1, 18, 0, 0)
BOM = b"\xef\xbb\xbf"
CATALOG = load_catalog()
ROSTER = dataset_table(CATALOG["civil_affairs.low_income_roster"], sa.MetaData())


_bureaus = pytest.fixture(scope="module", autouse=True)(city_bureaus_only)  # one bureau's channel


def _monitor(settings: Settings, as_of: date, now: datetime) -> None:
    """A monitoring run at a chosen time, so the times of raising, pushing and going overdue are known."""
    catalog = load_catalog(settings.contracts_dir)
    engine = db.connect(settings)
    try:
        rules = load_rules(settings.rules_dir, catalog=catalog, params=settings.rule_params)
        # Runs in December 2026 have deadlines in 2027: counted Monday to Friday on purpose until chinesecalendar
        # holds that year (lidm.workdays); the calendar's own tests are tests/test_workdays.py.
        calendar = workdays.Calendar(assume_weekdays_through=2027)
        keyring = load_keyring(settings)
        run_monitor(
            engine,
            rules,
            catalog,
            as_of=as_of,
            now=now,
            keyring=keyring,
            calendar=calendar,
            levels=settings.routing_levels,
        )
    finally:
        engine.dispose()


def _city(home: Path, central_url: str | None = None) -> Settings:
    settings = fed_city(home, central_url)
    _monitor(settings, AS_OF, RAISED_AT)
    return settings


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def city(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A monitored synthetic city, its central database on SQLite or on PostgreSQL."""
    url = request.getfixturevalue("pg_clean_url") if request.param == "postgresql" else None
    return _city(tmp_path / "city", url)


def _leave_roster(settings: Settings, warning_id: str) -> None:
    """The person of a warning leaves the roster: the next run closes their warnings (condition gone)."""
    (token,) = _rows(settings, "SELECT id_number_token FROM platform_warning WHERE warning_id = :w", w=warning_id)[0]
    engine = sa.create_engine(settings.effective_central_url)
    with engine.begin() as conn:
        conn.execute(sa.update(ROSTER).where(ROSTER.c.id_number_token == token).values(status="terminated"))
    engine.dispose()


def _changed(settings: Settings, department: str) -> dict[str, str]:
    """The department's pushed warnings that are closed or overdue now, by warning_id."""
    return dict(
        _rows(
            settings,
            "SELECT w.warning_id, w.status FROM platform_warning w JOIN lidm_warning_state s USING (warning_id) "
            "WHERE w.target_department = :d AND s.pushed_at IS NOT NULL AND w.status IN ('closed', 'overdue')",
            d=department,
        )
    )


def _notices_sent(settings: Settings) -> int:
    return len(_rows(settings, "SELECT id FROM lidm_warning_event WHERE status LIKE 'notice:%'"))


def _csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(BOM)
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def _machine(outbox: Path) -> list[dict[str, str]]:
    rows = []
    for manifest in sorted(outbox.glob("*.manifest.json")):
        rows += _csv((outbox / json.loads(manifest.read_text())["file"]).read_bytes())
    return rows


def _listing(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in (home / "channels").rglob("*") if p.is_file())


def test_closed_and_overdue_warnings_are_told_once_through_the_folder(city: Settings, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    settings, home = city, city.home
    departments = [d for d in CATALOG["platform.warning"].field("target_department").enum if d != "emergency"]
    push_warnings(settings, departments=departments, now=PUSHED_AT)
    civil = home / "channels" / "civil_affairs"
    pushed = {r["warning_id"]: r for r in _machine(civil / "outbox")}
    deceased = sorted(w for w, r in pushed.items() if r["rule_id"] == "roster_deceased")
    assert len(deceased) >= 2

    # The department refers one case to the county (一事一议); it stays open, acknowledged.
    referred = pushed[deceased[0]]
    answer = {
        "warning_id": referred["warning_id"],
        "id_number": referred["id_number"],
        "outcome": "referred",
        "reason": "困难情形复杂，提交县级协调机制一事一议",
        "handler": "王敏",
        "disposed_at": "2026-11-30 10:00:00",
    }
    (civil / "inbox" / "disposition_referred.csv").write_bytes(warnings_csv(list(answer), [answer]))
    assert collect_dispositions(settings, departments=["civil_affairs"], now=COLLECTED_AT).totals()["applied"] == 1

    # Its person leaves the roster, and a run past the due dates of the 15-day rules: closed and overdue.
    _leave_roster(settings, referred["warning_id"])
    _monitor(settings, date(2026, 12, 13), datetime(2026, 12, 13, 6, 0, 0))
    expected = {d: _changed(settings, d) for d in departments}
    assert expected["civil_affairs"][referred["warning_id"]] == "closed"
    assert "overdue" in expected["civil_affairs"].values()
    late = dict(
        _rows(settings, "SELECT warning_id, status FROM platform_warning WHERE target_department = 'emergency'")
    )
    assert late and set(late.values()) == {"overdue"}  # never pushed: emergency was not in the first push

    results = {r.department: r for r in push_warnings(settings, now=datetime(2026, 12, 13, 9, 0, 0))}
    for dept in departments:
        r = results[dept]
        assert r.notices == len(expected[dept]) and r.warnings == 0
        if not expected[dept]:
            assert r.status == "nothing"
            continue
        outbox = home / "channels" / dept / "outbox"
        (machine_file,) = outbox.glob("notices_*[0-9a-f].csv")
        assert r.status == "pushed" and r.notice_target == str(machine_file)
        (people_file,) = outbox.glob("notices_*.zh.csv")
        assert people_file.name == machine_file.name.removesuffix(".csv") + ".zh.csv"
        assert not list(outbox.glob("notices_*.manifest.json"))  # never taken for a warnings file
        rows = _csv(machine_file.read_bytes())
        assert list(rows[0]) == list(NOTICE_COLUMNS)
        assert {x["warning_id"]: x["status"] for x in rows} == expected[dept]
        for x in rows:
            if x["status"] == "overdue":
                assert (x["reason_code"], x["reason"], x["referred"]) == ("past_due", "past its due date", "false")
                assert x["changed_at"] == "2026-12-13 06:00:00"
            else:
                assert x["reason_code"] == "left_subject" and "civil_affairs.low_income_roster" in x["reason"]
                assert "低收入人口名单" in x["reason_zh"]
        readable = _csv(people_file.read_bytes())
        assert list(readable[0])[:5] == ["预警编号", "预警状态", "变更时间", "原因", "处理建议"]
        labels = {x["预警编号"]: x["预警状态"] for x in readable}
        assert labels == {w: {"closed": "条件消失自动关闭", "overdue": "已逾期"}[s] for w, s in expected[dept].items()}
        assert all("已逾期" in x["办理时限"] for x in readable if x["预警状态"] == "已逾期")
    civil_rows = {x["warning_id"]: x for x in _csv(next((civil / "outbox").glob("notices_*[0-9a-f].csv")).read_bytes())}
    assert civil_rows[referred["warning_id"]]["referred"] == "true"
    people = {x["预警编号"]: x for x in _csv(next((civil / "outbox").glob("notices_*.zh.csv")).read_bytes())}
    assert "一事一议" in people[referred["warning_id"]]["处理建议"]
    # Emergency's warnings went overdue before their first push: they arrive as overdue, with no notice.
    emergency = results["emergency"]
    assert (emergency.warnings, emergency.notices) == (len(late), 0)
    assert {x["status"] for x in _machine(home / "channels" / "emergency" / "outbox")} == {"overdue"}
    total = sum(len(v) for v in expected.values())
    assert _notices_sent(settings) == total

    # The next push tells nothing again.
    files = _listing(home)
    again = push_warnings(settings, now=datetime(2026, 12, 13, 10, 0, 0))
    assert {r.status for r in again} == {"nothing"} and sum(r.notices for r in again) == 0
    assert _listing(home) == files and _notices_sent(settings) == total

    # An overdue warning that then closes is told once more: that it closed.
    overdue = sorted(w for w, s in expected["civil_affairs"].items() if s == "overdue" and w in deceased)
    told = {w for w, s in _changed(settings, "civil_affairs").items() if s == "closed"}  # closed and told before
    _leave_roster(settings, overdue[0])
    _monitor(settings, date(2026, 12, 14), datetime(2026, 12, 14, 6, 0, 0))
    newly = {w for w, s in _changed(settings, "civil_affairs").items() if s == "closed"} - told
    assert overdue[0] in newly
    (result,) = push_warnings(settings, departments=["civil_affairs"], now=datetime(2026, 12, 14, 9, 0, 0))
    assert result.notices == len(newly)
    latest = sorted((civil / "outbox").glob("notices_*[0-9a-f].csv"))[-1]
    assert {x["warning_id"]: x["status"] for x in _csv(latest.read_bytes())} == dict.fromkeys(newly, "closed")
    assert push_warnings(settings, departments=["civil_affairs"])[0].status == "nothing"
    events = _rows(settings, "SELECT status FROM lidm_warning_event WHERE warning_id = :w ORDER BY id", w=overdue[0])
    assert [e.status for e in events] == ["raised", "pushed", "overdue", "notice:overdue", "closed", "notice:closed"]

    ids = {x["id_number"] for x in pushed.values()} | {x["name"] for x in pushed.values() if "*" not in x["name"]}
    assert not [v for v in ids if v and v in caplog.text]


@pytest.mark.postgres
def test_a_table_channel_is_told_by_its_rows(tmp_path: Path, pg_clean_url: str, pg_url: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _city(tmp_path / "pg-city", pg_clean_url)
    dept = "medical_insurance"
    schema = f"dept_{secrets.token_hex(4)}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    dept_url = pg_url.replace("postgres@", "postgres:s3cret-pw@")
    settings = settings.model_copy(update={"channels": {dept: f"{dept_url}#{schema}.lidm_warning"}})
    table = f"{schema}.lidm_warning"

    def rows() -> dict[str, dict]:
        with admin.connect() as conn:
            return {r["warning_id"]: dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {table}")).mappings()}

    try:
        (first,) = push_warnings(settings, departments=[dept], now=PUSHED_AT)
        before = rows()
        assert len(before) == first.warnings and {r["status"] for r in before.values()} == {"pushed"}
        assert all(r["status_reason_code"] is None for r in before.values())
        high = sorted(w for w, r in before.items() if r["rule_id"] == "high_medical_cost_assistance")
        acked = high[1]
        with admin.begin() as conn:  # the department has taken one in hand
            conn.execute(
                sa.text(f"UPDATE {table} SET acknowledged_at = :t WHERE warning_id = :w"),
                {"t": datetime(2026, 11, 29, 8, 30), "w": acked},
            )
        _leave_roster(settings, high[0])
        # past high_medical_cost_assistance's due date (15 working days: Friday 12-18)
        _monitor(settings, date(2026, 12, 21), datetime(2026, 12, 21, 6, 0, 0))
        expected = _changed(settings, dept)
        assert expected[high[0]] == "closed" and expected[acked] == "overdue"

        (result,) = push_warnings(settings, departments=[dept], now=datetime(2026, 12, 21, 9, 0, 0))
        assert (result.status, result.warnings, result.notices) == ("pushed", 0, len(expected))
        assert result.notice_target == f"postgresql://127.0.0.1:5432/{pg_url.rsplit('/', 1)[1]}#{table}"
        after = rows()
        for w, r in after.items():
            if w not in expected:
                assert r == before[w]
                continue
            assert r["status"] == expected[w] and r["updated_at"] == datetime(2026, 12, 21, 9, 0, 0)
            assert (r["push_id"], r["pushed_at"]) == (before[w]["push_id"], before[w]["pushed_at"])
            code = "left_subject" if expected[w] == "closed" else "past_due"
            assert r["status_reason_code"] == code and r["status_reason"]
        assert after[acked]["acknowledged_at"] == datetime(2026, 11, 29, 8, 30)
        assert push_warnings(settings, departments=[dept])[0].status == "nothing"

        # A table laid out before the reason columns existed is still told, by its status.
        with admin.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN status_reason_code, DROP COLUMN status_reason"))
        _leave_roster(settings, acked)
        _monitor(settings, date(2026, 12, 22), datetime(2026, 12, 22, 6, 0, 0))
        (result,) = push_warnings(settings, departments=[dept], now=datetime(2026, 12, 22, 9, 0, 0))
        assert result.notices >= 1 and rows()[acked]["status"] == "closed"
        assert "s3cret-pw" not in caplog.text
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.sftp
def test_an_sftp_channel_gets_the_files_for_people_and_the_notices(tmp_path: Path, sftp_server) -> None:
    dept = "hr_social_security"
    folder = f"channel_{secrets.token_hex(4)}"
    query = urlencode({"key": str(sftp_server.client_key), "known_hosts": str(sftp_server.known_hosts)})
    url = f"sftp://{sftp_server.username}@{sftp_server.host}:{sftp_server.port}/{folder}/{dept}?{query}"
    settings = _city(tmp_path / "city").model_copy(update={"channels": {dept: url}})
    outbox = sftp_server.home / folder / dept / "outbox"
    try:
        (result,) = push_warnings(settings, departments=[dept], now=PUSHED_AT)
        (manifest,) = outbox.glob("*.manifest.json")
        stem = manifest.name.removesuffix(".manifest.json")
        assert sorted(p.name for p in outbox.iterdir()) == [
            f"{stem}{s}" for s in (".answer.csv", ".answer.xlsx", ".csv", ".manifest.json", ".zh.csv")
        ]
        book = openpyxl.load_workbook(outbox / f"{stem}.answer.xlsx")
        assert book["答复"].max_row == result.warnings + 2
        guide = " ".join(str(c.value) for row in book["说明"].iter_rows() for c in row if c.value)
        where = f"sftp://{sftp_server.host}:{sftp_server.port}/{folder}/{dept}/inbox/"
        assert where in guide and sftp_server.username not in guide and "key" not in where

        _monitor(settings, date(2026, 12, 28), datetime(2026, 12, 28, 6, 0, 0))  # past every due date
        (told,) = push_warnings(settings, departments=[dept], now=datetime(2026, 12, 28, 9, 0, 0))
        assert (told.warnings, told.notices) == (0, result.warnings)
        (notices,) = outbox.glob("notices_*[0-9a-f].csv")
        assert {x["status"] for x in _csv(notices.read_bytes())} == {"overdue"}
        assert len(_csv(notices.read_bytes())) == result.warnings
        assert told.notice_target.startswith(f"sftp://{sftp_server.host}:{sftp_server.port}/{folder}/{dept}/outbox/")
        assert push_warnings(settings, departments=[dept])[0].status == "nothing"
        assert len(list(outbox.glob("notices_*"))) == 2
    finally:
        shutil.rmtree(sftp_server.home / folder, ignore_errors=True)


def test_a_close_reason_is_coded_and_worded_from_what_the_monitor_recorded() -> None:
    from lidm.monitor.notices import reason_of

    care = "civil_affairs.severe_disability_care_subsidy"
    cases = {
        "condition no longer met: no longer selected in civil_affairs.low_income_roster (left the roster, status "
        "changed or row retired)": ("left_subject", CATALOG["civil_affairs.low_income_roster"].title),
        f"condition no longer met: now found in {care}": ("now_found", CATALOG[care].title),
        f"condition no longer met: no longer found in {care} or nowhere.feed": ("no_longer_found", "或nowhere.feed"),
        "condition no longer met": ("condition_gone", "预警条件已不再满足"),
        None: ("closed", "预警已关闭"),
    }
    for recorded, (code, words) in cases.items():
        got = reason_of("closed", recorded, CATALOG)
        assert got[0] == code and words in got[1], recorded
    assert reason_of("overdue", None, CATALOG)[0] == "past_due"


def test_a_crash_between_the_notice_file_and_the_commit_tells_again(tmp_path: Path, monkeypatch) -> None:
    """At-least-once, like the warnings: a notice written but not recorded is written again at the next push."""
    import lidm.monitor.push as push_module

    settings = _city(tmp_path / "city")
    dept = "hr_social_security"
    (pushed,) = push_warnings(settings, departments=[dept], now=PUSHED_AT)
    _monitor(settings, date(2026, 12, 28), datetime(2026, 12, 28, 6, 0, 0))

    def boom(*_a, **_k):
        raise RuntimeError("crash after the notice file was written")

    monkeypatch.setattr(push_module, "record_sent", boom)
    with pytest.raises(RuntimeError):
        push_warnings(settings, departments=[dept], now=datetime(2026, 12, 28, 9, 0, 0))
    monkeypatch.undo()
    outbox = settings.home / "channels" / dept / "outbox"
    assert len(list(outbox.glob("notices_*[0-9a-f].csv"))) == 1 and _notices_sent(settings) == 0
    (again,) = push_warnings(settings, departments=[dept], now=datetime(2026, 12, 28, 9, 5, 0))
    first, second = (_csv(p.read_bytes()) for p in sorted(outbox.glob("notices_*[0-9a-f].csv")))
    assert [r["warning_id"] for r in first] == [r["warning_id"] for r in second]
    assert again.notices == len(second) == pushed.warnings == _notices_sent(settings)
