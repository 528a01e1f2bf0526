"""Incremental feeds: the watermark advances only after commit, ties at the boundary are never lost."""

from __future__ import annotations

import shutil
from datetime import datetime

import pytest
import sqlalchemy as sa
from lidm_samples import generate_people, population_rows, write_population_table

from lidm import Adapter, SqlSource
from lidm.central import connect, dataset_table, migrate
from lidm.contracts import load_catalog
from lidm.contracts.load import default_contracts_dir
from lidm.pipeline import run_feed
from lidm.registry import get_adapter


@pytest.fixture
def incremental(tmp_path, gateway_sqlite):
    """health.population declared incremental on gxsj, in a contracts folder of its own."""
    contracts = tmp_path / "contracts"
    shutil.copytree(default_contracts_dir(), contracts)
    path = contracts / "health" / "population.yaml"
    text = path.read_text("utf-8").replace(
        "  - {property: lidmUpdateMode, value: full}",
        "  - {property: lidmUpdateMode, value: incremental}\n  - {property: lidmWatermark, value: updated_at}",
    )
    path.write_text(text, "utf-8")
    settings = gateway_sqlite.settings.model_copy(update={"contracts_dir": contracts})
    engine = connect(settings)
    migrate(engine)
    engine.dispose()
    base = get_adapter("health.population")
    adapter = Adapter(
        contract=base.contract,
        source=SqlSource(connection="health_db", table="t_population", watermark="gxsj"),
        mapping=base.mapping,
        name="health.population.incremental",
    )
    assert load_catalog(contracts)["health.population"].watermark == "updated_at"
    return settings, adapter


def test_ties_at_the_watermark_are_read_again_and_change_nothing(incremental, tmp_path):
    settings, adapter = incremental
    src = f"sqlite:///{tmp_path / 'health.db'}"
    engine = sa.create_engine(src)
    rows = population_rows(generate_people(120, 9)).rows
    boundary = datetime(2026, 11, 27, 12, 0, 0, 250000)  # sub-second precision on purpose
    for r in rows:
        r["gxsj"] = boundary
    write_population_table(engine, rows[:100])
    conns = {"health_db": src}

    first = run_feed(adapter, settings, connections=conns)[0]
    assert (first.status, first.inserted) == ("loaded", 100)

    nothing_new = run_feed(adapter, settings, connections=conns)[0]
    assert nothing_new.status == "unchanged"

    # Late rows arrive with the SAME timestamp as the watermark (a tie) and one a microsecond later.
    late = rows[100:]
    late[-1]["gxsj"] = boundary.replace(microsecond=250001)
    table = sa.Table("t_population", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), late)
    engine.dispose()
    second = run_feed(adapter, settings, connections=conns)[0]
    assert second.status == "loaded"
    assert (second.inserted, second.updated, second.unchanged, second.retired) == (20, 0, 100, 0)

    central = connect(settings)
    with central.connect() as conn:
        wm = conn.execute(sa.text("SELECT value FROM lidm_watermark")).scalar_one()
        n = conn.execute(
            sa.select(sa.func.count()).select_from(
                dataset_table(load_catalog(settings.contracts_dir)["health.population"], sa.MetaData())
            )
        ).scalar_one()
    central.dispose()
    assert wm == "2026-11-27 12:00:00.250001" and n == 120


def test_a_bad_row_at_the_boundary_is_quarantined_once_not_once_per_run(incremental, tmp_path):
    settings, adapter = incremental
    src = f"sqlite:///{tmp_path / 'health.db'}"
    engine = sa.create_engine(src)
    rows = population_rows(generate_people(30, 4), bad=1, seed=4).rows  # one faulty row...
    boundary = datetime(2026, 11, 27, 12, 0, 0, 500000)
    for r in rows:
        r["gxsj"] = boundary  # ...sharing the newest watermark with every other row, so it is read again
    write_population_table(engine, rows)
    engine.dispose()
    conns = {"health_db": src}
    first = run_feed(adapter, settings, connections=conns)[0]
    assert (first.status, first.quarantined) == ("loaded", 1)
    again = run_feed(adapter, settings, connections=conns)[0]
    assert again.status == "unchanged"
    central = connect(settings)
    with central.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM lidm_quarantine")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT COUNT(*) FROM lidm_batch")).scalar_one() == 1
    central.dispose()
