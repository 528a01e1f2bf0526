"""Re-tokenization: a new token key for every stored token, in one transaction, and loads that follow it."""

from __future__ import annotations

import json
import shutil

import pytest
import sqlalchemy as sa
from _db import query
from lidm_samples import generate_people, population_rows, write_population_table

from lidm.central import audit
from lidm.errors import KeyringError
from lidm.keys import load_keyring
from lidm.pipeline import run_feed
from lidm.protect import next_token_function
from lidm.retokenize import retokenize

FEED = "health.population"


@pytest.fixture(params=["sqlite", "postgres"])
def loaded(request, tmp_path):
    gateway = request.getfixturevalue("gateway_sqlite" if request.param == "sqlite" else "gateway_pg")
    src = f"sqlite:///{tmp_path / 'health.db'}"
    engine = sa.create_engine(src)
    write_population_table(engine, population_rows(generate_people(300, 5), bad=6, seed=5).rows)
    conns = {"health_db": src}
    (first,) = run_feed(FEED, gateway.settings, connections=conns)
    assert first.status == "loaded" and first.quarantined
    yield gateway, engine, conns
    engine.dispose()


TOKENS = "SELECT id_number_token, household_id_token FROM health_population ORDER BY _sealed"
QUARANTINE = "SELECT key_token FROM lidm_quarantine WHERE key_token IS NOT NULL ORDER BY id"


def tokens(url: str, sql: str) -> list[tuple[str | None, ...]]:
    """Stored tokens (32 bytes each since migration 0021) as the hex the SDK hands out."""
    return [tuple(None if v is None else bytes(v).hex() for v in row) for row in query(url, sql)]


def test_every_token_moves_to_the_new_key_and_loads_follow(loaded):
    gateway, engine, conns = loaded
    settings, url = gateway.settings, gateway.settings.effective_central_url
    old_keyring_file = gateway.home / "keyring.before.json"
    shutil.copy(settings.effective_keyring, old_keyring_file)
    before, held_before = tokens(url, TOKENS), tokens(url, QUARANTINE)

    done = retokenize(settings)

    new = load_keyring(settings)
    assert done.epoch == new.token.epoch == 2 and len(new.token.token_chain) == 2
    step = next_token_function(new)
    after, held_after = tokens(url, TOKENS), tokens(url, QUARANTINE)
    assert after == [tuple(None if t is None else step(t) for t in row) for row in before]
    assert held_after == [(step(t),) for (t,) in held_before] and held_after
    assert not {t for row in before for t in row} & {t for row in after for t in row}
    assert done.rows["health_population.id_number_token"] == len(before)
    assert not (gateway.home / "keyring.json.next").exists()
    assert query(url, "SELECT action, subject FROM lidm_audit WHERE action = 'keys.retokenize'") == [
        ("keys.retokenize", "epoch 2")
    ]

    # The next delivery, with one address changed, lands on the rewritten rows: one update, nothing new.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE t_population SET jzdz = 'moved' WHERE rowid = 1"))
    (again,) = run_feed(FEED, settings, connections=conns)
    assert (again.inserted, again.updated, again.retired) == (0, 1, 0), again
    assert again.unchanged == again.loaded - 1

    # A keyring of the old epoch can no longer write: its tokens would never join again.
    old = settings.model_copy(update={"keyring": old_keyring_file})
    with pytest.raises(KeyringError, match="epoch 2, the keyring's at 1"):
        run_feed(FEED, old, connections=conns)


def test_a_failed_retokenization_changes_nothing(loaded, monkeypatch):
    gateway, _engine, _conns = loaded
    settings, url = gateway.settings, gateway.settings.effective_central_url
    before, keyring_before = tokens(url, TOKENS), settings.effective_keyring.read_text()

    def power_cut(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(audit, "append", power_cut)  # the last statement of the job's transaction
    with pytest.raises(RuntimeError, match="power cut"):
        retokenize(settings)
    assert tokens(url, TOKENS) == before
    assert settings.effective_keyring.read_text() == keyring_before
    assert not (gateway.home / "keyring.json.next").exists()
    assert query(url, "SELECT COUNT(*) FROM lidm_token_epoch") == [(0,)]
    assert json.loads(keyring_before)["token"].get("chain") is None


def test_the_command_asks_before_it_rewrites_and_reports_counts_only(loaded, monkeypatch):
    from typer.testing import CliRunner

    from lidm.cli import app

    gateway, _engine, _conns = loaded
    s = gateway.settings
    monkeypatch.setenv("LIDM_HOME", str(s.home))
    monkeypatch.setenv("LIDM_KEYRING", str(s.effective_keyring))
    if gateway.central_url:
        monkeypatch.setenv("LIDM_CENTRAL_URL", gateway.central_url)
    from lidm.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    refused = runner.invoke(app, ["keys", "retokenize"])
    assert refused.exit_code == 2 and "--yes" in refused.output
    done = runner.invoke(app, ["keys", "retokenize", "--yes"])
    get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert "token epoch 2" in done.output and "tokens rewritten" in done.output
    keyring = json.loads(s.effective_keyring.read_text())
    assert (
        len(keyring["token"]["chain"]) == 2 and keyring["token"]["keys"][keyring["token"]["active"]] not in done.output
    )


def test_consumers_released_pseudonyms_follow_a_retokenization_and_later_loads(gateway_pg, tmp_path):
    """The releases (lidm.central.release) are rewritten in the re-tokenization's own transaction."""
    from lidm.central import release
    from lidm.central.grants import apply
    from lidm.contracts import load_catalog

    src = f"sqlite:///{tmp_path / 'health.db'}"
    engine = sa.create_engine(src)
    write_population_table(engine, population_rows(generate_people(120, 7), bad=0, seed=7).rows)
    conns = {"health_db": src}
    settings, url = gateway_pg.settings, gateway_pg.settings.effective_central_url
    (first,) = run_feed(FEED, settings, connections=conns)
    assert first.status == "loaded"
    central = sa.create_engine(url)
    try:
        apply(central, load_catalog(), keyring=load_keyring(settings))
        key = release.pseudonym_key(load_keyring(settings), "platform", release.LINKABLE)  # its grant: linkable

        def released() -> set[str]:
            return {t for (t,) in query(url, "SELECT id_number_token FROM lidm_platform.health_population")}

        def expected() -> set[str]:
            live = "SELECT id_number_token FROM health_population WHERE _retired_batch IS NULL"
            return {release.pseudonym(key, t) for (t,) in query(url, live)}

        before = released()
        assert before == expected() and len(before) == first.loaded
        retokenize(settings)
        after = released()
        assert after == expected() and not before & after  # the new tokens, pseudonymised with the same key
        assert query(url, "SELECT count(*) FROM lidm_release_pending") == [(0,)]
        with engine.begin() as conn:  # a later load re-releases what it changed, in its own transaction
            conn.execute(sa.text("DELETE FROM t_population WHERE rowid = 1"))
        (again,) = run_feed(FEED, settings, connections=conns)
        assert again.retired == 1
        assert released() == expected() and len(released()) == first.loaded - 1  # the retired row is gone
    finally:
        central.dispose()
        engine.dispose()
