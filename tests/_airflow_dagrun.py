"""Run one lidm feed DAG with dag.test() and print a JSON report; tests/test_airflow_dags.py runs it in a subprocess.

Usage: python tests/_airflow_dagrun.py [--dag-file=PATH] DAG_ID [DAG_ID ...]

The DAG is taken from the DAG file exactly as Airflow parses it. Its task retries are switched off for
this run only (a red run must fail at once instead of waiting out the retry delays); the report carries the
DAG's real settings, read before that override. Each DAG's report is one stdout line `LIDM_DAGRUN <json>`;
the DAG file is parsed once for all of them.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "lidm_feeds.py"


def main(*args: str) -> int:
    files = [a.removeprefix("--dag-file=") for a in args if a.startswith("--dag-file=")]
    dag_ids = [a for a in args if not a.startswith("--dag-file=")]
    dags = runpy.run_path(files[0] if files else str(DAG_FILE))
    for dag_id in dag_ids:
        run_one(dags[dag_id])
    return 0


def run_one(dag) -> None:  # type: ignore[no-untyped-def]
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag_id = dag.dag_id
    task = dag.get_task("load") if "load" in dag.task_dict else dag.tasks[0]
    report: dict = {
        "dag": {
            "dag_id": dag.dag_id,
            "schedule": dag.schedule if isinstance(dag.schedule, str | None) else repr(dag.schedule),
            "start_date": dag.start_date.isoformat(),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tags": sorted(dag.tags),
            "doc_md": dag.doc_md,
        },
        "task": {
            "task_id": task.task_id,
            "retries": task.retries,
            "retry_delay": task.retry_delay.total_seconds(),
            "retry_exponential_backoff": task.retry_exponential_backoff,
            "pool": task.pool,
            "outlets": [{"name": a.name, "uri": a.uri} for a in task.outlets],
        },
        "upstream": sorted(task.upstream_task_ids),
    }
    for t in dag.tasks:
        t.retries = 0
    run = dag.test()
    with create_session() as session:
        xcoms = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id)
        ).all()
        report["xcom"] = {f"{x.task_id}.{x.key}": x.value for x in xcoms}
        events = session.execute(
            select(AssetModel.name, AssetModel.uri)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run.run_id)
        ).all()
        report["asset_events"] = [{"name": name, "uri": uri} for name, uri in events]
        report["task_states"] = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
    report["run_id"] = run.run_id
    report["state"] = str(run.state)
    print("LIDM_DAGRUN " + json.dumps(report, ensure_ascii=False, default=str), flush=True)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
