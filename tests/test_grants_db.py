"""Grants enforced by PostgreSQL itself: a consumer's login reads its views, and PostgreSQL refuses the rest.

Needs the real PostgreSQL server (``make services``). The demo city (800 people) is loaded once into a throwaway
database, the monitor raises its warnings, ``apply`` makes the roles and views; then each tested consumer gets a
LOGIN user holding ``lidm_c_<consumer>``, and every read is made over a connection AS that user.
Roles are cluster-wide: the LOGIN users carry a random suffix, and the ``lidm_c_*`` roles this module created
are dropped at the end (after the database is gone) unless another database still uses them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN_DSN, _throwaway_pg_database
from psycopg import errors
from typer.testing import CliRunner

from lidm import cli
from lidm.central.grants import ApplyResult, apply, desired, plan, role_name, schema_name
from lidm.config import Settings
from lidm.contracts import load_catalog
from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import Contract, Grant, GrantLevel, Protection
from lidm.demo import demo_settings, run_demo
from lidm.errors import LidmError
from lidm.monitor.lifecycle import monitor

pytestmark = pytest.mark.postgres

CONSUMERS = ("platform", "education", "hr_social_security", "civil_affairs.furong", "justice")
FURONG = ("430102",)


@dataclass
class City:
    url: str
    database: str
    engine: sa.Engine
    catalog: ContractCatalog
    first: ApplyResult
    users: dict[str, str]  # consumer -> LOGIN user holding its role


def _admin(database: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN_DSN.replace("dbname=postgres", f"dbname={database}"), autocommit=True)


def _consumer_roles() -> set[str]:
    with _admin() as conn:
        return {r for (r,) in conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, 'lidm_c_')")}


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    """The demo city in a throwaway database, its warnings raised, grants applied, a LOGIN user per consumer."""
    before = _consumer_roles()
    suffix = secrets.token_hex(4)
    users = {c: f"lidm_t_{c.replace('.', '__')}_{suffix}" for c in CONSUMERS}
    try:
        with _throwaway_pg_database() as url:
            home = tmp_path_factory.mktemp("grants")
            run_demo(home, size=800, bad=0, central_url=url)
            monitor(demo_settings(home, url), as_of=date(2026, 11, 27))
            catalog = load_catalog()
            engine = sa.create_engine(url)
            first = apply(engine, catalog)
            with _admin() as admin:
                for consumer, user in users.items():
                    admin.execute(f'CREATE ROLE "{user}" LOGIN')
                    admin.execute(f'GRANT "{role_name(consumer)}" TO "{user}"')
            yield City(url, url.rsplit("/", 1)[1], engine, catalog, first, users)
            engine.dispose()
    finally:
        with _admin() as admin:
            for user in users.values():
                admin.execute(f'DROP ROLE IF EXISTS "{user}"')
            for role in sorted(_consumer_roles() - before):
                with contextlib.suppress(errors.DependentObjectsStillExist):  # another database uses it now
                    admin.execute(f'DROP ROLE "{role}"')


@contextlib.contextmanager
def _as(city: City, consumer: str) -> Iterator[psycopg.Connection]:
    """A connection as the consumer's LOGIN user, the way a department's analyst connects."""
    dsn = f"host=127.0.0.1 port=5432 user={city.users[consumer]} dbname={city.database} connect_timeout=5"
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def _refused(city: City, consumer: str, sql: str) -> type[Exception]:
    with _as(city, consumer) as conn:
        try:
            conn.execute(sql).fetchall()
        except psycopg.Error as exc:
            return type(exc)
    raise AssertionError(f"{consumer} could run: {sql}")


def _admin_count(city: City, sql: str) -> int:
    with _admin(city.database) as conn:
        return conn.execute(sql).fetchone()[0]


def _granted(catalog: ContractCatalog, consumer: str) -> dict[str, tuple[Contract, Grant]]:
    return {c.id: (c, g) for c, g in catalog.grants_for(consumer)}


def _expected_columns(contract: Contract, grant: Grant) -> list[str]:
    """The test's own reading of a grant: token and masked columns by name, clear only where stored clear."""
    out = []
    for f in contract.fields:
        level = grant.fields.get(f.name)
        if level is GrantLevel.TOKEN:
            out.append(f"{f.name}_token")
        elif level is GrantLevel.MASKED:
            out.append(f"{f.name}_masked")
        elif level is GrantLevel.CLEAR and Protection.CLEAR in f.protection:
            out.append(f.name)
    return out


