"""The feed DAGs under a real Airflow 3: the DAG file parses, both feeds run green with dag.test().

Airflow runs in subprocesses only (its CLI, and tests/_airflow_dagrun.py for dag.test()), each with a fresh
AIRFLOW_HOME and a SQLite metadata database migrated once per session, so no Airflow configuration leaks
into this process. Sources and the central database are the real services of conftest.py; connections
reach Airflow as AIRFLOW_CONN_<ID> JSON, the gateway configuration as LIDM_* variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from _db import kill_central_on_batch_insert

pytestmark = [pytest.mark.airflow]

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
AIRFLOW = Path(sys.executable).with_name("airflow")
RUNNER = Path(__file__).with_name("_airflow_dagrun.py")
HEALTH_DAG = "lidm_feed__health__population"
ROSTER_DAG = "lidm_feed__civil_affairs__low_income_roster"


def _clean_env() -> dict[str, str]:
    """The parent's environment without any Airflow or lidm setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIDM_"))}


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIRFLOW), *args], env=env, cwd=env["AIRFLOW_HOME"], capture_output=True, text=True, timeout=120
    )


def _json_output(out: subprocess.CompletedProcess[str]):
    """The CLI's `-o json` payload: its last line that parses as a JSON list (warnings come first)."""
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("["):
            return json.loads(line)
    raise AssertionError(f"no JSON in the output:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def test_dag_file_parses_without_errors_and_lists_both_feeds(airflow_env):
    errors = _airflow(airflow_env, "dags", "list-import-errors", "--local", "-o", "json")
    assert _json_output(errors) == [], errors.stdout[-3000:]
    assert errors.returncode == 0
    listed = _airflow(airflow_env, "dags", "list", "--local", "-o", "json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    dags = {d["dag_id"]: d for d in _json_output(listed)}
    assert {HEALTH_DAG, ROSTER_DAG} <= set(dags)
    assert dags[HEALTH_DAG]["fileloc"] == str(DAGS / "lidm_feeds.py")


def _gateway_env(airflow_env: dict[str, str], gateway, conn_id: str, conn: dict) -> dict[str, str]:
    return airflow_env | {
        "AIRFLOW_CONN_" + conn_id.upper(): json.dumps(conn),
        "LIDM_HOME": str(gateway.home),
        "LIDM_CENTRAL_URL": gateway.central_url,
        "LIDM_KEYRING": str(gateway.home / "keyring.json"),
        # The monitor runs on today's date: its deadlines may fall in a year chinesecalendar does not hold yet.
        "LIDM_WORKDAYS_ASSUME_WEEKDAYS_THROUGH": str(date.today().year + 1),
    }


def _runner(report: Path, dag_ids: tuple[str, ...], dag_file: Path | None = None) -> list[str]:
    """The command that runs DAGs with dag.test() and appends their reports to `report`."""
    return [
        sys.executable,
        str(RUNNER),
        f"--report={report}",
        *([f"--dag-file={dag_file}"] if dag_file else []),
        *dag_ids,
    ]


def _reports(path: Path) -> list[dict]:
    """The runner's reports, one per DAG run that ended (none when it failed before the first).

    They come through a file, never the runner's stdout: Airflow's and OpenLineage's threads and processes log
    there too, and on a busy machine one of their lines landed in the middle of a report.
    """
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()] if path.exists() else []


def _dagrun(
    env: dict[str, str], *dag_ids: str, dag_file: Path | None = None, timeout: float = 240
) -> tuple[list[dict], str, int]:
    """Run DAGs with dag.test() in a subprocess: their reports, everything it printed, and its exit status."""
    report = Path(env["AIRFLOW_HOME"]) / f"dagrun-{secrets.token_hex(4)}.jsonl"
    out = subprocess.run(
        _runner(report, dag_ids, dag_file),
        env=env,
        cwd=env["AIRFLOW_HOME"],  # not the repo: lidm's Settings would read a ./.env there
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return _reports(report), out.stdout + out.stderr, out.returncode


@contextlib.contextmanager
def _dagrunner(
    env: dict[str, str], dag_file: Path | None = None
) -> Iterator[Callable[..., tuple[list[dict], str, int]]]:
    """One runner process for several rounds of dag.test(), for a test that acts between them: Airflow starts once
    (seconds of imports) instead of once a round. Yields `run(*dag_ids, timeout=...)`, which returns what `_dagrun`
    does for that round: its DAGs' reports, everything printed so far, and 0, or the exit status if the runner ended."""
    report = Path(env["AIRFLOW_HOME"]) / f"dagrun-{secrets.token_hex(4)}.jsonl"
    log = report.with_suffix(".log")
    read_fd, write_fd = os.pipe()
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [*_runner(report, (), dag_file), f"--done-fd={write_fd}"],
            env=env,
            cwd=env["AIRFLOW_HOME"],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            pass_fds=(write_fd,),
        )
    os.close(write_fd)  # the runner holds the only write end: its end is the end of this pipe
    done = os.fdopen(read_fd, "r", encoding="utf-8")
    seen = 0

    def run(*dag_ids: str, timeout: float = 240) -> tuple[list[dict], str, int]:
        nonlocal seen
        assert proc.stdin is not None
        start = log.stat().st_size
        with contextlib.suppress(BrokenPipeError):  # the runner has ended: its status and output say why
            proc.stdin.write(" ".join(dag_ids) + "\n")
            proc.stdin.flush()
        ready, _, _ = select.select([done], [], [], timeout)
        if ready and done.readline() == "done\n":
            code = 0
        else:  # the runner ended (a DAG raised), or the round took too long
            if not ready:
                proc.kill()
            code = proc.wait(timeout=60)
        reports = _reports(report)
        reports, seen = reports[seen:], len(reports)
        with log.open("rb") as out:
            out.seek(start)
            return reports, out.read().decode("utf-8", errors="replace"), code

    try:
        yield run
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        done.close()


def _dag_test(
    env: dict[str, str], dag_id: str, dagrun: Callable[..., tuple[list[dict], str, int]] | None = None
) -> tuple[dict, str]:
    """Run the DAG with dag.test() in a subprocess (or a round of `dagrun`'s); return its report and what it printed."""
    reports, printed, code = dagrun(dag_id) if dagrun else _dagrun(env, dag_id)
    assert code == 0, printed[-6000:]
    (report,) = reports
    assert report["state"] == "success", printed[-6000:]
    assert set(report["task_states"].values()) == {"success"} and "load" in report["task_states"]
    # dag.test() runs the task in this process: its log is in the output (checked for leaks below).
    assert "[DAG TEST] end task task_id=load" in printed
    return report, printed


def _run_logs(env: dict[str, str], dag_id: str) -> str:
    """Every task log file Airflow wrote for the DAG (dag.test() logs to the console; none, as of 3.3)."""
    logs = Path(env["AIRFLOW_HOME"]) / "logs"
    return "".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file() and dag_id in str(p))


