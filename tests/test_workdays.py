"""Working-day deadlines on China's official calendar (chinesecalendar), checked against the State Council's holiday
notices for 2025 and 2026 as the package holds them, and end to end through the monitor on SQLite."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from lidm_samples.demo import demo_settings, run_demo

from lidm import workdays
from lidm.central import db
from lidm.central.schema import audit, monitor_run
from lidm.contracts.load import load_catalog
from lidm.errors import ConfigError, RuleError
from lidm.monitor.lifecycle import monitor, run_monitor, warning_table
from lidm.monitor.rules import load_rule, load_rules

CATALOG = load_catalog()
RULES = load_rules(catalog=CATALOG)
LAST = workdays.covered_years()[1]
BEYOND = max(2031, LAST + 1)  # a year no installed calendar holds

# The notices' days off (国办发明电〔2024〕12号 for 2025, 国办发明电〔2025〕7号 for 2026), weekends inside them
# included, and their make-up working days (调休上班).
OFF = {
    "Spring Festival 2025": (date(2025, 1, 28), date(2025, 2, 4)),
    "National Day 2025": (date(2025, 10, 1), date(2025, 10, 8)),
    "Spring Festival 2026": (date(2026, 2, 15), date(2026, 2, 23)),
    "National Day 2026": (date(2026, 10, 1), date(2026, 10, 7)),
}
MAKE_UP = {
    "Spring Festival 2025": [date(2025, 1, 26), date(2025, 2, 8)],  # Sunday, Saturday
    "National Day 2025": [date(2025, 9, 28), date(2025, 10, 11)],  # Sunday, Saturday
    "Spring Festival 2026": [date(2026, 2, 14), date(2026, 2, 28)],  # Saturday, Saturday
    "National Day 2026": [date(2026, 9, 20), date(2026, 10, 10)],  # Sunday, Saturday
}


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# --------------------------------------------------------------------------- the official calendar


def test_the_installed_calendar_covers_the_years_tested_and_says_so() -> None:
    assert workdays.covered_years()[0] <= 2025 and LAST >= 2026
    text = workdays.coverage_text()
    assert "chinesecalendar" in text and workdays.package_version() in text and str(LAST) in text


@pytest.mark.parametrize("holiday", list(OFF))
def test_the_package_holds_the_notice_s_days_off_and_make_up_days(holiday: str) -> None:
    first, last = OFF[holiday]
    assert not any(workdays.is_working_day(d) for d in _days(first, last))
    make_up = MAKE_UP[holiday]
    assert all(d.weekday() >= 5 and workdays.is_working_day(d) for d in make_up)
    # Offices work the day before and the day after each of these holidays.
    assert workdays.is_working_day(first - timedelta(days=1)) and workdays.is_working_day(last + timedelta(days=1))


@pytest.mark.parametrize(
    ("raised", "n", "due", "why"),
    [
        # Spring Festival 2025: off Tue 01-28 to Tue 02-04; make-up Sun 01-26 and Sat 02-08.
        (date(2025, 1, 24), 1, date(2025, 1, 26), "the make-up Sunday is the first working day"),
        (date(2025, 1, 27), 1, date(2025, 2, 5), "raised the last day before: due after the holiday"),
        (date(2025, 1, 24), 10, date(2025, 2, 13), "across the holiday, the make-up Saturday counting"),
        (date(2025, 1, 30), 1, date(2025, 2, 5), "raised on the holiday: counting starts after it"),
        (date(2025, 2, 7), 1, date(2025, 2, 8), "a make-up Saturday can be the due date"),
        (date(2025, 2, 7), 2, date(2025, 2, 10), "then the weekend's Sunday does not count"),
        # National Day 2025: off Wed 10-01 to Wed 10-08 (Mid-Autumn 10-06 inside); make-up Sun 09-28, Sat 10-11.
        (date(2025, 9, 26), 1, date(2025, 9, 28), "the make-up Sunday before National Day"),
        (date(2025, 9, 30), 1, date(2025, 10, 9), "raised the last day before: due after the holiday"),
        (date(2025, 9, 30), 3, date(2025, 10, 11), "the make-up Saturday after it is the third"),
        (date(2025, 10, 3), 1, date(2025, 10, 9), "raised on the holiday"),
        (date(2025, 9, 26), 20, date(2025, 10, 30), "20 working days across all of it"),
        # Spring Festival 2026: off Sun 02-15 to Mon 02-23; make-up Sat 02-14 and Sat 02-28.
        (date(2026, 2, 13), 1, date(2026, 2, 14), "the make-up Saturday before"),
        (date(2026, 2, 13), 2, date(2026, 2, 24), "then nine days off"),
        (date(2026, 2, 18), 1, date(2026, 2, 24), "raised on New Year's Day of the lunar calendar"),
        (date(2026, 2, 27), 1, date(2026, 2, 28), "the make-up Saturday after"),
        (date(2026, 2, 12), 10, date(2026, 3, 4), "10 working days across it"),
        # National Day 2026: off Thu 10-01 to Wed 10-07; make-up Sun 09-20, Sat 10-10; Mid-Autumn Fri 09-25 to 09-27.
        (date(2026, 9, 18), 1, date(2026, 9, 20), "the make-up Sunday"),
        (date(2026, 9, 24), 1, date(2026, 9, 28), "Mid-Autumn's Friday off"),
        (date(2026, 9, 30), 1, date(2026, 10, 8), "raised the last day before National Day"),
        (date(2026, 9, 30), 3, date(2026, 10, 10), "the make-up Saturday after it"),
        (date(2026, 9, 30), 7, date(2026, 10, 15), "7 working days"),
        # New Year 2026: off Thu 01-01 to Sat 01-03, make-up Sun 01-04: across the turn of the year.
        (date(2025, 12, 31), 1, date(2026, 1, 4), "the make-up Sunday after New Year"),
        # An ordinary stretch: Friday plus one working day is Monday.
        (date(2026, 11, 27), 1, date(2026, 11, 30), "a plain weekend"),
        (date(2026, 11, 27), 20, date(2026, 12, 25), "the demo city's day, 20 working days"),
    ],
)
def test_n_working_days_after_the_raise_date(raised: date, n: int, due: date, why: str) -> None:
    got = workdays.add_working_days(raised, n)
    assert got == due, why
    assert workdays.is_working_day(got)  # the due date is always a working day
    assert workdays.working_days_between(raised, got) == n


def test_overdue_counts_working_days_after_the_due_date() -> None:
    due = date(2025, 1, 27)  # the Monday before the Spring Festival
    assert workdays.working_days_between(due, due) == 0  # on the due date: on time
    assert workdays.working_days_between(due, date(2025, 1, 28)) == 0  # overdue, by no working day yet
    assert workdays.working_days_between(due, date(2025, 2, 4)) == 0
    assert workdays.working_days_between(due, date(2025, 2, 5)) == 1
    assert workdays.working_days_between(due, date(2025, 2, 8)) == 4  # the make-up Saturday counts
    assert workdays.working_days_between(due, date(2025, 1, 20)) == 0  # not yet due


# --------------------------------------------------------------------------- past the calendar


@pytest.mark.parametrize(
    "call",
    [
        lambda: workdays.add_working_days(date(BEYOND, 3, 2), 5),
        lambda: workdays.is_working_day(date(BEYOND, 1, 1)),
        lambda: workdays.add_working_days(date(LAST, 12, 28), 20),  # the day is covered, its deadline is not
        lambda: workdays.working_days_between(date(LAST, 12, 30), date(LAST + 1, 1, 5)),
    ],
)
def test_a_date_past_the_calendar_is_refused_never_counted_monday_to_friday(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        call()
    message = str(err.value)
    assert f"chinesecalendar {workdays.package_version()}" in message and f"–{LAST} only" in message
    assert "pip install --upgrade 'chinesecalendar'" in message and "LIDM_WORKDAYS_ASSUME_WEEKDAYS_THROUGH" in message


def test_the_stopgap_counts_weekdays_only_in_the_years_it_names() -> None:
    calendar = workdays.Calendar(assume_weekdays_through=LAST + 1)
    assert calendar.add_working_days(date(LAST + 1, 1, 1), 1) == next(
        d for d in _days(date(LAST + 1, 1, 2), date(LAST + 1, 1, 9)) if d.weekday() < 5
    )
    assert calendar.assumed(date(LAST + 1, 6, 1)) and not calendar.assumed(date(LAST, 6, 1))
    assert calendar.add_working_days(date(2025, 1, 27), 1) == date(2025, 2, 5)  # covered years stay official
    with pytest.raises(ConfigError):
        calendar.is_working_day(date(LAST + 2, 3, 1))


# --------------------------------------------------------------------------- rules say their deadline

RULE = """id: {name}
version: 1.0.0
title: t
hardship_type: death
department: civil_affairs
urgency: high
{deadline}summary: s
subject:
  feed: civil_affairs.low_income_roster
  where: {{status: active}}
