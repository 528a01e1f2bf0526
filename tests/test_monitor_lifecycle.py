"""The monitoring loop's rules and warning life, on a synthetic city in SQLite and in PostgreSQL."""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from _city import fed_city
from conftest import _pg_admin
from lidm_samples.demo import demo_settings

from lidm import workdays
from lidm.central import db
from lidm.central.schema import dataset_table, monitor_run, warning_event, warning_state
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.errors import ConfigError
from lidm.keys import load_keyring
from lidm.monitor import (
    Compiled,
    MonitorResult,
    RuleError,
    evaluate,
    load_rules,
    quiet,
    routing,
    run_monitor,
    transition,
)
from lidm.monitor.lifecycle import city_now, monitor, warning_table
from lidm.monitor.rules import due_dates

AS_OF = date(2026, 11, 27)
CATALOG = load_catalog()
RULES = load_rules(catalog=CATALOG)


@dataclass
class City:
    settings: Settings
    engine: sa.Engine

    def run(self, as_of: date = AS_OF, rules=RULES):  # type: ignore[no-untyped-def]
        return run_monitor(self.engine, rules, CATALOG, as_of=as_of)

    def table(self, feed: str) -> sa.Table:
        return dataset_table(CATALOG[feed], sa.MetaData())

    def warnings(self, rule: str, *statuses: str) -> list[sa.Row]:
        w = warning_table(CATALOG)
        q = sa.select(w, warning_state).join(warning_state, warning_state.c.warning_id == w.c.warning_id)
        q = q.where(w.c.rule_id == rule)
        if statuses:
            q = q.where(w.c.status.in_(statuses))
        with self.engine.connect() as conn:
            return conn.execute(q.order_by(w.c.warning_id)).all()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic city loaded once into SQLite; each test gets a copy."""
    home = tmp_path_factory.mktemp("city")
    fed_city(home)
    return home


@pytest.fixture(scope="module")
def pg_template(template: Path) -> Iterator[str]:
    """The same city loaded once into PostgreSQL; each test gets a database made from it."""
    name = f"lidm_city_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    home = template.parent / f"{template.name}-pg"
    home.mkdir(exist_ok=True)
    shutil.copy(template / "keyring.json", home / "keyring.json")
    fed_city(home, url)
    try:
        yield name
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, template: Path, tmp_path: Path) -> Iterator[City]:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(template / "keyring.json", home / "keyring.json")
    if request.param == "sqlite":
        shutil.copy(template / "central.db", home / "central.db")
        settings = demo_settings(home)
        name = None
    else:
        source = request.getfixturevalue("pg_template")
        name = f"lidm_copy_{secrets.token_hex(4)}"
        with _pg_admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        settings = demo_settings(home, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    engine = db.connect(settings)
    try:
        yield City(settings, engine)
    finally:
        engine.dispose()
        if name:
            with _pg_admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _rule(rule_id: str):  # type: ignore[no-untyped-def]
    return next(r for r in RULES if r.id == rule_id)


# --------------------------------------------------------------------------- rules as data


def _write_rule(folder: Path, text: str, name: str = "bad_rule") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """id: bad_rule
version: 1.0.0
title: t
hardship_type: death
department: civil_affairs
urgency: high
due_days: 15
summary: s
subject:
  feed: civil_affairs.low_income_roster
  where: {status: active}
