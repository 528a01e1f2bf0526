"""The happiness list, the statistics and the analyst's report, on a synthetic city in SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from _city import fed_city
from lidm_samples.demo import demo_settings
from lidm_samples.world import build_world
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from lidm import cli
from lidm.central import db
from lidm.central.schema import dataset_table, disposition_result
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.monitor import stats
from lidm.monitor.happiness import build_assistance_records
from lidm.monitor.lifecycle import OPEN, monitor, transition, warning_table
from lidm.monitor.report import SECTIONS, report, write_report
from lidm.monitor.rules import load_rules

AS_OF = date(2026, 11, 27)
LATER = date(2027, 1, 5)  # a second run, past the first warnings' due dates: some become overdue
# Its deadlines fall in 2027: counted Monday to Friday on purpose until chinesecalendar holds that year (lidm.workdays).
STOPGAP = {"workdays_assume_weekdays_through": 2027}
NOW = datetime(2026, 11, 27, 12, 0)
CATALOG = load_catalog()
# (outcome, assistance kind, amount, what the feedback decided) for the first warnings, in warning_id order.
DISPOSITIONS = (
    ("granted", "temporary_assistance", 2000, "applied"),
    ("granted", "medical_assistance", 3500.5, "applied"),
    ("granted", None, None, "applied"),  # granted without a kind or an amount: other, 0 yuan
    ("granted", "temporary_assistance", 1000, "refused"),  # refused by the feedback: not assistance
    ("not_eligible", None, None, "applied"),
    ("referred", None, None, "applied"),
)
OPEN_SQL = "('" + "','".join(OPEN) + "')"
KEY_SQL = "CASE WHEN household_id_token IS NOT NULL THEN 'H:' || household_id_token ELSE 'P:' || id_number_token END"


@dataclass
class City:
    settings: Settings
    engine: sa.Engine
    granted: dict[str, tuple[str, float]]  # warning_id -> (kind, amount) of granted and applied dispositions
    later_run: dict[str, dict[str, int]]

    def scalar(self, sql: str) -> object:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()

    def rows(self, sql: str) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql)).all()

    def build(self, now: datetime = NOW) -> dict[str, int]:
        return build_assistance_records(self.engine, CATALOG, now=now)


def _dispose(engine: sa.Engine) -> dict[str, tuple[str, float]]:
    """Dispositions as the feedback channel stores them: platform_disposition rows and their results."""
    w = warning_table(CATALOG)
    d = dataset_table(CATALOG["platform.disposition"], sa.MetaData())
    at = datetime(2026, 12, 1, 9, 0)
    granted: dict[str, tuple[str, float]] = {}
    with engine.begin() as conn:
        warnings = conn.execute(sa.select(w).order_by(w.c.warning_id).limit(len(DISPOSITIONS))).all()
        assert len(warnings) == len(DISPOSITIONS), "the demo city raised too few warnings for this test"
        for i, (warning, (outcome, kind, amount, status)) in enumerate(zip(warnings, DISPOSITIONS, strict=True)):
            did = f"D20261201-test{i:04d}"
            conn.execute(
                sa.insert(d).values(
                    disposition_id=did,
                    warning_id=warning.warning_id,
                    department=warning.target_department,
                    outcome=outcome,
                    assistance_kind=kind,
                    amount=amount,
                    granted_on=at.date() if outcome == "granted" else None,
                    handler_masked="*",
                    disposed_at=at,
                    id_number_token=warning.id_number_token,
                    _sealed=b"not-a-real-sealed-row",
                    id_number_masked=warning.id_number_masked,
                    household_id_token=warning.household_id_token,
                    district_code=warning.district_code,
                    updated_at=at,
                    _batch_id="test",
                    _row_digest=f"test-{i}",
                )
            )
            conn.execute(
                sa.insert(disposition_result).values(
                    disposition_id=did,
                    warning_id=warning.warning_id,
                    department=warning.target_department,
                    source_name="test",
                    status=status,
                    decided_at=at,
                )
            )
            if status == "applied" and outcome != "referred":
                transition(
                    conn, CATALOG, [warning.warning_id], "disposed", actor="test", at=at, extra={"disposition_id": did}
                )
            if status == "applied" and outcome == "granted":
                granted[warning.warning_id] = (kind or "other", float(amount or 0))
    return granted


def _make_city(home: Path, central_url: str | None = None) -> City:
    settings = fed_city(home, central_url)
    monitor(settings, as_of=AS_OF)
    engine = db.connect(settings)
    granted = _dispose(engine)
    later = monitor(settings.model_copy(update=STOPGAP), as_of=LATER).as_dict()["rules"]
    city = City(settings, engine, granted, later)
    city.build()
    return city


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    """One city in SQLite: two monitoring runs, a few dispositions, the happiness list built."""
    city = _make_city(tmp_path_factory.mktemp("report-city"))
    yield city
    city.engine.dispose()


@pytest.fixture
def city_copy(template: City, tmp_path: Path) -> Iterator[City]:
    """A copy of the template city for a test that changes it."""
    template.engine.dispose()  # closes every connection: SQLite folds its WAL into the file
    home = tmp_path / "home"
    home.mkdir()
    for name in ("central.db", "keyring.json"):
        shutil.copy(template.settings.home / name, home / name)
    settings = demo_settings(home)
    engine = db.connect(settings)
    yield City(settings, engine, template.granted, template.later_run)
    engine.dispose()


# --------------------------------------------------------------------------- the happiness list

ROUTINE = "source = 'routine'"
# What each source feed must give: (records filter, count and sum over the source, in direct SQL).
EXPECTED = {
    "education assistance": (
        f"department = 'education' AND assistance_kind = 'education_assistance' AND {ROUTINE}",
        "SELECT count(*), sum(amount) FROM education_education_assistance WHERE _retired_batch IS NULL",
    ),
    "temporary assistance": (
        f"assistance_kind = 'temporary_assistance' AND {ROUTINE}",
        "SELECT count(*), sum(amount) FROM civil_affairs_temporary_assistance WHERE _retired_batch IS NULL",
    ),
    "premium subsidy": (
        "assistance_kind = 'premium_subsidy'",
        "SELECT count(*), sum(amount) FROM medical_insurance_medical_assistance "
        "WHERE _retired_batch IS NULL AND medical_assistance_kind = 'premium_subsidy'",
    ),
    "medical assistance": (
        f"department = 'medical_insurance' AND assistance_kind = 'medical_assistance' AND {ROUTINE}",
        "SELECT count(*), sum(amount) FROM medical_insurance_medical_assistance "
        "WHERE _retired_batch IS NULL AND medical_assistance_kind <> 'premium_subsidy'",
    ),
    "disease emergency fund": (
        f"department = 'health' AND {ROUTINE}",
        "SELECT count(*), sum(fund_paid) FROM health_disease_emergency_fund "
        "WHERE _retired_batch IS NULL AND id_number_token IS NOT NULL",
    ),
    "disaster relief": (
        f"department = 'emergency' AND {ROUTINE}",
        "SELECT count(*), sum(amount) FROM emergency_disaster_relief WHERE _retired_batch IS NULL",
    ),
    "legal aid": (
        f"department = 'justice' AND {ROUTINE}",
        "SELECT count(*), 0 FROM justice_legal_aid WHERE _retired_batch IS NULL "
        "AND case_status IN ('granted', 'assigned', 'closed', 'terminated')",
    ),
    "public-welfare posts": (
        f"department = 'hr_social_security' AND {ROUTINE}",
        "SELECT count(*), 0 FROM hr_social_security_employment WHERE _retired_batch IS NULL "
        "AND employment_form = 'public_welfare_post'",
    ),
    "housing: allocations, this month's rent subsidies, approved renovations": (
        f"department = 'housing' AND {ROUTINE}",
        "SELECT sum(n), sum(s) FROM ("
        " SELECT count(*) AS n, 0 AS s FROM housing_public_rental_housing"
        "  WHERE _retired_batch IS NULL AND support_kind = 'physical_allocation'"
        " UNION ALL SELECT count(*), sum(monthly_subsidy) FROM housing_public_rental_housing"
        "  WHERE _retired_batch IS NULL AND support_kind = 'rent_subsidy' AND status = 'active' AND monthly_subsidy > 0"
        " UNION ALL SELECT count(*), sum(subsidy_amount) FROM housing_rural_house_renovation"
        "  WHERE _retired_batch IS NULL AND approval_date IS NOT NULL) AS parts",
    ),
    "dibao allowance of the month": (
        "assistance_kind = 'dibao_allowance'",
        "SELECT count(*), sum(monthly_amount) FROM civil_affairs_low_income_roster "
        "WHERE _retired_batch IS NULL AND status = 'active' AND monthly_amount > 0 AND category = 'dibao'",
    ),
    "tekun support of the month": (
        "assistance_kind = 'tekun_support'",
        "SELECT count(*), sum(monthly_amount) FROM civil_affairs_low_income_roster "
        "WHERE _retired_batch IS NULL AND status = 'active' AND monthly_amount > 0 AND category = 'tekun'",
    ),
    "disability subsidies of the month": (
        "assistance_kind = 'disability_subsidy'",
        "SELECT sum(n), sum(s) FROM ("
        " SELECT count(*) AS n, sum(monthly_amount) AS s FROM civil_affairs_hardship_disability_subsidy"
        "  WHERE _retired_batch IS NULL AND status = 'active' AND monthly_amount > 0"
        " UNION ALL SELECT count(*), sum(monthly_amount) FROM civil_affairs_severe_disability_care_subsidy"
        "  WHERE _retired_batch IS NULL AND status = 'active' AND monthly_amount > 0) AS parts",
    ),
    "children's allowance and other roster money of the month": (
        f"department = 'civil_affairs' AND assistance_kind = 'other' AND {ROUTINE}",
        "SELECT sum(n), sum(s) FROM ("
        " SELECT count(*) AS n, sum(monthly_amount) AS s FROM civil_affairs_children_in_need"
        "  WHERE _retired_batch IS NULL AND status = 'active' AND monthly_amount > 0"
        " UNION ALL SELECT count(*), sum(monthly_amount) FROM civil_affairs_low_income_roster"
        "  WHERE _retired_batch IS NULL AND status = 'active' AND monthly_amount > 0"
        "  AND category NOT IN ('dibao', 'tekun')) AS parts",
    ),
}


def _check_sources(city: City) -> int:
    total = 0
    for what, (records, source) in EXPECTED.items():
        want_n, want_sum = city.rows(source)[0]
        got_n, got_sum = city.rows(f"SELECT count(*), sum(amount) FROM platform_assistance_record WHERE {records}")[0]
        assert got_n == want_n, f"{what}: {got_n} records for {want_n} source rows"
        assert round(float(got_sum or 0), 2) == round(float(want_sum or 0), 2), f"{what}: amounts differ"
        total += got_n
    return total


def test_the_list_holds_every_assistance_of_every_source_feed(template: City) -> None:
    routine = _check_sources(template)
    assert routine == template.scalar(f"SELECT count(*) FROM platform_assistance_record WHERE {ROUTINE}")
    assert routine > 300  # the demo city's size: every kind of feed contributes
    bad = template.rows(
        "SELECT record_id FROM platform_assistance_record WHERE length(record_id) > 40 OR id_number_token IS NULL "
        "OR id_number_masked IS NULL OR _sealed IS NULL OR district_code IS NULL OR granted_on IS NULL"
    )
    assert bad == []
    # The household comes from the source, or from the roster for a person on it (one household, one chain).
    orphans = template.scalar(
        "SELECT count(*) FROM platform_assistance_record a JOIN civil_affairs_low_income_roster r "
        "ON r.id_number_token = a.id_number_token AND r._retired_batch IS NULL WHERE a.household_id_token IS NULL"
    )
    assert orphans == 0


def test_every_granted_applied_disposition_appears_once_with_its_amount(template: City) -> None:
    rows = template.rows(
        "SELECT warning_id, assistance_kind, amount, disbursement_status, department FROM platform_assistance_record "
        "WHERE source = 'warning'"
    )
    assert sorted(r.warning_id for r in rows) == sorted(template.granted)  # once each; refused and others absent
    for r in rows:
        kind, amount = template.granted[r.warning_id]
        assert (r.assistance_kind, float(r.amount), r.disbursement_status) == (kind, amount, "approved")
    departments = dict(template.rows("SELECT warning_id, target_department FROM platform_warning"))
    assert all(r.department == departments[r.warning_id] for r in rows)


def test_a_rebuild_changes_nothing_then_follows_what_changed(city_copy: City) -> None:
    city = city_copy
    before = city.rows("SELECT record_id, updated_at, _batch_id FROM platform_assistance_record ORDER BY record_id")
    again = city.build()
    assert again["inserted"] == again["updated"] == 0 and again["records"] == len(before)
    assert all(v == 0 for k, v in again.items() if k != "records")
    assert city.rows("SELECT record_id, updated_at, _batch_id FROM platform_assistance_record ORDER BY 1") == before

    ta = dataset_table(CATALOG["civil_affairs.temporary_assistance"], sa.MetaData())
    with city.engine.begin() as conn:
        # A department revokes an education award; a dibao member is suspended; a long case number arrives;
        # a granted disposition is corrected to not eligible.
        edu = conn.execute(sa.text("SELECT min(record_id) FROM education_education_assistance")).scalar_one()
        conn.execute(
            sa.text("UPDATE education_education_assistance SET disbursement_status = 'revoked' WHERE record_id = :r"),
            {"r": edu},
        )
        member = conn.execute(
            sa.text(
                "SELECT min(id_number_token) FROM civil_affairs_low_income_roster "
                "WHERE status = 'active' AND category = 'dibao' AND monthly_amount > 0"
            )
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE civil_affairs_low_income_roster SET status = 'suspended' WHERE id_number_token = :t"),
            {"t": member},
        )
        member = bytes(member).hex()  # stored as 32 bytes; record ids carry its hex, as before migration 0021
        row = dict(conn.execute(sa.select(ta).limit(1)).mappings().one())
        conn.execute(sa.insert(ta).values({**row, "case_id": "LSJZ-" + "7" * 40, "disbursement_status": "paid"}))
        corrected = sorted(city.granted)[1]
        conn.execute(
            sa.text("UPDATE platform_disposition SET outcome = 'not_eligible' WHERE warning_id = :w"), {"w": corrected}
        )
    changed = city.build()
    assert (changed["inserted"], changed["updated"]) == (1, 3)
    assert changed["education.education_assistance"] == 1 and changed["platform.disposition"] == 1
    status = dict(
        city.rows(
            "SELECT record_id, disbursement_status FROM platform_assistance_record "
            f"WHERE record_id = 'JY-{edu}' OR record_id LIKE 'LB202611-{member[:31]}' "
            f"OR warning_id = '{corrected}' OR record_id LIKE 'LS-~%'"
        )
    )
    assert sorted(status.values()) == ["paid", "revoked", "revoked", "revoked"]
    long_id = next(r for r in status if r.startswith("LS-~"))
    assert long_id == "LS-~" + hashlib.md5(("LSJZ-" + "7" * 40).encode()).hexdigest()  # the same on every database
    assert city.build()["inserted"] == city.build()["updated"] == 0

    # A new month: this month's allowances are recorded again, last month's stay as they were.
    november = city.rows("SELECT * FROM platform_assistance_record WHERE record_id LIKE 'LB202611-%' ORDER BY 1")
    december = city.build(datetime(2026, 12, 2, 8, 0))
    assert december["civil_affairs.low_income_roster"] == len(november) - 1  # the suspended member is not paid
    assert (
        city.rows("SELECT * FROM platform_assistance_record WHERE record_id LIKE 'LB202611-%' ORDER BY 1") == november
    )
    assert city.scalar(
        "SELECT min(period_start) FROM platform_assistance_record WHERE record_id LIKE 'LB202612-%'"
    ) in (
        date(2026, 12, 1),
        "2026-12-01",
    )


# --------------------------------------------------------------------------- statistics


def _by(city: City, sql: str) -> dict[str, int]:
    return {("" if k is None else k): n for k, n in city.rows(sql)}


def test_statistics_equal_direct_counts(template: City) -> None:
    city = template
    with city.engine.connect() as conn:
        o = stats.overview(conn, CATALOG)
        live = "FROM platform_assistance_record WHERE disbursement_status <> 'revoked'"
        assert o.households_assisted == city.scalar(f"SELECT count(DISTINCT {KEY_SQL}) {live}")
        assert o.assistance_records == city.scalar(f"SELECT count(*) {live}")
        assert o.assistance_amount == round(float(city.scalar(f"SELECT sum(amount) {live}")), 2)
        assert o.open_warnings == city.scalar(f"SELECT count(*) FROM platform_warning WHERE status IN {OPEN_SQL}")
        assert o.overdue_warnings == city.scalar("SELECT count(*) FROM platform_warning WHERE status = 'overdue'") > 0
        assert o.dispositions_applied == 5 and o.last_run == LATER

        for dim, col in stats.WARNING_DIMENSIONS.items():
            counts = stats.warning_counts(conn, CATALOG, dim)
            assert {k: c.total for k, c in counts.items()} == _by(
                city, f"SELECT {col}, count(*) FROM platform_warning GROUP BY {col}"
            )
            assert {k: c.open for k, c in counts.items() if c.open} == _by(
                city, f"SELECT {col}, count(*) FROM platform_warning WHERE status IN {OPEN_SQL} GROUP BY {col}"
            )
        disposed = stats.warning_counts(conn, CATALOG, "rule")
        assert sum(c.disposed for c in disposed.values()) == 4

        totals = {
            (t.department, t.kind): (t.records, t.amount) for t in stats.assistance_totals(conn, CATALOG) if t.records
        }
        direct = city.rows(f"SELECT department, assistance_kind, count(*), sum(amount) {live} GROUP BY 1, 2")
        assert totals == {(d, k): (n, round(float(s), 2)) for d, k, n, s in direct}

        needs = stats.needs_by_hardship(conn, CATALOG)
        assert {h: n.warnings for h, n in needs.items()} == _by(
            city, f"SELECT hardship_type, count(*) FROM platform_warning WHERE status IN {OPEN_SQL} GROUP BY 1"
        )
        households = stats.needs_list(conn, CATALOG)
        assert sum(h.open_warnings for h in households) == o.open_warnings
        assert (
            len(households)
            == o.households_in_need
            == city.scalar(f"SELECT count(DISTINCT {KEY_SQL}) FROM platform_warning WHERE status IN {OPEN_SQL}")
        )
        assert all(h.needs and h.departments and h.names_masked and h.people >= 1 for h in households)

        overdue = stats.overdue_by_department(conn, CATALOG)
        assert {d: c.now for d, c in overdue.items() if c.now} == _by(
            city, "SELECT target_department, count(*) FROM platform_warning WHERE status = 'overdue' GROUP BY 1"
        )
        outcomes = stats.disposition_outcomes(conn, CATALOG)
        assert sum(sum(v.values()) for v in outcomes.values()) == 5
        assert sum(v.get("granted", 0) for v in outcomes.values()) == len(city.granted)

        run = stats.latest_run(conn)
        assert run is not None and run.as_of == LATER and run.rules == city.later_run

        chains = stats.happiness_list(conn, CATALOG, limit=None)
        assert len(chains) == city.scalar(f"SELECT count(DISTINCT {KEY_SQL}) FROM platform_assistance_record")
        assert sum(len(c.chain) for c in chains) == city.scalar("SELECT count(*) FROM platform_assistance_record")
        assert round(sum(c.amount for c in chains), 2) == o.assistance_amount
        top = stats.happiness_list(conn, CATALOG, limit=3)
        assert [c.household for c in top] == [c.household for c in chains[:3]]
        assert top[0].amount >= top[1].amount >= top[2].amount
        assert all(c.people == len({a.person for a in c.chain if a.person}) >= 1 for c in top)
        assert stats.as_plain(top)[0]["household"] == top[0].household


# --------------------------------------------------------------------------- the report


def _raw_identities() -> list[str]:
    """Clear ids, names and household ids of the sample world's roster people: none may reach the report."""
    world = build_world(1500, 20261127)
    members = [m for m in world.roster if len(m.person.name) >= 3][:40]
    values = [m.person.id_number for m in members] + [m.person.name for m in members]
    return values + [m.household_id for m in members]