def _batches(url: str, feed: str) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT batch_id, status, extracted, loaded, quarantined FROM lidm_batch WHERE feed = :f"),
                {"f": feed},
            )
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


def _assert_counts_match(report: dict, batches: list[dict]) -> dict:
    contract = report["task"]["outlets"][0]
    assert report["asset_events"] == [contract], "the load publishes the contract's Asset"
    (counts,) = report["xcom"]["load.return_value"]
    assert all(isinstance(pair, list) for pair in counts["top_reasons"]), "plain JSON in XCom"
    (batch,) = batches
    assert batch["status"] == "loaded"
    assert batch["extracted"] == batch["loaded"] + batch["quarantined"]
    assert {k: counts[k] for k in ("batch_id", "status", "extracted", "loaded", "quarantined")} == batch
    return counts


def _assert_no_id_numbers(ids: list[str], *texts: str) -> None:
    assert ids
    for text in texts:
        leaked = [i for i in ids if i in text]
        assert not leaked, f"{len(leaked)} raw ID numbers in the run's output or logs"


def _population_in_mariadb(mariadb_odbc, size: int, seed: int, bad: int) -> tuple[list[dict], dict]:
    """Health's population table written to MariaDB, and the Airflow ODBC connection that reads it."""
    from lidm_samples import generate_people, population_rows, write_population_table

    rows = population_rows(generate_people(size, seed), bad=bad).rows
    engine = sa.create_engine(mariadb_odbc.sqlalchemy_url)
    try:
        write_population_table(engine, rows)
    finally:
        engine.dispose()
    conn = {
        "conn_type": "odbc",
        "host": "127.0.0.1",
        "port": 3306,
        "schema": mariadb_odbc.database,
        "login": "root",
        "extra": {"driver": "MariaDB Unicode", "CHARSET": "utf8mb4"},
    }
    return rows, conn


