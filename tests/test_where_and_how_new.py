"""A department finds a held-back row of its database table by what the table holds (issue 20): the row's key, masked
where the contract masks it, and its record time, under the department's own column names; a read position is a
place in watermark order nobody can look up. And `lidm status` says how new the loaded data is by the source's own
record times, beside when it was loaded: a snapshot loaded today may hold nothing changed in a week."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from lidm_samples import generate_people, population_rows, write_population_table
from typer.testing import CliRunner

from lidm import cli
from lidm.central import connect, migrate
from lidm.central.holds import list_quarantine, quarantine_csv
from lidm.pipeline import run_feed
from lidm.registry import get_adapter
from lidm.status import feed_row, feed_status

FEED = "health.population"


def _wrong_check_character(id_number: str) -> str:
    return id_number[:17] + ("0" if id_number[17] != "0" else "1")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gateway(request):
    return request.getfixturevalue("gateway_sqlite" if request.param == "sqlite" else "gateway_pg")


def test_held_rows_are_named_by_masked_key_and_record_time_and_status_says_how_new_the_data_is(
    gateway, tmp_path, monkeypatch
):
    settings = gateway.settings
    engine = connect(settings)
    migrate(engine)
    engine.dispose()
    rows = population_rows(generate_people(60, 7)).rows
    week_ago = datetime.now() - timedelta(days=7)  # the source's wall clock, as a department's table holds it
    for i, r in enumerate(rows):
        r["gxsj"] = (week_ago - timedelta(hours=i)).replace(microsecond=0)
    newest = rows[0]["gxsj"]
    bad = rows[10]
    raw_id = bad["sfzh"]
    bad["sfzh"] = _wrong_check_character(raw_id)
    twin = dict(rows[20])  # the same person twice: both copies held back as duplicate_key
    rows.append(twin)
    src = f"sqlite:///{tmp_path / 'health.db'}"
    source = sa.create_engine(src)
    write_population_table(source, rows)
    source.dispose()

    result = run_feed(get_adapter(FEED), settings, connections={"health_db": src})[0]
    assert (result.status, result.extracted, result.quarantined) == ("loaded", 61, 3)

    held = {r["reason"]: r for r in list_quarantine(settings, FEED)}
    by_reason = sorted(r["reason"] for r in list_quarantine(settings, FEED))
    assert by_reason == ["duplicate_key", "duplicate_key", "id_number.checksum"]
    checksum = held["id_number.checksum"]["locator"]
    assert checksum == f"sfzh={bad['sfzh'][:4]}{'*' * 14} gxsj={bad['gxsj']}"
    duplicates = [r["locator"] for r in list_quarantine(settings, FEED) if r["reason"] == "duplicate_key"]
    assert duplicates == [f"sfzh={twin['sfzh'][:4]}{'*' * 14} gxsj={twin['gxsj']}"] * 2
    exported = quarantine_csv(list_quarantine(settings, FEED))
    assert "locator" in next(csv.reader(io.StringIO(exported.lstrip("\ufeff"))))
    for text in (exported, *duplicates, checksum):  # the department's table can be searched; no ID leaves whole
        assert raw_id not in text and bad["sfzh"] not in text and twin["sfzh"] not in text

    (status,) = [s for s in feed_status(settings) if s.feed == FEED]
    assert status.state == "fresh" and status.age is not None and status.age < timedelta(hours=1)
    assert status.newest_record == f"{newest}"  # a week old, though loaded just now
    line = feed_row(status)
    assert line["newest_record_at"] == f"{newest}" and line["last_loaded_batch"]["newest_record_at"] == f"{newest}"
    assert datetime.fromisoformat(line["last_data_at"]) > datetime.now(UTC) - timedelta(hours=1)

    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    out = CliRunner().invoke(cli.app, ["status", "--json"])
    feed_line = next(json.loads(x) for x in out.output.splitlines() if x.startswith("{") and FEED in x)
    assert feed_line["newest_record_at"] == f"{newest}"
    table = CliRunner().invoke(cli.app, ["quarantine", "list", FEED], env={"COLUMNS": "300"})
    assert "sfzh=" in table.output and raw_id not in table.output


def test_a_row_without_its_key_is_named_by_its_record_time_alone(gateway_sqlite, tmp_path):
    settings = gateway_sqlite.settings
    engine = connect(settings)
    migrate(engine)
    engine.dispose()
    rows = population_rows(generate_people(10, 3)).rows
    for r in rows:
        r["gxsj"] = datetime(2026, 11, 30, 10, 22, 1)
    rows[4]["sfzh"] = ""  # a key left empty
    src = f"sqlite:///{tmp_path / 'health.db'}"
    source = sa.create_engine(src)
    write_population_table(source, rows)
    source.dispose()
    run_feed(get_adapter(FEED), settings, connections={"health_db": src})
    (held,) = list_quarantine(settings, FEED)
    assert held["reason"] == "required" and held["locator"] == "gxsj=2026-11-30 10:22:01"
