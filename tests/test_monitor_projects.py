"""Services beside money, and the project list (issue 19 item 6, first half).

The project list (rules/projects.yaml, 项目清单) loads and is checked against the rules and contracts, a bad one is
refused naming the file and the entry; then, on a monitored city (SQLite, and PostgreSQL where marked), a granted
disposition taken through a real push and collect becomes a happiness-list record naming its programme and its
service kind, the feeds' records name theirs, and the list's money still adds up.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from _city import city_bureaus_only, monitored_city, private_copy
from _city import rows as _rows
from lidm_samples.demo import demo_settings
from typer.testing import CliRunner

import lidm.cli as cli
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.monitor import stats
from lidm.monitor.assistance_spec import assistance_dir, load_sources
from lidm.monitor.feedback import collect_dispositions
from lidm.monitor.happiness import build_assistance_records
from lidm.monitor.projects import ProjectError, lint, load_projects, projects_path
from lidm.monitor.push import push_warnings
from lidm.monitor.report import write_report
from lidm.monitor.rules import load_rules

CATALOG = load_catalog()
RULES = load_rules(catalog=CATALOG)
SOURCES = [p.stem for p in assistance_dir().glob("*.yaml")]
PUSHED_AT = datetime(2026, 11, 28, 9, 0, 0)
DEPT = "hr_social_security"
_bureaus = pytest.fixture(scope="module", autouse=True)(city_bureaus_only)  # one bureau's channel
FIELDS = ["warning_id", "id_number", "outcome", "assistance_kind", "amount", "granted_on", "reason", "handler"]
FIELDS += ["disposed_at"]


# ------------------------------------------------------------------------------------------ the list, alone


def test_the_project_list_loads_and_names_services() -> None:
    projects = {p.id: p for p in load_projects(projects_path(), catalog=CATALOG, rules=RULES, sources=SOURCES)}
    assert {"dibao", "temporary_assistance", "education_assistance", "legal_aid", "care_services"} <= set(projects)
    legal = projects["legal_aid"]
    assert (legal.kind, legal.service_kind, legal.department, legal.section) == (
        "service",
        "legal_aid",
        "justice",
        "三(二)6",
    )
    assert "提供法律援助服务" in legal.basis  # quoted from the seed
    assert projects["care_services"].assistance_kind == "service"  # assistance_kind gained `service`
    edu = projects["education_assistance"]
    assert ("student_no_education_assistance", "granted") in {(x.rule, x.outcome) for x in edu.outcomes}
    assert edu.sources == ("education.education_assistance",)
    # every helping rule leads somewhere but the one whose group says it helps while it only finds duplicates
    warnings = lint(list(projects.values()), RULES, load_sources(assistance_dir(), CATALOG))
    assert warnings == [
        "rule relocated_enrolled_twice (needs_more_help) leads to no project: add it to a project's outcomes"
    ]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "projects.yaml"
    path.write_text(text, "utf-8")
    return path


GOOD = """
  - id: legal_aid
    name: 法律援助
    department: justice
    kind: service
    service_kind: legal_aid
    assistance_kind: legal_aid
    section: 三(二)6
    basis: 依照《中华人民共和国法律援助法》的规定，提供法律援助服务。
    outcomes: [{rule: legal_aid_refused_low_income, outcome: granted}]
