"""Every reference adapter passes the test kit against its synthetic source: on the embedded default
(SQLite files and local folders) and on the real servers (MariaDB over ODBC, PostgreSQL, OpenSSH SFTP).
The quarantine holds exactly the faults the sample put in, and the cross-department overlaps that the
monitoring loop depends on are really there."""

from __future__ import annotations

import contextlib
import secrets
import urllib.parse
from collections import Counter
from datetime import date, datetime, timedelta

import psycopg
import pyodbc
import pytest
import sqlalchemy as sa
from _db import query
from conftest import MARIADB_BASE, PG_ADMIN_DSN
from lidm_samples.catalog import hand_written_sources, sample_sources, write_sources
from lidm_samples.sources import Servers, append_rows
from lidm_samples.world import build_world

from lidm.registry import adapters
from lidm.testkit import FAIL, PASS, SKIP, WARN, verify

DATASETS = sorted(sample_sources())
SIZE, SEED, BAD = 2000, 20261127, 6


def test_every_dataset_contract_has_an_adapter_and_a_sample_source():
    """A sample source is hand-written in lidm_samples.departments or declared as data beside the adapter
    (<dataset>.sample.yaml, lidm_samples.declared): a department adding a dataset adds files only
    (tests/test_samples_declared.py adds one)."""
    from lidm.contracts import load_catalog

    departmental = {c.id for c in load_catalog() if c.department != "platform"}
    assert set(adapters()) == departmental
    missing = sorted(departmental - set(DATASETS))
    assert not missing, f"no sample source for {missing}: declare one beside the adapter (<dataset>.sample.yaml)"
    assert set(DATASETS) == departmental
    # The hand-written sources model the real departments' variety of systems.
    hand_written = hand_written_sources().values()
    kinds = Counter(s.kind.split("/")[0] if s.table else s.kind for s in hand_written)
    servers = Counter(s.server for s in hand_written if s.table)
    encodings = {s.encoding for s in hand_written if s.file and s.file.endswith(".csv")}
    assert kinds["sql"] >= 10 and kinds["xlsx"] >= 3
    assert set(servers) == {"mariadb", "postgres", "sqlite"}
    assert {"gb18030", "utf-8-sig"} <= encodings


@pytest.fixture(scope="module")
def world():
    return build_world(SIZE, SEED)


@pytest.fixture(scope="module")
def on_files(world, tmp_path_factory):
    return write_sources(world, Servers(tmp_path_factory.mktemp("files")), bad=BAD)


def _expect_conforms(report, written) -> None:
    statuses = {c.name: c.status for c in report.checks}
    assert report.passed, report.markdown()
    assert statuses["protection"] == PASS and statuses["idempotent"] == PASS, report.markdown()
    assert statuses["loads"] == PASS and statuses["quarantine"] == PASS
    assert statuses["watermark_boundary"] in (PASS, SKIP), report.markdown()
    assert statuses["sample_validates"] in (PASS, WARN)  # WARN: the faults we put in
    loads = next(c for c in report.checks if c.name == "loads").figures
    assert loads["extracted"] == written.rows
    assert loads["quarantined"] == written.expected_quarantine, report.markdown()


@pytest.mark.parametrize("dataset", DATASETS)
def test_adapter_conforms_on_files(on_files, dataset):
    written = on_files.by_dataset()[dataset]
    _expect_conforms(verify(dataset, connections=on_files.connections), written)


# --------------------------------------------------------------------------- the real servers


@pytest.fixture(scope="module")
def on_servers(world, tmp_path_factory, sftp_server):
    prefix = f"lidm_src_{secrets.token_hex(3)}_"
    servers = Servers(
        tmp_path_factory.mktemp("servers"),
        mariadb_odbc=MARIADB_BASE,
        postgres_url="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        sftp_url=sftp_server.url(f"inbox_{secrets.token_hex(3)}"),
        database_prefix=prefix,
    )
    try:
        yield write_sources(world, servers, bad=BAD)
    finally:
        with contextlib.closing(pyodbc.connect(MARIADB_BASE, autocommit=True, timeout=5)) as admin:
            for (name,) in admin.execute("SHOW DATABASES").fetchall():
                if name.startswith(prefix):
                    admin.execute(f"DROP DATABASE `{name}`")
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            for (name,) in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)):
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                admin.execute(f'DROP DATABASE "{name}"')


@pytest.mark.mariadb
@pytest.mark.postgres
@pytest.mark.sftp
def test_sources_really_are_on_the_servers(on_servers):
    values = on_servers.connections.values()
    assert any(v.startswith("odbc:") for v in values)
    assert any(v.startswith("postgresql+psycopg://") for v in values)
    assert any(v.startswith("sftp://") for v in values)


@pytest.mark.mariadb
@pytest.mark.postgres
@pytest.mark.sftp
@pytest.mark.parametrize("dataset", DATASETS)
def test_adapter_conforms_on_the_real_servers(on_servers, dataset):
    written = on_servers.by_dataset()[dataset]
    report = verify(dataset, connections=on_servers.connections)
    _expect_conforms(report, written)
    assert not any(c.status == FAIL for c in report.checks)


# --------------------------------------------------------------------------- the overlaps monitoring needs


@pytest.fixture(scope="module")
def central(world, tmp_path_factory):
    """Every feed, without faults, loaded into one central database, as the monitoring loop will find it."""
    from conftest import _gateway

    from lidm.pipeline import run_feed

    clean = write_sources(world, Servers(tmp_path_factory.mktemp("clean")), bad=0)
    gateway = _gateway(tmp_path_factory.mktemp("central"), None)
    for dataset in DATASETS:
        [result] = run_feed(dataset, gateway.settings, connections=clean.connections)
        assert result.status == "loaded", (dataset, result.reason)
    return gateway.settings.effective_central_url