def test_the_report_is_one_offline_html_file_without_personal_values(template: City, tmp_path: Path) -> None:
    out = write_report(template.engine, CATALOG, tmp_path / "out" / "report.html", now=NOW)
    assert out.exists() and not list(out.parent.glob(".*.part"))
    page = out.read_text(encoding="utf-8")
    for _, title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    assert page.count("Plotly.newPlot(") >= 8
    assert get_plotlyjs()[:1000] in page and "<script src=" not in page  # plotly.js is inside the file
    assert "医疗救助 / medical assistance" in page and "民政 / civil affairs" in page
    with template.engine.connect() as conn:
        needs = stats.needs_list(conn, CATALOG, limit=5)
    assert all(f"{'、'.join(n.names_masked)}（{n.people}人）" in page for n in needs)
    raw = _raw_identities()
    leaked = [v for v in raw if v in page]
    assert leaked == [], f"{len(leaked)} personal values in the report"
    # A masked ID number says nothing (4301************** for everyone): the report does not show one.
    assert "4301" + "*" * 14 not in page


def test_the_report_keeps_the_three_groups_apart(template: City, tmp_path: Path) -> None:
    """On the roster and needing more help, on no roster and maybe qualifying, on the roster and maybe leaving: each
    group's warnings are totalled from its rules (Rule.group_of), the three always shown, every warning in one."""
    from lidm.monitor.scenarios import GROUP_LABELS, group_counts

    rules = load_rules(catalog=CATALOG)
    groups = {r.id: r.group_of.value for r in rules}
    page = write_report(template.engine, CATALOG, tmp_path / "g.html", now=NOW, rule_groups=groups).read_text()
    assert all(label in page for label in GROUP_LABELS.values())
    with template.engine.connect() as conn:
        by_rule = stats.warning_counts(conn, CATALOG, "rule")
    totals = group_counts(by_rule, groups)
    assert list(totals)[:3] == ["needs_more_help", "may_qualify", "may_leave"]
    assert sum(c.total for c in totals.values()) == sum(c.total for c in by_rule.values())
    assert totals["may_qualify"].total == sum(c.total for rid, c in by_rule.items() if groups.get(rid) == "may_qualify")


