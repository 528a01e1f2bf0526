"""The audit log and re-identification, on a small synthetic city in SQLite and in PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from conftest import _pg_admin
from lidm_samples.demo import demo_settings, run_demo, run_loop
from typer.testing import CliRunner

from lidm import cli, pipeline
from lidm.central import audit, db, ledger
from lidm.central.schema import audit as audit_table
from lidm.central.schema import batch, dataset_table, disposition_result, monitor_run, push
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.errors import LidmError, RejectedBatch
from lidm.keys import Keyring, load_keyring
from lidm.monitor.lifecycle import warning_table
from lidm.protect import Protector
from lidm.registry import adapters
from lidm.reidentify import ReidentifyError, reidentify
from lidm.sources import SqlSource

AS_OF = date(2026, 11, 27)
CATALOG = load_catalog()
ROSTER = "civil_affairs.low_income_roster"
WARNING = "platform.warning"


@dataclass
class City:
    settings: Settings
    engine: sa.Engine
    keyring: Keyring
    connections: dict[str, str]

    def entries(self, action: str | None = None) -> list[audit.Entry]:
        return audit.entries(self.engine, action=action)


def _build(home: Path, url: str | None) -> dict[str, str]:
    sources, _ = run_demo(home, size=600, bad=2, central_url=url)
    run_loop(demo_settings(home, url), as_of=AS_OF)
    return dict(sources.connections)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A small city loaded, monitored, pushed and answered once in SQLite; each test gets a copy."""
    home = tmp_path_factory.mktemp("audit-city")
    return home, _build(home, None)


@pytest.fixture(scope="module")
def pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """The same in PostgreSQL; each test gets a database made from it."""
    name = f"lidm_audit_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    home = tmp_path_factory.mktemp("audit-city-pg")
    try:
        yield home, name, _build(home, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[City]:
    name = None
    if request.param == "sqlite":
        source, connections = request.getfixturevalue("template")
        home = tmp_path / "home"
        home.mkdir()
        shutil.copy(source / "keyring.json", home / "keyring.json")
        shutil.copy(source / "central.db", home / "central.db")
        settings = demo_settings(home)
    else:
        home, source_db, connections = request.getfixturevalue("pg_template")
        name = f"lidm_audit_copy_{secrets.token_hex(4)}"
        with _pg_admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source_db}"')
        settings = demo_settings(home, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    engine = db.connect(settings)
    try:
        yield City(settings, engine, load_keyring(settings), connections)
    finally:
        engine.dispose()
        if name:
            with _pg_admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _sql_feed() -> str:
    return next(n for n, a in sorted(adapters().items()) if isinstance(a.source, SqlSource))


# --------------------------------------------------------------------------- what is recorded


def test_every_load_monitor_run_push_and_collect_is_in_the_log(city: City) -> None:
    by_action: dict[str, dict[str, audit.Entry]] = {}
    for e in city.entries():
        by_action.setdefault(e.action, {})[e.subject] = e
    with city.engine.connect() as conn:
        batches = conn.execute(sa.select(batch.c.batch_id, batch.c.status, batch.c.loaded, batch.c.feed)).all()
        runs = conn.execute(sa.select(monitor_run.c.run_id)).scalars().all()
        pushes = conn.execute(sa.select(push.c.push_id, push.c.warnings)).all()
        sources = conn.execute(sa.select(disposition_result.c.source_name).distinct()).scalars().all()
    assert batches and runs and pushes and sources
    for b in batches:
        e = by_action["batch.load" if b.status == "loaded" else "batch.reject"][b.batch_id]
        assert e.data["feed"] == b.feed and e.data.get("loaded", 0) == b.loaded
    assert set(runs) <= set(by_action["monitor.run"])
    for p in pushes:
        assert by_action["warnings.push"][p.push_id].data["warnings"] == p.warnings
    assert set(sources) <= set(by_action["dispositions.collect"])
    report = audit.verify(city.engine, city.keyring)
    assert report.ok, report.problem
    assert report.entries == len(city.entries()) and report.sealed == report.entries and report.unsealed_tail == 0


def test_a_rejected_batch_is_logged_and_a_rolled_back_load_is_not(city: City, monkeypatch) -> None:
    feed = _sql_feed()
    before = len(city.entries())

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RejectedBatch("replay", "refused for the test")

    monkeypatch.setattr(ledger, "refuse_replay", refuse)
    [rejected] = pipeline.run_feed(feed, city.settings, connections=city.connections)
    assert rejected.status == "rejected"
    entry = city.entries("batch.reject")[-1]
    assert entry.subject == rejected.batch_id and entry.data["reason"] == "replay" and entry.seq == before + 1
    monkeypatch.undo()

    # A load that fails after its audit entry was written: the batch and the entry roll back together.
    with city.engine.begin() as conn:  # make the unchanged snapshot look new, so the load goes to the end
        conn.execute(sa.update(batch).where(batch.c.feed == feed).values(content_digest="changed"))
    real = audit.append

    def append_then_crash(conn, **kwargs):  # type: ignore[no-untyped-def]
        real(conn, **kwargs)
        raise LidmError("crash after the audit entry")

    monkeypatch.setattr(audit, "append", append_then_crash)
    with pytest.raises(LidmError, match="crash after"):
        pipeline.run_feed(feed, city.settings, connections=city.connections)
    monkeypatch.undo()
    assert len(city.entries()) == before + 1
    with city.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(batch.c.status == "loading")).scalar_one() == 0
    assert audit.verify(city.engine, city.keyring).ok


