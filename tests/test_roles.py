"""Three roles on a real PostgreSQL: the owner migrates and applies grants, the loader loads and can do nothing else.

The owner is an administrator's LOGIN role with CREATEROLE owning the database (as a DBA would set it up); the
loader is made by ``grants apply``. Every refusal is PostgreSQL's own, asked over a connection AS the loader.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from conftest import _pg_admin, consumer_roles, drop_consumer_roles_made_since
from lidm_samples.demo import run_demo, run_loop
from psycopg import errors
from typer.testing import CliRunner

from lidm import cli
from lidm.central import audit, db
from lidm.central import loader as loader_module
from lidm.central.grants import apply, plan
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.errors import ConfigError
from lidm.keys import generate_keyring, load_keyring, write_keyring

pytestmark = pytest.mark.postgres
FEEDS = ["health.population", "civil_affairs.low_income_roster"]  # a database feed and a drop


@dataclass
class Deployment:
    database: str
    owner: str
    loader: str
    settings: Settings  # the service's: LIDM_CENTRAL_URL is the loader's, LIDM_ADMIN_URL the owner's
    first: object  # the ApplyResult of the first grants apply

    def dsn(self, user: str) -> str:
        return f"host=127.0.0.1 port=5432 user={user} dbname={self.database} connect_timeout=5"

    def url(self, user: str) -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:5432/{self.database}"


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A database owned by an administrator role; `db upgrade` and `grants apply` run as it, with LIDM_ADMIN_URL."""
    suffix = secrets.token_hex(4)
    name, owner, loader = f"lidm_roles_{suffix}", f"lidm_t_owner_{suffix}", f"lidm_t_loader_{suffix}"
    before = consumer_roles()
    with _pg_admin() as admin:
        admin.execute(f'CREATE ROLE "{owner}" LOGIN CREATEROLE')
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    dep = Deployment(name, owner, loader, Settings(home=tmp_path), None)
    dep.settings = Settings(
        home=tmp_path,
        central_url=dep.url(loader),
        admin_url=dep.url(owner),
        loader_role=loader,
        keyring=tmp_path / "keyring.json",
    )
    try:
        write_keyring(generate_keyring(), dep.settings.effective_keyring)
        engine = db.connect(dep.settings, admin=True)
        db.migrate(engine)
        dep.first = apply(engine, load_catalog(), loader=loader, keyring=load_keyring(dep.settings))
        engine.dispose()
        yield dep
    finally:
        with _pg_admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            for role in (loader, owner):
                with contextlib.suppress(errors.DependentObjectsStillExist):
                    admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        drop_consumer_roles_made_since(before)


@contextlib.contextmanager
def _as(dep: Deployment, user: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dep.dsn(user), autocommit=True) as conn:
        yield conn


def _refused(conn: psycopg.Connection, sql: str) -> str:
    """The statement fails for lack of privilege (42501), or as a role PostgreSQL will not grant; its message."""
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql)
    assert info.value.sqlstate in ("42501", "0LP01"), (sql, info.value.sqlstate, str(info.value))
    return str(info.value)


def test_the_loader_loads_monitors_and_appends_to_the_audit_log(deployment: Deployment) -> None:
    with _pg_admin() as admin:
        row = admin.execute(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
            "ARRAY(SELECT roleid::regrole::text FROM pg_auth_members WHERE member = r.oid) FROM pg_roles r "
            "WHERE rolname = %s",
            (deployment.loader,),
        ).fetchone()
    assert row == (True, False, False, False, False, False, [])
    _, results = run_demo(
        deployment.settings.home, size=200, bad=2, central_url=deployment.url(deployment.loader), feeds=FEEDS
    )
    assert [r.status for r in results] == ["loaded", "loaded"], [r.reason for r in results]
    run_loop(deployment.settings, as_of=date(2026, 11, 27))  # monitoring, push, collect: as the loader too
    engine = db.connect(deployment.settings)
    try:
        assert engine.url.username == deployment.loader
        with engine.connect() as conn:
            actions = set(conn.execute(sa.text("SELECT action FROM lidm_audit")).scalars())
            who = conn.execute(sa.text("SELECT current_user")).scalar_one()
        assert who == deployment.loader and {"grants.apply", "batch.load", "monitor.run"} <= actions
        assert audit.verify(engine).ok
    finally:
        engine.dispose()


