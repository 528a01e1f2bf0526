"""The lidm command as a user types it."""

from __future__ import annotations

import json
import os
import stat

import pytest
from typer.testing import CliRunner

from lidm import cli
from lidm.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Tables render as on a wide terminal, so assertions see whole cells."""
    monkeypatch.setattr(cli.console, "width", 200)


def test_contracts_list_and_show():
    out = runner.invoke(app, ["contracts", "list"])
    assert out.exit_code == 0, out.output
    assert "health.population" in out.output and "civil_affairs.low_income_roster" in out.output
    out = runner.invoke(app, ["contracts", "show", "civil_affairs.low_income_roster"])
    assert out.exit_code == 0 and "dibao_edge" in out.output and "token, encrypt, mask" in out.output


def test_unknown_contract_is_a_clear_error():
    out = runner.invoke(app, ["contracts", "show", "health.nothing"])
    assert out.exit_code == 2 and "no contract health.nothing" in out.output


def test_keys_init_writes_a_private_keyring_and_never_prints_secrets(tmp_path):
    path = tmp_path / "keyring.json"
    out = runner.invoke(app, ["keys", "init", "--path", str(path)])
    assert out.exit_code == 0, out.output
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for ks in json.loads(path.read_text())["token"]["keys"].values():
        assert ks not in out.output
    again = runner.invoke(app, ["keys", "init", "--path", str(path)])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output


def test_demo_prints_the_summary(tmp_path):
    out = runner.invoke(app, ["demo", "--size", "300", "--home", str(tmp_path / "demo")])
    assert out.exit_code == 0, out.output
    assert "health.population" in out.output and "civil_affairs.low_income_roster" in out.output
    assert "quarantine reasons" in out.output and "loaded" in out.output


def test_run_without_connection_explains_how_to_configure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner.invoke(app, ["keys", "init"])
    out = runner.invoke(app, ["run", "health.population"])
    assert out.exit_code == 2 and "LIDM_CONNECTIONS" in out.output


def test_run_takes_the_connections_verify_takes(tmp_path, monkeypatch):
    """`lidm run --connections FILE` reads the sources `lidm sample` wrote, as `lidm adapter verify` does."""
    monkeypatch.chdir(tmp_path)
    runner.invoke(app, ["keys", "init"])
    sample = runner.invoke(app, ["sample", "--size", "200", "--dataset", "health.population", "--out", "sources"])
    assert sample.exit_code == 0, sample.output
    out = runner.invoke(app, ["run", "health.population", "--connections", "sources/connections.json"])
    assert out.exit_code == 0 and "loaded" in out.output, out.output
    bad = runner.invoke(app, ["run", "health.population", "--connections", '{"health_db": '])
    assert bad.exit_code == 2 and "--connections" in bad.output


def test_feeds_lists_registered_adapters():
    out = runner.invoke(app, ["feeds"])
    assert out.exit_code == 0 and "health.population" in out.output and "roster_*.csv" in out.output


READ_ONLY = [
    ["status"],
    ["status", "--json"],
    ["batch", "list"],
    ["quarantine", "list"],
    ["quarantine", "export", "civil_affairs.low_income_roster", "--out", "q.csv"],
    ["audit", "show"],
    ["audit", "verify"],
    ["export", "civil_affairs.low_income_roster", "--consumer", "civil_affairs", "--out", "x.csv"],
    ["report"],
]


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """An operator's shell with a fresh, empty LIDM_HOME and no LIDM_CENTRAL_URL."""
    from lidm.config import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIDM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIDM_CENTRAL_URL", raising=False)
    monkeypatch.delenv("LIDM_ADMIN_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_a_missing_central_url_is_said_and_nothing_is_created(empty_home):
    from fastapi.testclient import TestClient

    from lidm.config import get_settings
    from lidm.integrations.feeds_page import create_app

    for args in READ_ONLY:
        out = runner.invoke(app, args)
        text = " ".join(out.output.split())
        assert out.exit_code == 2, (args, out.output)
        assert "LIDM_CENTRAL_URL is not set" in text and "`lidm db upgrade`" in text and "`lidm demo`" in text, args
    page = TestClient(create_app(get_settings))
    for path in ("/feeds", "/api/feeds"):
        response = page.get(path)
        assert response.status_code == 503 and "LIDM_CENTRAL_URL" in response.text, path
    assert list(empty_home.iterdir()) == []  # no central.db, not even LIDM_HOME

    out = runner.invoke(app, ["db", "upgrade"])
    assert out.exit_code == 0, out.output
    central = empty_home / "home" / "central.db"
    assert stat.S_IMODE(central.stat().st_mode) == 0o600  # the gateway's data, its owner's only
    out = runner.invoke(app, ["status"])
    assert out.exit_code == 0 and "health.population" in out.output and "no data yet" in out.output, out.output
    assert page.get("/api/feeds").status_code == 200


def test_an_empty_postgresql_database_is_not_taken_for_the_central_one(empty_home, pg_clean_url, monkeypatch):
    from lidm.config import get_settings

    monkeypatch.setenv("LIDM_CENTRAL_URL", pg_clean_url.replace("postgres@", "postgres:s3cret@"))
    get_settings.cache_clear()
    out = runner.invoke(app, ["status"])
    text = " ".join(out.output.split())
    assert out.exit_code == 2 and "has no lidm tables" in text and "LIDM_CENTRAL_URL" in text, out.output
    assert "s3cret" not in out.output
