"""Airflow 3 shape of the monitoring loop: the monitor, push, feedback and housekeeping DAGs; the DAG file
`dags/lidm_monitoring.py` only calls `build_monitor_dags()`.

- `lidm_monitor` is scheduled on the Assets of every feed a rule reads (any of them updating starts a run;
  a run evaluates every rule in one transaction, so runs requested in a burst are harmless). It publishes
  the Asset `platform.warning`, then rebuilds the happiness list (`platform.assistance_record`) and the needs
  list with its summary for charity (`platform.needs`, `platform.needs_summary`).
- `lidm_push` is scheduled on `platform.warning`: one task per department, in that department's pool,
  pushes its new warnings through its channel.
- `lidm_feedback` runs hourly: one task per department takes in acknowledgements and dispositions from its
  channel, then the happiness and needs lists are rebuilt; it publishes `platform.disposition`.
- `lidm_housekeeping` runs daily: rows past their contract's retention are purged.

What each task does, and where a department's channel comes from, is in `tasks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lidm.integrations.airflow.dags import DEFAULT_ARGS, START_DATE, contract_asset
from lidm.integrations.airflow.tasks import (
    collect_task,
    happiness_task,
    monitor_task,
    needs_task,
    purge_task,
    push_task,
)

if TYPE_CHECKING:
    from airflow.sdk import DAG

MONITOR_DAG = "lidm_monitor"
PUSH_DAG = "lidm_push"
FEEDBACK_DAG = "lidm_feedback"
HOUSEKEEPING_DAG = "lidm_housekeeping"
WARNING = "platform.warning"
DISPOSITION = "platform.disposition"
ASSISTANCE = "platform.assistance_record"
NEEDS = ("platform.needs", "platform.needs_summary")


def departments() -> list[str]:
    """Departments warnings can be pushed to: the warning contract's target_department codes."""
    from lidm.config import get_settings
    from lidm.contracts import load_catalog

    return list(load_catalog(get_settings().contracts_dir)[WARNING].field("target_department").enum or ())


def build_monitor_dags() -> dict[str, DAG]:
    """The monitor, push, feedback and housekeeping DAGs, keyed by dag_id, for a DAG file's `globals()`."""
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
        description="Cross-match the feeds: raise, close and age warnings; rebuild the happiness and needs lists",
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

        @task(task_id="needs_list", outlets=[contract_asset(n) for n in NEEDS])
        def needs_list() -> dict[str, Any]:
            return needs_task()

        evaluated = evaluate_rules()
        evaluated >> happiness_list()
        evaluated >> needs_list()
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
        description="Take in acknowledgements and dispositions from every department; rebuild the happiness and "
        "needs lists",
        schedule="@hourly",
        tags=["lidm", "monitoring"],
        doc_md="Reads each department's acknowledgements and dispositions, validates them against "
        "`platform.disposition`, applies the valid ones to their warnings and refuses the rest with a reason "
        "(`lidm_disposition_result`). Then rebuilds the happiness list, and the needs list (a disposed warning is "
        "no longer open, so its need goes unless a visit still asks for it).",
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

        @task(task_id="needs_list", outlets=[contract_asset(n) for n in NEEDS], trigger_rule="all_done")
        def rebuild_needs() -> dict[str, Any]:
            return needs_task()

        collected >> rebuild()
        collected >> rebuild_needs()
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
        "| rule | hardship | department | urgency | due in |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| `{r.id}` | {r.hardship_type} | {r.department} | {r.urgency.value} | {r.due_text} |" for r in rules]
    lines += ["", "Scheduled on: " + ", ".join(f"`{f}`" for f in feeds)]
    return "\n".join(lines)
