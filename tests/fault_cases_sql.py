"""Fault-suite cases (issue 14): incremental SQL sources that lose rows, runs that collide, deliveries that poison a
feed, snapshots that shrink, and the reconciliation that makes "nothing lost" checkable. Each case builds one
situation and returns what happened; the suite then checks the batch invariant and scans every message for
personal numbers (see _faults.assert_whole)."""

from __future__ import annotations

import dataclasses
import os
import threading
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from _db import query
from _faults import (
    POPULATION,
    ROSTER,
    ROSTER_TABLE,
    Case,
    Ctx,
    gbk,
    incremental,
    loaded,
    maria,
    one,
    population,
    quarantine_rows,
    rejected,
    roster,
    sftp_drop,
)
from lidm_samples.sources import append_rows

from lidm.adapter import Adapter, Convert
from lidm.central.holds import accept_batch, list_quarantine
from lidm.central.lock import lock_key
from lidm.errors import FeedBusy, LidmError
from lidm.pipeline import accept_held, run_feed
from lidm.reconcile import reconcile
from lidm.registry import get_adapter

POP_TABLE = "health_population"

# --------------------------------------------------------------------------- incremental reads


def _now(engine: sa.Engine) -> datetime:
    """The source's own clock (what the gateway asks it), never the test machine's."""
    with engine.connect() as c:
        return c.execute(sa.text("SELECT NOW()")).scalar_one().replace(microsecond=0)


def _dated(rows: list[dict[str, Any]], when: datetime) -> list[dict[str, Any]]:
    for r in rows:
        r["gxsj"] = when
    return rows


def _live(ctx: Ctx) -> int:
    return ctx.count(f"SELECT COUNT(*) FROM {POP_TABLE} WHERE _retired_batch IS NULL")


def _maria_incremental(ctx: Ctx, first: int = 100):  # type: ignore[no-untyped-def]
    settings, adapter = incremental(ctx)
    rows = population()
    engine, conns = maria(ctx, [])
    now = _now(engine)
    append_rows(ctx.mariadb().sqlalchemy_url, "t_population", _dated(rows[:first], now - timedelta(hours=2)))
    assert one(ctx.run(adapter, conns, settings)).status == "loaded"
    return settings, adapter, rows, engine, conns, now


def c_late_commit_inside_lookback(ctx: Ctx) -> str:
    settings, adapter, rows, _engine, conns, _ = _maria_incremental(ctx)
    wm = query(ctx.url, "SELECT value FROM lidm_watermark")[0][0]
    late = _dated(rows[100:105], datetime.fromisoformat(wm) - timedelta(minutes=30))  # committed after the run
    append_rows(ctx.mariadb().sqlalchemy_url, "t_population", late)
    r = one(ctx.run(adapter, conns, settings))
    assert (r.status, r.inserted) == ("loaded", 5), r
    assert _live(ctx) == 105
    return "5 rows dated 30 min before the watermark read by the lookback; re-read rows unchanged"


def c_back_dated_entry_yesterday(ctx: Ctx) -> str:
    settings, adapter, rows, _engine, conns, now = _maria_incremental(ctx)
    append_rows(ctx.mariadb().sqlalchemy_url, "t_population", _dated(rows[100:103], now - timedelta(hours=20)))
    r = one(ctx.run(adapter, conns, settings))
    assert (r.status, r.inserted) == ("loaded", 3), r
    return "3 rows back-dated 20 h, inside the default 1-day lookback: loaded"


def c_future_dated_row_held_back(ctx: Ctx) -> str:
    settings, adapter, rows, engine, conns, now = _maria_incremental(ctx)
    append_rows(ctx.mariadb().sqlalchemy_url, "t_population", _dated(rows[100:101], now + timedelta(hours=1)))
    held = one(ctx.run(adapter, conns, settings))
    assert held.deferred == 1, held
    wm = datetime.fromisoformat(query(ctx.url, "SELECT value FROM lidm_watermark")[0][0])
    assert wm <= _now(engine), wm  # never beyond the source's clock
    [(deferred, clock)] = query(ctx.url, "SELECT deferred, source_clock FROM lidm_watermark")
    assert deferred == 1 and clock
    # Rows entered afterwards with the right time are read; the future one waits for its time.
    append_rows(ctx.mariadb().sqlalchemy_url, "t_population", _dated(rows[101:111], _now(engine)))
    r = one(ctx.run(adapter, conns, settings))
    assert (r.status, r.inserted, r.deferred) == ("loaded", 10, 1), r
    assert _live(ctx) == 110
    return "+1 h row held back (deferred 1, watermark <= source clock); 10 rows entered later all read"


