"""The README's deployment without Docker, followed by its script: Airflow as separate processes on PostgreSQL
with the CeleryExecutor on this machine's Redis.

`scripts/airflow-local.sh init` then `start` brings up the api-server, scheduler, dag-processor, triggerer and a
Celery worker; unpausing the roster feed starts its scheduled run (the drop sensor defers to the triggerer, the
worker loads), and its Asset starts the monitoring DAG. Both must succeed through the scheduler; `stop` ends
every process. Waiting reads the metadata database until a deadline: no fixed sleep.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPT = ROOT / "scripts" / "airflow-local.sh"
ADMIN = "postgresql://postgres@127.0.0.1:5432"
FEED_DAG = "lidm_feed__civil_affairs__low_income_roster"
MONITOR_DAG = "lidm_monitor"
ID_NUMBER = re.compile(r"(?<!\d)[1-6]\d{5}(?:19|20)\d{2}[01]\d[0-3]\d\d{3}[\dXx](?!\d)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    out = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args[:3])}: {(out.stdout + out.stderr)[-4000:]}"
    return out.stdout


def _wait(db: str, what: str, dag_id: str, deadline_seconds: float, logs: Path) -> list[tuple[str, str, str]]:
    """Poll the metadata database: until the DAG is parsed, or until one of its runs succeeded."""
    deadline = time.monotonic() + deadline_seconds
    with psycopg.connect(f"{ADMIN}/{db}", autocommit=True) as conn:
        while time.monotonic() < deadline:
            if what == "parsed":
                if conn.execute("SELECT 1 FROM dag WHERE dag_id = %s", (dag_id,)).fetchone():
                    return []
            else:
                runs = conn.execute(
                    "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = %s ORDER BY id", (dag_id,)
                ).fetchall()
                if any(state == "success" for _, _, state in runs):
                    return runs
                failed = [r for r in runs if r[2] == "failed"]
                assert not failed, f"{dag_id}: {failed}; logs in {logs}"
            time.sleep(1)
    tails = {p.name: p.read_text(errors="replace")[-1500:] for p in sorted(logs.glob("*.log"))}
    pytest.fail(f"{dag_id} not {what} in {deadline_seconds:.0f} s; process logs: {tails}")


@pytest.mark.airflow
def test_the_readme_deployment_runs_a_feed_and_the_monitor_through_celery(tmp_path: Path) -> None:
    tag = secrets.token_hex(4)
    airflow_db, central_db = f"lidm_test_airflow_{tag}", f"lidm_test_central_{tag}"
    deploy = tmp_path / "deploy"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIDM_"))} | {
        "LIDM_BIN": str(BIN),
        "LIDM_DEPLOY_HOME": str(deploy),
        "LIDM_AIRFLOW_DB": airflow_db,
        "LIDM_CENTRAL_DB": central_db,
        "LIDM_AIRFLOW_PORT": str(_free_port()),
        "LIDM_REDIS_URL": f"redis://127.0.0.1:6379/{int(tag, 16) % 14 + 1}",
        # The monitor runs on today's date: its deadlines may fall in a year chinesecalendar does not hold yet.
        "LIDM_WORKDAYS_ASSUME_WEEKDAYS_THROUGH": str(date.today().year + 1),
        # A queue of its own on the shared Redis: no other worker on this machine takes these tasks.
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"lidm-test-{tag}",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    sources = tmp_path / "sources"
    _run(env, str(BIN / "lidm"), "sample", "--size", "400", "--out", str(sources))
    try:
        _run(env, "bash", str(SCRIPT), "init", str(sources / "connections.json"))
        _run(env, "bash", str(SCRIPT), "start")
        logs = deploy / "logs"
        for dag_id in (FEED_DAG, MONITOR_DAG):
            _wait(airflow_db, "parsed", dag_id, 300, logs)
        airflow_env = env | dict(
            line.split("=", 1) for line in _run(env, "bash", str(SCRIPT), "env").splitlines() if "=" in line
        )
        # The monitor first, so the feed's Asset event finds it listening; unpausing the feed starts its run.
        _run(airflow_env, str(BIN / "airflow"), "dags", "unpause", MONITOR_DAG)
        _run(airflow_env, str(BIN / "airflow"), "dags", "unpause", FEED_DAG)
        feed_runs = _wait(airflow_db, "succeeded", FEED_DAG, 600, logs)
        assert [t for _, t, s in feed_runs if s == "success"] == ["scheduled"]
        monitor_runs = _wait(airflow_db, "succeeded", MONITOR_DAG, 600, logs)
        assert "asset_triggered" in [t for _, t, s in monitor_runs if s == "success"]

        with psycopg.connect(f"{ADMIN}/{central_db}", autocommit=True) as conn:
            (loaded,) = conn.execute(
                "SELECT count(*) FROM lidm_batch WHERE feed = %s AND status = 'loaded'",
                ("civil_affairs.low_income_roster",),
            ).fetchone()
        assert loaded == 1
        assert "worker: running" in _run(env, "bash", str(SCRIPT), "status")
        # Task logs and process logs hold no ID number (the sample's people have valid ones).
        for path in deploy.rglob("*.log"):
            assert not ID_NUMBER.search(path.read_text(errors="replace")), path
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, cwd=ROOT, capture_output=True, timeout=120)
        with psycopg.connect(f"{ADMIN}/postgres", autocommit=True) as admin:
            for name in (airflow_db, central_db):
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    stopped = _run(env, "bash", str(SCRIPT), "status")
    assert "running" not in stopped
