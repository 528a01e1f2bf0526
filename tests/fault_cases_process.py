"""Fault-suite cases (issue 14): process. Each case builds one situation and returns what happened; the suite then
checks the batch invariant and scans every message for personal numbers (see _faults.assert_whole)."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest
from _faults import Case, Ctx
from conftest import PG_ADMIN_DSN
from test_kill_loader import alive, loader_env, loader_mid_copy, population_source, rerun, until_gone

IDLE_TIMEOUT = 2  # seconds; LIDM_CENTRAL_IDLE_TIMEOUT_SECONDS of the hung loader


def c_loader_killed_mid_copy(ctx: Ctx) -> str:
    source, rows = population_source(ctx.tmp)
    with loader_mid_copy(loader_env(ctx.settings, source), ctx.tmp) as loader:
        loader.proc.send_signal(signal.SIGKILL)
        gone = until_gone(loader)
    r = rerun(ctx.settings, source, rows)
    return (
        f"workers gone in {gone['processes']:.1f} s, session in {gone['sessions']:.1f} s; "
        f"re-run loaded {r.loaded} + quarantined {r.quarantined} = {rows}"
    )


def _state(backend: int) -> str | None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        row = admin.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone()
    return row[0] if row else None


def _stop_between_statements(pid: int, backend: int, deadline: float = 60.0) -> None:
    """SIGSTOP the loader while its transaction is open and idle (not inside a COPY, which never times out)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        os.kill(pid, signal.SIGSTOP)
        settle = time.monotonic() + 0.2  # what the loader sent before it stopped reaches the server first
        while time.monotonic() < settle and _state(backend) == "idle in transaction":
            time.sleep(0.02)
        if _state(backend) == "idle in transaction":
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.01)
    pytest.fail(f"loader {pid} was never caught between two statements of its batch")


def c_loader_hung_mid_batch(ctx: Ctx) -> str:
    source, rows = population_source(ctx.tmp)
    env = loader_env(ctx.settings, source, LIDM_CENTRAL_IDLE_TIMEOUT_SECONDS=str(IDLE_TIMEOUT))
    with loader_mid_copy(env, ctx.tmp) as loader:
        _stop_between_statements(loader.proc.pid, loader.session)
        gone = until_gone(loader, processes=False, batch_only=True, within=IDLE_TIMEOUT + 30)
        assert alive(loader.proc.pid), "the loader was stopped, not dead"
        loader.proc.send_signal(signal.SIGCONT)  # it wakes up to a lost connection: nothing written, retryable
        assert loader.proc.wait(timeout=60) != 0
        log = loader.log.read_text("utf-8", "replace")
        assert "CentralUnavailable" in log and "nothing was written" in log, log[-2000:]
        ctx.logs.append(log)
    r = rerun(ctx.settings, source, rows)
    return (
        f"session ended by the server {gone['sessions']:.1f} s after the stop; loader: CentralUnavailable; "
        f"re-run loaded {r.loaded} + quarantined {r.quarantined} = {rows}"
    )


CASES: list[Case] = [
    Case(
        "loader-killed",
        "kill -9 of the loading process mid-COPY (2 workers)",
        "workers and session gone, re-run loads once",
        c_loader_killed_mid_copy,
    ),
    Case(
        "loader-hung",
        "loading process stopped (SIGSTOP) with its batch open",
        "server ends the session; CentralUnavailable, re-run loads once",
        c_loader_hung_mid_batch,
    ),
]
