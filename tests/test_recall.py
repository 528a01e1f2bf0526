"""Recalling a batch takes back exactly what it loaded; retention purges only what expired; both are audited."""

from __future__ import annotations

import functools
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from lidm_samples.demo import demo_settings, run_demo
from typer.testing import CliRunner

from lidm.central import audit, connect, dataset_table
from lidm.central.recall import list_batches, recall_batch
from lidm.central.retention import purge_expired
from lidm.cli import app
from lidm.contracts import load_catalog
from lidm.contracts.load import default_contracts_dir
from lidm.errors import LidmError
from lidm.keys import load_keyring
from lidm.pipeline import run_feed

EXPENSES, POPULATION = "health.medical_expenses", "health.population"


@pytest.fixture(params=["sqlite", "pg"])
def gateway(request):
    return request.getfixturevalue(f"gateway_{request.param}")


def _load(gateway, feed):
    sources, results = run_demo(gateway.home, size=400, bad=2, feeds=[feed], central_url=gateway.central_url)
    (first,) = results
    assert first.status == "loaded"
    return demo_settings(gateway.home, gateway.central_url), sources.connections, first


def _rows(settings, contract_id, where=None):
    t = dataset_table(load_catalog()[contract_id], sa.MetaData())
    query = sa.select(sa.func.count()).select_from(t)
    if where is not None:
        query = query.where(where(t))
    engine = connect(settings)
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()
    finally:
        engine.dispose()


def _one(settings, sql, **params):
    engine = connect(settings)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).first()
    finally:
        engine.dispose()


def _source(connections, sql, **params):
    engine = sa.create_engine(connections["health_db"])
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def _verified(settings):
    engine = connect(settings)
    try:
        report = audit.verify(engine, load_keyring(settings))
    finally:
        engine.dispose()
    assert report.ok, report.problem
    return report


def test_recall_of_an_incremental_batch_removes_its_rows_and_quarantine_and_rewinds(gateway):
    settings, conns, first = _load(gateway, EXPENSES)
    # A second delivery: five new settlements and one with a broken id number, all newer than the watermark.
    valid = _one(settings, "SELECT MIN(settlement_id) FROM health_medical_expenses")[0]
    for suffix, sfzh in (("N1", None), ("N2", None), ("N3", None), ("N4", None), ("N5", None), ("BAD", "123")):
        _source(
            conns,
            "INSERT INTO t_med_settlement SELECT jsdh || :s, COALESCE(:sfzh, sfzh), xm, yljgdm, yljgmc, yljgdj, jzlx, "
            "ryrq, cyrq, zdbm, zdjbbz, zfy, ybzf, zcfwnzf, grzf, jsrq, qxdm, '2026-11-20 08:00:00.000000' "
            "FROM t_med_settlement WHERE jsdh = :valid",
            valid=valid,
            s=suffix,
            sfzh=sfzh,
        )
    (second,) = run_feed(EXPENSES, settings, connections=conns)
    assert (second.status, second.inserted, second.updated) == ("loaded", 5, 0)
    assert second.quarantined >= 1
    assert _rows(settings, EXPENSES) == first.loaded + 5

    r = recall_batch(settings, second.batch_id, reason="department sent settlements of another city")
    assert (r.removed, r.overwritten, r.unretired, r.quarantine_removed) == (5, 0, 0, second.quarantined)
    assert _rows(settings, EXPENSES) == first.loaded
    assert _rows(settings, EXPENSES, lambda t: t.c._batch_id == second.batch_id) == 0
    assert _one(settings, "SELECT COUNT(*) FROM lidm_quarantine WHERE batch_id = :b", b=second.batch_id)[0] == 0
    assert _one(settings, "SELECT COUNT(*) FROM lidm_quarantine WHERE batch_id = :b", b=first.batch_id)[0] == 2
    wm = _one(settings, "SELECT value, batch_id FROM lidm_watermark WHERE feed = :f", f=EXPENSES)
    earlier = _one(settings, "SELECT watermark_to FROM lidm_batch WHERE batch_id = :b", b=first.batch_id)
    assert r.watermark == "rewound" and tuple(wm) == (earlier.watermark_to, first.batch_id)

    marked = _one(settings, "SELECT status, recall_reason, recalled_at FROM lidm_batch WHERE batch_id = :b",
                  b=second.batch_id)  # fmt: skip
    assert marked.status == "recalled" and marked.recall_reason.startswith("department sent")
    assert marked.recalled_at is not None
    assert [b["status"] for b in list_batches(settings, feed=EXPENSES)] == ["recalled", "loaded"]

    # The audit entry names who could read the dataset, with the row scope of each grant.
    engine = connect(settings)
    try:
        (entry,) = audit.entries(engine, action="batch.recall")
    finally:
        engine.dispose()
    assert entry.subject == second.batch_id and entry.data["removed"] == 5
    assert entry.data["consumers"] == r.consumers and r.consumers
    assert all({"consumer", "rows", "fields"} <= set(c) for c in r.consumers)

    with pytest.raises(LidmError, match="recalled, not loaded"):
        recall_batch(settings, second.batch_id, reason="again")

    # Re-delivery after the recall loads the same rows again.
    (again,) = run_feed(EXPENSES, settings, connections=conns)
    assert (again.status, again.inserted) == ("loaded", 5)
    assert _rows(settings, EXPENSES) == first.loaded + 5
    _verified(settings)


