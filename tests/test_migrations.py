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


def test_a_load_setting_up_a_new_embedded_database_says_so_and_keeps_it_private(tmp_path, caplog):
    import logging
    import stat

    from lidm.central.db import ensure_current

    engine = connect(Settings(home=tmp_path))
    try:
        with caplog.at_level(logging.INFO):
            ensure_current(engine)  # what a feed run or a monitoring run does first
        assert "setting up a new central database" in caplog.text and "LIDM_CENTRAL_URL" in caplog.text
        assert "Context impl" not in caplog.text and "transactional DDL" not in caplog.text
        assert "setup plugin" not in caplog.text
        for name in ("central.db", "central.db-wal", "central.db-shm"):
            path = tmp_path / name
            assert not path.exists() or stat.S_IMODE(path.stat().st_mode) == 0o600, name
        caplog.clear()
        with caplog.at_level(logging.INFO):
            ensure_current(engine)
        assert caplog.text == ""  # at head: nothing to say, alembic not even asked
    finally:
        engine.dispose()
    # quieted only while lidm migrates: the process's own logging is as it was
    assert logging.getLogger("alembic.runtime.migration").level == logging.NOTSET


@pytest.mark.postgres
def test_migrating_postgresql_leaves_no_alembic_lines_in_the_log(pg_clean_url, tmp_path, caplog):
    import logging

    engine = connect(Settings(home=tmp_path, central_url=pg_clean_url))
    try:
        with caplog.at_level(logging.INFO):
            migrate(engine)
            assert is_current(engine)
    finally:
        engine.dispose()
    assert "PostgresqlImpl" not in caplog.text and "transactional DDL" not in caplog.text, caplog.text


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_every_token_a_rule_joins_on_is_indexed_by_the_migrations(backend, tmp_path, request):
    """Migration 0022 (with 0009): each clause of each rule reaches its table through an index leading with the join
    token, and every dataset table carrying a household token indexes it, so a new rule `on: household` needs none;
    the monitoring run finds warnings by status and due date."""
    from lidm.monitor.rules import load_rules

    url = request.getfixturevalue("pg_clean_url") if backend == "postgres" else None
    engine = connect(Settings(home=tmp_path, central_url=url))
    catalog = load_catalog()
    try:
        migrate(engine)
        inspector = sa.inspect(engine)

        def leading(table: str) -> set[str]:
            first = {ix["column_names"][0] for ix in inspector.get_indexes(table)}
            return first | set(inspector.get_pk_constraint(table)["constrained_columns"][:1])

        joined = {
            (catalog[c.feed].table, "id_number_token" if c.on == "person" else "household_id_token")
            for rule in load_rules(catalog=catalog)
            for c in (*rule.match, *rule.match_any, *rule.absent)
        }
        assert ("housing_public_rental_housing", "household_id_token") in joined
        unindexed = sorted((t, col) for t, col in joined if col not in leading(t))
        assert unindexed == [], f"rules join these tokens through no index: {unindexed}"
        carrying = [
            c.table for c in catalog if "household_id_token" in {col["name"] for col in inspector.get_columns(c.table)}
        ]
        assert len(carrying) > 10 and all("household_id_token" in leading(t) for t in carrying)
        by_name = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("platform_warning")}
        assert by_name["ix_platform_warning_status_due"] == ["status", "due_date"]
        assert by_name["ix_platform_warning_hhtok"] == ["household_id_token"]
    finally:
        engine.dispose()
