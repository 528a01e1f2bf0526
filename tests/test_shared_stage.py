"""A batch's shared stage on real PostgreSQL: workers COPY their chunks into it themselves, the batch applies and drops
it, and whatever a run leaves there (a worker's session killed mid-COPY, a loader killed mid-batch) never reaches a
dataset and is gone after the feed's next run."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from _db import query
from _faults import assert_whole
from lidm_samples import generate_people, population_rows, write_population_table

from lidm.central import db, loader, stage
from lidm.config import Settings
from lidm.errors import CentralUnavailable
from lidm.keys import generate_keyring, write_keyring
from lidm.pipeline import run_feed

pytestmark = pytest.mark.postgres
ROWS = 1500
STAGES = "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'lidm_stage'"


@pytest.fixture
def gateway(tmp_path: Path, pg_clean_url: str) -> tuple[Settings, str]:
    """Settings of a parallel load (2 workers, 3 chunks) into a fresh central database, and the source's URL."""
    src = f"sqlite:///{tmp_path / 'health.db'}"
    engine = sa.create_engine(src)
    write_population_table(engine, population_rows(generate_people(ROWS, 4)).rows)
    engine.dispose()
    write_keyring(generate_keyring(), tmp_path / "keyring.json")
    settings = Settings(
        home=tmp_path, central_url=pg_clean_url, keyring=tmp_path / "keyring.json", chunk_rows=500, workers=2
    )
    return settings, src


def _run(settings: Settings, src: str):  # type: ignore[no-untyped-def]
    (result,) = run_feed("health.population", settings, connections={"health_db": src})
    return result


def test_workers_stage_the_rows_and_the_batch_drops_the_stage(gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings, src = gateway
    relayed = []
    real = loader.BatchWriter.write_copy
    monkeypatch.setattr(loader.BatchWriter, "write_copy", lambda self, data: relayed.append(data) or real(self, data))
    result = _run(settings, src)
    assert result.status == "loaded" and result.extracted == ROWS == result.loaded + result.quarantined
    assert relayed == [], "every chunk went to a worker, which staged it: no row came back to the loading process"
    url = settings.effective_central_url
    assert query(url, "SELECT COUNT(*) FROM health_population")[0][0] == result.loaded
    assert query(url, STAGES) == []
    again = _run(settings, src)  # a re-run changes nothing, and leaves nothing behind either
    assert again.status == "unchanged"  # a full snapshot seen before: no batch, and the stage made for it is gone
    assert query(url, STAGES) == []
    assert_whole(url)


def _fault_in_stage(monkeypatch, body: str) -> None:  # type: ignore[no-untyped-def]
    """Every stage gets a row trigger running `body` when row 700 (the second chunk's) arrives in a worker's COPY."""
    real = stage.SharedStage.create

    def create(self, table):  # type: ignore[no-untyped-def]
        made = real(self, table)
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION public.lidm_test_stage_fault() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN IF NEW._source_row = 700 THEN {body}; END IF; RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                f'CREATE TRIGGER lidm_test_fault BEFORE INSERT ON lidm_stage."{made.name}" '
                "FOR EACH ROW EXECUTE FUNCTION public.lidm_test_stage_fault()"
            )
        return made

    monkeypatch.setattr(stage.SharedStage, "create", create)


def test_a_worker_session_killed_mid_copy_writes_nothing_and_the_run_can_be_retried(gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings, src = gateway
    url = settings.effective_central_url
    _fault_in_stage(monkeypatch, "PERFORM pg_terminate_backend(pg_backend_pid())")
    with pytest.raises(CentralUnavailable, match=r"worker's connection .* lost .*nothing was written.*retried"):
        _run(settings, src)
    assert query(url, "SELECT (SELECT COUNT(*) FROM health_population), (SELECT COUNT(*) FROM lidm_batch)") == [(0, 0)]
    assert query(url, STAGES) == [], "the failed batch dropped its stage"
    monkeypatch.undo()
    result = _run(settings, src)
    assert result.status == "loaded" and result.extracted == ROWS == result.loaded + result.quarantined
    assert_whole(url)


def test_a_worker_copy_refused_rejects_the_batch_without_quoting_a_row(gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings, src = gateway
    url = settings.effective_central_url
    _fault_in_stage(monkeypatch, "RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'row ' || NEW::text")
    result = _run(settings, src)
    assert result.status == "rejected" and "SQLSTATE 22023" in (result.reason or ""), result
    assert "row (" not in (result.reason or "")  # the server's message quoted the row: it is not passed on
    assert query(url, "SELECT COUNT(*) FROM health_population")[0][0] == 0
    assert query(url, "SELECT status FROM lidm_batch") == [("rejected",)]
    assert query(url, STAGES) == []
    assert_whole(url)


def test_the_next_run_drops_the_stages_its_feed_left_and_only_those(gateway) -> None:  # type: ignore[no-untyped-def]
    settings, src = gateway
    url = settings.effective_central_url
    engine = db.connect_current(settings)
    try:
        left = {}
        for feed in ("health.population", "health.deaths"):  # as a loader killed mid-batch leaves them
            shared = stage.SharedStage(engine, db.connect(settings, pooled=False), feed, str(uuid.uuid4()))
            made = shared.create(sa.Table(stage.stage_name("health_population", shared.batch_id), sa.MetaData()))
            left[feed] = made.name
        assert sorted(r[0] for r in query(url, STAGES)) == sorted(left.values())
        assert not set(left.values()) & set(sa.inspect(engine).get_table_names()), "a stage is no dataset"
    finally:
        engine.dispose()
    result = _run(settings, src)
    assert result.status == "loaded"
    assert query(url, STAGES) == [(left["health.deaths"],)], "another feed's stage is that feed's to drop"
