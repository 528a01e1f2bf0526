"""Run lidm DAGs with dag.test() and write a JSON report of each; tests/test_airflow_dags.py runs it in a subprocess.

Usage: python tests/_airflow_dagrun.py --report=PATH [--dag-file=PATH] DAG_ID [DAG_ID ...]
       python tests/_airflow_dagrun.py --report=PATH [--dag-file=PATH] --done-fd=FD   (then DAG ids on stdin)

The DAG is taken from the DAG file exactly as Airflow parses it. Its task retries are switched off for
this run only (a red run must fail at once instead of waiting out the retry delays); the report carries the
DAG's real settings, read before that override. Each DAG's report is one JSON line appended to the report
file, as soon as its run ends; the DAG file is parsed once for all of them. The reports never go to stdout:
Airflow, its task and its OpenLineage listener (threads and processes of their own) write there too, and
a log line of theirs could land in the middle of a report.

With --done-fd the runner serves a test that does something between runs (Airflow's start costs seconds): it
reads a line of DAG ids from stdin, runs them, then writes "done" to the file descriptor FD; until stdin ends.
A DAG that raises ends the process with that error, as without --done-fd.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "lidm_feeds.py"


def main(*args: str) -> int:
    options = {k: v for k, _, v in (a.removeprefix("--").partition("=") for a in args if a.startswith("--"))}
    dag_ids = [a for a in args if not a.startswith("--")]
    report = Path(options["report"])
    dags = runpy.run_path(options.get("dag-file", str(DAG_FILE)))
    if "done-fd" not in options:
        run_all(dags, dag_ids, report)
        return 0
    fd = int(options["done-fd"])
    os.set_inheritable(fd, False)  # a process Airflow starts must not hold it open after this one ends
    with open(fd, "w", encoding="utf-8") as done:
        for line in sys.stdin:
            run_all(dags, line.split(), report)
            sys.stdout.flush()  # what the round printed is in the output before the test reads it
            sys.stderr.flush()
            done.write("done\n")
            done.flush()
    return 0


def run_all(dags: dict, dag_ids: list[str], report: Path) -> None:
    """Run each DAG in turn and append its report as one JSON line, as soon as its run ends."""
    for dag_id in dag_ids:
        line = json.dumps(run_one(dags[dag_id]), ensure_ascii=False, default=str)
        with report.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


def run_one(dag) -> dict:  # type: ignore[no-untyped-def]
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
    return report


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