"""


def _rule_file(tmp_path: Path, deadline: str, name: str = "deadline_rule") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(RULE.format(name=name, deadline=deadline), encoding="utf-8")
    return path


@pytest.mark.parametrize("deadline", ["", "due_days: 30\ndue_working_days: 20\n"])
def test_a_rule_gives_exactly_one_deadline(tmp_path: Path, deadline: str) -> None:
    path = _rule_file(tmp_path, deadline)
    with pytest.raises(RuleError) as err:
        load_rule(path)
    assert str(path) in str(err.value)
    assert "exactly one deadline: due_working_days (working days, 个工作日) or due_days" in str(err.value)


def test_a_calendar_day_deadline_still_reads_and_ends_on_a_working_day(tmp_path: Path) -> None:
    rule = load_rule(_rule_file(tmp_path, "due_days: 30\n"))
    assert rule.due_text == "30 days" and rule.as_row()["due_days"] == 30
    assert rule.due_date(date(2025, 9, 8)) == date(2025, 10, 9)  # day 30 is 10-08, the holiday's last day
    assert rule.due_date(date(2025, 9, 1)) == date(2025, 10, 9)  # 10-01 to 10-08 off
    assert rule.due_date(date(2025, 11, 3)) == date(2025, 12, 3)  # an ordinary Wednesday stays
    working = load_rule(_rule_file(tmp_path, "due_working_days: 7\n", "working_rule"))
    assert working.due_text == "7 working days" and working.due_date(date(2026, 9, 30)) == date(2026, 10, 15)


def test_every_shipped_rule_counts_working_days_in_the_order_of_its_urgency() -> None:
    assert all(r.due_working_days and r.due_days is None for r in RULES)
    soonest = {
        u: min(r.due_working_days or 0 for r in RULES if r.urgency.value == u) for u in ("high", "medium", "low")
    }
    assert soonest["high"] < soonest["medium"] < soonest["low"]


# --------------------------------------------------------------------------- through the monitor on SQLite

RAISED = date(2026, 9, 30)  # the day before National Day 2026
DUE = {7: date(2026, 10, 15), 10: date(2026, 10, 20), 15: date(2026, 10, 27), 20: date(2026, 11, 3)}


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A small synthetic city on SQLite, monitored the day before National Day 2026."""
    home = tmp_path_factory.mktemp("city")
    run_demo(home, size=600, bad=0)
    settings = demo_settings(home)
    engine = db.connect(settings)
    try:
        run_monitor(engine, RULES, CATALOG, as_of=RAISED)
        yield settings, engine
    finally:
        engine.dispose()


