"""Secrets never shown: passwords in database and source URLs, and the keyring given as LIDM_KEYRING_JSON."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from lidm import cli
from lidm.cli import app
from lidm.config import Settings, get_settings
from lidm.keys import load_keyring
from lidm.redact import redact_url

SECRET = "s3cr3t-pw"
runner = CliRunner()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://lidm:s3cr3t-pw@db.gov:5432/central",
            "postgresql+psycopg://lidm:***@db.gov:5432/central",
        ),
        (  # an encoded password, and the query kept as written
            "postgresql+psycopg://lidm:s3cr3t%40pw@db.gov/central?sslmode=require&application_name=lidm",
            "postgresql+psycopg://lidm:***@db.gov/central?sslmode=require&application_name=lidm",
        ),
        (
            "postgresql://lidm:s3cr3t-pw@db.gov/central#dept.warning",
            "postgresql://lidm:***@db.gov/central#dept.warning",
        ),
        ("postgresql://lidm@db.gov/central?password=s3cr3t-pw", "postgresql://lidm@db.gov/central?password=***"),
        (
            "DRIVER={MariaDB Unicode};SERVER=10.1.2.3;UID=reader;PWD=s3cr3t-pw;DATABASE=hr",
            "DRIVER={MariaDB Unicode};SERVER=10.1.2.3;UID=reader;PWD=***;DATABASE=hr",
        ),
        ("Driver={X};Uid=sa;Password={s3cr3t;pw}}x};Server=h", "Driver={X};Uid=sa;Password=***;Server=h"),
        (
            "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BX%7D%3BUID%3Dsa%3BPWD%3Ds3cr3t-pw%3B",
            "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BX%7D%3BUID%3Dsa%3BPWD%3D***%3B",
        ),
        ("odbc://?dsn=hr_db&pwd=s3cr3t-pw", "odbc://?dsn=hr_db&pwd=***"),
        (
            "sftp://drop:s3cr3t-pw@sftp.gov:2222/inbox?key_file=/etc/lidm/id_ed25519&known_hosts=/etc/lidm/kh",
            "sftp://drop:***@sftp.gov:2222/inbox?key_file=/etc/lidm/id_ed25519&known_hosts=/etc/lidm/kh",
        ),
        ("sftp://drop:s3cr3t?pw@sftp.gov/inbox", "sftp://drop:***@sftp.gov/inbox"),  # an unencoded ? in it
        ("sftp://drop:s3cr3t-pw@sftp.gov:notaport/inbox", "sftp://drop:***@sftp.gov:notaport/inbox"),
        (
            "https://feeds.gov/api?token=s3cr3t-pw&api_key=s3cr3t-pw&client_secret=s3cr3t-pw&page=2",
            "https://feeds.gov/api?token=***&api_key=***&client_secret=***&page=2",
        ),
    ],
)
def test_redact_url_hides_every_kind_of_credential(url, shown):
    assert redact_url(url) == shown
    assert "s3cr3t" not in redact_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/lidm/central.db",
        "file:///srv/drops/civil_affairs",
        "sftp://drop@sftp.gov:22//srv/inbox?key_file=/etc/lidm/id_ed25519",
        "postgresql+psycopg://postgres@127.0.0.1:5432/central",
        "/var/lib/lidm/central.db",
    ],
)
def test_redact_url_leaves_a_url_without_credentials_as_it_is(url):
    assert redact_url(url) == url


@pytest.fixture
def settings_from_env(monkeypatch):
    """Set LIDM_ variables for one test; the process-wide settings are read afresh before and after."""

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"LIDM_{name.upper()}", value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


def test_lidm_demo_never_prints_the_central_database_password(
    pg_clean_url, settings_from_env, tmp_path, caplog, monkeypatch
):
    # trust authentication on the test server accepts any password, so the demo really runs against this URL
    url = make_url(pg_clean_url).set(password=SECRET).render_as_string(hide_password=False)
    assert SECRET in url
    settings_from_env(central_url=url)
    monkeypatch.setattr(cli.console, "width", 200)
    caplog.set_level(logging.DEBUG)
    out = runner.invoke(app, ["demo", "--size", "200", "--home", str(tmp_path / "demo")])
    assert out.exit_code == 0, out.output
    assert "Central database: postgresql+psycopg://postgres:***@127.0.0.1:5432/" in out.output
    assert SECRET not in out.output and SECRET not in caplog.text
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "postgres:***@127.0.0.1" in upgraded.output and SECRET not in upgraded.output


# --------------------------------------------------------------------------- LIDM_KEYRING_JSON


@pytest.fixture
def keyring_text(tmp_path) -> str:
    """A real keyring as the JSON a secret store would hold."""
    path = tmp_path / "keyring.json"
    assert runner.invoke(app, ["keys", "init", "--path", str(path)]).exit_code == 0
    return path.read_text("utf-8")


def _key_material(keyring_text: str) -> list[str]:
    return list(json.loads(keyring_text)["token"]["keys"].values())


def test_keyring_json_never_shows_in_repr_dumps_or_errors(keyring_text):
    settings = Settings(keyring_json=keyring_text)
    for shown in (repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json()):
        assert all(key not in shown for key in _key_material(keyring_text))
        assert "keyring_json" not in shown or "**********" in shown
    with pytest.raises(ValidationError) as error:
        Settings(keyring_json=keyring_text, chunk_rows=0)
    assert all(key not in str(error.value) and key not in repr(error.value) for key in _key_material(keyring_text))


def test_keyring_json_from_the_environment_still_opens(keyring_text, settings_from_env):
    settings_from_env(keyring_json=keyring_text)
    ring = load_keyring(get_settings())
    assert ring.purpose("token").active
    assert all(key not in repr(get_settings()) for key in _key_material(keyring_text))


def test_keys_rotate_still_refuses_a_keyring_from_the_environment(keyring_text, settings_from_env):
    settings_from_env(keyring_json=keyring_text)
    out = runner.invoke(app, ["keys", "rotate", "--purpose", "encrypt"])
    assert out.exit_code != 0 and "LIDM_KEYRING_JSON" in out.output
