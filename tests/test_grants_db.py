"""Grants enforced by PostgreSQL itself: a consumer's login reads its views, and PostgreSQL refuses the rest.

Needs the real PostgreSQL server (``make services``). The demo city (800 people) is loaded once a session into a
throwaway database (tests/_grants_city.py), the monitor raises its warnings, ``apply`` makes the roles and views; then
each tested consumer gets a LOGIN user holding ``lidm_c_<consumer>``, and every read is made over a connection AS that
user. A test that changes the city (a grant, a privilege, a row) puts it back before it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from _grants_city import CONSUMERS, City, _admin
from psycopg import errors
from typer.testing import CliRunner

from lidm import cli
from lidm.central import release
from lidm.central.grants import apply, desired, plan, role_name, schema_name
from lidm.config import Settings
from lidm.contracts import load_catalog
from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import Contract, Grant, GrantLevel, Protection
from lidm.errors import ContractError, LidmError

pytestmark = pytest.mark.postgres

FURONG = ("430102",)


@pytest.fixture
def city(grants_city: City) -> City:
    """The session's demo city (conftest.py): a test that changes it puts it back before it ends."""
    return grants_city


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
    again = apply(city.engine, city.catalog, keyring=city.keyring)
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
        rows = cur.fetchall()
        assert rows
        # stored as 32 bytes since migration 0021, a token reaches a consumer as before: 64 hex characters of text
        households = [r[columns.index("household_id_token")] for r in rows]
        assert all(isinstance(h, str) and len(h) == 64 and int(h, 16) >= 0 for h in households if h is not None)
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
        f"SELECT _sealed FROM {view}": errors.UndefinedColumn,
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


def test_a_county_bureau_and_a_street_office_see_only_what_they_hold(city: City) -> None:
    """Routing (issue 19): a county bureau of HR reads its department's warnings in its district, a street office
    its street's, nothing else; the city bureau above them reads theirs too (the test before)."""
    for department, level in (("hr_social_security", "county"), ("civil_affairs", "street")):
        with _admin(city.database) as conn:
            office = conn.execute(
                "SELECT target_consumer FROM platform_warning WHERE target_department = %s AND action_level = %s "
                "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
                (department, level),
            ).fetchone()[0]
        member = city.catalog.consumers.members[office]
        scope = (
            f"target_department = '{department}' AND district_code IN ({', '.join(repr(d) for d in member.districts)})"
        )
        if level == "street":
            scope = f"street_code IN ({', '.join(repr(s) for s in member.streets)})"
        expected = _admin_count(city, f"SELECT count(*) FROM platform_warning WHERE _retired_batch IS NULL AND {scope}")
        user = f"lidm_t_{secrets.token_hex(4)}"
        with _admin() as admin:
            admin.execute(f'CREATE ROLE "{user}" LOGIN')
            admin.execute(f'GRANT "{role_name(office)}" TO "{user}"')
        try:
            dsn = f"host=127.0.0.1 port=5432 user={user} dbname={city.database} connect_timeout=5"
            with psycopg.connect(dsn, autocommit=True) as conn:
                seen = conn.execute(
                    f"SELECT target_department, district_code, street_code FROM {schema_name(office)}.platform_warning"
                ).fetchall()
                with pytest.raises(psycopg.Error):
                    conn.execute("SELECT count(*) FROM lidm_platform.platform_warning").fetchall()
        finally:
            with _admin() as admin:
                admin.execute(f'DROP ROLE IF EXISTS "{user}"')
        assert len(seen) == expected > 0, office
        if level == "county":
            assert {d for d, _, _ in seen} == {department}
        assert {c for _, c, _ in seen} == set(member.districts)
        if level == "street":
            assert {s for _, _, s in seen} == set(member.streets)