"""


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("    outcomes: [{rule: no_such_rule}]", "entry 2 (second): outcomes.0.rule: no rule no_such_rule"),
        (
            "    outcomes: [{rule: roster_unemployed, outcome: approved}]",
            "entry 2 (second): outcomes.0.outcome: approved is no outcome of platform.disposition",
        ),
        (
            "    outcomes: [{rule: roster_unemployed, outcome: not_eligible}]",
            "entry 2 (second): outcomes.0.outcome: not_eligible grants nothing",
        ),
        ("    sources: [justice.legal_aids]", "entry 2 (second): sources.0: no happiness-list source"),
        (
            "    outcomes: [{rule: legal_aid_refused_low_income}]",
            "entry 2 (second): outcomes.0: legal_aid_refused_low_income + granted granting legal_aid already leads "
            "to legal_aid",
        ),
    ],
)
def test_a_bad_project_list_is_refused_naming_file_and_entry(tmp_path: Path, entry: str, message: str) -> None:
    second = GOOD.replace("id: legal_aid", "id: second").replace(
        "    outcomes: [{rule: legal_aid_refused_low_income, outcome: granted}]", entry
    )
    path = _write(tmp_path, "projects:" + GOOD + second)
    with pytest.raises(ProjectError) as refused:
        load_projects(path, catalog=CATALOG, rules=RULES, sources=SOURCES)
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value)


def test_a_malformed_entry_is_named_by_its_number_and_id(tmp_path: Path) -> None:
    bad = GOOD.replace("id: legal_aid", "id: odd").replace("    service_kind: legal_aid\n", "")
    path = _write(tmp_path, "projects:" + GOOD + bad.replace("kind: service", "kind: service\n    colour: red"))
    with pytest.raises(ProjectError, match=r"entry 2 \(odd\): colour: unknown key"):
        load_projects(path)
    with pytest.raises(ProjectError, match=r"entry 2 \(odd\): a service needs its service_kind"):
        load_projects(_write(tmp_path, "projects:" + GOOD + bad))
    wrong = GOOD.replace("department: justice", "department: police")
    with pytest.raises(ProjectError, match=r"entry 1 \(legal_aid\): department: police is not among"):
        load_projects(_write(tmp_path, "projects:" + wrong), catalog=CATALOG)


def test_a_helping_rule_with_no_project_is_a_warning_not_an_error(tmp_path: Path) -> None:
    projects = load_projects(_write(tmp_path, "projects:" + GOOD), catalog=CATALOG, rules=RULES, sources=SOURCES)
    warnings = lint(projects, RULES)
    assert "rule student_no_education_assistance (needs_more_help) leads to no project" in " ".join(warnings)
    assert not any("roster_deceased" in w for w in warnings)  # a may_leave rule grants nothing


# ------------------------------------------------------------------------------------------ a monitored city


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("projects-city")
    monitored_city(home)
    return home


def _collect_answers(settings: Settings, home: Path, answers: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, FIELDS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(answers)
    (home / "channels" / DEPT / "inbox" / "disposition_services.csv").write_bytes(buf.getvalue().encode("utf-8"))
    result = collect_dispositions(settings, departments=[DEPT], now=datetime(2026, 12, 6, 18))
    assert result.totals()["applied"] == len(answers), result.totals()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_records_name_their_project_and_service_and_the_money_adds_up(
    backend: str, request, city: Path, tmp_path: Path, monkeypatch
) -> None:
    if backend == "postgres":
        home = tmp_path / "pg-city"
        settings = monitored_city(home, request.getfixturevalue("pg_clean_url"))
    else:
        home = private_copy(city, tmp_path)
        settings = demo_settings(home)
    push_warnings(settings, departments=[DEPT], now=PUSHED_AT)
    (target,) = _rows(settings, "SELECT target FROM lidm_push WHERE department = :d", d=DEPT)[0]
    pushed = list(csv.DictReader(io.StringIO(Path(target).read_bytes().decode("utf-8-sig"))))
    w = [x for x in pushed if x["rule_id"] == "roster_unemployed"][:2]
    assert len(w) == 2, "the demo city raises roster_unemployed for several people"
    base = {"reason": "", "handler": "李静", "disposed_at": "2026-12-04 10:00", "granted_on": "2026-12-04"}
    service = {"outcome": "granted", "assistance_kind": "employment_assistance", "amount": "0"}
    cash = {"outcome": "granted", "assistance_kind": "temporary_assistance", "amount": "800"}  # no programme of HR
    _collect_answers(
        settings,
        home,
        [
            {"warning_id": x["warning_id"], "id_number": x["id_number"]} | base | kind
            for x, kind in zip(w, (service, cash), strict=True)
        ],
    )
    engine = sa.create_engine(settings.effective_central_url)
    try:
        build_assistance_records(engine, CATALOG, now=datetime(2026, 12, 7, 9))
        with engine.connect() as conn:
            records = {
                r.warning_id: r
                for r in conn.execute(
                    sa.text(
                        "SELECT warning_id, project_id, service_kind, amount FROM platform_assistance_record "
                        "WHERE source = 'warning'"
                    )
                )
            }
            granted = records[w[0]["warning_id"]]
            assert (granted.project_id, granted.service_kind) == ("employment_assistance", "employment_services")
            other = records[w[1]["warning_id"]]
            assert (other.project_id, other.service_kind, float(other.amount)) == (None, None, 800.0)

            legal = conn.execute(
                sa.text(
                    "SELECT DISTINCT project_id, service_kind FROM platform_assistance_record "
                    "WHERE department = 'justice'"
                )
            ).all()
            assert [tuple(r) for r in legal] == [("legal_aid", "legal_aid")]  # declared, and its programme's
            roster = conn.execute(
                sa.text(
                    "SELECT assistance_kind, project_id, count(*) FROM platform_assistance_record "
                    "WHERE source = 'routine' AND assistance_kind IN ('dibao_allowance', 'tekun_support') "
                    "GROUP BY assistance_kind, project_id"
                )
            ).all()
            assert {(k, p) for k, p, _ in roster} == {("dibao_allowance", "dibao"), ("tekun_support", "tekun")}
            unnamed = conn.execute(
                sa.text(
                    "SELECT count(*) FROM platform_assistance_record WHERE source = 'routine' AND project_id IS NULL"
                )
            ).scalar_one()
            assert unnamed == 0  # every routine source is in a programme's sources

            # The money: the list's total is the applied granted dispositions' amounts plus the feeds' records.
            live = "disbursement_status <> 'revoked'"
            total = stats.overview(conn, CATALOG).assistance_amount
            routine = conn.execute(
                sa.text(
                    "SELECT coalesce(sum(amount), 0) FROM platform_assistance_record "
                    f"WHERE source = 'routine' AND {live}"
                )
            ).scalar_one()
            dispositions = conn.execute(
                sa.text(
                    "SELECT coalesce(sum(d.amount), 0) FROM platform_disposition d WHERE d.outcome = 'granted' "
                    "AND d._retired_batch IS NULL AND EXISTS (SELECT 1 FROM lidm_disposition_result r "
                    "WHERE r.disposition_id = d.disposition_id AND r.status = 'applied')"
                )
            ).scalar_one()
            assert float(dispositions) >= 800.0
            assert total == pytest.approx(float(routine) + float(dispositions), abs=0.01)
            count, distinct = conn.execute(
                sa.text("SELECT count(*), count(DISTINCT record_id) FROM platform_assistance_record")
            ).one()
            assert count == distinct  # naming projects added no row
            services = {x.service_kind: x.records for x in stats.service_totals(conn, CATALOG)}
            assert services["employment_services"] >= 1 and services["legal_aid"] >= 1  # "物质+服务"
        page = write_report(engine, CATALOG, tmp_path / "r.html", now=datetime(2026, 12, 7, 9)).read_text("utf-8")
        assert "服务类别 / service kind" in page and "法律援助服务 / legal aid" in page
        again = build_assistance_records(engine, CATALOG, now=datetime(2026, 12, 7, 9))
        assert (again["inserted"], again["updated"]) == (0, 0)  # nothing changed, nothing written
    finally:
        engine.dispose()

    if backend == "sqlite":
        monkeypatch.setattr(cli, "get_settings", lambda: settings)
        out = CliRunner().invoke(cli.app, ["monitor", "projects", "--json"])
        assert out.exit_code == 0, out.output
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        legal_row = next(r for r in rows if r["id"] == "legal_aid")
        assert (
            legal_row["service_kind"] == "legal_aid"
            and legal_row["outcomes"][0]["rule"] == "legal_aid_refused_low_income"
        )
