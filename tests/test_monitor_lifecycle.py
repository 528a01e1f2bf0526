"""The monitoring loop's rules and warning life, on a synthetic city in SQLite and in PostgreSQL."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import _pg_admin
from lidm_samples.demo import demo_settings, run_demo

from lidm.central import db
from lidm.central.schema import dataset_table, monitor_run, warning_event, warning_state
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.monitor import Compiled, RuleError, load_rules, run_monitor, transition
from lidm.monitor.lifecycle import city_now, monitor, warning_table

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
    run_demo(home, size=1500, bad=0)
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
    run_demo(home, size=1500, bad=0, central_url=url)
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
    assert rule.params["threshold"] == 50000 and "50000" in rule.summary_text()
    with pytest.raises(RuleError, match="no param"):
        load_rules(catalog=CATALOG, params={"high_medical_cost_assistance.thresold": 1})
    with pytest.raises(RuleError, match="names no rule"):
        load_rules(catalog=CATALOG, params={"no_such_rule.threshold": 1})


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
                sa.or_(w.c.status != "raised", w.c.due_date != AS_OF + timedelta(days=30), w.c.id_number_enc.is_(None))
            )
            .where(w.c.rule_id == "roster_unemployed")
        ).scalar_one()
        assert wrong == 0


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
    late = AS_OF + timedelta(days=40)
    result = city.run(as_of=late, rules=[_rule("roster_unemployed"), _rule("roster_deceased")])
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
    result = monitor(city.settings, as_of=AS_OF, rule_ids=["roster_deceased"])
    assert list(result.counts) == ["roster_deceased"] and result.counts["roster_deceased"].raised == 2
