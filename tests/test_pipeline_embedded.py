"""The whole path on embedded defaults (SQLite central DB, SQLite department DB, local drop folder)."""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from _db import query
from lidm_samples import ROSTER_HEADER_LINE, generate_people, population_rows, write_population_table
from lidm_samples.demo import run_demo

from lidm.pipeline import run_feed


def _counts(url: str, sql: str):
    return query(url, sql)


def test_demo_loads_every_feed_with_the_invariant(tmp_path):
    sources, results = run_demo(tmp_path, size=800, seed=3, bad=5)
    written = sources.by_dataset()
    assert {"health.population", "civil_affairs.low_income_roster"} <= set(written)
    assert [r.feed for r in results] == [w.dataset for w in sources.written]
    for r in results:
        assert r.status == "loaded", (r.feed, r.reason)
        assert r.extracted == r.loaded + r.quarantined == written[r.feed].rows
        assert r.quarantined == written[r.feed].expected_quarantine  # a duplicate holds back both occurrences
    url = f"sqlite:///{tmp_path / 'central.db'}"
    ((pop,),) = _counts(url, "SELECT COUNT(*) FROM health_population")
    assert pop == next(r.loaded for r in results if r.feed == "health.population")
    reasons = {r for (r,) in _counts(url, "SELECT DISTINCT reason FROM lidm_quarantine")}
    assert {"id_number.checksum", "duplicate_key", "enum"} <= reasons
    # Every quarantined row names its row and field, and its payload is kept (encrypted).
    for row_number, field, payload in _counts(url, "SELECT row_number, field, payload FROM lidm_quarantine"):
        assert row_number and field and payload


def test_no_raw_personal_value_reaches_the_central_database_or_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sources, _ = run_demo(
        tmp_path, size=300, seed=5, bad=5, feeds=["health.population", "civil_affairs.low_income_roster"]
    )
    engine = sa.create_engine(sources.connections["health_db"])
    with engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT sfzh, xm, lxdh, jzdz FROM t_population WHERE xm IS NOT NULL")).all()
    engine.dispose()
    dump = (
        json.dumps(
            [
                r
                for t in ("health_population", "civil_affairs_low_income_roster", "lidm_quarantine", "lidm_batch")
                for r in map(list, _counts(f"sqlite:///{tmp_path / 'central.db'}", f"SELECT * FROM {t}"))
            ],
            default=str,
            ensure_ascii=False,
        )
        + caplog.text
    )
    for sfzh, xm, phone, address in raw[:200]:
        assert sfzh not in dump
        assert address not in dump
        if phone:
            assert phone not in dump
        if len(xm) >= 3:
            assert xm not in dump


def test_rerun_of_an_unchanged_database_source_changes_nothing(gateway_sqlite, tmp_path):
    src = f"sqlite:///{tmp_path / 'health.db'}"
    engine = sa.create_engine(src)
    write_population_table(engine, population_rows(generate_people(200, 1)).rows)
    conns = {"health_db": src}
    first = run_feed("health.population", gateway_sqlite.settings, connections=conns)
    central = gateway_sqlite.settings.effective_central_url
    before = _counts(central, "SELECT * FROM health_population ORDER BY id_number_token")
    second = run_feed("health.population", gateway_sqlite.settings, connections=conns)
    assert first[0].status == "loaded" and first[0].inserted == 200
    assert second[0].status == "unchanged"
    assert _counts(central, "SELECT * FROM health_population ORDER BY id_number_token") == before
    assert _counts(central, "SELECT COUNT(*) FROM lidm_batch") == [(1,)]

    # One person changes, one disappears: an update and a retirement, nothing else touched.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE t_population SET jzdz = 'moved' WHERE rowid = 1"))
        conn.execute(sa.text("DELETE FROM t_population WHERE rowid = 2"))
    third = run_feed("health.population", gateway_sqlite.settings, connections=conns)[0]
    engine.dispose()
    assert (third.inserted, third.updated, third.unchanged, third.retired) == (0, 1, 198, 1)


def test_header_only_full_snapshot_is_refused(gateway_sqlite, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "roster_1.csv").write_bytes((ROSTER_HEADER_LINE + "\n").encode("gb18030"))
    (drop / "roster_1.csv.ok").write_text("")
    (r,) = run_feed(
        "civil_affairs.low_income_roster", gateway_sqlite.settings, connections={"civil_affairs_drop": f"file://{drop}"}
    )
    assert r.status == "rejected" and "empty_snapshot" in r.reason
    assert (drop / "rejected" / "roster_1.csv").exists()
    assert "empty_snapshot" in (drop / "rejected" / "roster_1.csv.reason.txt").read_text()