# --------------------------------------------------------------------------- tampering


def _row(engine: sa.Engine, seq: int) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(audit_table).where(audit_table.c.seq == seq)).mappings().one())


@contextlib.contextmanager
def _forge(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction of someone who gets past the append-only trigger (a superuser); on SQLite there is none."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        yield conn


def _put(engine: sa.Engine, row: dict) -> None:
    with _forge(engine) as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.seq == row["seq"]))
        conn.execute(sa.insert(audit_table).values(**row))


def test_verify_names_an_edited_a_deleted_and_a_rehashed_entry(city: City) -> None:
    report = audit.verify(city.engine, city.keyring)
    assert report.ok and report.head_seq > 10
    k = report.head_seq // 2
    original = _row(city.engine, k)

    # Edited: a count changed in place.
    detail = json.loads(original["detail"]) | {"forged": 1}
    with _forge(city.engine) as conn:
        conn.execute(sa.update(audit_table).where(audit_table.c.seq == k).values(detail=audit.canonical(detail)))
    report = audit.verify(city.engine)
    assert (report.ok, report.broken_seq, report.kind) == (False, k, "edited")
    assert f"entry {k}" in report.problem
    _put(city.engine, original)
    assert audit.verify(city.engine, city.keyring).ok

    # Deleted: one in the middle leaves a gap.
    with _forge(city.engine) as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.seq == k))
    report = audit.verify(city.engine)
    assert (report.broken_seq, report.kind) == (k, "deleted")
    _put(city.engine, original)

    # Edited and re-hashed: the entry holds, the next one no longer chains from it; its seal gives it away too.
    text = audit.canonical(detail)
    rehashed = audit.entry_hash(
        k, original["at"], original["actor"], original["action"], original["subject"], text, original["prev_hash"]
    )
    with _forge(city.engine) as conn:
        conn.execute(sa.update(audit_table).where(audit_table.c.seq == k).values(detail=text, hash=rehashed))
    report = audit.verify(city.engine)
    assert (report.broken_seq, report.kind) == (k, "chain") and f"entry {k + 1}" in report.problem
    sealed = audit.verify(city.engine, city.keyring)
    assert (sealed.broken_seq, sealed.kind) == (k, "seal")
    _put(city.engine, original)
    assert audit.verify(city.engine, city.keyring).ok