def test_health_population_dag_loads_from_mariadb_over_odbc(airflow_env, mariadb_odbc, gateway_pg):
    rows, conn = _population_in_mariadb(mariadb_odbc, 300, 7, bad=3)
    lineage = gateway_pg.home / "openlineage.jsonl"
    env = _gateway_env(airflow_env, gateway_pg, "health_db", conn) | {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(lineage), "append": True}),
    }

    report, printed = _dag_test(env, HEALTH_DAG)

    # OpenLineage: the operator names its input (the department table) and output (the central table).
    events = [json.loads(line) for line in lineage.read_text().splitlines()]
    [complete] = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(".load")]
    central_db = sa.engine.make_url(gateway_pg.central_url).database
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [
        ("odbc://127.0.0.1:3306", f"{mariadb_odbc.database}.t_population")
    ]
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [
        ("postgres://127.0.0.1:5432", f"{central_db}.public.health_population")
    ]
    assert "password" not in lineage.read_text().lower()

    assert report["dag"] | {"doc_md": None} == {
        "dag_id": HEALTH_DAG,
        "schedule": "@daily",
        "start_date": "2026-01-01T00:00:00+00:00",
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["health", "lidm"],
        "doc_md": None,
    }
    assert "health.population" in report["dag"]["doc_md"] and "P2D" in report["dag"]["doc_md"]
    assert report["task"] == {
        "task_id": "load",
        "retries": 3,
        "retry_delay": 60.0,
        "retry_exponential_backoff": 2.0,
        "pool": "health",
        "outlets": [{"name": "health.population", "uri": "lidm://central/health.population"}],
    }
    counts = _assert_counts_match(report, _batches(gateway_pg.central_url, "health.population"))
    assert counts["extracted"] == len(rows) and counts["quarantined"] == 3
    _assert_no_id_numbers([r["sfzh"] for r in rows], printed, json.dumps(report), _run_logs(env, HEALTH_DAG))


@pytest.fixture
def drop_folder(sftp_server):
    """A fresh folder under the drop user's outbox (unique, so concurrent sessions never share one)."""
    outbox = sftp_server.home / "outbox"
    folder = outbox / f"airflow_{secrets.token_hex(4)}"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _chown_like_parent(folder: Path) -> None:
    st = folder.parent.stat()
    for p in [folder, *folder.rglob("*")]:
        os.chown(p, st.st_uid, st.st_gid)


def _drop_conn(sftp_server, drop_folder: Path) -> dict:
    """The Airflow connection of the roster drop: the test sshd, its pinned host key, the drop folder."""
    return {
        "conn_type": "sftp",
        "host": sftp_server.host,
        "port": sftp_server.port,
        "login": sftp_server.username,
        "extra": {
            "key_file": str(sftp_server.client_key),
            "known_hosts": str(sftp_server.known_hosts),
            "path": f"outbox/{drop_folder.name}",
        },
    }


def test_roster_dag_loads_an_sftp_drop(airflow_env, sftp_server, drop_folder, gateway_pg):
    from lidm_samples import generate_people, generate_roster, roster_rows, write_roster_drop

    rows = roster_rows(generate_roster(generate_people(1000, 11), share=0.2, seed=11), bad=4, seed=11).rows
    write_roster_drop(drop_folder, rows)
    _chown_like_parent(drop_folder)
    conn = _drop_conn(sftp_server, drop_folder)
    env = _gateway_env(airflow_env, gateway_pg, "civil_affairs_drop", conn)

    report, printed = _dag_test(env, ROSTER_DAG)

    assert report["dag"]["schedule"] == "@daily" and report["dag"]["tags"] == ["civil_affairs", "lidm"]
    assert report["task"]["pool"] == "civil_affairs"
    assert report["upstream"] == ["wait_for_drop"]  # a drop feed first waits for a complete drop
    assert report["task_states"] == {"wait_for_drop": "success", "load": "success"}
    assert report["task"]["outlets"] == [
        {"name": "civil_affairs.low_income_roster", "uri": "lidm://central/civil_affairs.low_income_roster"}
    ]
    counts = _assert_counts_match(report, _batches(gateway_pg.central_url, "civil_affairs.low_income_roster"))
    assert counts["extracted"] == len(rows) and counts["quarantined"] == 4
    assert sorted(p.name for p in drop_folder.iterdir()) == ["archive"]
    receipt = drop_folder / "archive" / "roster_20261127.csv.receipt.json"
    assert counts["batch_id"] in receipt.read_text()
    assert (drop_folder / "archive" / "roster_20261127.csv").exists()
    _assert_no_id_numbers([r["身份证号"] for r in rows], printed, json.dumps(report), _run_logs(env, ROSTER_DAG))