def c_future_dated_row_corrected(ctx: Ctx) -> str:
    settings, adapter, rows, engine, conns, now = _maria_incremental(ctx)
    append_rows(ctx.mariadb().sqlalchemy_url, "t_population", _dated(rows[100:101], now + timedelta(days=365 * 36)))
    assert one(ctx.run(adapter, conns, settings)).deferred == 1  # a typing error: 2062
    with engine.begin() as c:
        c.execute(sa.text("UPDATE t_population SET gxsj = NOW() WHERE gxsj > NOW()"))
    r = one(ctx.run(adapter, conns, settings))
    assert (r.inserted, r.deferred) == (1, 0), r
    return "year-2062 typo held back, loaded once the department corrected it"


def c_null_watermark_row(ctx: Ctx) -> str:
    settings, adapter, rows, _engine, conns, _ = _maria_incremental(ctx)
    append_rows(ctx.mariadb().sqlalchemy_url, "t_population", _dated(rows[100:102], None))  # type: ignore[arg-type]
    r = one(ctx.run(adapter, conns, settings))
    # Never silently skipped: read on every run; the contract requires updated_at, so they are quarantined, once.
    assert (r.quarantined, r.top_reasons) == (2, [("required", 2)]), r
    assert {row[2] for row in quarantine_rows(ctx)} == {"updated_at"}
    assert one(ctx.run(adapter, conns, settings)).status == "unchanged"
    return "2 rows without an update time read and quarantined [required], not skipped; re-read changes nothing"


def _pg_source(ctx: Ctx, rows: list[dict[str, Any]]) -> tuple[sa.Engine, dict[str, str]]:
    from lidm_samples.write import write_population_table

    url = ctx.request.getfixturevalue("pg_url")
    engine = sa.create_engine(url)
    ctx.request.addfinalizer(engine.dispose)
    write_population_table(engine, rows, table="t_population_src")
    return engine, {"health_db": url}


def _pg_incremental(ctx: Ctx):  # type: ignore[no-untyped-def]
    settings, adapter = incremental(ctx)
    adapter = dataclasses.replace(adapter, source=dataclasses.replace(adapter.source, table="t_population_src"))
    return settings, adapter


def c_pg_source_back_dated(ctx: Ctx) -> str:
    settings, adapter = _pg_incremental(ctx)
    rows = population()
    now = datetime.now().replace(microsecond=0)
    _engine, conns = _pg_source(ctx, _dated(rows[:50], now - timedelta(hours=3)))
    assert one(ctx.run(adapter, conns, settings)).inserted == 50
    append_rows(conns["health_db"], "t_population_src", _dated(rows[50:55], now - timedelta(hours=4)))
    r = one(ctx.run(adapter, conns, settings))
    assert r.inserted == 5, r
    return "PostgreSQL source: 5 rows dated 1 h before the watermark read by the lookback"


# --------------------------------------------------------------------------- reconciliation


def _reconciled_feed(ctx: Ctx, pg: bool):  # type: ignore[no-untyped-def]
    rows = population()
    if pg:
        settings, adapter = _pg_incremental(ctx)
        now = datetime.now().replace(microsecond=0)
        day = lambda d: now - timedelta(days=d)  # noqa: E731
        rows[20]["sfzh"] = rows[20]["sfzh"][:17] + ("0" if rows[20]["sfzh"][17] != "0" else "1")  # quarantined
        _engine, conns = _pg_source(ctx, [r | {"gxsj": day(i % 4)} for i, r in enumerate(rows[:80])])
    else:
        settings, adapter = incremental(ctx)
        engine, conns = maria(ctx, [])
        now = _now(engine)
        rows[20]["sfzh"] = rows[20]["sfzh"][:17] + ("0" if rows[20]["sfzh"][17] != "0" else "1")
        append_rows(
            ctx.mariadb().sqlalchemy_url,
            "t_population",
            [r | {"gxsj": now - timedelta(days=i % 4, minutes=5)} for i, r in enumerate(rows[:80])],
        )
    first = one(ctx.run(adapter, conns, settings))
    assert first.status == "loaded" and first.quarantined == 1, first
    return settings, adapter, conns


