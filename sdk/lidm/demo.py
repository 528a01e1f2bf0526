"""The demo: synthetic department sources for the two foundation feeds, run into the embedded database."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from lidm import samples
from lidm.config import Settings
from lidm.keys import generate_keyring, write_keyring
from lidm.pipeline import BatchResult, Progress, run_feed

FEEDS = ("health.population", "civil_affairs.low_income_roster")


@dataclass
class DemoSources:
    connections: dict[str, str]
    people: int
    roster: int
    bad: dict[str, dict[str, int]]


def demo_settings(home: Path, central_url: str | None = None) -> Settings:
    """Settings of the demo: everything under one folder, a fresh central database unless one is given."""
    return Settings(home=home, central_url=central_url, keyring=home / "keyring.json")


def make_sources(home: Path, size: int, seed: int, bad: int) -> DemoSources:
    """Write a health department SQLite database and a civil affairs GBK drop, both deterministic."""
    sources = (home / "sources").resolve()
    if sources.exists():
        shutil.rmtree(sources)
    drop = sources / "civil_affairs_drop"
    drop.mkdir(parents=True)
    people = samples.generate_people(size, seed)
    roster = samples.generate_roster(people, share=0.05, seed=seed)
    pop_rows = samples.population_rows(people, bad=bad, seed=seed)
    roster_rows = samples.roster_rows(roster, bad=bad, seed=seed)
    health_db = sources / "health.db"
    engine = sa.create_engine(f"sqlite:///{health_db}")
    try:
        samples.write_population_table(engine, pop_rows.rows)
    finally:
        engine.dispose()
    samples.write_roster_drop(drop, roster_rows.rows, encoding="gb18030")
    return DemoSources(
        connections={"health_db": f"sqlite:///{health_db}", "civil_affairs_drop": f"file://{drop}"},
        people=len(pop_rows.rows),
        roster=len(roster_rows.rows),
        bad={"health.population": pop_rows.bad_kinds, "civil_affairs.low_income_roster": roster_rows.bad_kinds},
    )


def run_demo(
    home: Path,
    *,
    size: int = 5000,
    seed: int = 20261127,
    bad: int = 5,
    central_url: str | None = None,
    progress: Progress | None = None,
) -> tuple[DemoSources, list[BatchResult]]:
    """Fresh sources, a fresh embedded central database (keys kept), both feeds run."""
    home.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(home, central_url)
    if not settings.effective_keyring.exists():
        write_keyring(generate_keyring(), settings.effective_keyring)
    if central_url is None:
        for suffix in ("", "-wal", "-shm"):
            (home / f"central.db{suffix}").unlink(missing_ok=True)
    sources = make_sources(home, size, seed, bad)
    results: list[BatchResult] = []
    for feed in FEEDS:
        results += run_feed(feed, settings, connections=sources.connections, progress=progress)
    return sources, results