def test_the_loader_cannot_become_anyone_else(deployment: Deployment) -> None:
    with _as(deployment, deployment.loader) as conn:
        assert "permission denied" in _refused(conn, "CREATE ROLE lidm_t_sneaky")
        for role in ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files", deployment.owner):
            _refused(conn, f'GRANT "{role}" TO "{deployment.loader}"')
        _refused(conn, f'ALTER ROLE "{deployment.loader}" CREATEROLE')
        _refused(conn, "COPY (SELECT 1) TO PROGRAM 'id'")
        _refused(conn, "COPY lidm_batch FROM PROGRAM 'id'")
        _refused(conn, "CREATE TABLE public.lidm_mine (x int)")
        _refused(conn, "CREATE SCHEMA lidm_mine")
        _refused(conn, f'ALTER TABLE lidm_batch OWNER TO "{deployment.loader}"')
        _refused(conn, "DROP TABLE lidm_batch")
        _refused(conn, "ALTER TABLE lidm_audit DISABLE TRIGGER USER")
        conn.execute("CREATE TEMPORARY TABLE stage (x int)")  # what it does need: batches are staged so


def test_the_loader_may_only_append_to_the_audit_log(deployment: Deployment) -> None:
    with _as(deployment, deployment.loader) as conn:
        assert conn.execute("SELECT count(*) FROM lidm_audit").fetchone()[0] >= 1
        for sql in (
            "UPDATE lidm_audit SET actor = 'someone else'",
            "DELETE FROM lidm_audit",
            "TRUNCATE lidm_audit",
            "UPDATE lidm_audit_head SET seq = 0",
            "INSERT INTO lidm_audit_checkpoint (seq, head_hash, entries, at, signer, key_id, signature) "
            "VALUES (1, 'x', 1, now(), 'me', 'k', 's')",
            "DELETE FROM lidm_audit_checkpoint",
        ):
            _refused(conn, sql)
    # Even the owner's edit is refused, by the trigger (the owner could disable it: that is a deliberate act).
    with _as(deployment, deployment.owner) as conn:
        for sql in ("UPDATE lidm_audit SET actor = 'x'", "DELETE FROM lidm_audit", "TRUNCATE lidm_audit"):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(sql)


def test_the_loaders_workers_stage_where_no_consumer_can_look(deployment: Deployment, monkeypatch) -> None:
    """A parallel load as the loader: its workers COPY into an UNLOGGED table of their own in lidm_stage, which the
    batch drops; the loader may make and drop such tables there, a consumer may not even name one."""
    monkeypatch.setenv("LIDM_CHUNK_ROWS", "100")
    monkeypatch.setenv("LIDM_WORKERS", "2")
    relayed = []
    real = loader_module.BatchWriter.write_copy
    monkeypatch.setattr(loader_module.BatchWriter, "write_copy", lambda w, data: relayed.append(data) or real(w, data))
    _, results = run_demo(
        deployment.settings.home, size=400, bad=2, central_url=deployment.url(deployment.loader), feeds=FEEDS[:1]
    )
    assert [r.status for r in results] == ["loaded"], [r.reason for r in results]
    assert relayed == [], "the workers staged every chunk themselves, as the loader"
    analyst = f"lidm_t_analyst_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE ROLE "{analyst}" LOGIN IN ROLE lidm_c_education')
    try:
        with _as(deployment, deployment.loader) as conn:
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'lidm_stage'").fetchone() == (0,)
            conn.execute("CREATE UNLOGGED TABLE lidm_stage.health_population_0badc0ffee00 (x int)")
            conn.execute("INSERT INTO lidm_stage.health_population_0badc0ffee00 VALUES (1)")
        with _as(deployment, analyst) as conn:
            assert "lidm_stage" in _refused(conn, "SELECT * FROM lidm_stage.health_population_0badc0ffee00")
            _refused(conn, "CREATE TABLE lidm_stage.mine (x int)")
        with _as(deployment, deployment.loader) as conn:
            conn.execute("DROP TABLE lidm_stage.health_population_0badc0ffee00")
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{analyst}"')


def test_public_keeps_nothing_a_consumer_does_not_need(deployment: Deployment) -> None:
    stranger = f"lidm_t_stranger_{secrets.token_hex(4)}"
    analyst = f"lidm_t_analyst_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE ROLE "{stranger}" LOGIN')
        admin.execute(f'CREATE ROLE "{analyst}" LOGIN IN ROLE lidm_c_education')
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(deployment.dsn(stranger)).close()
        with _as(deployment, analyst) as conn:
            _refused(conn, "CREATE TEMPORARY TABLE mine (x int)")
            _refused(conn, "CREATE TABLE public.mine (x int)")
            _refused(conn, "SELECT count(*) FROM lidm_audit")
            assert conn.execute("SELECT count(*) FROM lidm_education.platform_warning").fetchone() is not None
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{stranger}"')
            admin.execute(f'DROP ROLE IF EXISTS "{analyst}"')


