"""The demo: one synthetic city's department sources for every feed, run into the embedded database."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from lidm.central import connect, migrate
from lidm.config import Settings
from lidm.keys import generate_keyring, write_keyring
from lidm.monitor.lifecycle import MonitorResult
from lidm.pipeline import BatchResult, Progress, run_feed
from lidm.registry import adapters
from lidm_samples.catalog import sample_sources, save_connections, write_sources
from lidm_samples.sources import SampleReport, Servers
from lidm_samples.world import build_world


def demo_settings(home: Path, central_url: str | None = None) -> Settings:
    """Settings of the demo: everything under one folder, a fresh central database unless one is given."""
    return Settings(home=home, central_url=central_url, keyring=home / "keyring.json")


def demo_feeds() -> list[str]:
    """Feeds that have both an adapter and a sample source, in catalogue order."""
    have = adapters()
    return [dataset for dataset in sample_sources() if dataset in have]


def make_sources(home: Path, size: int, seed: int, bad: int, feeds: list[str] | None = None) -> SampleReport:
    """Fresh files for every demo feed (SQLite databases and drop folders) under home/sources."""
    root = (home / "sources").resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    report = write_sources(build_world(size, seed), Servers(root), bad=bad, datasets=feeds or demo_feeds())
    save_connections(report, root / "connections.json")
    return report


def run_demo(
    home: Path,
    *,
    size: int = 5000,
    seed: int = 20261127,
    bad: int = 5,
    central_url: str | None = None,
    feeds: list[str] | None = None,
    progress: Progress | None = None,
) -> tuple[SampleReport, list[BatchResult]]:
    """Fresh sources, a fresh embedded central database (keys kept), every feed run once."""
    home.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(home, central_url)
    if not settings.effective_keyring.exists():
        write_keyring(generate_keyring(), settings.effective_keyring)
    if central_url is None:
        for suffix in ("", "-wal", "-shm"):
            (home / f"central.db{suffix}").unlink(missing_ok=True)
    engine = connect(settings)  # the demo sets its database up on purpose, as `lidm db upgrade` does
    try:
        migrate(engine)
    finally:
        engine.dispose()
    sources = make_sources(home, size, seed, bad, feeds)
    results: list[BatchResult] = []
    for written in sources.written:
        results += run_feed(written.dataset, settings, connections=sources.connections, progress=progress)
    return sources, results


@dataclass
class LoopReport:
    """What one turn of the monitoring loop did in the demo: counts only."""

    monitor: MonitorResult
    pushes: list[Any] = field(default_factory=list)
    responses: list[Any] = field(default_factory=list)
    collected: Any = None
    report: Path | None = None
    needs: dict[str, int] = field(default_factory=dict)  # counts of the needs list's build
    workbook: Path | None = None  # the month's statistical tables (民政统计月报)


def run_loop(settings: Settings, *, as_of: date, seed: int = 20261127) -> LoopReport:
    """One turn of the loop on the demo city: rules -> warnings -> push -> departments answer -> dispositions
    -> happiness list -> HTML report and the month's statistical workbook. The departments are simulated
    (`lidm_samples.responses`)."""
    from lidm.monitor.feedback import collect_dispositions
    from lidm.monitor.lifecycle import monitor
    from lidm.monitor.monthly_sheets import monthly_report
    from lidm.monitor.needs import needs
    from lidm.monitor.push import push_warnings
    from lidm.monitor.report import report
    from lidm_samples.responses import respond

    loop = LoopReport(monitor(settings, as_of=as_of))
    loop.pushes = push_warnings(settings)
    loop.responses = [
        respond(settings, p.consumer or p.department, seed=seed, today=as_of)
        for p in loop.pushes
        if p.status == "pushed"
    ]
    loop.collected = collect_dispositions(settings)
    loop.needs = needs(settings)  # the needs list and its masked summary for the charity consumer
    loop.report = report(settings, settings.home / "reports" / "lidm-report.html")
    loop.workbook = monthly_report(settings, rebuild=False)  # the happiness list the report just built
    return loop