"""


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("match:\n  - feed: health.nowhere\n", "no contract health.nowhere"),
        ("match:\n  - feed: health.deaths\n    where: {shoe_size: 42}\n", "health.deaths has no field shoe_size"),
        ("match:\n  - feed: health.deaths\n    where: {gender: robot}\n", "gender: robot not among its codes"),
        ("match:\n  - feed: health.deaths\n    where: {death_date: {soon: 3}}\n", "unknown operator 'soon'"),
        ("match:\n  - feed: health.deaths\n    where: {death_date: {within_days: $days}}\n", "$days is not one of"),
        ("match:\n  - feed: health.deaths\n    where: {name: x}\n", "is not kept in clear"),
        (
            "match:\n  - feed: health.deaths\n    where: {death_date: {within_days: soon}}\n",
            "not a whole number of days",
        ),
        (
            "match:\n  - feed: civil_affairs.low_income_roster\n    where: {categories: {holds: [dibao, poor]}}\n",
            "categories: poor not among its codes",
        ),
        ("match:\n  - feed: health.deaths\n    where: {death_date: {holds: [x]}}\n", "holds applies to a list"),
        (
            "match:\n  - feed: health.medical_expenses\n    total: {field: out_of_pocket, greater_than: lots}\n",
            "health.medical_expenses.out_of_pocket: 'lots' is not a number",
        ),
    ],
)
def test_a_rule_naming_what_the_catalogue_lacks_is_refused_by_name(tmp_path: Path, extra: str, says: str) -> None:
    _write_rule(tmp_path, BASE + extra)
    with pytest.raises(RuleError) as err:
        load_rules(tmp_path, catalog=CATALOG)
    assert "bad_rule" in str(err.value) and says in str(err.value)


def test_a_department_or_hardship_outside_the_warning_contract_is_refused(tmp_path: Path) -> None:
    _write_rule(tmp_path, BASE.replace("department: civil_affairs", "department: police"))
    with pytest.raises(RuleError, match="target_department 'police'"):
        load_rules(tmp_path, catalog=CATALOG)


def test_a_rule_file_must_be_named_for_its_id(tmp_path: Path) -> None:
    _write_rule(tmp_path, BASE, name="other_name")
    with pytest.raises(RuleError, match="must equal the file name"):
        load_rules(tmp_path, catalog=CATALOG)


def test_params_are_overridden_from_configuration_and_unknown_ones_refused() -> None:
    rules = load_rules(catalog=CATALOG, params={"high_medical_cost_assistance.threshold": 50000})
    rule = next(r for r in rules if r.id == "high_medical_cost_assistance")
    assert rule.param_values["threshold"] == 50000 and "50000" in rule.summary_text()
    assert _rule("high_medical_cost_assistance").param_values["threshold"] == 20000  # the loaded rule is untouched
    with pytest.raises(RuleError, match="no param"):
        load_rules(catalog=CATALOG, params={"high_medical_cost_assistance.thresold": 1})
    with pytest.raises(RuleError, match="names no rule"):
        load_rules(catalog=CATALOG, params={"no_such_rule.threshold": 1})


# LIDM_RULE_PARAMS as the operator writes it (JSON): what each bad value must be refused as.
BAD_OVERRIDES = [
    ('"30000; DROP TABLE platform_warning"', "threshold", "is not a number"),
    ('"abc"', "threshold", "is not a number"),
    ("1e999", "threshold", "is not a finite number"),
    ('"1e999"', "threshold", "outside any range"),
    ("NaN", "threshold", "is not a finite number"),
    ('"Infinity"', "threshold", "is not a finite number"),
    ("-5", "threshold", "-5 is below the minimum 0"),
    ("1000001", "threshold", "is above the maximum 1000000"),
    ("true", "threshold", "is true/false, not a number"),
    ("90.5", "window_days", "90.5 is not a whole number"),
    ("0", "window_days", "0 is below the minimum 1"),
]


@pytest.mark.parametrize(("value", "param", "says"), BAD_OVERRIDES)
def test_a_bad_param_override_is_refused_naming_rule_param_problem_and_range(
    monkeypatch: pytest.MonkeyPatch, value: str, param: str, says: str
) -> None:
    """Through the setting as deployed (environment JSON): a ConfigError, never a traceback or a run."""
    monkeypatch.setenv("LIDM_RULE_PARAMS", f'{{"high_medical_cost_assistance.{param}": {value}}}')
    settings = Settings()
    with pytest.raises(ConfigError) as err:
        load_rules(catalog=CATALOG, params=settings.rule_params)
    message = str(err.value)
    allowed = "a decimal number from 0 to 1000000" if param == "threshold" else "a whole number of days from 1 to 1095"
    assert f"high_medical_cost_assistance.{param}" in message and says in message and allowed in message
    assert isinstance(err.value, RuleError) and "DROP" not in message


def test_a_bad_override_stops_lidm_monitor_with_a_message_and_the_listing_shows_ranges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from lidm import cli

    monkeypatch.setattr(cli, "get_settings", Settings)
    monkeypatch.setattr(cli.console, "width", 250)
    runner = CliRunner()
    monkeypatch.setenv("LIDM_RULE_PARAMS", '{"high_medical_cost_assistance.threshold": -5}')
    for args in (["monitor", "rules"], ["monitor", "run"]):
        out = runner.invoke(cli.app, args)
        assert out.exit_code == 2, out.output  # an unexpected exception would be 1
        assert "high_medical_cost_assistance.threshold" in out.output and "Traceback" not in out.output
    monkeypatch.setenv("LIDM_RULE_PARAMS", '{"high_medical_cost_assistance.threshold": "30000"}')
    out = runner.invoke(cli.app, ["monitor", "rules"])
    assert out.exit_code == 0, out.output
    assert "threshold=30000 (decimal 0..1000000)" in out.output and "window_days=365 (days 1..1095)" in out.output
    assert "P180D" in out.output


def test_a_rule_file_whose_default_is_outside_its_own_range_is_refused(tmp_path: Path) -> None:
    param = "params:\n  days: {type: days, default: 5000, min: 1, max: 365}\n"
    path = _write_rule(tmp_path, BASE + param)
    with pytest.raises(RuleError) as err:
        load_rules(tmp_path, catalog=CATALOG)
    assert str(path) in str(err.value) and "params.days" in str(err.value)
    assert "default 5000 is above the maximum 365" in str(err.value)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ("  threshold: 20000\n", "declare a param as {type"),
        ("  threshold: {type: decimal, default: 1, min: 0}\n", "declare a param as {type"),
        ("  threshold: {type: money, default: 1, min: 0, max: 9}\n", "declare a param as {type"),
        ("  threshold: {type: decimal, default: 1, min: 9, max: 0}\n", "min 9 is above max 0"),
        ("  threshold: {type: decimal, default: 1, min: 0, max: .inf}\n", "max is not a finite number"),
        ("  days: {type: days, default: 1, min: -1, max: 9}\n", "a number of days is not negative"),
        ("  days: {type: days, default: 1.5, min: 0, max: 9}\n", "default 1.5 is not a whole number"),
    ],
)
def test_a_param_declared_without_a_type_and_range_is_refused(tmp_path: Path, params: str, says: str) -> None:
    _write_rule(tmp_path, BASE + "params:\n" + params)
    with pytest.raises(RuleError) as err:
        load_rules(tmp_path, catalog=CATALOG)
    assert "bad_rule.yaml: params" in str(err.value) and says in str(err.value)


@pytest.mark.parametrize("period", ["180", "P-1D", "PT6H", "P3651D", "soon"])
def test_a_quiet_period_that_is_not_whole_days_is_refused(tmp_path: Path, period: str) -> None:
    _write_rule(tmp_path, BASE + f"quiet_after_not_eligible: {period}\n")
    with pytest.raises(RuleError, match="quiet_after_not_eligible: an ISO 8601 duration in whole days"):
        load_rules(tmp_path, catalog=CATALOG)


def test_every_rule_declares_its_params_and_a_quiet_period() -> None:
    for rule in RULES:
        assert rule.quiet_after_not_eligible.days > 0, rule.id
        assert "quiet_after_not_eligible:" in (Path(__file__).parents[1] / "rules" / f"{rule.id}.yaml").read_text()
        for name, param in rule.params.items():
            assert param.min <= param.default <= param.max, (rule.id, name)


def test_every_rule_is_evaluated_as_one_statement_per_rule(city: City) -> None:
    """Set-based: the number of SELECTs a dry evaluation sends equals the number of rules."""
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    sa.event.listen(city.engine, "before_cursor_execute", count)
    try:
        with city.engine.connect() as conn:
            for rule in RULES:
                conn.execute(Compiled(rule, CATALOG, AS_OF).tokens()).all()
    finally:
        sa.event.remove(city.engine, "before_cursor_execute", count)
    assert len(statements) == len(RULES)


# --------------------------------------------------------------------------- the warning's life


def test_a_run_raises_warnings_once_and_a_rerun_raises_none(city: City) -> None:
    first = city.run()
    assert sum(c.raised for c in first.counts.values()) > 0
    assert all(c.raised == c.matched for c in first.counts.values())
    second = city.run()
    assert all(c.raised == 0 and c.closed == 0 for c in second.counts.values())
    assert {k: c.open for k, c in second.counts.items()} == {k: c.open for k, c in first.counts.items()}
    w = warning_table(CATALOG)
    with city.engine.connect() as conn:
        rows = conn.execute(
            sa.select(w.c.rule_id, w.c.id_number_token, sa.func.count()).group_by(w.c.rule_id, w.c.id_number_token)
        ).all()
        assert rows and all(n == 1 for *_, n in rows)
        wrong = conn.execute(
            sa.select(sa.func.count())
            .where(
                # 20 working days after Friday 2026-11-27 (tests/test_workdays.py has the holidays)
                sa.or_(w.c.status != "raised", w.c.due_date != date(2026, 12, 25), w.c._sealed.is_(None))
            )
            .where(w.c.rule_id == "roster_unemployed")
        ).scalar_one()
        assert wrong == 0


def test_a_first_run_raises_what_one_warning_at_a_time_would(city: City) -> None:
    """The first run writes its warnings set-based (one INSERT … SELECT per rule for the warnings, their state rows
    and events; the evidence digests worked out for all of them at once). Each warning is still what the rule says
    of that one person: numbered in token order, routed as holder_for routes the person, due on the rule's day, with
    the digest of that person's evidence alone, one state row and one "raised" event; and the people are those the
    rule's own query finds, whose sums the run shares with other rules."""
    keyring = load_keyring(city.settings)
    key = quiet.evidence_key(keyring)
    assert key is not None
    result = run_monitor(city.engine, RULES, CATALOG, as_of=AS_OF, now=NOW, keyring=keyring)
    dues = due_dates(RULES, AS_OF, workdays.OFFICIAL)
    w = warning_table(CATALOG)
    checked = 0
    with city.engine.connect() as conn:
        dry = evaluate(conn, RULES, AS_OF, CATALOG)  # each rule's own query, its sums not shared
        events = conn.execute(sa.select(warning_event)).all()
        by_warning = {e.warning_id: e for e in events}
        assert len(by_warning) == len(events)  # one event per warning
        for rule in RULES:
            rows = conn.execute(
                sa.select(w, warning_state)
                .join(warning_state, warning_state.c.warning_id == w.c.warning_id)
                .where(w.c.rule_id == rule.id)
                .order_by(w.c.id_number_token)
            ).all()
            assert len(rows) == result.counts[rule.id].raised
            assert {r.id_number_token for r in rows} == dry[rule.id], rule.id  # the run's shared sums (Totals) agree
            compiled = Compiled(rule, CATALOG, AS_OF)
            for n, row in enumerate(rows, 1):
                assert row.warning_id.endswith(f"-{n}") and row.raised_run == row._batch_id == result.run_id
                assert (row.subject_token, row.department, row.sealed_by) == (
                    row.id_number_token,
                    rule.department,
                    rule.subject.feed,
                )
                assert (row.target_consumer, row.action_level) == routing.holder_for(
                    CATALOG.consumers, rule.department, rule.level, row.district_code, row.street_code
                )
                assert (row.due_date, row.status, row.raised_at) == (dues[rule.id], "raised", NOW)
                alone = quiet.digests(conn, compiled, [row.id_number_token], key)[row.id_number_token]
                assert row._row_digest == alone, rule.id
                event = by_warning[row.warning_id]
                assert (event.status, event.detail) == ("raised", f"rule {rule.id} {rule.version}")
                checked += 1
    assert checked == len(events) > 0