def test_apply_twice_changes_nothing_and_strips_a_loader_that_was_given_too_much(deployment: Deployment) -> None:
    counts = deployment.first.counts()
    assert counts["create role"] >= 1
    engine = sa.create_engine(deployment.url(deployment.owner))
    try:
        assert plan(load_catalog(), engine, loader=deployment.loader) == []
        # The old layout: the service account had CREATEROLE, grant options and TRUNCATE.
        with _pg_admin() as admin:
            admin.execute(f'ALTER ROLE "{deployment.loader}" CREATEROLE CREATEDB')
        with _as(deployment, deployment.owner) as conn:
            conn.execute(f'GRANT TRUNCATE, UPDATE ON lidm_audit TO "{deployment.loader}" WITH GRANT OPTION')
            conn.execute(f'GRANT CREATE ON SCHEMA public TO "{deployment.loader}"')
            conn.execute(f'GRANT CREATE ON DATABASE "{deployment.database}" TO PUBLIC')
        result = apply(engine, load_catalog(), loader=deployment.loader, keyring=load_keyring(deployment.settings))
        assert {"alter role", "revoke"} <= set(result.counts())
        assert plan(load_catalog(), engine, loader=deployment.loader) == []
    finally:
        engine.dispose()
    with _pg_admin() as admin:
        assert admin.execute(
            "SELECT rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = %s", (deployment.loader,)
        ).fetchone() == (False,)
    with _as(deployment, deployment.loader) as conn:
        _refused(conn, "TRUNCATE lidm_audit")
        _refused(conn, "CREATE TABLE public.lidm_mine (x int)")
        _refused(conn, "CREATE SCHEMA lidm_mine")


def test_a_schema_change_is_the_owners(deployment: Deployment) -> None:
    owner = db.connect(deployment.settings, admin=True)
    loader = db.connect(deployment.settings)
    try:
        config = Config()
        config.set_main_option("script_location", str(db.MIGRATIONS))
        config.attributes["engine"] = owner
        command.downgrade(config, "0011")  # as if a new release came with migration 0012
        with pytest.raises(ConfigError, match="run `lidm db upgrade` as the owner"):
            db.migrate(loader)
        db.migrate(owner)
        assert db.is_current(loader)
    finally:
        owner.dispose()
        loader.dispose()


def test_the_commands_use_the_owner_for_schema_and_grants(deployment: Deployment, monkeypatch) -> None:
    monkeypatch.setattr(cli, "get_settings", lambda: deployment.settings)
    monkeypatch.setattr(cli.console, "width", 250)
    runner = CliRunner()
    out = runner.invoke(cli.app, ["db", "upgrade"])
    assert out.exit_code == 0 and deployment.owner in out.output, out.output
    out = runner.invoke(cli.app, ["grants", "apply"])
    assert out.exit_code == 0 and "nothing to change" in out.output and "LIDM_ADMIN_URL is unset" not in out.output
    single = deployment.settings.model_copy(update={"admin_url": None, "central_url": deployment.url(deployment.owner)})
    monkeypatch.setattr(cli, "get_settings", lambda: single)
    out = runner.invoke(cli.app, ["grants", "plan"])
    assert out.exit_code == 0 and "LIDM_ADMIN_URL is unset" in out.output, out.output


def test_a_loader_missing_a_privilege_is_told_to_run_grants_apply_and_nothing_is_written(
    deployment: Deployment,
) -> None:
    """A released table the loader may not write (grants not re-applied): the batch stops whole, and says so."""
    from lidm.errors import LidmError

    with _as(deployment, deployment.owner) as conn:
        conn.execute(f'REVOKE INSERT ON lidm_platform.health_population__released FROM "{deployment.loader}"')
    with pytest.raises(LidmError, match=r"refused batch .* a privilege .*run `lidm grants apply`"):
        run_demo(
            deployment.settings.home, size=60, bad=0, central_url=deployment.url(deployment.loader), feeds=FEEDS[:1]
        )
    with _as(deployment, deployment.owner) as conn:
        assert conn.execute("SELECT count(*) FROM health_population").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM lidm_batch WHERE status = 'loaded'").fetchone()[0] == 0
    engine = sa.create_engine(deployment.url(deployment.owner))
    try:
        apply(engine, load_catalog(), loader=deployment.loader, keyring=load_keyring(deployment.settings))
    finally:
        engine.dispose()
    _, results = run_demo(
        deployment.settings.home, size=60, bad=0, central_url=deployment.url(deployment.loader), feeds=FEEDS[:1]
    )
    assert [r.status for r in results] == ["loaded"]