def test_recall_of_a_full_snapshot_unretires_and_refuses_to_lose_data_silently(gateway):
    settings, conns, first = _load(gateway, POPULATION)
    _source(conns, "DELETE FROM t_population WHERE sfzh IN (SELECT sfzh FROM t_population ORDER BY sfzh LIMIT 10)")
    (second,) = run_feed(POPULATION, settings, connections=conns)
    gone = second.retired  # the deleted source rows that had been loaded (not quarantined)
    assert (second.status, second.updated) == ("loaded", 0) and gone >= 8
    current = lambda t: t.c._retired_batch.is_(None)  # noqa: E731
    assert _rows(settings, POPULATION, current) == first.loaded - gone

    r = recall_batch(settings, second.batch_id, reason="extract was cut short")
    assert (r.removed, r.unretired, r.watermark) == (0, gone, "unchanged")
    assert _rows(settings, POPULATION, current) == first.loaded
    assert _rows(settings, POPULATION) == first.loaded

    # A snapshot that overwrote rows: refused without --force (the earlier versions are not kept).
    _source(
        conns,
        "UPDATE t_population SET jzdz = jzdz || '1' WHERE sfzh IN "
        "(SELECT sfzh FROM t_population ORDER BY sfzh DESC LIMIT 3)",
    )
    (third,) = run_feed(POPULATION, settings, connections=conns)
    changed = third.updated
    assert (third.status, third.retired) == ("loaded", gone) and changed >= 1
    with pytest.raises(LidmError, match="later batch"):
        recall_batch(settings, first.batch_id, reason="older snapshot")
    with pytest.raises(LidmError, match="--force"):
        recall_batch(settings, third.batch_id, reason="wrong addresses")
    assert _one(settings, "SELECT status FROM lidm_batch WHERE batch_id = :b", b=third.batch_id)[0] == "loaded"
    forced = recall_batch(settings, third.batch_id, reason="wrong addresses", force=True)
    assert (forced.removed, forced.overwritten, forced.unretired) == (changed, changed, gone)
    assert _rows(settings, POPULATION) == first.loaded - changed

    # The same content delivered again after the recall is loaded, not refused as unchanged.
    (again,) = run_feed(POPULATION, settings, connections=conns)
    assert (again.status, again.inserted, again.retired) == ("loaded", changed, gone)
    entries = [json.loads(e.detail) for e in _entries(settings, "batch.recall")]
    assert [e["forced"] for e in entries] == [False, True]
    _verified(settings)


def _entries(settings, action):
    engine = connect(settings)
    try:
        return audit.entries(engine, action=action)
    finally:
        engine.dispose()


def _with_retention(tmp_path, retention="P30D"):
    contracts = tmp_path / "contracts-retention"
    shutil.copytree(default_contracts_dir(), contracts)
    path = contracts / "health" / "medical_expenses.yaml"
    text = path.read_text("utf-8")
    anchor = "  - {property: lidmUpdateMode, value: incremental}"
    assert anchor in text
    path.write_text(text.replace(anchor, f"{anchor}\n  - {{property: lidmRetention, value: {retention}}}"), "utf-8")
    assert load_catalog(contracts)[EXPENSES].retention == retention
    return contracts