def test_apply_makes_a_role_a_schema_and_views_per_consumer_and_a_second_apply_changes_nothing(city: City) -> None:
    wanted = desired(city.catalog)
    counts = city.first.counts()
    assert counts["create schema"] == len(wanted) == len(city.catalog.consumers.members)
    assert counts["create view"] == sum(len(w.views) for w in wanted) > 100
    assert counts["grant"] == counts["create view"] + counts["create schema"]
    assert "drop view" not in counts and "revoke" not in counts
    with _admin() as admin:
        rows = admin.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)", ([w.role for w in wanted],)
        ).fetchall()
    assert len(rows) == len(wanted) and not any(login for _, login in rows)
    assert plan(city.catalog, city.engine) == []
    again = apply(city.engine, city.catalog)
    assert not again.changed and again.statements == []


def test_each_consumer_sees_exactly_its_granted_datasets_and_columns(city: City) -> None:
    for consumer in CONSUMERS:
        granted = _granted(city.catalog, consumer)
        with _as(city, consumer) as conn:
            visible = conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
            expected = {(schema_name(consumer), c.table) for c, g in granted.values() if _expected_columns(c, g)}
            assert set(visible) == expected, consumer
            for contract, grant in granted.values():
                if not _expected_columns(contract, grant):
                    continue
                cur = conn.execute(f'SELECT * FROM "{schema_name(consumer)}"."{contract.table}" LIMIT 1')
                columns = [d.name for d in cur.description]
                assert columns == _expected_columns(contract, grant), (consumer, contract.id)
                assert not any(col.endswith("_enc") or col.startswith("_") for col in columns)
    with _as(city, "education") as conn:
        cur = conn.execute("SELECT * FROM lidm_education.platform_warning")
        columns = [d.name for d in cur.description]
        assert cur.fetchall()
    # education's grant: id_number clear (stored only as token/encrypt/mask: withheld), name masked, household token
    assert "name_masked" in columns and "household_id_token" in columns
    assert "id_number" not in columns and "id_number_token" not in columns and "name" not in columns
    assert any(w.contract == "platform.warning" and "id_number" in w.fields for w in city.first.withheld)


def test_postgresql_refuses_everything_else(city: City) -> None:
    view = "lidm_education.platform_warning"
    refused = {
        "SELECT count(*) FROM public.platform_warning": errors.InsufficientPrivilege,
        "SELECT count(*) FROM public.civil_affairs_low_income_roster": errors.InsufficientPrivilege,
        "SELECT count(*) FROM platform_warning": errors.InsufficientPrivilege,
        "SELECT count(*) FROM lidm_batch": errors.InsufficientPrivilege,
        "SELECT count(*) FROM lidm_warning_state": errors.InsufficientPrivilege,
        "SELECT count(*) FROM lidm_quarantine": errors.InsufficientPrivilege,
        "SELECT count(*) FROM lidm_platform.platform_warning": errors.InsufficientPrivilege,
        'SELECT count(*) FROM "lidm_civil_affairs__furong".platform_warning': errors.InsufficientPrivilege,
        f"SELECT id_number_enc FROM {view}": errors.UndefinedColumn,
        f"SELECT name_enc FROM {view}": errors.UndefinedColumn,
        f"SELECT id_number FROM {view}": errors.UndefinedColumn,
        f"SELECT _batch_id FROM {view}": errors.UndefinedColumn,
        f"SELECT _retired_batch FROM {view}": errors.UndefinedColumn,
        # stored clear in the roster, not in education's grant
        "SELECT monthly_amount FROM lidm_education.civil_affairs_low_income_roster": errors.UndefinedColumn,
        "CREATE VIEW lidm_education.mine AS SELECT 1": errors.InsufficientPrivilege,
    }
    for sql, error in refused.items():
        assert issubclass(_refused(city, "education", sql), error), sql
    assert issubclass(
        _refused(city, "civil_affairs.furong", "SELECT count(*) FROM lidm_education.platform_warning"),
        errors.InsufficientPrivilege,
    )