def _plant_missing_day(ctx: Ctx) -> str:
    day = query(ctx.url, f"SELECT MIN(CAST(updated_at AS DATE)) FROM {POP_TABLE}")[0][0]
    n = ctx.count(f"SELECT COUNT(*) FROM {POP_TABLE} WHERE CAST(updated_at AS DATE) = '{day}'")
    engine = sa.create_engine(ctx.url)
    with engine.begin() as c:  # rows lost on the way: the batch says loaded, the table lacks them
        c.execute(sa.text(f"DELETE FROM {POP_TABLE} WHERE CAST(updated_at AS DATE) = '{day}'"))
        c.execute(
            sa.text(
                f"UPDATE lidm_batch SET inserted = inserted - {n}, loaded = loaded - {n}, extracted = extracted - {n}"
            )
        )
    engine.dispose()
    return str(day)[:10], n  # type: ignore[return-value]


def _check_reconcile(ctx: Ctx, pg: bool) -> str:
    settings, adapter, conns = _reconciled_feed(ctx, pg)
    clean = reconcile(adapter, settings, connections=conns)
    assert clean.status == "ok" and clean.quarantined == 1 and clean.source_rows == 80, clean
    day, n = _plant_missing_day(ctx)
    found = reconcile(adapter, settings, connections=conns)
    assert found.status == "mismatch" and found.bucket_kind == "day", found
    assert [(b.bucket, b.missing) for b in found.buckets] == [(day, n)], found.buckets
    [(status, missing, detail)] = query(
        ctx.url, "SELECT status, missing, detail FROM lidm_reconcile ORDER BY checked_at DESC LIMIT 1"
    )
    assert (status, missing) == ("mismatch", n) and day in detail
    ctx.logs.append(detail)
    # The operator reads that day again; rows already there change nothing, the lost ones come back.
    again = one(run_feed(adapter, settings, connections=conns, since=day))
    assert (again.status, again.inserted) == ("loaded", n), again
    assert reconcile(adapter, settings, connections=conns).status == "ok"
    return (
        f"clean run ok (1 quarantined accounted for); planted loss found: {n} missing on {day}; --since {day} restored"
    )


def c_reconcile_mariadb(ctx: Ctx) -> str:
    return _check_reconcile(ctx, pg=False) + " (MariaDB over ODBC)"


def c_reconcile_postgres(ctx: Ctx) -> str:
    return _check_reconcile(ctx, pg=True) + " (PostgreSQL)"


def c_reconcile_extra_and_changed(ctx: Ctx) -> str:
    settings, adapter, conns = _reconciled_feed(ctx, pg=False)
    engine = sa.create_engine(ctx.mariadb().sqlalchemy_url)
    with engine.begin() as c:
        ids = [r[0] for r in c.execute(sa.text("SELECT sfzh FROM t_population ORDER BY sfzh LIMIT 3"))]
        c.execute(sa.text("DELETE FROM t_population WHERE sfzh = :a"), {"a": ids[0]})  # gone from the source
        c.execute(
            sa.text("UPDATE t_population SET jzdz = 'changed' WHERE sfzh IN (:b, :c)"), {"b": ids[1], "c": ids[2]}
        )
    engine.dispose()
    r = reconcile(adapter, settings, connections=conns)
    assert (r.extra, r.changed, r.missing) == (1, 2, 0), r
    return "source row deleted -> 1 extra; 2 source rows edited in place (no new update time) -> 2 changed"


# --------------------------------------------------------------------------- one run of a feed at a time


