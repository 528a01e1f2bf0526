"""The Alembic migrations produce exactly the schema the contracts describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lidm.central import connect, full_metadata, migrate
from lidm.central.db import is_current
from lidm.config import Settings
from lidm.contracts import load_catalog


def _diff(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, full_metadata(load_catalog()))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migrated_schema_matches_the_contracts(backend, tmp_path, request):
    url = request.getfixturevalue("pg_clean_url") if backend == "postgres" else None
    engine = connect(Settings(home=tmp_path, central_url=url))
    try:
        assert not is_current(engine)
        migrate(engine)
        migrate(engine)  # idempotent
        assert is_current(engine)
        diff = _diff(engine)
        assert diff == [], f"a contract changed without a migration: {diff}"
    finally:
        engine.dispose()


def test_a_contract_change_without_migration_is_detected(tmp_path, monkeypatch):
    engine = connect(Settings(home=tmp_path))
    migrate(engine)
    catalog = load_catalog()
    contract = catalog["health.population"]
    extra = contract.fields[-1].model_copy(update={"name": "ethnicity"})
    changed = contract.model_copy(update={"fields": (*contract.fields, extra)})
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        diff = compare_metadata(ctx, full_metadata([changed, catalog["civil_affairs.low_income_roster"]]))
    engine.dispose()
    assert any(d[0] == "add_column" and d[3].name == "ethnicity" for d in diff)