def _warnings(engine: sa.Engine) -> list[sa.Row]:
    w = warning_table(CATALOG)
    with engine.connect() as conn:
        return conn.execute(sa.select(w.c.warning_id, w.c.rule_id, w.c.due_date, w.c.status)).all()


def test_the_stored_due_dates_are_the_rules_working_days_after_national_day(city) -> None:  # type: ignore[no-untyped-def]
    _, engine = city
    deadline = {r.id: r.due_working_days for r in RULES}
    rows = _warnings(engine)
    assert {deadline[r.rule_id] for r in rows} == set(DUE)  # every kind of deadline raised at least once
    assert all(r.due_date == DUE[deadline[r.rule_id]] for r in rows)


def test_a_warning_is_on_time_on_its_due_date_and_overdue_the_day_after(city) -> None:  # type: ignore[no-untyped-def]
    _, engine = city
    seven = {r.id for r in RULES if r.due_working_days == 7}
    run_monitor(engine, RULES, CATALOG, as_of=DUE[7])  # Thursday 10-15, the 7-day rules' due date
    rows = _warnings(engine)
    assert not [r for r in rows if r.status == "overdue"]
    run_monitor(engine, RULES, CATALOG, as_of=DUE[7] + timedelta(days=1))
    rows = _warnings(engine)
    overdue = {r.warning_id for r in rows if r.status == "overdue"}
    assert overdue == {r.warning_id for r in rows if r.due_date == DUE[7] and r.status != "closed"}
    assert overdue and {r.rule_id for r in rows if r.warning_id in overdue} <= seven