def test_a_county_bureau_sees_only_rows_of_its_districts(city: City) -> None:
    schema = schema_name("civil_affairs.furong")
    districts = ", ".join(f"'{d}'" for d in FURONG)
    seen = 0
    for contract, grant in _granted(city.catalog, "civil_affairs.furong").values():
        if not _expected_columns(contract, grant):
            continue
        assert grant.rows.value == "own_districts" and contract.district_field
        expected = _admin_count(
            city,
            f'SELECT count(*) FROM "{contract.table}" WHERE "_retired_batch" IS NULL '
            f'AND "{contract.district_field}" IN ({districts})',
        )
        with _as(city, "civil_affairs.furong") as conn:
            assert conn.execute(f'SELECT count(*) FROM "{schema}"."{contract.table}"').fetchone()[0] == expected
        seen += expected
    assert seen > 0
    for table in ("civil_affairs_low_income_roster", "platform_warning"):
        with _as(city, "civil_affairs.furong") as conn:
            codes = {d for (d,) in conn.execute(f'SELECT DISTINCT district_code FROM "{schema}"."{table}"')}
        assert codes == set(FURONG), table
        everywhere = _admin_count(city, f'SELECT count(DISTINCT district_code) FROM "{table}"')
        assert everywhere > 1  # the filter removed other districts' rows, it did not just find none


def test_a_department_sees_only_warnings_addressed_to_it(city: City) -> None:
    for department in ("education", "hr_social_security"):
        expected = _admin_count(
            city,
            "SELECT count(*) FROM platform_warning WHERE _retired_batch IS NULL "
            f"AND target_department = '{department}'",
        )
        with _as(city, department) as conn:
            rows = conn.execute(f"SELECT target_department FROM {schema_name(department)}.platform_warning").fetchall()
        assert len(rows) == expected > 0
        assert {r[0] for r in rows} == {department}
    assert _admin_count(city, "SELECT count(DISTINCT target_department) FROM platform_warning") > 2
    # the platform reads every warning
    with _as(city, "platform") as conn:
        n = conn.execute("SELECT count(*) FROM lidm_platform.platform_warning").fetchone()[0]
    assert n == _admin_count(city, "SELECT count(*) FROM platform_warning WHERE _retired_batch IS NULL")


def test_a_privilege_granted_by_hand_is_revoked_by_apply(city: City) -> None:
    role = role_name("education")
    try:
        with _admin(city.database) as admin:
            admin.execute(f'GRANT SELECT ON public.platform_warning TO "{role}"')
            admin.execute(f'GRANT SELECT (name_enc) ON public.health_population TO "{role}"')
            admin.execute(f'GRANT USAGE ON SCHEMA lidm_platform TO "{role}"')
            admin.execute(f'GRANT SELECT ON lidm_platform.platform_warning TO "{role}"')
        with _as(city, "education") as conn:
            assert conn.execute("SELECT count(*) FROM public.platform_warning").fetchone()[0] > 0
        todo = plan(city.catalog, city.engine)
        assert {(s.action, s.target) for s in todo} == {
            ("revoke", "public.platform_warning"),
            ("revoke", "public.health_population"),
            ("revoke", "lidm_platform"),
            ("revoke", "lidm_platform.platform_warning"),
        }
        assert apply(city.engine, city.catalog).changed
        for sql in (
            "SELECT count(*) FROM public.platform_warning",
            "SELECT name_enc FROM public.health_population",
            "SELECT count(*) FROM lidm_platform.platform_warning",
        ):
            assert issubclass(_refused(city, "education", sql), errors.InsufficientPrivilege), sql
        assert plan(city.catalog, city.engine) == []
    finally:
        apply(city.engine, city.catalog)


def test_a_role_made_a_member_of_another_role_loses_it(city: City) -> None:
    role = role_name("justice")
    try:
        with _admin() as admin:
            admin.execute(f'GRANT "{role_name("platform")}" TO "{role}"')
        with _as(city, "justice") as conn:
            assert conn.execute("SELECT count(*) FROM lidm_platform.platform_warning").fetchone()[0] > 0
        assert [(s.action, s.sql) for s in plan(city.catalog, city.engine)] == [
            ("revoke membership", f'REVOKE "{role_name("platform")}" FROM "{role}"')
        ]
        apply(city.engine, city.catalog)
        sql = "SELECT count(*) FROM lidm_platform.platform_warning"
        assert issubclass(_refused(city, "justice", sql), errors.InsufficientPrivilege)
    finally:
        with _admin() as admin:
            admin.execute(f'REVOKE "{role_name("platform")}" FROM "{role}"')