def test_a_consistent_rewrite_of_the_tail_cannot_keep_its_seals(city: City) -> None:
    """Someone with write access re-chains everything from entry k: the chain holds, the seals do not."""
    head = audit.verify(city.engine).head_seq
    k = head - 3
    prev = _row(city.engine, k - 1)["hash"]
    for seq in range(k, head + 1):
        row = _row(city.engine, seq)
        row["detail"] = audit.canonical(json.loads(row["detail"]) | {"rewritten": True})
        row["prev_hash"] = prev
        row["hash"] = prev = audit.entry_hash(
            seq, row["at"], row["actor"], row["action"], row["subject"], row["detail"], row["prev_hash"]
        )
        _put(city.engine, row)
    assert audit.verify(city.engine).ok  # the chain alone is fooled
    report = audit.verify(city.engine, city.keyring)
    assert (report.broken_seq, report.kind) == (k, "seal")
    with _forge(city.engine) as conn:  # stripping the seals instead leaves an unsealed tail, reported as such
        conn.execute(sa.update(audit_table).where(audit_table.c.seq >= k).values(seal=None))
    report = audit.verify(city.engine, city.keyring)
    assert report.ok and report.sealed_through == k - 1 and report.unsealed_tail == head - k + 1


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_concurrent_appends_keep_one_chain(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_clean_url") if backend == "postgresql" else None
    engine = db.connect(Settings(home=tmp_path, central_url=url))
    db.migrate(engine)
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def writer(name: str) -> None:
        try:
            barrier.wait()
            for i in range(25):
                with engine.begin() as conn:
                    conn.execute(
                        sa.insert(monitor_run).values(
                            run_id=f"{name}-{i}", as_of=AS_OF, rules="{}", started_at=datetime.now()
                        )
                    )
                    audit.append(conn, actor=name, action="test", subject=f"{name}-{i}", detail={"i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        report = audit.verify(engine)
        assert report.ok and report.entries == 75 and report.head_seq == 75
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- re-identification


def _roster_keys(city: City, n: int = 3) -> list[str]:
    t = dataset_table(CATALOG[ROSTER], sa.MetaData())
    with city.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(t.c.id_number_token).where(t.c._sealed.is_not(None)).order_by(t.c.id_number_token).limit(n)
            ).scalars()
        )


def _token(city: City, contract: str, value: str) -> str:
    return Protector(CATALOG[contract], city.keyring).token(pa.array([value])).to_pylist()[0]


def test_reidentify_gives_civil_affairs_the_values_and_audits_no_value(city: City) -> None:
    keys = _roster_keys(city)
    ids = reidentify(
        city.settings,
        consumer="civil_affairs",
        purpose="低保金发放核对 case 2026-118",
        dataset=ROSTER,
        field="id_number",
        keys=keys,
    )
    assert [v.key for v in ids] == keys
    assert all(_token(city, ROSTER, v.value) == v.key for v in ids)  # each value is the person behind its key
    names = reidentify(
        city.settings, consumer="civil_affairs", purpose="payment check", dataset=ROSTER, field="name", keys=keys
    )
    t = dataset_table(CATALOG[ROSTER], sa.MetaData())
    with city.engine.connect() as conn:
        query = sa.select(t.c.id_number_token, t.c.name_masked).where(t.c.id_number_token.in_(keys))
        masked = {r.id_number_token: r.name_masked for r in conn.execute(query)}
    for v in names:
        assert v.value and v.value[0] == masked[v.key][0]

    w = warning_table(CATALOG)
    with city.engine.connect() as conn:
        warnings = conn.execute(
            sa.select(w.c.warning_id, w.c.id_number_token).where(w.c._sealed.is_not(None)).limit(3)
        ).all()
    assert warnings
    opened = reidentify(
        city.settings,
        consumer="civil_affairs",
        purpose="warning follow-up",
        dataset=WARNING,
        field="id_number",
        keys=[r.warning_id for r in warnings],
    )
    subject_feed = {r.warning_id: r.id_number_token for r in warnings}
    for v in opened:  # the warning's copy opens with its subject's binding and is the same person
        assert v.value and any(_token(city, c, v.value) == subject_feed[v.key] for c in (ROSTER, WARNING))

    logged = city.entries("reidentify")
    assert len(logged) == 3 and audit.verify(city.engine, city.keyring).ok
    assert logged[0].data | {"operator": None} == {
        "consumer": "civil_affairs",
        "purpose": "低保金发放核对 case 2026-118",
        "dataset": ROSTER,
        "field": "id_number",
        "values": 3,
        "key_column": "id_number_token",
        "keys": keys,
        "operator": None,
    }
    text = " ".join(f"{e.actor} {e.subject} {e.detail}" for e in logged)
    for v in ids + names + opened:
        assert v.value not in text


def test_reidentify_refuses_without_a_clear_grant_or_a_purpose(city: City, monkeypatch) -> None:
    keys = _roster_keys(city, 1)
    ask = dict(consumer="civil_affairs", purpose="payment check", dataset=ROSTER, field="name", keys=keys)
    with pytest.raises(ReidentifyError, match="education may not re-identify"):
        reidentify(city.settings, **ask | {"consumer": "education"})
    with pytest.raises(ReidentifyError, match="gives masked"):
        reidentify(city.settings, **ask | {"consumer": "medical_insurance"})
    with pytest.raises(ReidentifyError, match="not stored encrypted"):
        reidentify(city.settings, **ask | {"field": "category"})
    for purpose in ("", "   ", "abc"):
        with pytest.raises(ReidentifyError, match="purpose"):
            reidentify(city.settings, **ask | {"purpose": purpose})
    with pytest.raises(ReidentifyError, match="must not contain an id number"):
        reidentify(city.settings, **ask | {"purpose": "check 430102199001011234"})
    with pytest.raises(ReidentifyError, match="1 of 2 keys"):
        reidentify(city.settings, **ask | {"keys": [*keys, "f" * 64]})
    outside = [k for k in _roster_keys(city, 50) if _district(city, k) != "430102"][:1]
    with pytest.raises(ReidentifyError, match="may read"):  # a county bureau reads its own districts only
        reidentify(city.settings, **ask | {"consumer": "civil_affairs.furong", "keys": outside})

    def audit_down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise LidmError("audit log unavailable")

    monkeypatch.setattr(audit, "append", audit_down)
    with pytest.raises(LidmError, match="audit log unavailable"):  # no audit entry, no values
        reidentify(city.settings, **ask)
    monkeypatch.undo()
    assert city.entries("reidentify") == []


def _district(city: City, key: str) -> str:
    t = dataset_table(CATALOG[ROSTER], sa.MetaData())
    with city.engine.connect() as conn:
        return conn.execute(sa.select(t.c.district_code).where(t.c.id_number_token == key)).scalar_one()


# --------------------------------------------------------------------------- the commands


def test_audit_and_reidentify_commands(city: City, monkeypatch) -> None:
    monkeypatch.setattr(cli, "get_settings", lambda: city.settings)
    monkeypatch.setattr(cli.console, "width", 250)
    runner = CliRunner()
    out = runner.invoke(cli.app, ["audit", "verify"])
    assert out.exit_code == 0 and "audit log intact" in out.output, out.output
    assert runner.invoke(cli.app, ["audit", "verify", "--strict"]).exit_code == 0  # every entry sealed
    out = runner.invoke(cli.app, ["audit", "show", "--last", "3"])
    assert out.exit_code == 0 and "dispositions.collect" in out.output, out.output
    help_text = " ".join(runner.invoke(cli.app, ["reidentify", "--help"]).output.split())
    assert "ONLY command that prints clear personal values" in help_text
    key = _roster_keys(city, 1)[0]
    out = runner.invoke(
        cli.app,
        ["reidentify", ROSTER, "id_number", "--consumer", "civil_affairs", "--purpose", "payment check", key],
    )
    assert out.exit_code == 0, out.output
    assert any(_token(city, ROSTER, word) == key for word in out.output.split() if len(word) == 18)
    out = runner.invoke(
        cli.app, ["reidentify", ROSTER, "id_number", "--consumer", "education", "--purpose", "x" * 9, key]
    )
    assert out.exit_code == 2 and "may not re-identify" in out.output
    with _forge(city.engine) as conn:
        conn.execute(sa.update(audit_table).where(audit_table.c.seq == 2).values(actor="someone else"))
    out = runner.invoke(cli.app, ["audit", "verify"])
    assert out.exit_code == 1 and "broken at entry 2" in out.output