def _warning_rows(city: City) -> dict[str, list[tuple]]:
    """Every row of the warning tables, with its row version (xmin) on PostgreSQL: an UPDATE that changes nothing
    still makes a new one."""
    out = {}
    with city.engine.connect() as conn:
        for table in (warning_table(CATALOG), warning_state, warning_event):
            version = [sa.literal_column("xmin::text")] if city.engine.dialect.name == "postgresql" else []
            rows = conn.execute(sa.select(*version, table).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def test_a_run_that_finds_nothing_new_reads_each_rule_once_and_writes_no_warning(city: City) -> None:
    """Steady state: each rule's query runs once (into the run's table of matches; what is new and what went away
    are read from there), each distinct sum once, and the warning tables are left as they were, row versions
    included."""
    city.run()
    before = _warning_rows(city)
    assert sum(len(rows) for rows in before.values()) > 0
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    sa.event.listen(city.engine, "before_cursor_execute", seen)
    try:
        again = city.run()
    finally:
        sa.event.remove(city.engine, "before_cursor_execute", seen)
    assert sum(c.matched for c in again.counts.values()) > 0
    assert all(c.raised == 0 and c.closed == 0 for c in again.counts.values())
    assert _warning_rows(city) == before
    feeds = {CATALOG[f].table for rule in RULES for f in rule.feeds}
    reading = [s for s in statements if any(re.search(rf'[\s"(]{t}[\s")]', s) for t in feeds)]
    matches = [s for s in reading if s.startswith("CREATE TEMPORARY TABLE lidm_run_matches")]
    sums = [s for s in reading if s.startswith("CREATE TEMPORARY TABLE lidm_run_total_")]
    assert len(matches) == len(RULES) and len(matches) + len(sums) == len(reading), "\n".join(reading)
    # the same sum asked by several rules (high medical costs) is made once (lidm.monitor.totals)
    asking = [r for r in RULES if any(c.total for c in (*r.match, *r.match_any, *r.absent))]
    assert 0 < len(sums) < len(asking)


def test_a_person_with_two_rows_in_a_subject_not_keyed_by_person_gets_one_warning(city: City) -> None:
    """A subject keyed by the person's token is matched row for row; one keyed otherwise (a disability certificate,
    keyed by its number: a person may hold two) is still grouped to one match, one warning, per person."""
    rule = next(r for r in RULES if r.id == "severe_disability_not_on_roster")
    assert not Compiled(rule, CATALOG, AS_OF).one_row_a_person
    assert Compiled(next(r for r in RULES if r.id == "roster_deceased"), CATALOG, AS_OF).one_row_a_person
    certificates = city.table(rule.subject.feed)
    with city.engine.begin() as conn:
        person = sorted(evaluate(conn, [rule], AS_OF, CATALOG)[rule.id])[0]
        row = conn.execute(sa.select(certificates).where(certificates.c.id_number_token == person)).mappings().first()
        conn.execute(sa.insert(certificates).values({**row, "certificate_no_token": secrets.token_hex(32)}))
        held = conn.execute(
            sa.select(sa.func.count()).select_from(certificates).where(certificates.c.id_number_token == person)
        ).scalar_one()
    assert held >= 2
    result = city.run(rules=[rule])
    mine = [w for w in city.warnings(rule.id) if w.id_number_token == person]
    assert len(mine) == 1 and result.counts[rule.id].raised == len(city.warnings(rule.id))


def test_a_run_s_table_refuses_a_second_row_for_its_key(city: City) -> None:
    """A run's tables of matches and sums hold one row per person (a unique index, which is also what a nested loop
    probes when the planner misjudges the other side); a query that gave two would fail, not raise two warnings."""
    from lidm.monitor import scratch

    once = sa.select(sa.literal("a").label("k"))
    with city.engine.begin() as conn:
        made = scratch.table_as(conn, "lidm_run_probe", [sa.Column("k", sa.String)], once, key="k")
        assert scratch.count(conn, made) == 1
        scratch.drop(conn, made)
    with pytest.raises(sa.exc.IntegrityError), city.engine.begin() as conn:
        scratch.table_as(conn, "lidm_run_probe", [sa.Column("k", sa.String)], sa.union_all(once, once), key="k")


def test_the_sums_leave_the_rules_planner_settings_as_they_found_them(city: City) -> None:
    """The shared sums are made by sorting (hashing off for their statements only): the rules after them plan with
    the session's own setting, whatever it was."""
    if city.engine.dialect.name != "postgresql":
        pytest.skip("a planner setting of PostgreSQL")
    from lidm.monitor.totals import Totals

    asking = [r for r in RULES if any(c.total for c in (*r.match, *r.match_any, *r.absent))]
    for setting in ("on", "off"):
        with city.engine.begin() as conn:
            conn.execute(sa.select(sa.func.set_config("enable_hashagg", setting, True)))
            sums = Totals(conn, warning_table(CATALOG).c.id_number_token.type)
            for rule in asking:
                Compiled(rule, CATALOG, AS_OF, totals=sums)
            sums.make()
            assert conn.execute(sa.select(sa.func.current_setting("enable_hashagg"))).scalar_one() == setting
            made = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'lidm_run_total_%'"))
            assert made.scalar_one() >= 2
            sums.drop()


def test_warnings_carry_the_rule_s_routing_and_no_personal_value_in_the_summary(city: City) -> None:
    city.run()
    for rule in RULES:
        for row in city.warnings(rule.id):
            assert (row.target_department, row.hardship_type, row.urgency) == (
                rule.department,
                rule.hardship_type,
                rule.urgency.value,
            )
            assert row.summary == rule.summary_text()


def test_a_warning_closes_when_its_subject_leaves_the_roster_and_says_why(city: City) -> None:
    city.run()
    warning = city.warnings("roster_deceased", "raised")[0]
    roster = city.table("civil_affairs.low_income_roster")
    with city.engine.begin() as conn:
        conn.execute(
            sa.update(roster).where(roster.c.id_number_token == warning.id_number_token).values(status="terminated")
        )
    result = city.run()
    assert result.counts["roster_deceased"].closed == 1
    [closed] = [w for w in city.warnings("roster_deceased") if w.warning_id == warning.warning_id]
    assert closed.status == "closed" and closed.closed_at is not None
    assert "no longer selected in civil_affairs.low_income_roster" in closed.close_reason
    with city.engine.connect() as conn:
        events = conn.execute(
            sa.select(warning_event.c.status, warning_event.c.detail)
            .where(warning_event.c.warning_id == closed.warning_id)
            .order_by(warning_event.c.id)
        ).all()
    assert [e.status for e in events] == ["raised", "closed"] and events[1].detail == closed.close_reason


def test_a_policy_warning_closes_when_the_missing_subsidy_appears_and_comes_back_if_it_goes(city: City) -> None:
    city.run()
    warning = city.warnings("severe_disability_no_care_subsidy", "raised")[0]
    others = len(city.warnings("severe_disability_no_care_subsidy")) - 1
    care = city.table("civil_affairs.severe_disability_care_subsidy")
    with city.engine.begin() as conn:
        row = dict(conn.execute(sa.select(care).where(care.c.status == "active").limit(1)).mappings().one())
        row["id_number_token"] = warning.id_number_token
        conn.execute(sa.insert(care).values(row))
    assert city.run().counts["severe_disability_no_care_subsidy"].closed == 1
    [closed] = [w for w in city.warnings("severe_disability_no_care_subsidy") if w.warning_id == warning.warning_id]
    assert "now found in civil_affairs.severe_disability_care_subsidy" in closed.close_reason
    with city.engine.begin() as conn:  # the subsidy stops: the gap is back, a new warning is raised
        conn.execute(
            sa.update(care).where(care.c.id_number_token == warning.id_number_token).values(status="terminated")
        )
    assert city.run().counts["severe_disability_no_care_subsidy"].raised == 1
    statuses = [
        w.status
        for w in city.warnings("severe_disability_no_care_subsidy")
        if w.id_number_token == warning.id_number_token
    ]
    assert sorted(statuses) == ["closed", "raised"]
    assert len(city.warnings("severe_disability_no_care_subsidy", "raised")) == others + 1


def test_a_disposed_warning_is_not_raised_again_while_its_condition_holds(city: City) -> None:
    city.run()
    warnings = city.warnings("roster_unemployed", "raised")
    target = warnings[0]
    now = city_now()
    with city.engine.begin() as conn:
        assert transition(conn, CATALOG, [target.warning_id], "pushed", actor="test", at=now) == [target.warning_id]
        assert transition(
            conn, CATALOG, [target.warning_id], "disposed", actor="test", at=now, extra={"disposition_id": "D-1"}
        ) == [target.warning_id]
        # disposed is final: neither pushed nor acknowledged again
        assert transition(conn, CATALOG, [target.warning_id], "acknowledged", actor="test", at=now) == []
    assert city.run().counts["roster_unemployed"].raised == 0
    unemployment = city.table("hr_social_security.unemployment")
    with city.engine.begin() as conn:
        conn.execute(
            sa.update(unemployment)
            .where(unemployment.c.id_number_token == target.id_number_token)
            .values(registration_status="deregistered")
        )
    city.run()
    [after] = [w for w in city.warnings("roster_unemployed") if w.warning_id == target.warning_id]
    assert after.status == "disposed" and after.condition_cleared_at is not None
    with city.engine.begin() as conn:
        conn.execute(
            sa.update(unemployment)
            .where(unemployment.c.id_number_token == target.id_number_token)
            .values(registration_status="registered")
        )
    assert city.run().counts["roster_unemployed"].raised == 1


def test_past_its_due_date_a_warning_turns_overdue_and_stays_so_when_pushed(city: City) -> None:
    city.run()
    # Past roster_deceased's due date (10 working days: 12-11); the run's own deadlines stay inside the calendar.
    late = date(2026, 12, 14)
    result = city.run(as_of=late, rules=[_rule("roster_deceased")])
    overdue = city.warnings("roster_deceased", "overdue") + city.warnings("roster_unemployed", "overdue")
    assert result.overdue >= len(overdue) > 0
    ids = [w.warning_id for w in overdue]
    with city.engine.begin() as conn:
        moved = transition(conn, CATALOG, ids, "pushed", actor="test", at=city_now())
    assert sorted(moved) == sorted(ids)
    again = city.warnings("roster_deceased") + city.warnings("roster_unemployed")
    assert all(w.status == "overdue" and w.pushed_at is not None for w in again if w.warning_id in ids)


def test_a_run_that_fails_half_way_leaves_nothing(city: City, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = Compiled.matches

    def failing(self):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:
            raise sa.exc.OperationalError("SELECT", {}, Exception("connection lost"))
        return real(self)

    monkeypatch.setattr(Compiled, "matches", failing)
    with pytest.raises(sa.exc.OperationalError):
        city.run()
    w = warning_table(CATALOG)
    with city.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(w)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(monitor_run)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(warning_state)).scalar_one() == 0
    monkeypatch.setattr(Compiled, "matches", real)
    assert sum(c.raised for c in city.run().counts.values()) > 0


def test_monitor_uses_the_deployment_settings_and_only_the_rules_asked(city: City) -> None:
    with city.engine.connect() as conn:
        dead = evaluate(conn, [_rule("roster_deceased")], AS_OF, CATALOG)["roster_deceased"]
    result = monitor(city.settings, as_of=AS_OF, rule_ids=["roster_deceased"])
    assert list(result.counts) == ["roster_deceased"] and result.counts["roster_deceased"].raised == len(dead) >= 2


# --------------------------------------------------------------------------- not asking the same person again

NOW = datetime.combine(AS_OF, time(9))
MEDICAL = "high_medical_cost_assistance"


def _answer(city: City, warning: sa.Row, outcome: str, at: datetime) -> None:
    """A department's answer as the intake stores it: a platform_disposition row, the warning disposed."""
    d = city.table("platform.disposition")
    did = f"D{at:%Y%m%d}-test-{warning.warning_id[-6:]}"
    with city.engine.begin() as conn:
        conn.execute(
            sa.insert(d).values(
                disposition_id=did,
                warning_id=warning.warning_id,
                department=warning.target_department,
                outcome=outcome,
                handler_masked="*",
                disposed_at=at,
                id_number_token=warning.id_number_token,
                _sealed=b"not-a-real-sealed-row",
                id_number_masked=warning.id_number_masked,
                household_id_token=warning.household_id_token,
                district_code=warning.district_code,
                updated_at=at,
                _batch_id="test",
                _row_digest=f"test-{did}",
            )
        )
        assert transition(
            conn, CATALOG, [warning.warning_id], "disposed", actor="test", at=at, extra={"disposition_id": did}
        )


@pytest.mark.parametrize("case", ["within the period", "after the period", "data changed"])
def test_a_not_eligible_answer_is_not_asked_again_when_a_threshold_comes_back(
    city: City, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The department's report: threshold raised, then lowered back, and the person answered "not eligible"
    was asked again. Within the rule's quiet period (P180D) and with their data unchanged they are not, and the
    run says how many it held back; after the period, or once their data changed, they are."""
    keyring = load_keyring(city.settings)
    usual = [_rule(MEDICAL)]
    raised = [r for r in load_rules(catalog=CATALOG, params={f"{MEDICAL}.threshold": 1000000}) if r.id == MEDICAL]

    def run(rules: list) -> MonitorResult:  # type: ignore[type-arg]
        return run_monitor(city.engine, rules, CATALOG, as_of=AS_OF, now=NOW, keyring=keyring)

    run(usual)
    with city.engine.connect() as conn:
        still = evaluate(conn, raised, AS_OF, CATALOG)[MEDICAL]  # flagged whatever the threshold (emergency fund)
    target = next(w for w in city.warnings(MEDICAL, "raised") if w.id_number_token not in still)
    assert len(target._row_digest) == 64  # the evidence digest, kept when the warning was raised
    answered = NOW - timedelta(days=181) if case == "after the period" else NOW
    _answer(city, target, "not_eligible", answered)

    up = run(raised)  # the condition goes away: the answered warning stops blocking
    assert up.counts[MEDICAL].raised == 0 and up.counts[MEDICAL].closed > 0
    [cleared] = [w for w in city.warnings(MEDICAL) if w.warning_id == target.warning_id]
    assert cleared.status == "disposed" and cleared.condition_cleared_at is not None

    if case == "data changed":  # a bill of the person changed: what the rule reads is no longer what was answered
        bills = city.table("health.medical_expenses")
        with city.engine.begin() as conn:
            bill = conn.execute(
                sa.select(bills.c.settlement_id).where(bills.c.id_number_token == target.id_number_token).limit(1)
            ).scalar_one()
            conn.execute(
                sa.update(bills)
                .where(bills.c.settlement_id == bill)
                .values(policy_scope_self_pay=sa.func.coalesce(bills.c.policy_scope_self_pay, 0) + 1)
            )

    back = run(usual)
    mine = [w for w in city.warnings(MEDICAL) if w.id_number_token == target.id_number_token]
    with city.engine.connect() as conn:
        counts = json.loads(
            conn.execute(sa.select(monitor_run.c.counts).where(monitor_run.c.run_id == back.run_id)).scalar_one()
        )
    if case == "within the period":
        assert [w.warning_id for w in mine] == [target.warning_id]
        assert back.counts[MEDICAL].suppressed == 1 == counts[MEDICAL]["suppressed"]
        assert back.counts[MEDICAL].raised == up.counts[MEDICAL].closed  # everyone else is asked again
        from lidm.cli.monitor import print_monitor

        print_monitor(back)
        assert "suppressed" in capsys.readouterr().out
    else:
        assert back.counts[MEDICAL].suppressed == 0 == counts[MEDICAL]["suppressed"]
        assert sorted(w.status for w in mine) == ["disposed", "raised"]
        assert back.counts[MEDICAL].raised == up.counts[MEDICAL].closed + 1


def test_only_a_not_eligible_answer_holds_back(city: City) -> None:
    """A granted person whose condition comes back is asked again: the quiet period is about "not eligible"."""
    keyring = load_keyring(city.settings)
    usual = [_rule(MEDICAL)]
    raised = [r for r in load_rules(catalog=CATALOG, params={f"{MEDICAL}.threshold": 1000000}) if r.id == MEDICAL]
    run_monitor(city.engine, usual, CATALOG, as_of=AS_OF, now=NOW, keyring=keyring)
    with city.engine.connect() as conn:
        still = evaluate(conn, raised, AS_OF, CATALOG)[MEDICAL]
    target = next(w for w in city.warnings(MEDICAL, "raised") if w.id_number_token not in still)
    _answer(city, target, "terminated", NOW)
    run_monitor(city.engine, raised, CATALOG, as_of=AS_OF, now=NOW, keyring=keyring)
    back = run_monitor(city.engine, usual, CATALOG, as_of=AS_OF, now=NOW, keyring=keyring)
    assert back.counts[MEDICAL].suppressed == 0
    assert len([w for w in city.warnings(MEDICAL) if w.id_number_token == target.id_number_token]) == 2


# --------------------------------------------------------------------------- scenarios, groups, outcomes


def test_every_rule_names_a_section_of_the_policy_and_a_group() -> None:
    """`scenario` (or its hardship type's default) is a section of rules/scenarios/sections.yaml; a rule whose subject
    is not the roster is one of "may qualify" unless its file says otherwise; per_scenario counts every rule once."""
    from lidm.monitor.rules import default_rules_dir
    from lidm.monitor.scenarios import GROUPS, load_scenarios, per_scenario

    rules = load_rules(catalog=CATALOG)
    scenarios = load_scenarios(default_rules_dir())
    assert scenarios.document.startswith("长民发〔2025〕22号")
    for rule in rules:
        assert rule.scenario in scenarios.sections, rule.id
        if rule.subject.feed != "civil_affairs.low_income_roster" and rule.group is None:
            assert rule.group_of.value == "may_qualify", rule.id
    missing = {r.id for r in rules if r.id.endswith("_not_on_roster") or r.id == "child_in_need_no_allowance"}
    assert {r.id for r in rules if r.group_of.value == "may_qualify"} >= missing - {"return_risk_not_on_roster"}
    rows = per_scenario(rules, scenarios)
    assert sum(r["rules"] for r in rows) == len(rules)
    assert all(r["rules"] == sum(r[g] for g in GROUPS) for r in rows)
    assert {r["scenario"] for r in rows} >= set(scenarios.sections)  # sections without a rule are shown too


def test_a_scenario_outside_the_policy_or_a_group_outside_the_three_is_refused(tmp_path: Path) -> None:
    from lidm.monitor.rules import default_rules_dir

    shutil.copytree(default_rules_dir() / "scenarios", tmp_path / "scenarios")
    _write_rule(tmp_path, BASE + "scenario: 九(九)\n")
    with pytest.raises(RuleError, match=r"scenario 九\(九\) is not a section"):
        load_rules(tmp_path, catalog=CATALOG)
    _write_rule(tmp_path, BASE + "scenario: not a section\n")
    with pytest.raises(RuleError, match="scenario"):
        load_rules(tmp_path, catalog=CATALOG)
    _write_rule(tmp_path, BASE + "group: may_stay\n")
    with pytest.raises(RuleError, match="group"):
        load_rules(tmp_path, catalog=CATALOG)
    _write_rule(tmp_path, BASE + "scenario: 二（四）\ngroup: may_leave\n")  # fullwidth brackets are the same section
    (rule,) = load_rules(tmp_path, catalog=CATALOG)
    assert (rule.scenario, rule.group_of.value) == ("二(四)", "may_leave")
    assert rule.as_row()["scenario"] == "二(四)" and rule.as_row()["group"] == "may_leave"
    _write_rule(tmp_path, BASE)  # no key: the hardship type's default section, the subject's default group
    (rule,) = load_rules(tmp_path, catalog=CATALOG)
    assert (rule.scenario, rule.group_of.value) == ("二(四)", "needs_more_help")


def test_informed_not_applied_is_a_final_outcome_with_a_reason_and_no_amount() -> None:
    """The seed's "应当告知相关救助政策": told of the policy, the person did not apply; the warning is done."""
    from lidm.monitor.checks import inconsistent_outcome
    from lidm.monitor.dispositions import FINAL

    outcome = CATALOG["platform.disposition"].field("outcome")
    assert "informed_not_applied" in outcome.enum and "informed_not_applied" in FINAL
    told = {"outcome": "informed_not_applied", "reason": "已入户告知低保、临时救助政策，本人暂不申请"}
    assert inconsistent_outcome(told) is None
    assert inconsistent_outcome(told | {"reason": ""}) == "outcome informed_not_applied needs a reason"
    said = inconsistent_outcome(told | {"amount": 500})
    assert said is not None and "grants nothing" in said


def test_lidm_monitor_rules_counts_the_rules_per_section(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from lidm import cli

    monkeypatch.setattr(cli, "get_settings", Settings)
    monkeypatch.setattr(cli.console, "width", 250)
    out = CliRunner().invoke(cli.app, ["monitor", "rules"])
    assert out.exit_code == 0, out.output
    assert "Rules per section of the policy 长民发〔2025〕22号" in out.output
    assert "三(二)2" in out.output and "教育救助" in out.output and "may qualify" in out.output
    listed = CliRunner().invoke(cli.app, ["monitor", "rules", "--json"])
    rows = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
    assert {r["rule"]: r["group"] for r in rows}["hardship_student_not_on_roster"] == "may_qualify"
    assert all(r["scenario"] for r in rows)
