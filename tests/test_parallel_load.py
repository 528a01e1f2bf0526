"""A big batch is validated and protected in forked workers: the result must be the one a single process gives."""

from __future__ import annotations

import os
import pickle

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from _db import query
from lidm_samples import generate_people, population_rows, write_population_table

from lidm import dates, transform
from lidm.config import Settings
from lidm.contracts import load_catalog, load_one
from lidm.errors import ContractError, LidmError, RejectedBatch
from lidm.keys import generate_keyring, write_keyring
from lidm.pipeline import run_feed


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
    assert sorted(query(results["pg_url"], table)) == sorted(query(results["sqlite_url"], table))
    quarantine = "SELECT row_number, reason, key_token, row_digest FROM lidm_quarantine"
    assert sorted(query(results["pg_url"], quarantine)) == sorted(query(results["sqlite_url"], quarantine))
    digest = "SELECT content_digest FROM lidm_batch WHERE status = 'loaded'"
    assert query(results["pg_url"], digest) == query(results["sqlite_url"], digest)


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


def _die(chunk):
    os._exit(9)  # a worker killed mid-batch (the OOM killer, an operator's kill -9)


@pytest.mark.postgres
def test_a_worker_killed_mid_batch_leaves_nothing_and_says_what_to_do(tmp_path, pg_clean_url, monkeypatch):
    src = f"sqlite:///{tmp_path / 'health.db'}"
    engine = sa.create_engine(src)
    write_population_table(engine, population_rows(generate_people(1500, 4)).rows)
    engine.dispose()
    write_keyring(generate_keyring(), tmp_path / "keyring.json")
    settings = Settings(
        home=tmp_path, central_url=pg_clean_url, keyring=tmp_path / "keyring.json", chunk_rows=500, workers=2
    )
    monkeypatch.setattr(transform, "_run_in_worker", _die)
    with pytest.raises(LidmError, match=r"stopped abruptly.*nothing was written.*LIDM_WORKERS=1"):
        run_feed("health.population", settings, connections={"health_db": src})
    assert query(
        pg_clean_url, "SELECT (SELECT COUNT(*) FROM health_population), (SELECT COUNT(*) FROM lidm_batch)"
    ) == [(0, 0)]
