"""The demo city of tests/test_grants_db.py: loaded, monitored, grants applied, a LOGIN user per tested consumer.

Built once per session (conftest.py's ``grants_city``): test_grants_db.py and test_consumer_contracts.py both read it,
and every test that changes it (a grant taken away, a privilege granted by hand, a base row moved) puts it back in a
``finally`` before it ends, so what the next one sees does not depend on the order they run in.
Roles are cluster-wide: the LOGIN users carry a random suffix, and the ``lidm_c_*`` roles it created are dropped at the
end (after the database is gone) unless another database still uses them.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import sqlalchemy as sa
from conftest import PG_ADMIN_DSN, _throwaway_pg_database, consumer_roles, drop_consumer_roles_made_since
from lidm_samples.demo import demo_settings, run_demo

from lidm.central.grants import ApplyResult, apply, role_name
from lidm.contracts import load_catalog
from lidm.contracts.load import ContractCatalog
from lidm.keys import Keyring, load_keyring
from lidm.monitor.happiness import build_assistance_records
from lidm.monitor.lifecycle import monitor

CONSUMERS = ("platform", "education", "hr_social_security", "civil_affairs.furong", "justice")


@dataclass
class City:
    url: str
    database: str
    engine: sa.Engine
    catalog: ContractCatalog
    first: ApplyResult
    users: dict[str, str]  # consumer -> LOGIN user holding its role
    keyring: Keyring


def _admin(database: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN_DSN.replace("dbname=postgres", f"dbname={database}"), autocommit=True)


@contextlib.contextmanager
def built_city(home: Path) -> Iterator[City]:
    """The demo city in a throwaway database, its warnings raised, grants applied, a LOGIN user per consumer."""
    before = consumer_roles()
    suffix = secrets.token_hex(4)
    users = {c: f"lidm_t_{c.replace('.', '__')}_{suffix}" for c in CONSUMERS}
    try:
        with _throwaway_pg_database() as url:
            run_demo(home, size=800, bad=0, central_url=url)
            monitor(demo_settings(home, url), as_of=date(2026, 11, 27))
            catalog = load_catalog()
            engine = sa.create_engine(url)
            build_assistance_records(engine, catalog, now=datetime(2026, 11, 28, tzinfo=UTC))  # the happiness list
            keyring = load_keyring(demo_settings(home, url))
            first = apply(engine, catalog, keyring=keyring)
            with _admin() as admin:
                for consumer, user in users.items():
                    admin.execute(f'CREATE ROLE "{user}" LOGIN')
                    admin.execute(f'GRANT "{role_name(consumer)}" TO "{user}"')
            yield City(url, url.rsplit("/", 1)[1], engine, catalog, first, users, keyring)
            engine.dispose()
    finally:
        with _admin() as admin:
            for user in users.values():
                admin.execute(f'DROP ROLE IF EXISTS "{user}"')
        drop_consumer_roles_made_since(before)