def c_second_run_while_locked(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", gbk(roster()))
    engine = sa.create_engine(ctx.url)
    from lidm.central import connect, migrate

    e = connect(ctx.settings)
    migrate(e)
    e.dispose()
    with engine.connect() as holder:  # another run of the feed holds its lock
        holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(ROSTER)})
        holder.commit()
        settings = ctx.settings.model_copy(update={"feed_lock_wait_seconds": 0.5})
        message = ctx.raises(FeedBusy, lambda: ctx.run(ROSTER, settings=settings))
    engine.dispose()
    assert "in progress" in message and "did nothing" in message
    assert (ctx.folder / "roster_1.csv").exists(), "the busy run settled a drop"
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch") == 0
    loaded(one(ctx.run()), len(roster()))
    return "FeedBusy after 0.5 s, nothing recorded, drop untouched; the next run loads it"


def c_two_runs_at_once(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows))
    ctx.drop("roster_2.csv", gbk(rows[:-1]))
    results: dict[str, Any] = {}
    start = threading.Barrier(2)

    def go(name: str) -> None:
        start.wait()
        try:
            results[name] = ctx.run()
        except Exception as exc:
            results[name] = exc

    threads = [threading.Thread(target=go, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    outcomes = sorted(
        "busy" if isinstance(v, FeedBusy) else f"{len(v)} batches" if isinstance(v, list) else repr(v)
        for v in results.values()
    )
    assert not any(isinstance(v, Exception) and not isinstance(v, FeedBusy) for v in results.values()), results
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch WHERE status = 'rejected'") == 0
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch WHERE status = 'loaded'") == 2
    assert sorted(p.name for p in (ctx.folder / "archive").glob("roster_*.csv")) == ["roster_1.csv", "roster_2.csv"]
    return f"two runs at once: {' / '.join(outcomes)}; no spurious replay, each drop loaded once"


def c_sqlite_second_run_while_locked(ctx: Ctx) -> str:
    import filelock

    from lidm.config import Settings

    home = ctx.tmp / "embedded"
    settings = Settings(home=home, central_url=None, keyring=ctx.settings.keyring, feed_lock_wait_seconds=0.3)
    ctx.drop("roster_1.csv", gbk(roster()))
    lock = filelock.FileLock(str(home / "locks" / f"{ROSTER}.lock"))
    (home / "locks").mkdir(parents=True)
    with lock:
        ctx.raises(FeedBusy, lambda: ctx.run(ROSTER, settings=settings))
    assert (ctx.folder / "roster_1.csv").exists()
    r = one(ctx.run(ROSTER, settings=settings))
    assert r.status == "loaded"
    return "embedded SQLite: the file lock makes the second run stop with FeedBusy; drop untouched"


# --------------------------------------------------------------------------- a delivery never blocks the next


def c_nul_in_field_quarantined(ctx: Ctx) -> str:
    rows = roster()
    rows[2]["姓名"] = "张\x00三"
    ctx.drop("roster_1.csv", gbk(rows))
    r = one(ctx.run())
    loaded(r, len(rows), 1)
    [(reason, row, fld, _)] = quarantine_rows(ctx)
    assert (reason, row, fld) == ("nul_character", 3, "name"), (reason, row, fld)
    return "row 3 quarantined [nul_character] on PostgreSQL (same rule as SQLite)"


def c_nul_in_address_then_next_drop(ctx: Ctx) -> str:
    rows = roster()
    rows[5]["与户主关系"] = "子\x00女"
    ctx.drop("roster_1.csv", gbk(rows))
    ctx.drop("roster_2.csv", gbk(roster()[:-1]))
    first, second = ctx.run()
    assert (first.quarantined, second.status) == (1, "loaded"), (first, second)
    return "NUL in a relationship code quarantined; the feed's next drop loaded"


def _refusing_trigger(ctx: Ctx, table: str, column: str, value: str) -> None:
    engine = sa.create_engine(ctx.url)
    with engine.begin() as c:
        c.execute(
            sa.text(
                "CREATE FUNCTION lidm_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.{column} = '{value}' THEN RAISE EXCEPTION 'value % refused', NEW.{column} "
                "USING ERRCODE = '22023'; END IF; RETURN NEW; END $$"
            )
        )
        c.execute(
            sa.text(
                f"CREATE TRIGGER lidm_test_refuse BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION lidm_test_refuse()"
            )
        )
    engine.dispose()


def _migrated(ctx: Ctx) -> None:
    from lidm.central import connect, migrate

    e = connect(ctx.settings)
    migrate(e)
    e.dispose()


def c_central_refuses_one_drop(ctx: Ctx) -> str:
    _migrated(ctx)
    rows = roster()
    _refusing_trigger(ctx, ROSTER_TABLE, "district_code", rows[0]["区县代码"])
    ctx.drop("roster_1.csv", gbk(rows))
    r = one(ctx.run())
    message = rejected(ctx, r, "central_refused", "roster_1.csv", "SQLSTATE 22023")
    assert rows[0]["区县代码"] not in r.reason
    engine = sa.create_engine(ctx.url)
    with engine.begin() as c:
        c.execute(sa.text(f"DROP TRIGGER lidm_test_refuse ON {ROSTER_TABLE}"))
    engine.dispose()
    ctx.drop("roster_2.csv", gbk(rows))
    assert one(ctx.run()).status == "loaded"
    return message + " (SQLSTATE 22023, no value quoted); the next drop loaded"


class _Exploding(Convert):
    """A department's conversion with a bug whose message quotes the value it choked on."""

    def apply(self, values: pa.Array) -> pa.Array:
        raise ValueError(f"cannot convert {values[0].as_py()!r}")


def c_adapter_bug_sets_drop_aside(ctx: Ctx) -> str:
    base = get_adapter(ROSTER)
    broken = dataclasses.replace(base, mapping={**base.mapping, "name": _Exploding("姓名")})
    ctx.drop("roster_1.csv", gbk(roster()))
    r = one(ctx.run(broken))
    rejected(ctx, r, "load_error", "roster_1.csv", "ValueError")
    assert roster()[0]["姓名"] not in r.reason
    return "rejected [load_error] naming ValueError, never its message; drop moved to rejected/"


def c_missing_dataset_table(ctx: Ctx) -> str:
    _migrated(ctx)
    engine = sa.create_engine(ctx.url)
    with engine.begin() as c:
        c.execute(sa.text(f"ALTER TABLE {ROSTER_TABLE} RENAME TO lidm_moved_away"))
    engine.dispose()
    ctx.drop("roster_1.csv", gbk(roster()))
    message = ctx.raises(LidmError, lambda: ctx.run())
    assert "does not exist" in message and "lidm db upgrade" in message and "lost" not in message
    assert (ctx.folder / "roster_1.csv").exists()
    engine = sa.create_engine(ctx.url)
    with engine.begin() as c:
        c.execute(sa.text(f"ALTER TABLE lidm_moved_away RENAME TO {ROSTER_TABLE}"))
    engine.dispose()
    return "the contract's table is named missing with `lidm db upgrade`; drop stays"


def c_missing_dataset_table_sqlite(ctx: Ctx) -> str:
    from lidm.central import connect, migrate
    from lidm.config import Settings

    settings = Settings(home=ctx.tmp / "embedded", central_url=None, keyring=ctx.settings.keyring)
    engine = connect(settings)
    migrate(engine)
    with engine.begin() as c:
        c.execute(sa.text(f"DROP TABLE {ROSTER_TABLE}"))
    engine.dispose()
    ctx.drop("roster_1.csv", gbk(roster()))
    message = ctx.raises(LidmError, lambda: ctx.run(ROSTER, settings=settings))
    assert "does not exist" in message and "lidm db upgrade" in message and "lost" not in message, message
    assert (ctx.folder / "roster_1.csv").exists()
    return "embedded SQLite: 'no such table' is named as the missing table with `lidm db upgrade`, not a lost link"


# --------------------------------------------------------------------------- a snapshot that shrinks


def c_truncated_snapshot_held(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows))
    loaded(one(ctx.run()), len(rows))
    ctx.drop("roster_2.csv", gbk(rows[:3]))
    r = one(ctx.run())
    assert r.status == "rejected" and "[suspicious_shrink]" in r.reason, r
    assert f"retire {len(rows) - 3:,} of the {len(rows):,}" in r.reason and "lidm batch accept" in r.reason, r.reason
    assert (ctx.folder / "rejected" / "roster_2.csv").exists()
    assert ctx.count(f"SELECT COUNT(*) FROM {ROSTER_TABLE} WHERE _retired_batch IS NULL") == len(rows)
    # The operator accepts it: the delivery is back in the drop folder, and the next run loads and retires.
    _accepted, moved = accept_held(
        r.batch_id,
        "the department closed the programme",
        ctx.settings,
        connections={"civil_affairs_drop": ctx.folder.as_uri()},
    )
    assert moved == ["roster_2.csv", "roster_2.csv.ok"] and (ctx.folder / "roster_2.csv.ok").exists(), moved
    again = one(ctx.run())
    assert (again.status, again.retired) == ("loaded", len(rows) - 3), again
    assert ctx.count("SELECT COUNT(*) FROM lidm_audit WHERE action = 'batch.accept'") == 1
    return f"3-row snapshot after {len(rows)} held [suspicious_shrink]; accepted (audited), then loaded"


def c_sftp_truncated_snapshot_accepted(ctx: Ctx) -> str:
    rows = roster()
    server, folder, name = sftp_drop(ctx, rows)
    conns = {"civil_affairs_drop": server.url(name)}
    loaded(one(ctx.run(ROSTER, conns)), len(rows))
    from lidm.sources.localstore import LocalStore

    LocalStore(folder).put("roster_2.csv", gbk(rows[:2]))
    LocalStore(folder).put("roster_2.csv.ok", b"")
    st = folder.stat()
    for p in folder.rglob("*"):
        os.chown(p, st.st_uid, st.st_gid)
    r = one(ctx.run(ROSTER, conns))
    assert r.status == "rejected" and "[suspicious_shrink]" in r.reason, r
    _accepted, moved = accept_held(r.batch_id, "programme closed", ctx.settings, connections=conns)
    assert moved == ["roster_2.csv", "roster_2.csv.ok"], moved
    again = one(ctx.run(ROSTER, conns))
    assert (again.status, again.retired) == ("loaded", len(rows) - 2), again
    return "held on the SFTP server, accepted: the delivery moved back from rejected/ over SFTP, then loaded"


def c_shrink_within_limit(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows))
    loaded(one(ctx.run()), len(rows))
    keep = len(rows) * 6 // 10
    ctx.drop("roster_2.csv", gbk(rows[:keep]))
    r = one(ctx.run())
    assert (r.status, r.retired) == ("loaded", len(rows) - keep), r
    return f"40% fewer rows: within lidmMaxRetireFraction 0.5, loaded and {r.retired} retired"


