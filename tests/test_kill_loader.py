"""kill -9 of a loading process (real PostgreSQL): its forked workers die with it and its session ends with it.

A loader runs health.population in a process of its own (2 workers, many chunks); once PostgreSQL shows its COPY
inside the batch's transaction it is killed, and within a bounded time no process of it may remain and no
session of it may stay open. A re-run then loads every row exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from _db import query
from _faults import assert_whole
from conftest import PG_ADMIN_DSN
from lidm_samples import generate_people, population_rows, write_population_table

from lidm.central.stage import WORKER_SESSION
from lidm.config import Settings
from lidm.keys import generate_keyring, write_keyring
from lidm.pipeline import BatchResult, run_feed

ROWS = 24_000
CHUNK_ROWS = 500  # 48 chunks: the batch is still copying when the test sees its first COPY
WORKERS = 2
GONE_WITHIN = 30.0  # seconds the processes and the session get to disappear after the kill
RUN = "from lidm.pipeline import run_feed; run_feed('health.population')"
# The same run with the kernel's parent-death signal unavailable: the workers' portable fallback must act.
RUN_WITHOUT_PDEATHSIG = "import lidm.transform as t; t._pdeathsig = lambda: False\n" + RUN
# The same run with workers that never die on their own: the session must still end with the loader.
RUN_IMMORTAL_WORKERS = "import lidm.transform as t; t._die_with = lambda parent: None\n" + RUN


@cache
def _population() -> tuple[dict[str, object], ...]:
    return tuple(population_rows(generate_people(ROWS, 11)).rows)


def population_source(folder: Path) -> tuple[str, int]:
    """A SQLite health database with ROWS people: the source URL and its row count."""
    path = folder / "health.db"
    rows = [dict(r) for r in _population()]
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        write_population_table(engine, rows)
    finally:
        engine.dispose()
    return f"sqlite:///{path}", len(rows)


def loader_env(settings: Settings, source: str, **extra: str) -> dict[str, str]:
    """The environment of a loader process: the gateway's settings as LIDM_ variables, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIDM_")}
    env |= {
        "LIDM_HOME": str(settings.home),
        "LIDM_CENTRAL_URL": settings.effective_central_url,
        "LIDM_KEYRING": str(settings.effective_keyring),
        "LIDM_CHUNK_ROWS": str(CHUNK_ROWS),
        "LIDM_WORKERS": str(WORKERS),
        "LIDM_CONNECTIONS": json.dumps({"health_db": source}),
    }
    return env | extra


def _state(pid: int) -> str | None:
    """The process's state letter, None when it no longer exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie (dead, waiting to be reaped by init) counts as gone."""
    return _state(pid) not in (None, "Z", "X")


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return out


def in_group(pgid: int) -> list[int]:
    """Live processes of a process group (the loader's session leader and everything it forked)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                out.append(int(name))
    return out


def sessions(database: str) -> list[tuple[int, str | None, str]]:
    """Sessions connected to the database: (backend pid, state, query)."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        return admin.execute(
            "SELECT pid, state, left(query, 60) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()


@dataclass
class Loader:
    """A loading process caught inside its batch's COPY."""

    proc: subprocess.Popen[bytes]
    workers: list[int]
    session: int  # the PostgreSQL backend pid of its batch's transaction
    database: str
    log: Path

    def leftovers(self) -> tuple[list[int], list[tuple[int, str | None, str]]]:
        """Live processes of the loader (its workers, its process group) and sessions still in its database."""
        procs = sorted({p for p in self.workers if alive(p)} | set(in_group(self.proc.pid)))
        return procs, sessions(self.database)


