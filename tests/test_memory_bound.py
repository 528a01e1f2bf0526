"""Reading a drop takes bounded memory whatever the file: a sparse file (a hole reads as NUL bytes) is refused
while the loading process stays small. The feed runs in a child process whose memory the test watches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lidm_samples import ROSTER_HEADER, generate_people, generate_roster, roster_rows
from lidm_samples.sources import csv_bytes

from lidm.keys import generate_keyring, write_keyring

SPARSE = 1536 << 20  # 1.5 GB: more than the child may ever hold
KILL_AT_KB = 1 << 20  # the watcher ends the child past 1 GB resident
PEAK_LIMIT_KB = 300 << 10

# The child loads the roster feed from one drop folder into an embedded SQLite central database, then writes its
# own peak resident size (VmHWM) and the outcome to a result file: stdout is not read.
CHILD = """
import json, sys
from pathlib import Path
from lidm.config import Settings
from lidm.pipeline import run_feed

home, folder, out = (Path(a) for a in sys.argv[1:4])
settings = Settings(home=home, central_url=None, keyring=home / "keyring.json")
results = run_feed(
    "civil_affairs.low_income_roster", settings, connections={"civil_affairs_drop": folder.as_uri()}
)
status = Path("/proc/self/status").read_text().splitlines()
peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
outcome = [{"status": r.status, "reason": r.reason} for r in results]
out.with_suffix(".tmp").write_text(json.dumps({"peak_kb": peak, "results": outcome}))
out.with_suffix(".tmp").rename(out)
"""


def _rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)


def _run_watched(tmp_path: Path, folder: Path, deadline_s: float = 240) -> tuple[dict, int]:
    """Run the feed in a child; kill it and fail if it passes 1 GB. Its result file, and the largest RSS seen."""
    home = tmp_path / "home"
    home.mkdir()
    write_keyring(generate_keyring(), home / "keyring.json")
    out = tmp_path / "result.json"
    env = {**os.environ, "LIDM_WORKERS": "1"}
    log = (tmp_path / "child.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), str(folder), str(out)], env=env, stdout=log, stderr=log
    )
    seen = 0
    deadline = time.monotonic() + deadline_s
    try:
        while child.poll() is None:
            seen = max(seen, _rss_kb(child.pid))
            if seen > KILL_AT_KB:
                child.kill()
                pytest.fail(f"the loading process passed {seen >> 10} MB resident reading a sparse file: killed")
            if time.monotonic() > deadline:
                child.kill()
                pytest.fail(f"the loading process did not finish within {deadline_s:.0f} s")
            time.sleep(0.02)  # the polling interval, not a wait for the result
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        log.close()
    assert child.returncode == 0, (tmp_path / "child.log").read_text("utf-8", "replace")[-3000:]
    return json.loads(out.read_text()), seen


def _roster_csv() -> bytes:
    rows = roster_rows(generate_roster(generate_people(200, seed=5), share=0.2, seed=5)).rows
    return csv_bytes(ROSTER_HEADER, rows, "gb18030")


@pytest.mark.parametrize("head", ["rows", "nothing"], ids=["rows-then-nul-tail", "all-nul"])
def test_a_sparse_file_is_refused_in_bounded_memory(tmp_path: Path, head: str) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    data = _roster_csv() if head == "rows" else b""
    path = folder / "roster_1.csv"
    path.write_bytes(data)
    os.truncate(path, SPARSE)
    (folder / "roster_1.csv.ok").write_bytes(b"")

    result, seen = _run_watched(tmp_path, folder)

    [outcome] = result["results"]
    assert outcome["status"] == "rejected", outcome
    assert "[nul_bytes]" in outcome["reason"] and f"byte offset {len(data)}" in outcome["reason"], outcome
    assert "sparse or truncated" in outcome["reason"], outcome
    assert (folder / "rejected" / "roster_1.csv").exists()
    print(f"\n{head}: child peak {result['peak_kb'] >> 10} MB (VmHWM), largest RSS seen {seen >> 10} MB")
    assert result["peak_kb"] < PEAK_LIMIT_KB, f"peak {result['peak_kb'] >> 10} MB"