def _without(catalog: ContractCatalog, contract_id: str, consumer: str) -> ContractCatalog:
    """A copy of the catalogue with one consumer's grant on one dataset taken away."""
    contracts = {
        c.id: c.model_copy(update={"grants": tuple(g for g in c.grants if g.consumer != consumer)})
        if c.id == contract_id
        else c
        for c in catalog
    }
    return ContractCatalog(contracts, catalog.consumers)


def _without_consumer(catalog: ContractCatalog, consumer: str) -> ContractCatalog:
    """A copy of the catalogue in which a consumer is no longer declared (and so no longer granted anything)."""
    contracts = {
        c.id: c.model_copy(update={"grants": tuple(g for g in c.grants if g.consumer != consumer)}) for c in catalog
    }
    members = {k: v for k, v in catalog.consumers.members.items() if k != consumer}
    return ContractCatalog(contracts, dataclasses.replace(catalog.consumers, members=members))


def test_taking_a_grant_away_drops_its_view_and_the_read_is_refused(city: City) -> None:
    reduced = _without(city.catalog, "platform.warning", "education")
    try:
        result = apply(city.engine, reduced)
        assert [(s.action, s.target) for s in result.statements] == [("drop view", "lidm_education.platform_warning")]
        assert issubclass(
            _refused(city, "education", "SELECT count(*) FROM lidm_education.platform_warning"), errors.UndefinedTable
        )
        with _as(city, "education") as conn:  # the rest of education's grants still read
            conn.execute("SELECT count(*) FROM lidm_education.education_education_assistance").fetchone()
        assert plan(reduced, city.engine) == []
    finally:
        apply(city.engine, city.catalog)
    with _as(city, "education") as conn:
        assert conn.execute("SELECT count(*) FROM lidm_education.platform_warning").fetchone()[0] > 0


def test_a_consumer_no_longer_declared_loses_its_schema_but_its_role_is_kept(city: City) -> None:
    reduced = _without_consumer(city.catalog, "justice")
    try:
        result = apply(city.engine, reduced)
        assert [(s.action, s.target) for s in result.statements] == [("drop schema", "lidm_justice")]
        assert any("lidm_c_justice" in note and "kept" in note for note in result.notes)
        sql = "SELECT count(*) FROM lidm_justice.justice_legal_aid"
        assert issubclass(_refused(city, "justice", sql), errors.UndefinedTable)  # the schema is gone
        with _admin(city.database) as admin:
            assert not admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'lidm_justice'").fetchone()
        with _admin() as admin:
            assert admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'lidm_c_justice'").fetchone()
        assert plan(reduced, city.engine) == []
    finally:
        apply(city.engine, city.catalog)
    with _as(city, "justice") as conn:
        assert conn.execute("SELECT count(*) FROM lidm_justice.justice_legal_aid").fetchone()[0] >= 0


def test_the_cli_plans_and_applies_on_postgresql(city: City, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.console, "width", 200)
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(home=tmp_path, central_url=city.url))
    out = CliRunner().invoke(cli.app, ["grants", "plan"])
    assert out.exit_code == 0, out.output
    assert "nothing to change" in out.output and "clear only by re-identification" in out.output
    out = CliRunner().invoke(cli.app, ["grants", "apply", "--sql"])
    assert out.exit_code == 0 and "nothing to change" in out.output, out.output


def test_sqlite_has_no_roles_and_says_where_grants_are_enforced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'central.db'}")
    catalog = load_catalog()
    for call in (lambda: plan(catalog, engine), lambda: apply(engine, catalog)):
        with pytest.raises(LidmError, match="SQLite has no roles") as info:
            call()
        assert "export and push" in str(info.value)
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(home=tmp_path, central_url=None))
    out = CliRunner().invoke(cli.app, ["grants", "apply"])
    assert out.exit_code == 2 and "SQLite has no roles" in out.output