def _joined(url: str, a: str, b: str, where: str = "1=1") -> int:
    sql = (
        f"SELECT COUNT(DISTINCT a.id_number_token) FROM {a} a JOIN {b} b ON a.id_number_token = b.id_number_token "
        f"WHERE a._retired_batch IS NULL AND b._retired_batch IS NULL AND {where}"
    )
    return query(url, sql)[0][0]


@pytest.mark.parametrize(
    ("other", "where", "case"),
    [
        (
            "hr_social_security_unemployment",
            "b.registration_status = 'registered'",
            "roster member registered unemployed",
        ),
        ("health_medical_expenses", "b.out_of_pocket > 5000", "roster member with high out-of-pocket costs"),
        ("disability_federation_disability_certificates", "b.disability_grade IN ('1', '2')", "severely disabled"),
        ("education_student_enrollment", "b.enrollment_status = 'enrolled'", "student on the roster"),
        ("health_deaths", "a.status = 'active'", "died but still paid"),
        ("emergency_disaster_relief", "1=1", "disaster-affected roster household"),
        ("agriculture_rural_relocated_households", "a.district_code <> b.district_code", "enrolled in two districts"),
    ],
)
def test_monitoring_overlaps_are_in_the_loaded_data(central, other, where, case):
    """Joined on keyed tokens only, as monitoring will: no raw ID number is needed to find these people."""
    assert _joined(central, "civil_affairs_low_income_roster", other, where) >= 1, case


def test_the_world_guarantees_its_cohorts(world):
    on_roster = {m.person.id_number for m in world.roster}
    for cohort in ("roster_unemployed", "high_out_of_pocket", "severe_disabled", "disaster_households"):
        assert {p.id_number for p in world.cohort(cohort)} & on_roster, cohort
    dead_on_roster = [m for m in world.roster if m.person.residence_status == "deceased"]
    # still paid (what monitoring must catch), or ended after the death was registered (the near miss)
    assert [m for m in dead_on_roster if m.status == "active"]
    assert all(m.status == "active" or m.termination_date for m in dead_on_roster)
    assert all(world.roster_of(p) for p in world.cohort("relocated_two_districts"))


# --------------------------------------------------------------------------- the boundary, on the real servers


def _writable(url: str) -> str:
    if url.startswith("odbc:"):
        return "mariadb+pyodbc:///?odbc_connect=" + urllib.parse.quote_plus(url.removeprefix("odbc:"))
    return url


@pytest.mark.mariadb
@pytest.mark.postgres
@pytest.mark.parametrize(
    ("dataset", "table", "key"),
    [("health.deaths", "t_death_register", "sfzh"), ("civil_affairs.temporary_assistance", "t_lsjz_aj", "ajbh")],
)
def test_rows_landing_on_the_watermark_after_a_run_are_picked_up(on_servers, tmp_path, dataset, table, key):
    """MariaDB DATETIME(6) and PostgreSQL timestamptz: a row stamped exactly at the stored watermark (a tie)
    and one a microsecond later both arrive on the next run; nothing already loaded is loaded twice."""
    from conftest import _gateway
    from lidm_samples import make_id_number

    from lidm.contracts.load import load_catalog
    from lidm.contracts.model import Protection
    from lidm.pipeline import run_feed

    gateway = _gateway(tmp_path / "gw", None)
    conns = on_servers.connections
    [first] = run_feed(dataset, gateway.settings, connections=conns)
    assert first.status == "loaded"
    url = _writable(conns[adapters()[dataset].source.connection])
    # the newest row the first run loaded (not one of the faulty rows the samples put in), where its key is in clear
    contract = load_catalog()[dataset]
    field = contract.field(contract.key[0])
    loaded = (
        [r[0] for r in query(gateway.settings.effective_central_url, f"SELECT {field.name} FROM {contract.table}")]
        if Protection.CLEAR in field.protection
        else None
    )
    engine = sa.create_engine(url)
    try:
        source = sa.Table(table, sa.MetaData(), autoload_with=engine)
        newest_first = sa.select(source).order_by(source.c.gxsj.desc()).limit(1)
        if loaded is not None:
            newest_first = newest_first.where(source.c[key].in_(loaded))
        with engine.connect() as conn:
            newest = conn.execute(newest_first).mappings().one()
    finally:
        engine.dispose()
    assert newest["gxsj"].microsecond, "the sample source keeps sub-second precision"
    late = []
    for i, stamp in enumerate((newest["gxsj"], newest["gxsj"] + timedelta(microseconds=1))):
        row = dict(newest)
        row[key] = make_id_number("430102", date(1950, 1, 1), 990 + i) if key == "sfzh" else f"{row[key]}-T{i}"
        row["gxsj"] = stamp
        late.append(row)
    append_rows(url, table, late)
    [second] = run_feed(dataset, gateway.settings, connections=conns)
    assert (second.status, second.inserted, second.updated) == ("loaded", 2, 0)
    assert second.quarantined <= first.quarantined  # only a faulty sample row sharing the tie's stamp, read again
    [third] = run_feed(dataset, gateway.settings, connections=conns)
    assert third.status == "unchanged"
    (stored,) = query(gateway.settings.effective_central_url, "SELECT value FROM lidm_watermark")[0]
    expected = late[1]["gxsj"]
    assert datetime.fromisoformat(stored) == expected  # to the microsecond, offset included where there is one
