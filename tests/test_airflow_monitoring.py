"""The monitoring loop's DAGs, run with dag.test() against a synthetic city in PostgreSQL: the monitor on the
feeds' Assets, push to each department's channel, feedback from the departments; a re-run does nothing twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from _city import fed_city
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.responses import respond
from lidm_samples.world import build_world
from test_airflow_dags import _dagrunner, _gateway_env

from lidm.integrations.airflow.monitor_dags import FEEDBACK_DAG, MONITOR_DAG, PUSH_DAG

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "lidm_monitoring.py"


def _run(dagrun: Callable[..., tuple[list[dict], str, int]], *dag_ids: str) -> tuple[dict[str, dict], str]:
    runs, printed, code = dagrun(*dag_ids, timeout=300)
    assert code == 0, printed[-6000:]
    reports = {report["dag"]["dag_id"]: report for report in runs}
    for dag_id in dag_ids:
        assert reports[dag_id]["state"] == "success", printed[-6000:]
        assert set(reports[dag_id]["task_states"].values()) == {"success"}, reports[dag_id]["task_states"]
    return reports, printed


def _count(url: str, sql: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()


def test_monitor_push_and_feedback_dags_run_the_loop_once(airflow_env, gateway_pg):
    fed_city(gateway_pg.home, gateway_pg.central_url)
    url = gateway_pg.central_url
    env = _gateway_env(airflow_env, gateway_pg, "unused", {})
    with _dagrunner(env, DAG_FILE) as dagrun:  # one Airflow process for every round; the test acts between them
        _the_loop_once_then_again(dagrun, gateway_pg, url)


def _the_loop_once_then_again(dagrun: Callable[..., tuple[list[dict], str, int]], gateway_pg, url: str) -> None:  # type: ignore[no-untyped-def]
    reports, printed = _run(dagrun, MONITOR_DAG)
    monitor = reports[MONITOR_DAG]
    assert "AssetAny" in monitor["dag"]["schedule"] and "civil_affairs.low_income_roster" in monitor["dag"]["schedule"]
    assert {e["name"] for e in monitor["asset_events"]} == {
        "platform.warning",
        "platform.assistance_record",
        "platform.needs",
        "platform.needs_summary",
    }
    assert monitor["xcom"]["needs_list.return_value"]["needs_live"] > 0
    counts = monitor["xcom"]["evaluate_rules.return_value"]["rules"]
    raised = sum(c["raised"] for c in counts.values())
    assert raised == _count(url, "SELECT count(*) FROM platform_warning") > 0

    reports, printed = _run(dagrun, PUSH_DAG)
    pushed = [x for k, x in reports[PUSH_DAG]["xcom"].items() if k.endswith("return_value")]
    sent = sum(p["warnings"] for batch in pushed for p in batch if p["status"] == "pushed")
    assert sent == raised == _count(url, "SELECT count(*) FROM lidm_warning_state WHERE pushed_at IS NOT NULL")
    # The machine files are those their manifests name; the files for people sit beside them.
    manifests = (gateway_pg.home / "channels").glob("*/outbox/warnings_*.manifest.json")
    outboxes = [m.with_name(json.loads(m.read_text())["file"]) for m in manifests]
    assert outboxes and sum(len(p.read_text(encoding="utf-8-sig").splitlines()) - 1 for p in outboxes) == raised

    warned_needs = "SELECT count(*) FROM platform_needs WHERE _retired_batch IS NULL AND open_warnings > 0"
    needs_before = _count(url, warned_needs)
    departments = sorted({p.parts[-3] for p in outboxes})
    for dept in departments:
        respond(gateway_pg.settings, dept, seed=1, today=REFERENCE_DATE)
    reports, printed = _run(dagrun, FEEDBACK_DAG)
    assert {e["name"] for e in reports[FEEDBACK_DAG]["asset_events"]} >= {
        "platform.disposition",
        "platform.assistance_record",
        "platform.needs",
    }
    # a disposed warning is no longer open: the needs it stood for go, unless another open warning or a visit holds them
    assert _count(url, warned_needs) < needs_before
    disposed = _count(url, "SELECT count(*) FROM platform_warning WHERE status = 'disposed'")
    assert disposed > 0
    from_warnings = _count(url, "SELECT count(*) FROM platform_assistance_record WHERE source = 'warning'")
    granted = _count(
        url,
        "SELECT count(*) FROM platform_disposition d JOIN lidm_disposition_result r "
        "ON r.disposition_id = d.disposition_id AND r.status = 'applied' WHERE d.outcome = 'granted'",
    )
    assert from_warnings == granted > 0

    # Everything again: nothing is raised, pushed or applied twice.
    before = {
        t: _count(url, f"SELECT count(*) FROM {t}")
        for t in ("platform_warning", "lidm_push", "lidm_disposition_result", "platform_assistance_record")
    }
    reports, printed = _run(dagrun, MONITOR_DAG, PUSH_DAG, FEEDBACK_DAG)
    assert sum(c["raised"] for c in reports[MONITOR_DAG]["xcom"]["evaluate_rules.return_value"]["rules"].values()) == 0
    after = {t: _count(url, f"SELECT count(*) FROM {t}") for t in before}
    assert after == before

    # No raw id number or name of the city in anything the runs printed or returned.
    world = build_world(1500, 20261127)
    texts = printed + json.dumps(reports, ensure_ascii=False)
    leaked = [p for p in world.people[:400] if p.id_number in texts or (len(p.name) > 2 and p.name in texts)]
    assert not leaked