def test_a_drop_that_arrives_while_the_sensor_is_deferred_is_loaded(airflow_env, sftp_server, drop_folder, gateway_pg):
    """The sensor finds no complete drop and defers; a data file without its marker does not wake it; the
    marker does, and the feed loads the drop. dag.test() runs the trigger in-process, as a triggerer would."""
    from lidm_samples import generate_people, generate_roster, roster_rows, write_roster_drop

    _chown_like_parent(drop_folder)
    conn = _drop_conn(sftp_server, drop_folder)
    env = _gateway_env(airflow_env, gateway_pg, "civil_affairs_drop", conn) | {"LIDM_DROP_POLL_SECONDS": "1"}
    report_file = Path(env["AIRFLOW_HOME"]) / f"dagrun-{secrets.token_hex(4)}.jsonl"
    run = subprocess.Popen(
        _runner(report_file, (ROSTER_DAG,)),
        env=env,
        cwd=env["AIRFLOW_HOME"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(run.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        rows = roster_rows(generate_roster(generate_people(300, 5), share=0.2, seed=5)).rows
        # Wait for the sensor to look, find nothing and defer (however long the DAG takes to parse on a busy
        # machine), then deliver: a fixed sleep raced the parse and sometimes delivered before the first look.
        deadline = time.monotonic() + 120
        while not any("deferred" in x.lower() for x in lines) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert any("deferred" in x.lower() for x in lines), "".join(lines)[-4000:]
        write_roster_drop(drop_folder, rows, marker=False)  # the data file alone: not yet a drop
        _chown_like_parent(drop_folder)
        time.sleep(4)
        assert run.poll() is None, "the sensor must not fire on a file without its marker"
        (drop_folder / "roster_20261127.csv.ok").touch()
        _chown_like_parent(drop_folder)
        run.wait(timeout=180)
        reader.join(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    printed = "".join(lines)
    assert run.returncode == 0, printed[-6000:]
    (report,) = _reports(report_file)
    assert report["task_states"] == {"wait_for_drop": "success", "load": "success"}, printed[-4000:]
    assert "DEFERRED" in printed.upper()
    counts = _assert_counts_match(report, _batches(gateway_pg.central_url, "civil_affairs.low_income_roster"))
    assert counts["extracted"] == len(rows)


def _airflow_connection(url: str) -> dict:
    """The Airflow connection an operator would declare for one of `lidm sample`'s source URLs."""
    from urllib.parse import parse_qs, unquote, urlsplit

    if url.startswith("odbc:"):
        parts = dict(p.split("=", 1) for p in url.removeprefix("odbc:").split(";") if "=" in p)
        return {
            "conn_type": "odbc",
            "host": parts["SERVER"],
            "port": int(parts["PORT"]),
            "schema": parts["DATABASE"],
            "login": parts["UID"],
            "extra": {"driver": parts["DRIVER"].strip("{}"), "CHARSET": "utf8mb4"},
        }
    u = urlsplit(url)
    if u.scheme.startswith("postgresql"):
        return {"conn_type": "postgres", "host": u.hostname, "port": u.port, "login": u.username, "schema": u.path[1:]}
    if u.scheme == "sqlite":
        return {"conn_type": "sqlite", "host": unquote(u.path)}
    if u.scheme == "file":
        return {"conn_type": "fs", "extra": {"path": unquote(u.path)}}
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    return {
        "conn_type": "sftp",
        "host": u.hostname,
        "port": u.port,
        "login": u.username,
        "extra": {"key_file": query["key_file"], "known_hosts": query["known_hosts"], "path": u.path.lstrip("/")},
    }


def test_every_feed_dag_runs_green_on_the_real_servers(airflow_env, sftp_server, gateway_pg, tmp_path):
    """All 26 DAGs, each with dag.test(), reading the sample sources from MariaDB over ODBC, PostgreSQL,
    SQLite and the OpenSSH drop folders through Airflow connections; every batch keeps its invariant."""
    from lidm_samples.catalog import write_sources
    from lidm_samples.sources import Servers
    from lidm_samples.world import build_world

    from lidm.integrations.airflow.dags import dag_id

    prefix = f"lidm_dag_{secrets.token_hex(3)}_"
    servers = Servers(
        tmp_path / "sources",
        mariadb_odbc="DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;UID=root;PWD=;CHARSET=utf8mb4",
        postgres_url="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        sftp_url=sftp_server.url(f"dags_{secrets.token_hex(3)}"),
        database_prefix=prefix,
    )
    sources = write_sources(build_world(800, 29), servers, bad=3)
    try:
        env = _gateway_env(airflow_env, gateway_pg, "unused", {}) | {
            "AIRFLOW_CONN_" + name.upper(): json.dumps(_airflow_connection(url))
            for name, url in sources.connections.items()
        }
        ids = [dag_id(w.dataset) for w in sources.written]
        with _dagrunner(env) as dagrun:  # both rounds in one Airflow process
            reports, printed, code = dagrun(*ids, timeout=900)
            assert code == 0, printed[-6000:]
            assert [r["dag"]["dag_id"] for r in reports] == ids
            for written, report in zip(sources.written, reports, strict=True):
                assert report["state"] == "success", (written.dataset, printed[-4000:])
                counts = _assert_counts_match(report, _batches(gateway_pg.central_url, written.dataset))
                assert (counts["extracted"], counts["quarantined"]) == (written.rows, written.expected_quarantine)

            # Run the database feeds' DAGs again: nothing is loaded twice. (A drop feed's second run would wait
            # for its next drop, and the same drop delivered again is refused as a replay: shown elsewhere.)
            sql = [i for w, i in zip(sources.written, ids, strict=True) if w.kind.startswith("sql")]
            reports, printed, code = dagrun(*sql, timeout=900)
            assert code == 0, printed[-6000:]
            assert [r["dag"]["dag_id"] for r in reports] == sql
            for report in reports:
                [counts] = report["xcom"]["load.return_value"]
                assert report["state"] == "success" and counts["status"] == "unchanged", report["dag"]["dag_id"]
                assert report["asset_events"] == [report["task"]["outlets"][0]]
            for written in sources.written:
                assert len(_batches(gateway_pg.central_url, written.dataset)) == 1, written.dataset
    finally:
        _drop_source_databases(prefix)


def _drop_source_databases(prefix: str) -> None:
    import contextlib

    import psycopg
    import pyodbc
    from conftest import MARIADB_BASE, PG_ADMIN_DSN

    with contextlib.closing(pyodbc.connect(MARIADB_BASE, autocommit=True, timeout=5)) as admin:
        for (name,) in admin.execute("SHOW DATABASES").fetchall():
            if name.startswith(prefix):
                admin.execute(f"DROP DATABASE `{name}`")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        for (name,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)
        ).fetchall():
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            admin.execute(f'DROP DATABASE "{name}"')


# --------------------------------------------------------------------------- the glue without a DAG run


def test_sdk_and_the_glue_import_without_airflow(tmp_path):
    code = (
        "import pathlib, sys, lidm, lidm.pipeline, lidm.integrations.airflow.monitor_dags; "
        "import lidm.integrations.airflow.dags as glue; "
        "pathlib.Path(sys.argv[1]).write_text(f\"{'airflow' in sys.modules} {callable(glue.build_feed_dags)}\")"
    )
    found = tmp_path / "found.txt"
    subprocess.run([sys.executable, "-c", code, str(found)], env=_clean_env(), capture_output=True, check=True)
    assert found.read_text() == "False True", "Airflow must only be imported inside the glue's functions"


# Runs inside Airflow's environment: connection_url for each argument, then run_feed_task for the roster feed
# under each scenario's Airflow connection. Writes its JSON report to the file named by its second argument.
GLUE_SCRIPT = """
import json, os, shutil, sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from urllib.parse import unquote
from airflow.sdk.exceptions import AirflowFailException
from lidm.errors import ConfigError, SourceError
from lidm.integrations.airflow.hooks import connection_url
from lidm.integrations.airflow.tasks import run_feed_task

spec = json.loads(sys.argv[1])
report = {"urls": {}, "feeds": {}}
for conn_id in spec["urls"]:
    try:
        url = connection_url(conn_id)
        known = unquote(url.partition("known_hosts=")[2])
        report["urls"][conn_id] = {"url": url, "known_hosts": Path(known).read_text() if known else None}
        if known:
            shutil.rmtree(Path(known).parent)  # connection_url's private temporary folder
    except ConfigError as exc:
        report["urls"][conn_id] = {"error": str(exc)}
for name, conn in spec["feeds"].items():
    os.environ["AIRFLOW_CONN_CIVIL_AFFAIRS_DROP"] = json.dumps(conn)
    try:
        report["feeds"][name] = {"ok": run_feed_task("civil_affairs.low_income_roster")}
    except AirflowFailException as exc:
        report["feeds"][name] = {"fail": str(exc)}
    except SourceError as exc:
        report["feeds"][name] = {"retry": type(exc).__name__ + ": " + str(exc)}
Path(sys.argv[2]).write_text(json.dumps(report, ensure_ascii=False), "utf-8")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connections_translate_and_failures_are_classified(airflow_env, sftp_server, drop_folder, gateway_sqlite):
    import csv
    import io

    from lidm_samples import generate_people, generate_roster, roster_rows

    host_key = " ".join(sftp_server.known_hosts.read_text().split()[1:3])
    sftp = {"conn_type": "sftp", "host": sftp_server.host, "port": sftp_server.port, "login": sftp_server.username}
    empty = drop_folder / "empty"
    local = drop_folder / "local"  # a local drop whose file lacks a column: a data fault
    for folder in (empty, local):
        folder.mkdir()
    rows = roster_rows(generate_roster(generate_people(200, 5), share=0.3, seed=5)).rows
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[k for k in rows[0] if k != "姓名"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    (local / "roster_20261127.csv").write_bytes(buf.getvalue().encode("gb18030"))
    (local / "roster_20261127.csv.ok").write_text("")
    _chown_like_parent(drop_folder)
    urls = {
        "pg": {
            "conn_type": "postgres",
            "host": "db.example",
            "port": 5433,
            "login": "lidm",
            "password": "p@ss:w/rd",
            "schema": "central",
            "extra": {"sslmode": "require"},
        },
        "lite": {"conn_type": "sqlite", "host": "/srv/lidm/health.db"},
        "folder": {"conn_type": "fs", "extra": {"path": "/srv/drops/roster"}},
        "relative": {"conn_type": "fs", "extra": {"path": "drops/roster"}},
        "odbc": {
            "conn_type": "odbc",
            "host": "10.0.0.5",
            "port": 3306,
            "schema": "health",
            "login": "reader",
            "extra": {"driver": "MariaDB Unicode", "CHARSET": "utf8mb4"},
        },
        # the bare base64 form SSHHook also accepts: the key type is read from the key itself
        "pinned": sftp | {"port": 2222, "extra": {"host_key": host_key.split()[1], "path": "/srv/outbox"}},
        "web": {"conn_type": "http", "host": "example.org"},
    }
    feeds = {
        "host_key_and_private_key": sftp
        | {
            "extra": {
                "host_key": host_key + " drop-server",  # as in a .pub file, with a comment
                "private_key": sftp_server.client_key.read_text(),
                "path": f"outbox/{drop_folder.name}/empty",
            }
        },
        "changed_host_key": sftp
        | {"extra": {"key_file": str(sftp_server.client_key), "known_hosts": str(sftp_server.wrong_known_hosts)}},
        "no_host_key_check": sftp | {"extra": {"no_host_key_check": "true"}},
        "unreachable": sftp
        | {"port": _free_port(), "extra": {"host_key": host_key, "key_file": str(sftp_server.client_key)}},
        "rejected": {"conn_type": "fs", "extra": {"path": str(local)}},
    }
    env = airflow_env | {"AIRFLOW_CONN_" + k.upper(): json.dumps(v) for k, v in urls.items()}
    env |= {
        "LIDM_HOME": str(gateway_sqlite.home),
        "LIDM_KEYRING": str(gateway_sqlite.home / "keyring.json"),
    }
    spec = {"urls": [*urls, "missing"], "feeds": feeds}
    report_file = Path(env["AIRFLOW_HOME"]) / f"glue-{secrets.token_hex(4)}.json"
    out = subprocess.run(
        [sys.executable, "-c", GLUE_SCRIPT, json.dumps(spec), str(report_file)],
        env=env,
        cwd=env["AIRFLOW_HOME"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    report = json.loads(report_file.read_text("utf-8"))
    got = report["urls"]

    assert got["pg"]["url"] == "postgresql+psycopg://lidm:p%40ss%3Aw%2Frd@db.example:5433/central?sslmode=require"
    assert got["lite"]["url"] == "sqlite:////srv/lidm/health.db"
    assert got["folder"]["url"] == "file:///srv/drops/roster"
    assert "absolute" in got["relative"]["error"]
    assert got["odbc"]["url"] == (
        "odbc:DRIVER={MariaDB Unicode};SERVER=10.0.0.5;DATABASE=health;UID=reader;PORT=3306;CHARSET=utf8mb4;"
    )
    pinned = got["pinned"]
    assert pinned["url"].startswith("sftp://lidmdrop@127.0.0.1:2222//srv/outbox?known_hosts=")
    assert pinned["known_hosts"] == f"[127.0.0.1]:2222 {host_key}\n"
    assert "web" in got["web"]["error"] and "'http'" in got["web"]["error"]
    assert "missing" in got["missing"]["error"] and "AIRFLOW_CONN_MISSING" in got["missing"]["error"]
    # The password never shows in what Airflow printed (its secret masker knows the URL-quoted form too).
    assert "p@ss:w/rd" not in out.stdout + out.stderr

    feeds_out = report["feeds"]
    assert feeds_out["host_key_and_private_key"] == {"ok": []}
    assert (
        "HostKeyError" in feeds_out["changed_host_key"]["fail"] and "CHANGED" in feeds_out["changed_host_key"]["fail"]
    )
    assert "no_host_key_check is refused" in feeds_out["no_host_key_check"]["fail"]
    assert (
        feeds_out["unreachable"]["retry"].startswith("SourceError: ")
        and "unreachable" in feeds_out["unreachable"]["retry"]
    )
    rejected = feeds_out["rejected"]["fail"]
    assert "1 of 1 batch(es) rejected" in rejected and "missing_column" in rejected
    assert (local / "rejected" / "roster_20261127.csv").exists()
    _assert_no_id_numbers([r["身份证号"] for r in rows], out.stdout, out.stderr)


def test_a_central_database_connection_killed_mid_load_is_retried_cleanly(airflow_env, mariadb_odbc, gateway_pg):
    """Fault injection: the central database drops the load's connection inside its transaction (a trigger
    terminates the session as the batch row is written). The task fails as retryable, leaves nothing behind,
    and the retry loads the batch exactly once."""
    from lidm.central import db

    rows, conn = _population_in_mariadb(mariadb_odbc, 400, 11, bad=2)
    env = _gateway_env(airflow_env, gateway_pg, "health_db", conn)
    central = db.connect(gateway_pg.settings)
    with _dagrunner(env) as dagrun:  # the failed run and its retry in one Airflow process, as a worker's would be
        try:
            db.migrate(central)
            with central.begin() as c:
                kill_central_on_batch_insert(c)
            (failed,), printed, _ = dagrun(HEALTH_DAG)
            assert failed["state"] == "failed" and failed["task_states"]["load"] == "failed", printed[-4000:]
            assert "AirflowFailException" not in printed  # a lost connection is worth a retry
            assert "CentralUnavailable" in printed and "the run can be retried" in printed, printed[-4000:]
            with central.connect() as c:
                assert c.execute(sa.text("SELECT count(*) FROM lidm_batch")).scalar_one() == 0
                assert c.execute(sa.text("SELECT count(*) FROM health_population")).scalar_one() == 0
            with central.begin() as c:
                c.execute(sa.text("DROP TRIGGER lidm_test_kill ON lidm_batch"))
        finally:
            central.dispose()

        report, _ = _dag_test(env, HEALTH_DAG, dagrun)
    batches = _batches(gateway_pg.central_url, "health.population")
    counts = _assert_counts_match(report, batches)
    assert len(batches) == 1 and counts["extracted"] == len(rows) == counts["loaded"] + counts["quarantined"]


class _CuttingProxy:
    """A TCP proxy in front of the SFTP server that drops each connection once the server has sent
    ``budget`` bytes through it: an SFTP server going away in the middle of a transfer."""

    def __init__(self, target: tuple[str, int], budget: int) -> None:
        import socket
        import threading

        self.target, self.budget, self.cuts = target, budget, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, self.budget), daemon=True).start()

    def _pipe(self, src, dst, budget) -> None:  # type: ignore[no-untyped-def]
        import socket

        sent = 0
        try:
            while data := src.recv(65536):
                if budget is not None and sent + len(data) > budget:
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):  # shutdown sends the FIN at once, even with the other direction mid-recv
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


def test_an_sftp_server_lost_mid_transfer_is_retried_cleanly(airflow_env, sftp_server, drop_folder, gateway_pg):
    """Fault injection: the SFTP connection dies while the drop is being read. The load fails as retryable,
    nothing is written and the drop stays where it was; the retry loads it exactly once."""
    from lidm_samples import generate_people, generate_roster, roster_rows, write_roster_drop

    rows = roster_rows(generate_roster(generate_people(12000, 5), share=0.25, seed=5), bad=2, seed=5).rows
    write_roster_drop(drop_folder, rows)
    _chown_like_parent(drop_folder)
    size = sum(p.stat().st_size for p in drop_folder.iterdir())
    assert size > 300_000
    proxy = _CuttingProxy((sftp_server.host, sftp_server.port), budget=size // 2)
    try:
        conn = _drop_conn(sftp_server, drop_folder) | {"host": "127.0.0.1", "port": proxy.port}
        known = sftp_server.known_hosts.read_text().replace(
            f"[{sftp_server.host}]:{sftp_server.port}", f"[127.0.0.1]:{proxy.port}"
        )
        (gateway_pg.home / "proxy_known_hosts").write_text(known)
        conn["extra"] = conn["extra"] | {"known_hosts": str(gateway_pg.home / "proxy_known_hosts")}
        env = _gateway_env(airflow_env, gateway_pg, "civil_affairs_drop", conn) | {"LIDM_SFTP_TIMEOUT_SECONDS": "5"}
        (failed,), printed, _ = _dagrun(env, ROSTER_DAG)
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert failed["task_states"] == {"wait_for_drop": "success", "load": "failed"}, printed[-4000:]
    assert "AirflowFailException" not in printed and "SourceError" in printed, printed[-4000:]
    assert sorted(p.name for p in drop_folder.iterdir()) == ["roster_20261127.csv", "roster_20261127.csv.ok"]
    assert _batches(gateway_pg.central_url, "civil_affairs.low_income_roster") == []

    env = _gateway_env(airflow_env, gateway_pg, "civil_affairs_drop", _drop_conn(sftp_server, drop_folder))
    report, _ = _dag_test(env, ROSTER_DAG)
    batches = _batches(gateway_pg.central_url, "civil_affairs.low_income_roster")
    counts = _assert_counts_match(report, batches)
    assert len(batches) == 1 and counts["extracted"] == len(rows) == counts["loaded"] + counts["quarantined"]
    assert sorted(p.name for p in drop_folder.iterdir()) == ["archive"]


def test_lidm_airflow_connections_round_trip_through_airflow(airflow_env, tmp_path):
    """What `lidm airflow connections` writes, imported as Airflow connections, is read back by the tasks as the
    very URL the operator had (sources of every kind lidm reads), and is what `airflow connections import` takes."""
    from urllib.parse import quote

    # Each known_hosts in a folder of its own: the reading script removes it as it does a task's scratch folder.
    kh1, kh2, key = tmp_path / "kh1" / "known_hosts", tmp_path / "kh2" / "known_hosts", tmp_path / "keys" / "id"
    for path in (kh1, kh2, key):
        path.parent.mkdir()
        path.write_text("[127.0.0.1]:2222 ssh-ed25519 AAAA\n")
    kh1_q, kh2_q, key_q = (quote(str(p), safe="") for p in (kh1, kh2, key))
    urls = {
        "pg": "postgresql+psycopg://lidm:p%40ss%3Aw%2Frd@db.example:5433/central?sslmode=require",
        "lite": "sqlite:////srv/lidm/health.db",
        "folder": "file:///srv/drops/roster",
        "odbc": "odbc:DRIVER={MariaDB Unicode};SERVER=10.0.0.5;DATABASE=health;UID=reader;PWD=s3cret;PORT=3306;"
        "CHARSET=utf8mb4;",
        "relative": f"sftp://drop:pw@127.0.0.1:2222/outbox/roster?key_file={key_q}&known_hosts={kh1_q}",
        "absolute": f"sftp://drop@127.0.0.1:22//srv/outbox?known_hosts={kh2_q}",
    }
    source = tmp_path / "connections.json"
    source.write_text(json.dumps(urls))
    out = tmp_path / "airflow-connections.json"
    cli = subprocess.run(
        [str(AIRFLOW.parent / "lidm"), "airflow", "connections", "--connections", str(source), "--out", str(out)],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"  # it holds passwords
    imported = subprocess.run(
        [str(AIRFLOW), "connections", "import", str(out)], env=airflow_env, capture_output=True, text=True, timeout=180
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    listed = subprocess.run(
        [str(AIRFLOW), "connections", "list", "-o", "json"],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    stored = {c["conn_id"]: c["conn_type"] for c in json.loads(listed.stdout[listed.stdout.index("[") :])}
    assert {k: stored.get(k) for k in urls} == {k: v["conn_type"] for k, v in json.loads(out.read_text()).items()}
    # A task reads a connection the way the deployment provides it; here as AIRFLOW_CONN_<ID>, the same JSON.
    spec = {"urls": list(urls), "feeds": {}}
    report_file = tmp_path / "glue.json"
    conns = {"AIRFLOW_CONN_" + k.upper(): json.dumps(v) for k, v in json.loads(out.read_text()).items()}
    read = subprocess.run(
        [sys.executable, "-c", GLUE_SCRIPT, json.dumps(spec), str(report_file)],
        env=airflow_env | conns,
        cwd=airflow_env["AIRFLOW_HOME"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert read.returncode == 0, (read.stdout + read.stderr)[-4000:]
    got = {name: r.get("url") or r.get("error") for name, r in json.loads(report_file.read_text())["urls"].items()}
    assert got["pg"] == urls["pg"] and got["lite"] == urls["lite"] and got["folder"] == urls["folder"]
    odbc = dict(p.split("=", 1) for p in got["odbc"].removeprefix("odbc:").split(";") if p)
    assert odbc == dict(p.split("=", 1) for p in urls["odbc"].removeprefix("odbc:").split(";") if p)
    assert got["relative"] == urls["relative"]  # the same user, password, folder, key and pinned host key
    assert got["absolute"] == urls["absolute"]
    assert "s3cret" not in read.stdout + read.stderr and "s3cret" not in cli.stdout + cli.stderr
    unsupported = subprocess.run(
        [str(AIRFLOW.parent / "lidm"), "airflow", "connections", "--connections", '{"web": "https://example.org"}'],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unsupported.returncode == 2 and "connection web" in unsupported.stdout
