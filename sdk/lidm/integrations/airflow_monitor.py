"""Airflow 3 shape of the monitoring loop: the monitor, push and feedback DAGs.

- `lidm_monitor` is scheduled on the Assets of every feed a rule reads (any of them updating starts a run;
  a run evaluates every rule in one transaction, so runs requested in a burst are harmless). It publishes
  the Asset `platform.warning`, then rebuilds the happiness list (`platform.assistance_record`).
- `lidm_push` is scheduled on `platform.warning`: one task per department, in that department's pool,
  pushes its new warnings through its channel.
- `lidm_feedback` runs hourly: one task per department takes in acknowledgements and dispositions from its
  channel, then the happiness list is rebuilt; it publishes `platform.disposition`.

A department's channel comes from the Airflow connection `lidm_channel_<department>` when one exists
(sftp, postgres or odbc; a database connection names its table in extra `table`), else from LIDM_CHANNELS,
else the folder under LIDM_HOME. Tasks return counts only (XCom) and keep no state outside the central
database, so a retried task redoes nothing that was done.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lidm.errors import ConfigError
from lidm.integrations.airflow import (
    DEFAULT_ARGS,
    NOT_RETRYABLE,
    START_DATE,
    _connection_url,
    _get_connection,
    _Scratch,
    contract_asset,
)

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from lidm.config import Settings

log = logging.getLogger("lidm.airflow")

MONITOR_DAG = "lidm_monitor"
PUSH_DAG = "lidm_push"
FEEDBACK_DAG = "lidm_feedback"
HOUSEKEEPING_DAG = "lidm_housekeeping"
WARNING = "platform.warning"
DISPOSITION = "platform.disposition"
ASSISTANCE = "platform.assistance_record"


def departments() -> list[str]:
    """Departments warnings can be pushed to: the warning contract's target_department codes."""
    from lidm.config import get_settings
    from lidm.contracts import load_catalog

    return list(load_catalog(get_settings().contracts_dir)[WARNING].field("target_department").enum or ())


def channel_conn_id(department: str) -> str:
    return f"lidm_channel_{department}"


def _plain(value: Any) -> Any:
    """Counts as plain JSON for XCom."""
    if is_dataclass(value) and not isinstance(value, type):
        value = value.as_dict() if hasattr(value, "as_dict") else asdict(value)
    elif isinstance(value, list):
        value = [_plain(v) for v in value]
    return json.loads(json.dumps(value, default=str))


def _with_channel(settings: Settings, department: str, scratch: _Scratch) -> Settings:
    """Settings whose channel for ``department`` comes from its Airflow connection, when one is defined."""
    try:
        conn = _get_connection(channel_conn_id(department))
    except ConfigError:
        return settings
    url = _connection_url(channel_conn_id(department), scratch)
    if (conn.conn_type or "").lower() not in ("sftp", "ssh", "fs", "file"):
        table = (conn.extra_dejson or {}).get("table", "lidm_warning")
        url = f"{url}#{table}"
    return settings.model_copy(update={"channels": {**settings.channels, department: url}})


def _fail_fast(what: str, exc: Exception) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(f"{what}: {type(exc).__name__}: {exc}") from None


def monitor_task() -> dict[str, Any]:
    """Evaluate every rule for today; returns per-rule counts."""
    from lidm.config import get_settings
    from lidm.monitor import monitor

    try:
        result = monitor(get_settings())
    except NOT_RETRYABLE as exc:
        _fail_fast("monitor", exc)
    counts = _plain(result)
    for rule, c in counts["rules"].items():
        log.info(
            "rule %s: matched %d, raised %d, closed %d, open %d",
            rule,
            c["matched"],
            c["raised"],
            c["closed"],
            c["open"],
        )
    return counts


def happiness_task() -> dict[str, Any]:
    """Rebuild the happiness list from the feeds and the applied dispositions."""
    from lidm.central import db
    from lidm.config import get_settings
    from lidm.contracts import load_catalog
    from lidm.monitor.happiness import build_assistance_records
    from lidm.monitor.lifecycle import city_now

    settings = get_settings()
    engine = db.connect(settings)
    try:
        counts = build_assistance_records(engine, load_catalog(settings.contracts_dir), now=city_now(settings.timezone))
    finally:
        engine.dispose()
    log.info("happiness list rebuilt: %s", counts)
    return _plain(counts)


def _through_channel(department: str, what: str, action: Any) -> Any:
    """Run ``action(settings, departments=[department])`` with the department's channel from Airflow."""
    from lidm.config import get_settings

    try:
        with tempfile.TemporaryDirectory(prefix="lidm-conn-") as folder:
            settings = _with_channel(get_settings(), department, _Scratch(Path(folder)))
            result = action(settings, departments=[department])
    except NOT_RETRYABLE as exc:
        _fail_fast(f"{what} {department}", exc)
    return _plain(result)


def push_task(department: str) -> Any:
    """Push the department's new warnings through its channel."""
    from lidm.monitor.push import push_warnings

    return _through_channel(department, "push to", push_warnings)


