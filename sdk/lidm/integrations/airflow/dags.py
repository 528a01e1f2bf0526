"""The feed DAGs: one DAG per registered adapter; the DAG file `dags/lidm_feeds.py` only calls
`build_feed_dags()`.

Choices worth knowing:

- Assets: each feed's task publishes `Asset(name=<contract id>, uri="lidm://central/<contract id>")`
  (`contract_asset`). Airflow 3 accepts any URI scheme except the reserved `airflow`; a scheme without a
  normalizer registered by a provider is stored as written, so `lidm://` needs no plugin. Downstream DAGs
  (monitoring) schedule on `contract_asset(id)` so both sides build the identical Asset.
- Retries: 3, starting at 1 minute and doubling. In Airflow 3.3 `retry_exponential_backoff` is a
  multiplier (`True` would mean 1.0, a constant delay), so it is set to 2.0. What is not worth retrying
  fails at once (the error's class says a retry cannot help: `lidm.errors.retryable`).
- Pools: each task runs in its adapter's pool (`Adapter.pool`, e.g. `health`) when it names one, so a
  department's database never sees more parallel extracts than the pool has slots. `dag.test()` ignores
  pools, but the scheduler leaves a task in a non-existent pool unscheduled (and the DAG processor shows a
  "non-existent pool" DAG warning), so a deployment creates the pools before starting the scheduler
  (`airflow pools set ...`, see docker-compose.yml).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lidm.integrations.airflow import operators, sensors

if TYPE_CHECKING:
    from airflow.sdk import DAG, Asset

    from lidm.adapter import Adapter
    from lidm.contracts import Contract

DAG_PREFIX = "lidm_feed__"
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
SCHEDULES = {"hourly": "@hourly", "daily": "@daily", "weekly": "@weekly", "monthly": "@monthly"}
DEFAULT_ARGS: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}


def dag_id(feed: str) -> str:
    """`health.population` -> `lidm_feed__health__population`."""
    return DAG_PREFIX + feed.replace(".", "__")


def contract_asset(contract_id: str) -> Asset:
    """The Asset of a contract's dataset in the central database; its feed's task updates it on every success."""
    from airflow.sdk import Asset

    return Asset(name=contract_id, uri=f"lidm://central/{contract_id}")


def build_feed_dags() -> dict[str, DAG]:
    """One DAG per registered adapter, keyed by dag_id, for a DAG file's `globals()`."""
    from lidm.config import get_settings
    from lidm.contracts import load_catalog
    from lidm.registry import adapters

    catalog = load_catalog(get_settings().contracts_dir)
    dags: dict[str, DAG] = {}
    for feed, adapter in adapters().items():
        contract = catalog[adapter.contract]  # ContractError names the missing id
        dag = _feed_dag(feed, adapter, contract)
        dags[dag.dag_id] = dag
    return dags


def _doc_md(feed: str, adapter: Adapter, contract: Contract) -> str:
    return "\n".join(
        [
            f"# {contract.title}",
            "",
            f"Loads feed `{feed}` into the central database: every pending batch is validated, protected and "
            "loaded in one transaction (rows extracted = loaded + quarantined).",
            "",
            "| | |",
            "|---|---|",
            f"| contract | `{contract.id}` version {contract.version} |",
            f"| department | {contract.department} |",
            f"| source | {adapter.source.describe()} (Airflow connection `{adapter.source.connection}`) |",
            f"| update | {contract.update_mode.value}, {contract.frequency or 'unscheduled'} |",
            f"| freshness | {contract.freshness or 'not set'} |",
            f"| publishes | Asset `{contract.id}` (`lidm://central/{contract.id}`) |",
            "",
            "A rejected batch fails the run without retry (the drop is moved to `rejected/` with its reason); "
            "an unreachable source is retried.",
        ]
    )


def _feed_dag(feed: str, adapter: Adapter, contract: Contract) -> DAG:
    from airflow.sdk import DAG

    with DAG(
        dag_id=dag_id(feed),
        description=f"{contract.title} ({contract.id} v{contract.version})",
        schedule=SCHEDULES.get((contract.frequency or "").lower()),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[contract.department, "lidm"],
        default_args=dict(DEFAULT_ARGS),
        doc_md=_doc_md(feed, adapter, contract),
    ) as dag:
        options: dict[str, Any] = {"task_id": "load", "outlets": [contract_asset(contract.id)]}
        if adapter.pool:
            options["pool"] = adapter.pool
        loaded = operators.LidmFeedOperator(feed=feed, **options)
        if adapter.source.rereadable:
            # After every load, even a failed one: "nothing lost" is checked, not assumed.
            check = {"pool": adapter.pool} if adapter.pool else {}
            loaded >> operators.LidmReconcileOperator(
                task_id="reconcile", feed=feed, trigger_rule="all_done", retries=0, **check
            )
        if adapter.source.delivers_files:
            from lidm.config import duration, get_settings

            # Wait (deferred, holding no worker slot) for a complete drop; give up once the feed is late.
            wait = sensors.DropSensor(
                task_id="wait_for_drop",
                feed=feed,
                poke_interval=get_settings().drop_poll_seconds,
                timeout=(duration(contract.freshness) or timedelta(days=1)).total_seconds(),
                pool=adapter.pool or "default_pool",
            )
            wait >> loaded
    return dag
