"""A small synthetic city, fed and monitored once, for the tests of the department's side of the loop: warnings
raised the evening of the day evaluated (not today), so answers dated after it are taken; and a private copy of its
central database and keyring per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from lidm_samples.demo import demo_settings, run_demo

import lidm.monitor.lifecycle as lifecycle
from lidm.config import Settings
from lidm.monitor.lifecycle import monitor

AS_OF = date(2026, 11, 27)
RAISED_AT = datetime(2026, 11, 27, 20, 0, 0)


def city_bureaus_only() -> Iterator[None]:
    """For tests about one city bureau's channel: every warning goes to the city bureau, as a deployment whose
    county and street offices are not connected yet routes them (LIDM_ROUTING_LEVELS); routing itself is tested in
    test_routing_and_handover.py. Use as a module fixture: ``pytest.fixture(scope="module", autouse=True)(…)``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIDM_ROUTING_LEVELS", '["city"]')
        yield


def monitored_city(home: Path, central_url: str | None = None, *, size: int = 1500) -> Settings:
    run_demo(home, size=size, bad=0, central_url=central_url)
    settings = demo_settings(home, central_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lifecycle, "city_now", lambda *_: RAISED_AT)
        monitor(settings, as_of=AS_OF)
    return settings


def private_copy(city: Path, tmp_path: Path) -> Path:
    """The city's SQLite central database and keyring, copied for one test to change."""
    dest = tmp_path / "home"
    dest.mkdir()
    for name in ("central.db", "central.db-wal", "central.db-shm", "keyring.json"):
        if (city / name).exists():
            shutil.copy2(city / name, dest / name)
    return dest


def rows(settings: Settings, sql: str, **params) -> list[sa.Row]:
    engine = sa.create_engine(settings.effective_central_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()
    finally:
        engine.dispose()