def collect_task(department: str) -> Any:
    """Take in the department's acknowledgements and dispositions."""
    from lidm.monitor.feedback import collect_dispositions

    return _through_channel(department, "dispositions from", collect_dispositions)


def purge_task() -> dict[str, Any]:
    """Delete rows past their contract's retention and old quarantine rows (lidm.central.retention)."""
    from lidm.central.retention import purge_expired
    from lidm.config import get_settings

    try:
        result = purge_expired(get_settings())
    except NOT_RETRYABLE as exc:
        _fail_fast("purge", exc)
    log.info("purge: %d rows deleted (%s; quarantine %d)", result.total, result.datasets, result.quarantine)
    return _plain(result.as_dict())


def build_monitor_dags() -> dict[str, DAG]:
    """The monitor, push and feedback DAGs, keyed by dag_id, for a DAG file's `globals()`."""
    from airflow.sdk import DAG, AssetAny, task

    from lidm.config import get_settings
    from lidm.contracts import load_catalog
    from lidm.monitor.rules import load_rules

    settings = get_settings()
    catalog = load_catalog(settings.contracts_dir)
    rules = load_rules(settings.rules_dir, catalog=catalog, params=settings.rule_params)
    feeds = sorted({feed for rule in rules for feed in rule.feeds})
    depts = departments()
    common: dict[str, Any] = {
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": dict(DEFAULT_ARGS),
    }
    dags: dict[str, DAG] = {}

    with DAG(
        dag_id=MONITOR_DAG,
        description="Cross-match the feeds: raise, close and age warnings; rebuild the happiness list",
        schedule=AssetAny(*(contract_asset(f) for f in feeds)),
        tags=["lidm", "monitoring"],
        doc_md=_monitor_doc(rules, feeds),
        **common,
    ) as dag:

        @task(task_id="evaluate_rules", outlets=[contract_asset(WARNING)])
        def evaluate_rules() -> dict[str, Any]:
            return monitor_task()

        @task(task_id="happiness_list", outlets=[contract_asset(ASSISTANCE)])
        def happiness_list() -> dict[str, Any]:
            return happiness_task()

        evaluate_rules() >> happiness_list()
    dags[dag.dag_id] = dag

    with DAG(
        dag_id=PUSH_DAG,
        description="Push each department's new warnings through its channel (SFTP outbox or its database)",
        schedule=[contract_asset(WARNING)],
        tags=["lidm", "monitoring"],
        doc_md="Pushes new warnings to each department, only the fields its grant on `platform.warning` allows; "
        "every push is recorded in `lidm_push`. One task per department, in its pool.",
        **common,
    ) as dag:
        for dept in depts:

            @task(task_id=f"push_{dept}", pool=dept)
            def push(department: str) -> Any:
                return push_task(department)

            push(dept)
    dags[dag.dag_id] = dag

    with DAG(
        dag_id=FEEDBACK_DAG,
        description="Take in acknowledgements and dispositions from every department; rebuild the happiness list",
        schedule="@hourly",
        tags=["lidm", "monitoring"],
        doc_md="Reads each department's acknowledgements and dispositions, validates them against "
        "`platform.disposition`, applies the valid ones to their warnings and refuses the rest with a reason "
        "(`lidm_disposition_result`). Then rebuilds the happiness list.",
        **common,
    ) as dag:
        collected = []
        for dept in depts:

            @task(task_id=f"collect_{dept}", pool=dept, outlets=[contract_asset(DISPOSITION)])
            def collect(department: str) -> Any:
                return collect_task(department)

            collected.append(collect(dept))

        @task(task_id="happiness_list", outlets=[contract_asset(ASSISTANCE)], trigger_rule="all_done")
        def rebuild() -> dict[str, Any]:
            return happiness_task()

        collected >> rebuild()
    dags[dag.dag_id] = dag

    with DAG(
        dag_id=HOUSEKEEPING_DAG,
        description="Daily: delete rows past their contract's retention and quarantine past its retention",
        schedule="@daily",
        tags=["lidm", "housekeeping"],
        doc_md="Runs `lidm purge`: rows older than the contract's `lidmRetention` and quarantine rows older than "
        "`LIDM_QUARANTINE_RETENTION` (default P1Y) are deleted in one transaction, recorded in the audit log.",
        **common,
    ) as dag:

        @task(task_id="purge_expired")
        def purge() -> dict[str, Any]:
            return purge_task()

        purge()
    dags[dag.dag_id] = dag
    return dags


def _monitor_doc(rules: list[Any], feeds: list[str]) -> str:
    lines = [
        "# Monitoring: cross-matching rules",
        "",
        "Runs when any feed a rule reads is loaded. Every rule is one set-based SQL statement; the whole run is "
        "one transaction (all of it or none of it).",
        "",
        "| rule | hardship | department | urgency | days |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| `{r.id}` | {r.hardship_type} | {r.department} | {r.urgency.value} | {r.due_days} |" for r in rules]
    lines += ["", "Scheduled on: " + ", ".join(f"`{f}`" for f in feeds)]
    return "\n".join(lines)
