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


def test_feeds_lists_registered_adapters():
    out = runner.invoke(app, ["feeds"])
    assert out.exit_code == 0 and "health.population" in out.output and "roster_*.csv" in out.output
