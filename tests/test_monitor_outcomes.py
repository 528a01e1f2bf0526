"""The outcomes the policy names (issue 19 item 5): 一事一议 with its follow-up date and result, and 比对数据有误
(data_error) kept apart from not eligible and counted against the sharing department (the seed's 容错 clause).

A small synthetic city is monitored once per backend (SQLite, PostgreSQL where marked); the department's answers
go through a real push and collect, and the result file the department reads says why a row was refused.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from _city import AS_OF, monitored_city, private_copy
from _city import rows as _rows
from lidm_samples.demo import demo_settings
from typer.testing import CliRunner

import lidm.cli as cli
from lidm import workdays
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.keys import load_keyring
from lidm.monitor import stats
from lidm.monitor.checks import follow_up_problem, inconsistent_outcome
from lidm.monitor.dispositions import FINAL
from lidm.monitor.feedback import collect_dispositions
from lidm.monitor.lifecycle import run_monitor
from lidm.monitor.push import push_warnings
from lidm.monitor.quality import data_quality, sharing_departments, sharing_map
from lidm.monitor.report import write_report
from lidm.monitor.rules import load_rules

PUSHED_AT = datetime(2026, 11, 28, 9, 0, 0)
DEPT = "medical_insurance"
RULE = "high_medical_cost_assistance"  # subject: the roster; match_any: two health feeds; absent: medical insurance
CATALOG = load_catalog()
FIELDS = ["warning_id", "id_number", "outcome", "assistance_kind", "amount", "granted_on", "follow_up_date"]
FIELDS += ["follow_up_result", "reason", "handler", "disposed_at"]
ZH = {f.name: f.business_name for f in CATALOG["platform.disposition"].fields}


# ------------------------------------------------------------------------------------------ the checks, alone


def test_the_contract_names_the_outcomes_and_the_follow_up_fields() -> None:
    d = CATALOG["platform.disposition"]
    assert {"case_by_case", "data_error", "informed_not_applied", "referred"} <= set(d.field("outcome").enum)
    assert d.field("follow_up_date").type.value == "date" and not d.field("follow_up_date").required
    assert tuple(d.field("follow_up_result").enum or ()) == ("assisted", "not_assisted", "pending")
    assert "data_error" in FINAL and "case_by_case" not in FINAL  # 一事一议 keeps the warning open


def test_case_by_case_needs_its_follow_up_date_and_only_it_carries_one() -> None:
    first = {"outcome": "case_by_case", "reason": "困难情形复杂", "follow_up_date": None}
    assert follow_up_problem(first)[0] == "follow_up_date_missing"  # type: ignore[index]
    assert follow_up_problem(first | {"follow_up_date": date(2026, 12, 20)}) is None
    later = {"outcome": "case_by_case", "reason": None, "follow_up_date": date(2026, 12, 20)}
    assert inconsistent_outcome(later | {"follow_up_result": "assisted"}) is None  # the result says it
    assert inconsistent_outcome(later) == "outcome case_by_case needs a reason"
    wrong = {"outcome": "not_eligible", "reason": "收入超标", "follow_up_result": "pending"}
    assert follow_up_problem(wrong) == (
        "follow_up_not_case_by_case",
        "follow_up_result belongs to outcome case_by_case (一事一议) only, not to not_eligible",
    )
    assert inconsistent_outcome({"outcome": "data_error", "reason": ""}) == "outcome data_error needs a reason"


def test_the_sharing_departments_of_a_rule_are_those_whose_data_it_compared() -> None:
    rules = {r.id: r for r in load_rules(catalog=CATALOG)}
    medical = sharing_departments(rules[RULE], CATALOG)
    assert "civil_affairs" not in medical  # the roster is the base, not compared data
    assert medical == ("health",)  # the absent clause (medical insurance's own record) is not compared data
    # a rule whose subject is another department's feed compares that feed
    student = sharing_departments(rules["hardship_student_not_on_roster"], CATALOG)
    assert student[0] == rules["hardship_student_not_on_roster"].subject.feed.split(".")[0]


# ------------------------------------------------------------------------------------------ a monitored city


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("outcomes-city")
    monitored_city(home)
    return home


def _settings(backend: str, request, city: Path, tmp_path: Path) -> tuple[Settings, Path]:
    if backend == "postgres":
        home = tmp_path / "pg-city"
        return monitored_city(home, request.getfixturevalue("pg_clean_url")), home
    home = private_copy(city, tmp_path)
    return demo_settings(home), home


def _pushed(settings: Settings) -> list[dict[str, str]]:
    push_warnings(settings, departments=[DEPT], now=PUSHED_AT)
    (target,) = _rows(settings, "SELECT target FROM lidm_push WHERE department = :d", d=DEPT)[0]
    return list(csv.DictReader(io.StringIO(Path(target).read_bytes().decode("utf-8-sig"))))


def _answer(w: dict[str, str], outcome: str, **kw: str) -> dict[str, str]:
    base = dict.fromkeys(FIELDS, "") | {"warning_id": w["warning_id"], "id_number": w["id_number"]}
    return base | {"outcome": outcome, "handler": "王敏", "disposed_at": "2026/12/4 10:30"} | kw


def _drop_and_collect(home: Path, settings: Settings, name: str, rows: list[dict[str, str]], now: datetime):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([ZH[n] for n in FIELDS])  # the Chinese header, as the workbook has it
    writer.writerows([r[n] for n in FIELDS] for r in rows)
    (home / "channels" / DEPT / "inbox" / name).write_bytes(buf.getvalue().encode("gbk"))
    collect_dispositions(settings, departments=[DEPT], now=now)
    text = (home / "channels" / DEPT / "outbox" / f"result_{name}").read_bytes().decode("utf-8-sig")
    lines = list(csv.DictReader(io.StringIO(text)))[1:]  # the summary line first
    assert "王敏" not in text and not any(r["id_number"] in text for r in rows)
    return {line["预警编号 warning_id"]: line for line in lines}


def _status(settings: Settings, wid: str) -> str:
    return _rows(settings, "SELECT status FROM platform_warning WHERE warning_id = :w", w=wid)[0][0]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_case_by_case_follow_up_and_data_error_through_a_real_collect(
    backend: str, request, city: Path, tmp_path: Path, monkeypatch
) -> None:
    settings, home = _settings(backend, request, city, tmp_path)
    w = [x for x in _pushed(settings) if x["rule_id"] == RULE]
    assert len(w) >= 4, "the demo city raises this rule for several people"
    a, b, c, d = (x["warning_id"] for x in w[:4])

    first = [
        _answer(w[0], "县级协调机制一事一议（须填跟进日期）", reason="困难情形复杂"),  # no follow-up date
        _answer(w[1], "case_by_case", reason="困难情形复杂", follow_up_date="2026年12月20日"),
        _answer(w[2], "比对数据有误", reason="医保报销记录重复"),
        _answer(w[3], "不符合条件", reason="收入超过认定标准", follow_up_result="仍在研究"),
    ]
    got = _drop_and_collect(home, settings, "disposition_1204.csv", first, datetime(2026, 12, 6, 18))
    assert got[a]["结果 verdict"] == "未采纳 refused" and got[a]["原因代码 code"] == "follow_up_date_missing"
    assert got[a]["字段 field"] == "一事一议跟进日期 follow_up_date"
    assert "须填写一事一议跟进日期" in got[a]["说明"] and "follow_up_date" in got[a]["explanation"]
    assert got[d]["原因代码 code"] == "follow_up_not_case_by_case" and "其他处置结果请留空" in got[d]["说明"]
    assert [got[x]["结果 verdict"] for x in (b, c)] == ["已采纳 applied"] * 2
    assert [_status(settings, x) for x in (a, b, c, d)] == ["pushed", "acknowledged", "disposed", "pushed"]
    stored = _rows(
        settings,
        "SELECT outcome, follow_up_date, follow_up_result FROM platform_disposition WHERE warning_id = :w",
        w=b,
    )
    assert [(o, str(f)[:10], r) for o, f, r in stored] == [("case_by_case", "2026-12-20", None)]

    # The final answer, then the 一事一议's result dated before it: a follow-up, not superseded, not a duplicate.
    granted = _answer(w[1], "已给予救助", assistance_kind="医疗救助", amount="3000", granted_on="2026/12/10")
    eligible = _answer(w[0], "not_eligible", reason="收入超过认定标准", disposed_at="2026/12/5 9:00")
    got = _drop_and_collect(
        home,
        settings,
        "disposition_1210.csv",
        [granted | {"disposed_at": "2026/12/10 9:00"}, eligible],
        datetime(2026, 12, 10, 18),
    )
    assert got[b]["结果 verdict"] == "已采纳 applied" and _status(settings, b) == "disposed"
    assert got[a]["结果 verdict"] == "已采纳 applied" and _status(settings, a) == "disposed"
    result = _answer(w[1], "case_by_case", follow_up_date="2026-12-20", follow_up_result="已研究给予救助帮扶")
    older = _answer(w[0], "不符合条件", reason="补充说明", disposed_at="2026/12/3 9:00")  # a plain older answer
    got = _drop_and_collect(
        home,
        settings,
        "disposition_1208.csv",
        [result | {"disposed_at": "2026/12/8 15:00"}, older],
        datetime(2026, 12, 11, 18),
    )
    assert got[b]["结果 verdict"] == "已采纳 applied", got[b]
    assert got[a]["原因代码 code"] == "superseded"  # still refused: only a 一事一议 follow-up is taken so
    sql = "SELECT outcome, follow_up_result FROM platform_disposition WHERE warning_id = :w ORDER BY disposed_at"
    assert [tuple(r) for r in _rows(settings, sql, w=b)] == [
        ("case_by_case", None),
        ("case_by_case", "assisted"),
        ("granted", None),
    ]
    assert _status(settings, b) == "disposed"  # the follow-up changed no status

    # data_error is its own outcome, counted against the departments whose data the rule compared.
    engine = sa.create_engine(settings.effective_central_url)
    rules = load_rules(settings.rules_dir, catalog=CATALOG)
    try:
        with engine.connect() as conn:
            outcomes = stats.disposition_outcomes(conn, CATALOG)[DEPT]
            quality = data_quality(conn, CATALOG, sharing_map(rules, CATALOG))
        assert (outcomes["data_error"], outcomes["not_eligible"], outcomes["case_by_case"]) == (1, 1, 2)
        sharing = sharing_departments(next(r for r in rules if r.id == RULE), CATALOG)
        for dept in sharing:
            q = quality[dept]
            assert (q.data_errors, q.dispositions) == (1, 3) and q.rate == pytest.approx(1 / 3, abs=1e-4)
            assert RULE in q.rules
        assert "civil_affairs" not in quality  # no rule compared the roster's data here
        page = write_report(
            engine, CATALOG, tmp_path / "r.html", now=datetime(2026, 12, 12), sharing=sharing_map(rules, CATALOG)
        ).read_text("utf-8")
        assert "比对数据质量（容错）" in page and '<section id="quality">' in page and "33.3%" in page
    finally:
        engine.dispose()

    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    out = CliRunner().invoke(cli.app, ["monitor", "quality", "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["department"]: r for r in map(json.loads, out.output.splitlines())}
    assert {k: rows[k]["data_errors"] for k in sharing} == dict.fromkeys(sharing, 1)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_data_error_holds_the_rule_back_until_the_data_changes_however_long(
    backend: str, request, city: Path, tmp_path: Path
) -> None:
    """The rule has no quiet period here: not_eligible holds nothing back, data_error still does while the data the
    rule compared is unchanged, and asks again once it changed."""
    settings, home = _settings(backend, request, city, tmp_path)
    w = [x for x in _pushed(settings) if x["rule_id"] == RULE][:3]
    answers = [
        _answer(w[0], "data_error", reason="医保报销记录重复"),
        _answer(w[1], "not_eligible", reason="收入超过认定标准"),
        _answer(w[2], "data_error", reason="医保报销记录重复"),
    ]
    _drop_and_collect(home, settings, "disposition_quiet.csv", answers, datetime(2026, 12, 6, 18))
    rule = next(r for r in load_rules(settings.rules_dir, catalog=CATALOG) if r.id == RULE)
    rule = rule.model_copy(update={"quiet_after_not_eligible": timedelta(0)})
    keyring = load_keyring(settings)
    engine = sa.create_engine(settings.effective_central_url)
    people = {x["warning_id"]: x for x in w}
    token_sql = "SELECT warning_id, id_number_token FROM platform_warning WHERE warning_id IN ({})"
    try:
        with engine.connect() as conn:
            ids = ", ".join(f"'{x}'" for x in people)
            tokens = dict(conn.execute(sa.text(token_sql.format(ids))).all())

        def run(r, day: int):  # type: ignore[no-untyped-def]
            as_of = AS_OF + timedelta(days=day)
            # A month and a year on: deadlines in 2027-28, past the calendar package; Monday to Friday on purpose.
            calendar = workdays.Calendar(assume_weekdays_through=2028)
            now = datetime.combine(as_of, datetime.min.time())
            return run_monitor(engine, [r], CATALOG, as_of=as_of, now=now, keyring=keyring, calendar=calendar)

        run(rule.with_params({"window_days": 1}), 30)  # nobody matches: the conditions clear
        # The third person's data changes (the medical-insurance department corrects it): a new row the rule reads.
        _change_one_row(engine, tokens[w[2]["warning_id"]])
        again = run(rule.with_params({"window_days": 1095}), 400)  # well past any quiet period, the same rows
        raised = {
            t
            for (t,) in _rows(
                settings, "SELECT id_number_token FROM platform_warning WHERE _batch_id = :r", r=again.run_id
            )
        }
    finally:
        engine.dispose()
    assert tokens[w[0]["warning_id"]] not in raised  # data_error, data unchanged: held back, counted
    assert tokens[w[1]["warning_id"]] in raised  # not_eligible without a quiet period: asked again
    assert tokens[w[2]["warning_id"]] in raised  # data_error, but the data changed: asked again
    assert again.counts[RULE].suppressed >= 1


def _change_one_row(engine: sa.Engine, token: str) -> None:
    """Change what the rule reads of one person in a feed it compared: the health department corrected its data."""
    with engine.begin() as conn:
        bills = sa.Table("health_medical_expenses", sa.MetaData(), autoload_with=conn)
        done = conn.execute(
            sa.update(bills)
            .where(bills.c.id_number_token == token)
            .values(policy_scope_self_pay=bills.c.policy_scope_self_pay + 1)
        ).rowcount
        if not done:
            fund = sa.Table("health_disease_emergency_fund", sa.MetaData(), autoload_with=conn)
            status = sa.case((fund.c.disbursement_status == "paid", "approved"), else_="paid")
            done = conn.execute(
                sa.update(fund).where(fund.c.id_number_token == token).values(disbursement_status=status)
            ).rowcount
    assert done