def c_sql_snapshot_shrinks(ctx: Ctx) -> str:
    rows = population()
    engine, conns = maria(ctx, rows)
    assert one(ctx.run(POPULATION, conns)).status == "loaded"
    with engine.begin() as c:
        c.execute(
            sa.text(
                "DELETE FROM t_population "
                "WHERE sfzh NOT IN (SELECT sfzh FROM (SELECT sfzh FROM t_population LIMIT 5) keep)"
            )
        )
    r = one(ctx.run(POPULATION, conns))
    assert r.status == "rejected" and "suspicious_shrink" in r.reason, r
    accept_batch(ctx.settings, r.batch_id, note="source table really emptied")
    again = one(ctx.run(POPULATION, conns))
    assert again.status == "loaded" and again.retired > len(rows) // 2, again
    return "MariaDB full snapshot emptied to 5 rows: held, accepted, loaded"


def c_accept_refuses_other_batches(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", gbk(roster()))
    r = one(ctx.run())
    return ctx.raises(LidmError, lambda: accept_batch(ctx.settings, r.batch_id, note="x"))[:90]


# --------------------------------------------------------------------------- quarantine goes back and is resolved


def c_corrected_row_resolves_quarantine(ctx: Ctx) -> str:
    rows = roster()
    bad = [dict(r) for r in rows]
    bad[4]["联系电话"] = "12345"
    ctx.drop("roster_1.csv", gbk(bad))
    first = one(ctx.run())
    assert first.quarantined == 1, first
    [open_row] = list_quarantine(ctx.settings, ROSTER)
    assert (open_row["row_number"], open_row["line_number"] in (None, 6), open_row["field"]) == (5, True, "phone")
    ctx.drop("roster_2.csv", gbk(rows))
    assert one(ctx.run()).status == "loaded"
    assert list_quarantine(ctx.settings, ROSTER) == []
    [done] = list_quarantine(ctx.settings, ROSTER, include_resolved=True)
    assert done["resolved_batch"]
    return "bad phone quarantined, then the corrected row re-sent: its quarantine is marked resolved"


def _with_feedback(adapter: Adapter, table: str) -> Adapter:
    return dataclasses.replace(adapter, source=dataclasses.replace(adapter.source, feedback_table=table))


def c_sql_feedback_table_mariadb(ctx: Ctx) -> str:
    settings, adapter = incremental(ctx)
    adapter = _with_feedback(adapter, "lidm_feedback")
    rows = population()[:40]
    sent = rows[7]["sfzh"] = rows[7]["sfzh"][:17] + ("0" if rows[7]["sfzh"][17] != "0" else "1")
    engine, conns = maria(ctx, [])
    append_rows(ctx.mariadb().sqlalchemy_url, "t_population", _dated(rows, _now(engine) - timedelta(hours=1)))
    r = one(ctx.run(adapter, conns, settings))
    assert r.quarantined == 1, r
    with engine.connect() as c:
        got = c.execute(sa.text("SELECT feed, batch_id, row_key, field, reason FROM lidm_feedback")).all()
    assert [tuple(g) for g in got] == [(adapter.name, r.batch_id, sent, "id_number", "id_number.checksum")], got
    return "the department's feedback table (MariaDB, over its own ODBC connection) names its key, field, reason"


def c_sql_feedback_refused(ctx: Ctx) -> str:
    settings, adapter = _pg_incremental(ctx)
    adapter = _with_feedback(adapter, "no_such_schema.lidm_feedback")
    rows = population()[:30]
    rows[3]["sfzh"] = "123"
    _engine, conns = _pg_source(ctx, _dated(rows, datetime.now().replace(microsecond=0) - timedelta(hours=1)))
    r = one(ctx.run(adapter, conns, settings))
    assert (r.status, r.quarantined) == ("loaded", 1), r
    assert ctx.count("SELECT COUNT(*) FROM lidm_quarantine") == 1
    return "department database refuses the feedback write: batch stays loaded, warning says `lidm quarantine export`"


def _reasons(text: str) -> list[dict[str, str]]:
    import csv
    import io

    from lidm.testkit import kinds_in

    assert not kinds_in(text), "a reasons file carries a personal number"
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def c_drop_reasons_file(ctx: Ctx) -> str:
    rows = roster()
    rows[3]["联系电话"] = "12345"
    rows[8]["保障类别"] = "不存在"
    ctx.drop("roster_1.csv", gbk(rows))
    assert one(ctx.run()).quarantined == 2
    reasons = _reasons((ctx.folder / "archive" / "roster_1.csv.quarantine.csv").read_text("utf-8"))
    got = [(r["row"], r["line"], r["field"], r["reason"]) for r in reasons]
    assert got == [("4", "5", "phone", "phone"), ("9", "10", "category", "enum")], got
    return "archive/roster_1.csv.quarantine.csv: row, line, field, reason for each held row; no values"


def c_sftp_reasons_file(ctx: Ctx) -> str:
    rows = roster()
    rows[1]["联系电话"] = "12345"
    server, folder, name = sftp_drop(ctx, rows)
    assert one(ctx.run(ROSTER, {"civil_affairs_drop": server.url(name)})).quarantined == 1
    [r] = _reasons((folder / "archive" / "roster_1.csv.quarantine.csv").read_text("utf-8"))
    assert (r["row"], r["line"], r["reason"]) == ("2", "3", "phone"), r
    return "the department finds the reasons next to its archived delivery on its SFTP server"


def c_clean_drop_has_no_reasons_file(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", gbk(roster()))
    loaded(one(ctx.run()), len(roster()))
    assert not (ctx.folder / "archive" / "roster_1.csv.quarantine.csv").exists()
    return "nothing held back: no reasons file"


CASES = [
    Case(
        "late-commit",
        "row committed after a run, dated 30 min before the watermark",
        "read by the lookback",
        c_late_commit_inside_lookback,
    ),
    Case("back-dated-20h", "entry back-dated 20 hours", "read by the 1-day lookback", c_back_dated_entry_yesterday),
    Case(
        "future-dated-1h",
        "one row dated 1 h ahead, then correct rows",
        "held back; later rows all read",
        c_future_dated_row_held_back,
    ),
    Case(
        "future-typo-2062",
        "update time typed as 2062, then corrected",
        "held back, loaded once corrected",
        c_future_dated_row_corrected,
    ),
    Case("null-watermark", "rows without an update time", "read, quarantined [required]", c_null_watermark_row),
    Case("pg-source-back-dated", "PostgreSQL source, back-dated rows", "read by the lookback", c_pg_source_back_dated),
    Case(
        "reconcile-mariadb",
        "a day of rows lost after load (MariaDB source)",
        "reconcile names the day",
        c_reconcile_mariadb,
    ),
    Case(
        "reconcile-postgres",
        "a day of rows lost after load (PostgreSQL source)",
        "reconcile names the day",
        c_reconcile_postgres,
    ),
    Case(
        "reconcile-extra-changed",
        "source row deleted, rows edited without a new time",
        "extra 1, changed 2",
        c_reconcile_extra_and_changed,
    ),
    Case(
        "feed-locked",
        "second run while another holds the feed",
        "FeedBusy, nothing recorded or settled",
        c_second_run_while_locked,
    ),
    Case(
        "two-runs-at-once",
        "two runs of one feed at the same moment",
        "each drop loaded once, no spurious replay",
        c_two_runs_at_once,
    ),
    Case(
        "sqlite-feed-locked",
        "second run on the embedded SQLite database",
        "FeedBusy (file lock)",
        c_sqlite_second_run_while_locked,
    ),
    Case(
        "nul-quarantined",
        "NUL byte inside a name on PostgreSQL",
        "row quarantined [nul_character]",
        c_nul_in_field_quarantined,
    ),
    Case(
        "nul-next-drop",
        "NUL in an address, another drop behind it",
        "row quarantined, next drop loads",
        c_nul_in_address_then_next_drop,
    ),
    Case(
        "central-refuses-data",
        "central database refuses one drop's data (SQLSTATE 22023)",
        "drop rejected, next loads",
        c_central_refuses_one_drop,
    ),
    Case(
        "adapter-bug",
        "a conversion raises with the value in its message",
        "rejected [load_error], no value",
        c_adapter_bug_sets_drop_aside,
    ),
    Case(
        "missing-table",
        "the contract's table is missing",
        "says `lidm db upgrade`, drop stays",
        c_missing_dataset_table,
    ),
    Case(
        "missing-table-sqlite",
        "the contract's table is missing (embedded SQLite)",
        "says `lidm db upgrade`, not 'connection lost'",
        c_missing_dataset_table_sqlite,
    ),
    Case(
        "truncated-snapshot",
        "3-row snapshot after a full one",
        "held [suspicious_shrink] until accepted",
        c_truncated_snapshot_held,
    ),
    Case(
        "sftp-truncated-snapshot",
        "2-row snapshot on an SFTP drop after a full one",
        "held; accept returns it over SFTP; loaded",
        c_sftp_truncated_snapshot_accepted,
    ),
    Case("shrink-within-limit", "snapshot 40% smaller", "loaded, rows retired", c_shrink_within_limit),
    Case("sql-snapshot-shrinks", "MariaDB snapshot table emptied", "held, accepted, loaded", c_sql_snapshot_shrinks),
    Case(
        "accept-loaded-batch",
        "accept a batch that was not held",
        "refused with the reason",
        c_accept_refuses_other_batches,
    ),
    Case(
        "sql-feedback-table",
        "bad row from a MariaDB source with a feedback table",
        "the department reads key, field, reason in its own database",
        c_sql_feedback_table_mariadb,
    ),
    Case(
        "sql-feedback-refused",
        "feedback table cannot be written",
        "batch loaded, warning names the export command",
        c_sql_feedback_refused,
    ),
    Case("drop-reasons-file", "two bad rows in a drop", "reasons file next to the archived drop", c_drop_reasons_file),
    Case("sftp-reasons-file", "a bad row in an SFTP drop", "reasons file on the SFTP server", c_sftp_reasons_file),
    Case("clean-drop-no-reasons", "a clean drop", "no reasons file", c_clean_drop_has_no_reasons_file),
    Case(
        "quarantine-resolved",
        "bad row, then the corrected row re-sent",
        "quarantine marked resolved",
        c_corrected_row_resolves_quarantine,
    ),
]