def test_a_run_past_the_calendar_is_refused_before_it_starts(city) -> None:  # type: ignore[no-untyped-def]
    settings, engine = city
    with engine.connect() as conn:
        runs = conn.execute(sa.select(sa.func.count()).select_from(monitor_run)).scalar_one()
    for run in (
        lambda: run_monitor(engine, RULES, CATALOG, as_of=date(BEYOND, 3, 2)),
        lambda: monitor(settings, as_of=date(BEYOND, 3, 2)),
        lambda: monitor(settings, as_of=date(LAST, 12, 28), rule_ids=["roster_deceased"]),  # its due date is not
    ):
        with pytest.raises(ConfigError) as err:
            run()
        message = str(err.value)
        assert f"chinesecalendar {workdays.package_version()} covers" in message and f"–{LAST} only" in message
        assert "pip install --upgrade 'chinesecalendar'" in message
    assert "rule roster_deceased (due in 10 working days from" in message
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(monitor_run)).scalar_one() == runs


def test_the_stopgap_runs_and_says_so_in_the_audit_entry(city) -> None:  # type: ignore[no-untyped-def]
    settings, engine = city
    late = date(LAST, 12, 28)
    stopgap = settings.model_copy(update={"workdays_assume_weekdays_through": LAST + 1})
    result = monitor(stopgap, as_of=late, rule_ids=["roster_deceased"])
    assert result.as_of == late
    with engine.connect() as conn:
        detail = conn.execute(
            sa.select(audit.c.detail).where(audit.c.action == "monitor.run").order_by(audit.c.seq.desc()).limit(1)
        ).scalar_one()
    assert json.loads(detail)["weekdays_assumed_for"] == ["roster_deceased"]


def test_lidm_monitor_says_the_calendar_and_refuses_a_run_past_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from lidm import cli
    from lidm.config import Settings

    monkeypatch.setattr(cli, "get_settings", Settings)
    monkeypatch.setattr(cli.console, "width", 250)
    runner = CliRunner()
    out = runner.invoke(cli.app, ["monitor", "run", "--as-of", f"{BEYOND}-03-02"])
    assert out.exit_code == 2 and "Traceback" not in out.output, out.output
    assert f"needs the official working-day calendar for {BEYOND}" in out.output
    listing = runner.invoke(cli.app, ["monitor", "rules"])
    assert listing.exit_code == 0, listing.output
    assert f"working days (个工作日) are counted on {workdays.coverage_text()}" in listing.output
    assert "10 working days" in listing.output  # the deadline column
