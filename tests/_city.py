"""A small synthetic city, fed and monitored once, for the tests of the department's side of the loop: warnings
raised the evening of the day evaluated (not today), so answers dated after it are taken; and a private copy of its
central database and keyring per test."""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from lidm_samples.demo import demo_settings, run_demo

import lidm.monitor.lifecycle as lifecycle
from lidm.config import Settings
from lidm.keys import generate_keyring, write_keyring
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
    """The city fed, then monitored on AS_OF, into `home` (and the empty database `central_url`, when given)."""
    return _copy_city(home, central_url, size=size, monitored=True)


def fed_city(home: Path, central_url: str | None = None, *, size: int = 1500) -> Settings:
    """The city fed (run_demo: every feed once, no bad rows), not monitored yet."""
    return _copy_city(home, central_url, size=size, monitored=False)


def _copy_city(home: Path, central_url: str | None, *, size: int, monitored: bool) -> Settings:
    """Built once per process for each size, backend and LIDM_* environment (routing levels change the warnings),
    with one keyring for all, then copied: the home's files, and on PostgreSQL the database (CREATE DATABASE …
    TEMPLATE). The database holds no path of its home; the sources' connections file, which does, is rewritten."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("LIDM_")))
    key = (central_url is not None, size, monitored, env)
    if key not in _BUILT:
        _BUILT[key] = _build(size, postgres=central_url is not None, monitored=monitored)
    built, database = _BUILT[key]
    shutil.copytree(built, home, dirs_exist_ok=True)
    connections = home / "sources" / "connections.json"
    connections.write_text(connections.read_text().replace(str(built.resolve()), str(home.resolve())))
    if central_url is not None:
        assert database is not None
        target = sa.make_url(central_url).database
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:  # the fixture's database, still empty and unused
            admin.execute(f'DROP DATABASE "{target}"')
            admin.execute(f'CREATE DATABASE "{target}" TEMPLATE "{database}"')
    return demo_settings(home, central_url)


_BUILT: dict[tuple[object, ...], tuple[Path, str | None]] = {}
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def _build(size: int, *, postgres: bool, monitored: bool) -> tuple[Path, str | None]:
    home = Path(tempfile.mkdtemp(prefix="lidm-city-"))
    database = None
    url = None
    if postgres:
        database = f"lidm_test_city_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    atexit.register(_forget, home, database)
    if not _KEYRING.exists():
        _KEYRING.parent.mkdir(parents=True, exist_ok=True)
        write_keyring(generate_keyring(), _KEYRING)
    shutil.copy(_KEYRING, home / "keyring.json")  # every city of the process under the same keys, as one gateway's
    run_demo(home, size=size, bad=0, central_url=url)
    if monitored:
        settings = demo_settings(home, url)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(lifecycle, "city_now", lambda *_: RAISED_AT)
            monitor(settings, as_of=AS_OF)
    if url is not None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:  # a template takes no other session
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
    return home, database


_KEYRING = Path(tempfile.gettempdir()) / f"lidm-city-keys-{os.getpid()}" / "keyring.json"


def _forget(home: Path, database: str | None) -> None:
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(_KEYRING.parent, ignore_errors=True)
    if database is not None:
        with contextlib.suppress(psycopg.Error), psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


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