def test_a_privilege_granted_by_hand_is_revoked_by_apply(city: City) -> None:
    role = role_name("education")
    try:
        with _admin(city.database) as admin:
            admin.execute(f'GRANT SELECT ON public.platform_warning TO "{role}"')
            admin.execute(f'GRANT SELECT (_sealed) ON public.health_population TO "{role}"')
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
        assert apply(city.engine, city.catalog, keyring=city.keyring).changed
        for sql in (
            "SELECT count(*) FROM public.platform_warning",
            "SELECT _sealed FROM public.health_population",
            "SELECT count(*) FROM lidm_platform.platform_warning",
        ):
            assert issubclass(_refused(city, "education", sql), errors.InsufficientPrivilege), sql
        assert plan(city.catalog, city.engine) == []
    finally:
        apply(city.engine, city.catalog, keyring=city.keyring)


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
        apply(city.engine, city.catalog, keyring=city.keyring)
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
        result = apply(city.engine, reduced, keyring=city.keyring)
        assert sorted((s.action, s.target) for s in result.statements) == [
            ("drop table", "lidm_education.platform_warning__released"),  # its released rows go with it
            ("drop view", "lidm_education.platform_warning"),
            ("unregister release", "lidm_education.platform_warning__released"),
        ]
        assert issubclass(
            _refused(city, "education", "SELECT count(*) FROM lidm_education.platform_warning"), errors.UndefinedTable
        )
        with _as(city, "education") as conn:  # the rest of education's grants still read
            conn.execute("SELECT count(*) FROM lidm_education.education_education_assistance").fetchone()
        assert plan(reduced, city.engine) == []
    finally:
        apply(city.engine, city.catalog, keyring=city.keyring)
    with _as(city, "education") as conn:
        assert conn.execute("SELECT count(*) FROM lidm_education.platform_warning").fetchone()[0] > 0


def test_a_consumer_no_longer_declared_loses_its_schema_but_its_role_is_kept(city: City) -> None:
    reduced = _without_consumer(city.catalog, "justice")
    try:
        result = apply(city.engine, reduced, keyring=city.keyring)
        actions = sorted({(s.action, s.target.split(".")[0]) for s in result.statements})
        assert actions == [("drop schema", "lidm_justice"), ("unregister release", "lidm_justice")]
        assert any("lidm_c_justice" in note and "kept" in note for note in result.notes)
        sql = "SELECT count(*) FROM lidm_justice.justice_legal_aid"
        assert issubclass(_refused(city, "justice", sql), errors.UndefinedTable)  # the schema is gone
        with _admin(city.database) as admin:
            assert not admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'lidm_justice'").fetchone()
        with _admin() as admin:
            assert admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'lidm_c_justice'").fetchone()
        assert plan(reduced, city.engine) == []
    finally:
        apply(city.engine, city.catalog, keyring=city.keyring)
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


# ------------------------------------------------------------------ attacks on row limits and tokens (issue 15)

_EXPLAIN = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "


def _plan(conn: psycopg.Connection, sql: str, value: str | None = None) -> str:
    """A probe's plan with actual row counts, the probed value itself blanked (it is the consumer's own input)."""
    lines = [r[0] for r in conn.execute(_EXPLAIN + sql, [value] if value is not None else None).fetchall()]
    text = "\n".join(lines)
    return text.replace(value, "?") if value else text


def _touched(plan: str) -> int:
    """Rows a plan says it looked at: those it returned and those its filters removed."""
    returned = int(re.search(r"actual rows=(\d+)", plan).group(1))
    return returned + sum(int(n) for n in re.findall(r"Rows Removed by \w+(?: \w+)?: (\d+)", plan))


def test_no_plan_looks_at_a_row_the_county_may_not_read(city: City) -> None:
    """EXPLAIN ANALYZE used to count other districts' rows (Rows Removed by Filter): the hidden rows' number."""
    schema, checked = schema_name("civil_affairs.furong"), 0
    with _as(city, "civil_affairs.furong") as conn:
        views = [t for (t,) in conn.execute(f"SELECT viewname FROM pg_views WHERE schemaname = '{schema}'")]
        for view in views:
            own = conn.execute(f'SELECT count(*) FROM "{schema}"."{view}"').fetchone()[0]
            assert _touched(_plan(conn, f'SELECT * FROM "{schema}"."{view}"')) <= own, view
            checked += 1
    assert checked >= 10