def _copying(database: str) -> int | None:
    """The loading process's batch session, once a COPY into the batch's stage runs (a worker's, or its own)."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        row = admin.execute(
            "SELECT b.pid FROM pg_stat_activity b WHERE b.datname = %s AND b.xact_start IS NOT NULL "
            "AND b.application_name <> %s AND b.pid <> pg_backend_pid() AND EXISTS (SELECT FROM pg_stat_activity c "
            "WHERE c.datname = b.datname AND c.state = 'active' AND c.query LIKE 'COPY lidm_stage%%') "
            "ORDER BY b.xact_start LIMIT 1",
            (database, WORKER_SESSION),
        ).fetchone()
    return row[0] if row else None


@contextlib.contextmanager
def loader_mid_copy(env: dict[str, str], cwd: Path, code: str = RUN, deadline: float = 120.0) -> Iterator[Loader]:
    """Start a loader and yield once its batch is copying with its workers up; everything it started ends after."""
    database = sa.make_url(env["LIDM_CENTRAL_URL"]).database
    assert database
    log = cwd / "loader.log"
    # Output to a file: a pipe would be held open by any surviving worker and hang whoever reads it.
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    workers: list[int] = []
    try:
        end = time.monotonic() + deadline
        while True:
            workers = children(proc.pid) or workers
            session = _copying(database)
            if session and len(workers) >= WORKERS:
                break
            if proc.poll() is not None:
                pytest.fail(f"the loader ended (exit {proc.returncode}) before it was seen copying:\n{log.read_text()}")
            if time.monotonic() > end:
                pytest.fail(f"the loader was not seen copying with {WORKERS} workers within {deadline:.0f} s")
            time.sleep(0.02)
        yield Loader(proc, workers, session, database, log)
    finally:
        # Whatever the outcome, nothing this test started outlives it (on the old code the workers would). The
        # workers share the loader's process group, whose id cannot be reused before the loader is reaped below.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def until_gone(
    loader: Loader, *, processes: bool = True, batch_only: bool = False, within: float = GONE_WITHIN
) -> dict[str, float]:
    """Seconds until the loader's processes (if `processes`) and its sessions are gone; fails past `within`.

    `batch_only`: only the session of the batch's transaction has to go (a live loader keeps its others).
    """
    start, seen = time.monotonic(), {}
    while True:
        procs, open_sessions = loader.leftovers()
        now = time.monotonic() - start
        if processes and not procs:
            seen.setdefault("processes", now)
        if batch_only:
            open_sessions = [s for s in open_sessions if s[0] == loader.session or s[1] == "idle in transaction"]
        if not open_sessions:
            seen.setdefault("sessions", now)
        if len(seen) == (2 if processes else 1):
            return seen
        if now > within:
            pytest.fail(
                f"{within:.0f} s after the fault of loader {loader.proc.pid}: processes still alive {procs} "
                f"(workers were {loader.workers}), sessions still open {open_sessions}"
            )
        time.sleep(0.05)


def rerun(settings: Settings, source: str, rows: int) -> BatchResult:
    """The next run loads every row exactly once, and the central database holds nothing else."""
    settings = settings.model_copy(update={"chunk_rows": CHUNK_ROWS, "workers": WORKERS})
    (result,) = run_feed("health.population", settings, connections={"health_db": source})
    assert result.status == "loaded", result
    assert result.extracted == rows == result.loaded + result.quarantined, result
    url = settings.effective_central_url
    assert query(url, "SELECT COUNT(*) FROM health_population")[0][0] == result.loaded
    assert query(url, "SELECT status, COUNT(*) FROM lidm_batch GROUP BY status") == [("loaded", 1)]
    # The killed batch's stage (its workers COPY into lidm_stage) went with this run: the feed's lock was its own.
    assert query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'lidm_stage'") == [(0,)]
    assert_whole(url)
    return result


@pytest.fixture
def gateway(tmp_path: Path, pg_clean_url: str) -> Settings:
    write_keyring(generate_keyring(), tmp_path / "keyring.json")
    return Settings(home=tmp_path / "home", central_url=pg_clean_url, keyring=tmp_path / "keyring.json")


@pytest.mark.postgres
@pytest.mark.parametrize("code", [RUN, RUN_WITHOUT_PDEATHSIG], ids=["pdeathsig", "parent-poll"])
def test_kill_9_mid_copy_leaves_no_process_and_no_session(gateway, tmp_path, code) -> None:  # type: ignore[no-untyped-def]
    source, rows = population_source(tmp_path)
    with loader_mid_copy(loader_env(gateway, source), tmp_path, code) as loader:
        loader.proc.send_signal(signal.SIGKILL)
        gone = until_gone(loader)
    print(f"\nkill -9 mid-COPY: workers gone after {gone['processes']:.2f} s, session after {gone['sessions']:.2f} s")
    stages = "SELECT count(*) FROM pg_tables WHERE schemaname = 'lidm_stage'"
    assert query(gateway.effective_central_url, stages) == [(1,)], "the killed batch's stage is left, for now"
    rerun(gateway, source, rows)


@pytest.mark.postgres
def test_a_killed_loaders_session_ends_even_while_its_workers_live(gateway, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Workers hold no copy of the loader's database socket: the kernel closes it with the loader."""
    source, rows = population_source(tmp_path)
    with loader_mid_copy(loader_env(gateway, source), tmp_path, RUN_IMMORTAL_WORKERS) as loader:
        loader.proc.send_signal(signal.SIGKILL)
        gone = until_gone(loader, processes=False)
        assert all(alive(p) for p in loader.workers), "the workers were meant to outlive the loader here"
    print(f"\nkill -9 mid-COPY, workers left running: session gone after {gone['sessions']:.2f} s")
    rerun(gateway, source, rows)