def test_lidm_report_writes_the_file(city_copy: City, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "get_settings", lambda: city_copy.settings)
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli.app, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report written" in result.output and out.stat().st_size > 1_000_000
    default = report(city_copy.settings, rebuild=False)
    assert default.parent == city_copy.settings.home / "reports" and default.exists()


@pytest.mark.postgres
def test_postgresql_city(tmp_path: Path, pg_clean_url: str) -> None:
    city = _make_city(tmp_path / "pg", pg_clean_url)
    try:
        _check_sources(city)
        assert sorted(
            r[0] for r in city.rows("SELECT warning_id FROM platform_assistance_record WHERE source = 'warning'")
        ) == sorted(city.granted)
        again = city.build()
        assert again["inserted"] == again["updated"] == 0
        with city.engine.connect() as conn:
            o = stats.overview(conn, CATALOG)
            assert o.households_assisted == city.scalar(
                f"SELECT count(DISTINCT {KEY_SQL}) FROM platform_assistance_record "
                "WHERE disbursement_status <> 'revoked'"
            )
            assert o.overdue_warnings > 0 and o.dispositions_applied == 5
            assert len(stats.needs_list(conn, CATALOG)) == o.households_in_need
        out = write_report(city.engine, CATALOG, tmp_path / "pg.html", now=NOW)
        page = out.read_text(encoding="utf-8")
        assert all(f"<h2>{title}</h2>" in page for _, title in SECTIONS)
        assert [v for v in _raw_identities() if v in page] == []
    finally:
        city.engine.dispose()