def test_probing_for_a_hidden_key_looks_like_probing_for_an_absent_one(city: City) -> None:
    """The planner's side channel: a probe for another district's key, and a range bisection over the keys."""
    schema = schema_name("civil_affairs.furong")
    probes = {  # view -> column a county may filter on, that other districts' rows also hold
        "platform_assistance_record": "record_id",
        "disability_federation_disability_certificates": "id_number_token",
        "platform_warning": "warning_id",
    }
    for view, column in probes.items():
        # a token is stored as bytes: probed as the hex text it was (and its pseudonym is) in the consumer's view
        shown = f"encode(\"{column}\", 'hex')" if column.endswith("_token") else f'"{column}"'
        with _admin(city.database) as admin:
            hidden = [
                v
                for (v,) in admin.execute(
                    f'SELECT {shown} FROM "{view}" WHERE district_code <> %s AND "_retired_batch" IS NULL '
                    f'ORDER BY "{column}" LIMIT 20',
                    (FURONG[0],),
                )
            ]
        assert hidden, view
        absent = "0" * len(hidden[0])
        found = []
        with _as(city, "civil_affairs.furong") as conn:
            probe = f'SELECT * FROM "{schema}"."{view}" WHERE "{column}" = %s'
            baseline = _plan(conn, probe, absent)
            ranged = f'SELECT * FROM "{schema}"."{view}" WHERE "{column}" >= %s AND "{column}" < %s || \'0\''
            for value in hidden:
                if _plan(conn, probe, value) != baseline:
                    found.append(value)
                plan = "\n".join(r[0] for r in conn.execute(_EXPLAIN + ranged, [value, value]).fetchall())
                if _touched(plan) > conn.execute(f'SELECT count(*) FROM "{schema}"."{view}"').fetchone()[0]:
                    found.append(value)
        assert found == [], f"{view}.{column}: {len(found)} hidden values told apart from absent ones"


def _tokens(city: City, consumer: str, view: str, column: str = "id_number_token") -> set[str]:
    with _as(city, consumer) as conn:
        sql = f'SELECT DISTINCT "{column}" FROM "{schema_name(consumer)}"."{view}" WHERE "{column}" IS NOT NULL'
        return {v for (v,) in conn.execute(sql)}


def test_a_department_cannot_join_its_datasets_on_tokens(city: City) -> None:
    """Education held tokens next to its own record ids and joined them to the roster: people found on dibao."""
    linked = _admin_count(
        city,
        "SELECT count(DISTINCT a.id_number_token) FROM platform_assistance_record a "
        "JOIN civil_affairs_low_income_roster r ON r.id_number_token = a.id_number_token "
        "WHERE a._retired_batch IS NULL AND r._retired_batch IS NULL",
    )
    assert linked > 0  # the master tokens do link them: the platform's own matching relies on it
    records = _tokens(city, "education", "platform_assistance_record")
    roster = _tokens(city, "education", "civil_affairs_low_income_roster")
    assert records and roster and not records & roster
    with _as(city, "education") as conn:
        found = conn.execute(
            "SELECT count(*) FROM lidm_education.platform_assistance_record a "
            "JOIN lidm_education.civil_affairs_low_income_roster r USING (id_number_token)"
        ).fetchone()[0]
    assert found == 0


def test_two_consumers_see_different_pseudonyms_for_one_person(city: City) -> None:
    education = _tokens(city, "education", "civil_affairs_low_income_roster")
    hr = _tokens(city, "hr_social_security", "civil_affairs_low_income_roster")
    platform = _tokens(city, "platform", "civil_affairs_low_income_roster")
    master = {
        v
        for (v,) in _admin(city.database).execute(
            "SELECT encode(id_number_token, 'hex') FROM civil_affairs_low_income_roster"
        )
    }
    assert len(education) == len(hr) == len(platform) > 0
    assert not education & hr and not education & master and not hr & master and not platform & master


def test_a_linkable_grant_joins_that_consumers_datasets_and_only_those(city: City) -> None:
    """platform's grants list id_number as linkable (monitoring across datasets): its views join, as the base does."""
    linked = _admin_count(
        city,
        "SELECT count(*) FROM platform_assistance_record a JOIN civil_affairs_low_income_roster r "
        "ON r.id_number_token = a.id_number_token WHERE a._retired_batch IS NULL AND r._retired_batch IS NULL",
    )
    with _as(city, "platform") as conn:
        joined = conn.execute(
            "SELECT count(*) FROM lidm_platform.platform_assistance_record a "
            "JOIN lidm_platform.civil_affairs_low_income_roster r USING (id_number_token)"
        ).fetchone()[0]
    assert joined == linked > 0