def test_purge_removes_expired_rows_only_and_a_dry_run_changes_nothing(gateway, tmp_path):
    settings, conns, first = _load(gateway, EXPENSES)
    _source(conns, "UPDATE t_med_settlement SET gxsj = '2026-11-20 08:00:00.000000' WHERE jsdh IN "
                   "(SELECT jsdh FROM t_med_settlement ORDER BY jsdh LIMIT 7)")  # fmt: skip
    (second,) = run_feed(EXPENSES, settings, connections=conns)
    rewritten = second.updated  # the loaded ones of the seven (a quarantined one is quarantined again)
    assert second.status == "loaded" and rewritten >= 5
    # The first batch finished 400 days ago: its rows are past 30 days, its quarantine past the default year.
    engine = connect(settings)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE lidm_batch SET finished_at = :t WHERE batch_id = :b"),
            {"t": datetime.now(UTC) - timedelta(days=400), "b": first.batch_id},
        )
    engine.dispose()
    expiring = first.loaded - rewritten  # rows rewritten by the second batch are as young as it
    purging = settings.model_copy(update={"contracts_dir": _with_retention(tmp_path)})

    dry = purge_expired(purging, dry_run=True)
    assert dry.datasets[EXPENSES]["rows"] == expiring and dry.quarantine == 2
    assert _rows(settings, EXPENSES) == first.loaded and len(_entries(settings, "retention.purge")) == 0

    done = purge_expired(purging)
    assert done.datasets[EXPENSES]["rows"] == expiring and done.quarantine == 2
    assert _rows(settings, EXPENSES) == rewritten
    assert _rows(settings, EXPENSES, lambda t: t.c._batch_id != second.batch_id) == 0
    assert _one(settings, "SELECT COUNT(*) FROM lidm_quarantine WHERE batch_id = :b", b=first.batch_id)[0] == 0
    (entry,) = _entries(settings, "retention.purge")
    assert entry.data["datasets"][EXPENSES]["rows"] == expiring and entry.data["quarantine"] == 2

    # Nothing else expires; without a retention in its contract nothing is ever purged.
    assert purge_expired(purging).total == 0
    assert purge_expired(settings, today=datetime.now(UTC).date() + timedelta(days=3650)).datasets == {}
    _verified(settings)


def test_cli_batch_list_recall_and_purge(gateway_sqlite, monkeypatch):
    settings, _, first = _load(gateway_sqlite, EXPENSES)
    for name, value in (("HOME", settings.home), ("KEYRING", settings.effective_keyring)):
        monkeypatch.setenv(f"LIDM_{name}", str(value))
    from lidm.config import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(app, ["batch", "list", "--feed", EXPENSES])
        assert listed.exit_code == 0, listed.output
        assert first.batch_id[:8] in listed.output
        refused = runner.invoke(app, ["batch", "recall", first.batch_id, "--reason", " "])
        assert refused.exit_code == 2 and "say why" in refused.output
        recalled = runner.invoke(app, ["batch", "recall", first.batch_id, "--reason", "test delivery"])
        assert recalled.exit_code == 0, recalled.output
        assert "recalled" in recalled.output
        status = _one(settings, "SELECT status FROM lidm_batch WHERE batch_id = :b", b=first.batch_id)[0]
        assert status == "recalled" and _one(settings, "SELECT COUNT(*) FROM lidm_watermark")[0] == 0
        purged = runner.invoke(app, ["purge", "--dry-run"])
        assert purged.exit_code == 0 and "dry run" in purged.output
        verified = runner.invoke(app, ["audit", "verify"])
        assert verified.exit_code == 0, verified.output
    finally:
        get_settings.cache_clear()


def test_the_same_drop_delivered_again_after_a_recall_is_loaded_not_refused_as_a_replay(gateway):
    feed = "civil_affairs.low_income_roster"
    settings, conns, first = _load(gateway, feed)
    folder = Path(conns["civil_affairs_drop"].removeprefix("file://"))

    def redeliver():
        for name in (first.source, f"{first.source}.ok"):
            shutil.copy(folder / "archive" / name, folder / name)
        (result,) = run_feed(feed, settings, connections=conns)
        return result

    before = redeliver()
    assert before.status == "rejected" and "replay" in before.reason
    recall_batch(settings, first.batch_id, reason="roster of the wrong month")
    assert _rows(settings, feed) == 0
    again = redeliver()
    assert (again.status, again.inserted, again.quarantined) == ("loaded", first.inserted, first.quarantined)
    _verified(settings)


def test_the_daily_housekeeping_dag_purges(airflow_env, gateway_pg, tmp_path):
    from test_airflow_dags import _dagrun, _gateway_env
    from test_airflow_monitoring import DAG_FILE, _run

    from lidm.integrations.airflow.monitor_dags import HOUSEKEEPING_DAG

    settings, _, first = _load(gateway_pg, EXPENSES)
    engine = connect(settings)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE lidm_batch SET finished_at = :t WHERE batch_id = :b"),
            {"t": datetime.now(UTC) - timedelta(days=40), "b": first.batch_id},
        )
    engine.dispose()
    env = _gateway_env(airflow_env, gateway_pg, "unused", {}) | {
        "LIDM_CONTRACTS_DIR": str(_with_retention(tmp_path)),
        "LIDM_QUARANTINE_RETENTION": "P30D",
    }
    reports, _ = _run(functools.partial(_dagrun, env, dag_file=DAG_FILE), HOUSEKEEPING_DAG)
    report = reports[HOUSEKEEPING_DAG]
    assert report["dag"]["schedule"] == "@daily" or "daily" in json.dumps(report["dag"]["schedule"])
    purged = report["xcom"]["purge_expired.return_value"]
    assert purged["datasets"][EXPENSES]["rows"] == first.loaded and purged["quarantine"] == first.quarantined
    assert _rows(settings, EXPENSES) == 0
    _verified(settings)
