"""A big batch is validated and protected in forked workers: the result must be the one a single process gives."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from lidm import dates, transform
from lidm.config import Settings
from lidm.contracts import load_catalog, load_one
from lidm.errors import ContractError, RejectedBatch
from lidm.keys import generate_keyring, write_keyring
from lidm.pipeline import run_feed
from lidm.samples import generate_people, population_rows, write_population_table


def _rows(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = [tuple(r) for r in conn.execute(sa.text(sql))]
    engine.dispose()
    return out


@pytest.mark.postgres
def test_workers_load_exactly_what_one_process_loads(tmp_path, pg_clean_url, monkeypatch):
    src = f"sqlite:///{tmp_path / 'health.db'}"
    engine = sa.create_engine(src)
    sample = population_rows(generate_people(3000, 7), bad=25, seed=3)
    rows = [*sample.rows, dict(sample.rows[0], xm="重复")]  # the first person again, in the last chunk
    write_population_table(engine, rows)
    engine.dispose()
    write_keyring(generate_keyring(), tmp_path / "keyring.json")
    pools = []
    real_pool = transform.ProcessPoolExecutor

    class CountingPool(real_pool):  # a spy: the real pool, counted
        def __init__(self, *args, **kwargs):
            pools.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(transform, "ProcessPoolExecutor", CountingPool)
    results = {}
    for name, url, workers in (("pg", pg_clean_url, 2), ("sqlite", None, 1)):
        home = tmp_path / name
        settings = Settings(
            home=home, central_url=url, keyring=tmp_path / "keyring.json", chunk_rows=500, workers=workers
        )
        (results[name],) = run_feed("health.population", settings, connections={"health_db": src})
        results[name + "_url"] = settings.effective_central_url
    assert pools == [2], "the PostgreSQL run (2 workers, 7 chunks) forks one pool; the 1-worker run none"

    pg, lite = results["pg"], results["sqlite"]
    assert pg.status == lite.status == "loaded"
    assert pg.extracted == len(rows) == pg.loaded + pg.quarantined
    assert (pg.loaded, pg.quarantined, pg.top_reasons) == (lite.loaded, lite.quarantined, lite.top_reasons)
    assert dict(pg.top_reasons)["duplicate_key"] >= 2  # the repeat and its first row, chunks apart, held back
    table = "SELECT id_number_token, household_id_token, district_code, _row_digest FROM health_population"
    assert sorted(_rows(results["pg_url"], table)) == sorted(_rows(results["sqlite_url"], table))
    quarantine = "SELECT row_number, reason, key_token, row_digest FROM lidm_quarantine"
    assert sorted(_rows(results["pg_url"], quarantine)) == sorted(_rows(results["sqlite_url"], quarantine))
    digest = "SELECT content_digest FROM lidm_batch WHERE status = 'loaded'"
    assert _rows(results["pg_url"], digest) == _rows(results["sqlite_url"], digest)


def test_a_batch_error_from_a_worker_keeps_its_place():
    exc = RejectedBatch("encoding", "line 7 is not valid gbk", file="drop/a.csv", row=7, field="xm")
    again = pickle.loads(pickle.dumps(exc))
    assert (str(again), again.reason, again.file, again.row, again.field) == (
        str(exc),
        "encoding",
        "drop/a.csv",
        7,
        "xm",
    )


@pytest.mark.parametrize("fmt", ["%Y%m%d", "%Y-%m-%d", "%Y年%m月%d日", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y", "%y%j"])
def test_date_round_trip_formats_as_strftime_does(fmt):
    text = pa.array(["19850412", "0985-01-02 01:02:03", "2024年2月29日", "29/02/2024", "85123", None, "2024-02-29"])
    parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
    assert dates._format(parsed, fmt).equals(pc.strftime(parsed, format=fmt))


def test_rolled_over_dates_are_still_refused():
    out = dates.parse(pa.array(["20230230", "20240229", "20230431", "2023215"]), ("%Y%m%d",))
    assert out.to_pylist()[0] is None and out.to_pylist()[2] is None and out.to_pylist()[3] is None
    assert str(out[1].as_py().date()) == "2024-02-29"


def test_one_contract_loads_as_the_catalogue_loads_it(tmp_path):
    assert load_one("health.population") == load_catalog()["health.population"]
    with pytest.raises(ContractError, match=r"no contract health\.nothing"):
        load_one("health.nothing")