def test_pseudonyms_are_the_documented_hmac_of_the_master_token(city: City) -> None:
    key = release.pseudonym_key(city.keyring, "education", "civil_affairs.low_income_roster")
    with _admin(city.database) as admin:
        master = {v for (v,) in admin.execute("SELECT id_number_token FROM civil_affairs_low_income_roster")}
    assert _tokens(city, "education", "civil_affairs_low_income_roster") == {release.pseudonym(key, m) for m in master}


def test_a_change_to_a_base_row_reaches_the_released_tables_at_the_next_sync(city: City) -> None:
    """The triggers note the changed keys in the writer's transaction; the sync re-releases exactly those rows."""
    schema = schema_name("civil_affairs.furong")
    with _admin(city.database) as admin:
        (token,) = admin.execute(
            "SELECT household_id_token FROM civil_affairs_low_income_roster WHERE district_code = %s "
            "AND _retired_batch IS NULL ORDER BY id_number_token LIMIT 1",
            FURONG,
        ).fetchone()
    hkey = release.pseudonym_key(city.keyring, "civil_affairs.furong", "civil_affairs.low_income_roster")
    mine = release.pseudonym(hkey, token)

    def furong_sees() -> list[tuple[str, str]]:
        with _as(city, "civil_affairs.furong") as conn:
            sql = (
                f'SELECT status, district_code FROM "{schema}".civil_affairs_low_income_roster '
                "WHERE household_id_token = %s"
            )
            return conn.execute(sql, (mine,)).fetchall()

    before = furong_sees()
    assert before
    try:
        with city.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE civil_affairs_low_income_roster SET district_code = '430103' WHERE household_id_token = :t"
                ),
                {"t": token},
            )
            noted = conn.execute(sa.text("SELECT count(*) FROM lidm_release_pending")).scalar_one()
            assert noted >= 1
            assert furong_sees() == before  # not yet: another transaction, and not synced
            synced = release.sync(conn, city.keyring)
        assert [s.table for s in synced] == ["civil_affairs_low_income_roster"]
        assert furong_sees() == []  # moved to another district: gone from furong's release
        with _admin(city.database) as admin:
            assert admin.execute("SELECT count(*) FROM lidm_release_pending").fetchone()[0] == 0
    finally:
        with city.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE civil_affairs_low_income_roster SET district_code = :d WHERE household_id_token = :t"),
                {"t": token, "d": FURONG[0]},
            )
            release.sync(conn, city.keyring)
    assert furong_sees() == before


def test_a_release_under_the_contracts_minimum_k_is_refused(city: City) -> None:
    """lidmMinK: a consumer without direct identifiers must not be able to single people out of what it reads."""
    from lidm.contracts.disclosure import below_min_k

    strict = ContractCatalog(
        {c.id: c.model_copy(update={"min_k": 5}) if c.id == "health.population" else c for c in city.catalog},
        city.catalog.consumers,
    )
    with city.engine.connect() as conn:
        below = below_min_k(strict, conn)
    assert below and {r.contract for r in below} == {"health.population"}
    assert "platform" in {r.consumer for r in below}  # tokens, gender, birth year, district: k is its only shield
    assert all(r.k < 5 for r in below)
    # Whoever reads the name or ID number in clear in its view knows who a row is: k does not gate it.
    clear = {
        m
        for m in city.catalog.consumers.members
        for c, g in city.catalog.grants_for(m)
        if c.id == "health.population"
        and g.fields.get("name") is GrantLevel.CLEAR
        and Protection.CLEAR in c.field("name").protection
    }
    assert not clear & {r.consumer for r in below}
    before = plan(city.catalog, city.engine)
    with pytest.raises(ContractError, match=r"(?s)refused, nothing was changed.*population to platform: k=\d+ < 5"):
        apply(city.engine, strict, keyring=city.keyring)
    assert plan(city.catalog, city.engine) == before == []
