"""What an operator types to check "nothing lost": reconcile, read a day again, status, the quarantine list."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from lidm import cli
from lidm.cli import app
from lidm.config import get_settings
from lidm.testkit import kinds_in

runner = CliRunner()
FEED = "health.medical_expenses"


@pytest.fixture(scope="module")
def demo_city(tmp_path_factory):
    home = tmp_path_factory.mktemp("city") / "demo"
    out = runner.invoke(app, ["demo", "--size", "300", "--home", str(home)])
    assert out.exit_code == 0, out.output
    return home


@pytest.fixture
def operator(demo_city, monkeypatch):
    """The demo city's settings in the environment, as an operator's shell would have them."""
    monkeypatch.setattr(cli.console, "width", 200)
    monkeypatch.setenv("LIDM_HOME", str(demo_city))
    monkeypatch.delenv("LIDM_CENTRAL_URL", raising=False)
    monkeypatch.setenv("LIDM_CONNECTIONS", (demo_city / "sources" / "connections.json").read_text("utf-8"))
    get_settings.cache_clear()
    yield demo_city
    get_settings.cache_clear()


def test_reconcile_finds_lost_rows_and_a_rerun_since_that_day_restores_them(operator):
    ok = runner.invoke(app, ["reconcile", FEED])
    assert ok.exit_code == 0 and "everything accounted for" in ok.output, ok.output

    engine = sa.create_engine(f"sqlite:///{operator / 'central.db'}")
    with engine.begin() as c:
        day = c.execute(sa.text("SELECT MIN(substr(updated_at, 1, 10)) FROM health_medical_expenses")).scalar_one()
        gone = c.execute(sa.text(f"DELETE FROM health_medical_expenses WHERE substr(updated_at, 1, 10) = '{day}'"))
        lost = gone.rowcount
    engine.dispose()
    assert lost > 0

    found = runner.invoke(app, ["reconcile", FEED])
    assert found.exit_code == 1, found.output
    assert "mismatch" in found.output and day in found.output and "--since" in found.output
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 1 and re.search(rf"{FEED}: reconcile: {lost} missing in {day}", status.output)
    assert not kinds_in(found.output + status.output)

    rerun = runner.invoke(app, ["run", FEED, "--since", day])
    assert rerun.exit_code == 0, rerun.output
    again = runner.invoke(app, ["reconcile", FEED])
    assert again.exit_code == 0 and "everything accounted for" in again.output, again.output


def test_since_is_refused_for_a_drop_feed(operator):
    out = runner.invoke(app, ["run", "civil_affairs.low_income_roster", "--since", "2026-11-01"])
    assert out.exit_code == 2 and "--since" in out.output


def test_quarantine_list_and_export_name_places_and_reasons_never_values(operator, tmp_path):
    listed = runner.invoke(app, ["quarantine", "list", "civil_affairs.low_income_roster"])
    assert listed.exit_code == 0, listed.output
    assert "roster_" in listed.output and "reason" in listed.output and not kinds_in(listed.output)
    target = tmp_path / "roster-quarantine.csv"
    out = runner.invoke(app, ["quarantine", "export", "civil_affairs.low_income_roster", "--out", str(target)])
    assert out.exit_code == 0, out.output
    text = target.read_text("utf-8")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows and {"row_number", "line_number", "field", "reason"} <= set(rows[0])
    assert all(r["reason"] for r in rows) and not kinds_in(text)


def test_accept_refuses_a_batch_that_was_not_held(operator):
    engine = sa.create_engine(f"sqlite:///{operator / 'central.db'}")
    with engine.connect() as c:
        batch = c.execute(sa.text("SELECT batch_id FROM lidm_batch WHERE status = 'loaded' LIMIT 1")).scalar_one()
    engine.dispose()
    out = runner.invoke(app, ["batch", "accept", batch, "--reason", "test"])
    assert out.exit_code == 2 and "only a batch held as suspicious_shrink" in out.output, out.output


def test_feeds_json_carries_the_reconciliation(operator):
    from lidm.status import feed_status

    [f] = feed_status(get_settings(), feeds=[FEED])
    assert f.reconciled in ("ok", "mismatch") and json.dumps(f.notes)


def _json_lines(args: list[str]) -> list[dict]:
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert not kinds_in(out.stdout)  # codes, counts, ids and times: nothing of a person
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows and len({tuple(r) for r in rows}) == 1, args  # one object per line, the same keys on each
    return rows


def test_listings_print_json_lines_an_operator_can_script(operator):
    from datetime import datetime

    batches = _json_lines(["batch", "list", "--json", "--limit", "5"])
    assert {"batch_id", "feed", "status", "reason", "started_at", "loaded", "quarantined"} <= set(batches[0])
    assert all(isinstance(b["loaded"], int) and datetime.fromisoformat(b["started_at"]).tzinfo for b in batches)
    entries = _json_lines(["audit", "show", "--json", "--last", "5"])
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    assert all(isinstance(e["detail"], dict) and datetime.fromisoformat(e["at"]).tzinfo for e in entries)
    assert all(isinstance(e["sealed"], bool) for e in entries)
    rules = _json_lines(["monitor", "rules", "--json"])
    assert all(isinstance(r["due_working_days"], int) and isinstance(r["feeds"], list) for r in rules)
    assert all(r["due_days"] is None for r in rules)  # every shipped rule counts working days (rules/README.md)
    feeds = _json_lines(["feeds", "--json"])
    assert "health.population" in {f["feed"] for f in feeds}
