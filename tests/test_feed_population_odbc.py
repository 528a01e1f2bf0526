"""health.population from MariaDB through the MariaDB ODBC driver into a PostgreSQL central database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from _db import query
from lidm_samples import generate_people, population_rows, write_population_table

from lidm.central.loader import BatchWriter
from lidm.pipeline import run_feed
from lidm.sources.sql import ping_odbc

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres]
FEED = "health.population"


@pytest.fixture
def department_db(mariadb_odbc):
    engine = sa.create_engine(mariadb_odbc.sqlalchemy_url)
    rows = population_rows(generate_people(1200, 11), bad=5, seed=11)
    write_population_table(engine, rows.rows)
    yield engine, rows
    engine.dispose()


def _one(url: str, sql: str):
    (row,) = query(url, sql)
    return tuple(row)


def test_odbc_source_is_reachable_through_pyodbc(mariadb_odbc):
    assert "MariaDB" in ping_odbc("odbc:" + mariadb_odbc.odbc) or "MySQL" in ping_odbc(mariadb_odbc.odbc)


def test_population_loads_from_mariadb_over_odbc_into_postgres(department_db, mariadb_odbc, gateway_pg):
    _, rows = department_db
    conns = {"health_db": "odbc:" + mariadb_odbc.odbc}
    settings = gateway_pg.settings.model_copy(update={"chunk_rows": 500})  # several chunks
    (r,) = run_feed(FEED, settings, connections=conns)
    assert r.status == "loaded"
    assert r.extracted == len(rows.rows) == r.loaded + r.quarantined
    assert r.quarantined == 6  # 4 bad values + both occurrences of a duplicated key
    loaded, quarantined = _one(
        gateway_pg.central_url,
        "SELECT (SELECT COUNT(*) FROM health_population), (SELECT COUNT(*) FROM lidm_quarantine)",
    )
    assert (loaded, quarantined) == (r.loaded, r.quarantined)
    status, manifest, signature = _one(gateway_pg.central_url, "SELECT status, manifest, signature FROM lidm_batch")
    assert status == "loaded" and '"loaded":' in manifest
    from lidm.keys import load_keyring
    from lidm.manifest import verify

    assert verify(manifest, signature, load_keyring(settings))
    assert not verify(manifest.replace('"loaded":', '"loaded": 1,"x":'), signature, load_keyring(settings))

    # Chinese text survived ODBC and protection: a mask keeps the first character of the name.
    (masked,) = _one(gateway_pg.central_url, "SELECT name_masked FROM health_population LIMIT 1")
    assert "*" in masked and len(masked) >= 2

    again = run_feed(FEED, settings, connections=conns)
    assert again[0].status == "unchanged"
    assert _one(gateway_pg.central_url, "SELECT COUNT(*) FROM lidm_batch") == (1,)


def test_a_crash_before_commit_leaves_nothing(department_db, mariadb_odbc, gateway_pg, monkeypatch):
    def crash(self, **_):
        raise RuntimeError("power cut")

    monkeypatch.setattr(BatchWriter, "finish", crash)
    (r,) = run_feed(FEED, gateway_pg.settings, connections={"health_db": "odbc:" + mariadb_odbc.odbc})
    # Rolled back whole, and recorded as a rejected extract naming the error's class (never its text).
    assert r.status == "rejected" and "[load_error]" in r.reason and "RuntimeError" in r.reason
    assert "power cut" not in r.reason
    counts = _one(
        gateway_pg.central_url,
        "SELECT (SELECT COUNT(*) FROM health_population), (SELECT COUNT(*) FROM lidm_quarantine), "
        "(SELECT COUNT(*) FROM lidm_batch WHERE status <> 'rejected')",
    )
    assert counts == (0, 0, 0)


def test_missing_source_column_is_rejected_naming_the_column(mariadb_odbc, gateway_pg):
    engine = sa.create_engine(mariadb_odbc.sqlalchemy_url)
    write_population_table(engine, population_rows(generate_people(50, 2)).rows)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE t_population DROP COLUMN lxdh"))
    engine.dispose()
    (r,) = run_feed(FEED, gateway_pg.settings, connections={"health_db": "odbc:" + mariadb_odbc.odbc})
    assert r.status == "rejected"
    assert "missing_column" in r.reason and "field lxdh" in r.reason and "phone" in r.reason
    assert _one(gateway_pg.central_url, "SELECT COUNT(*) FROM health_population") == (0,)


def test_sqlite_and_postgres_central_databases_agree(tmp_path, gateway_pg, gateway_sqlite):
    src = f"sqlite:///{tmp_path / 'health.db'}"
    engine = sa.create_engine(src)
    write_population_table(engine, population_rows(generate_people(300, 4), bad=5, seed=4).rows)
    engine.dispose()
    pg = run_feed(FEED, gateway_pg.settings, connections={"health_db": src})[0]
    lite = run_feed(FEED, gateway_sqlite.settings, connections={"health_db": src})[0]
    fields = ("extracted", "loaded", "quarantined", "inserted", "top_reasons")
    assert [getattr(pg, f) for f in fields] == [getattr(lite, f) for f in fields]


def _paged(page_rows: int, page_by: str = "sfzh"):
    import dataclasses

    from lidm import SqlSource
    from lidm.registry import get_adapter

    base = get_adapter(FEED)
    source = SqlSource(connection="health_db", table="t_population", page_by=page_by, page_rows=page_rows)
    return dataclasses.replace(base, source=source, name="health.population.paged")


def test_a_paged_read_loads_what_one_read_loads(department_db, mariadb_odbc, gateway_pg, tmp_path):
    """Keyset paging (for drivers that buffer whole results) reads exactly the rows one read gives."""
    conns = {"health_db": "odbc:" + mariadb_odbc.odbc}
    (whole,) = run_feed(FEED, gateway_pg.settings, connections=conns)
    (paged,) = run_feed(_paged(250), gateway_pg.settings, connections=conns)  # 5 pages, the last one short
    assert (paged.status, paged.extracted, paged.loaded, paged.quarantined) == (
        "loaded",
        whole.extracted,
        whole.loaded,
        whole.quarantined,
    )
    # Every row found again with the same digest: the same rows, nothing missed or repeated across pages.
    assert paged.unchanged == whole.loaded and paged.inserted == paged.updated == paged.retired == 0


def test_a_paged_read_that_would_skip_rows_is_refused(department_db, mariadb_odbc, gateway_pg):
    engine, _ = department_db
    with engine.begin() as conn:  # a page key that repeats: rows past a page boundary would be skipped
        conn.execute(sa.text("UPDATE t_population SET qxdm = '430102'"))
    from lidm.errors import SourceError

    with pytest.raises(SourceError, match="page_by qxdm must be unique and never null"):
        run_feed(
            _paged(100, page_by="qxdm"), gateway_pg.settings, connections={"health_db": "odbc:" + mariadb_odbc.odbc}
        )
    assert _one(gateway_pg.central_url, "SELECT COUNT(*) FROM health_population") == (0,)
