"""Fault-suite cases (issue 14): drops. Each case builds one situation and returns what happened; the suite then
checks the batch invariant and scans every message for personal numbers (see _faults.assert_whole)."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _db import query
from _faults import (
    _ROSTER,
    ROSTER,
    Case,
    Ctx,
    gbk,
    loaded,
    one,
    population,
    rejected,
    roster,
    sftp_drop,
    xlsx_adapter,
)

from lidm.errors import RejectedBatch, SourceError
from lidm.sources.drops import DropSource
from lidm.sources.localstore import LocalStore

GBK_NAME = "roster_低保名单.csv"
GBK_RAW = GBK_NAME.encode("gbk")


def _chown_like_parent(*paths: Path) -> None:
    """Files made on the SFTP server's side belong to the drop user, as if the department put them there."""
    for p in paths:
        st = p.parent.stat()
        os.lchown(p, st.st_uid, st.st_gid)


def _source_names(ctx: Ctx) -> list[str]:
    return sorted(n for (n,) in query(ctx.url, "SELECT source_name FROM lidm_batch"))


# --------------------------------------------------------------------------- A: never read outside the folder


def c_symlink_to_passwd(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows))
    os.symlink("/etc/passwd", ctx.folder / "roster_x.csv")
    LocalStore(ctx.folder).put("roster_x.csv.ok", b"")
    loaded(one(ctx.run()), len(rows))
    assert os.path.islink(ctx.folder / "roster_x.csv"), "the symlink was moved or replaced"
    assert not (ctx.folder / "archive" / "roster_x.csv").exists()
    assert not (ctx.folder / "rejected" / "roster_x.csv").exists()
    assert _source_names(ctx) == ["roster_1.csv"]
    return "symlink not picked up, left in place; the valid drop next to it loaded"


def c_symlink_to_drop_outside(ctx: Ctx) -> str:
    outside = ctx.tmp / "elsewhere"
    outside.mkdir()
    (outside / "roster_9.csv").write_bytes(gbk(roster()))
    ctx.folder.mkdir(parents=True, exist_ok=True)
    os.symlink(outside / "roster_9.csv", ctx.folder / "roster_9.csv")
    LocalStore(ctx.folder).put("roster_9.csv.ok", b"")
    assert ctx.run() == []
    assert ctx.count("SELECT COUNT(*) FROM lidm_batch") == 0
    assert (outside / "roster_9.csv").is_file() and os.path.islink(ctx.folder / "roster_9.csv")
    return "a valid roster outside the folder, linked in: not picked up, nothing recorded"


def c_marker_is_symlink(ctx: Ctx) -> str:
    outside = ctx.tmp / "elsewhere.ok"
    outside.write_bytes(b"")
    ctx.drop("roster_1.csv", gbk(roster()), marker=None)
    os.symlink(outside, ctx.folder / "roster_1.csv.ok")
    assert ctx.run() == []
    assert (ctx.folder / "roster_1.csv").exists() and ctx.count("SELECT COUNT(*) FROM lidm_batch") == 0
    return "a symlinked marker does not complete a drop: not picked up"


def _archive_outside(ctx: Ctx, folder: Path, sub: str) -> Path:
    outside = folder.parent / f"{folder.name}_outside"
    outside.mkdir()
    os.symlink(outside, folder / sub)
    return outside


def c_archive_symlink_outside(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", gbk(roster()))
    outside = _archive_outside(ctx, ctx.folder, "archive")
    out = ctx.raises(SourceError, lambda: ctx.run())
    assert "archive" in out and "symlink" in out, out
    assert list(outside.iterdir()) == [], "a file was written outside the drop folder"
    assert (ctx.folder / "roster_1.csv").exists() and ctx.count("SELECT COUNT(*) FROM lidm_batch") == 0
    return "SourceError before any batch (archive/ is a symlink); nothing loaded, nothing moved"


def c_rejected_symlink_outside(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", b"")
    outside = _archive_outside(ctx, ctx.folder, "rejected")
    out = ctx.raises(SourceError, lambda: ctx.run())
    assert "rejected" in out and "symlink" in out, out
    assert list(outside.iterdir()) == [], "a file was written outside the drop folder"
    assert (ctx.folder / "roster_1.csv").exists()
    return "SourceError before any batch (rejected/ is a symlink); nothing moved outside"


def c_sftp_archive_symlink_outside(ctx: Ctx) -> str:
    server, folder, name = sftp_drop(ctx)
    outside = _archive_outside(ctx, folder, "archive")
    ctx.request.addfinalizer(lambda: shutil.rmtree(outside, ignore_errors=True))
    _chown_like_parent(outside, folder / "archive")
    out = ctx.raises(SourceError, lambda: ctx.run(ROSTER, {"civil_affairs_drop": server.url(name)}))
    assert "archive" in out and "symlink" in out, out
    assert list(outside.iterdir()) == [], "a file was moved outside the drop folder"
    assert (folder / "roster_1.csv").exists() and ctx.count("SELECT COUNT(*) FROM lidm_batch") == 0
    return "SourceError before any batch (archive/ is a symlink on the server); nothing moved"


# --------------------------------------------------------------------------- B: file names in legacy encodings


def _two_drops_local(ctx: Ctx, raw: bytes) -> tuple[int, int]:
    rows = roster()
    first, second = rows[:20], rows[5:]  # overlapping snapshots: the second retires a few rows, not all
    ctx.drop("roster_1.csv", gbk(first))
    ctx.drop(os.fsdecode(raw), gbk(second))
    return len(first), len(second)


def c_gbk_file_name_local(ctx: Ctx) -> str:
    n1, n2 = _two_drops_local(ctx, GBK_RAW)
    results = ctx.run()
    assert [r.status for r in results] == ["loaded", "loaded"], results
    assert sorted(r.extracted for r in results) == sorted([n1, n2])
    assert _source_names(ctx) == sorted(["roster_1.csv", GBK_NAME])
    archive = os.fsencode(ctx.folder / "archive")
    assert os.path.isfile(archive + b"/" + GBK_RAW) and os.path.isfile(archive + b"/" + GBK_RAW + b".ok")
    receipt = (archive + b"/" + GBK_RAW + b".receipt.json").decode("utf-8", "surrogateescape")
    assert GBK_NAME in Path(receipt).read_text("utf-8")
    return "both load; batch shows 低保名单, archived under the raw GBK name"


def c_undecodable_file_name(ctx: Ctx) -> str:
    raw = b"roster_\xff\xfe\x80.csv"  # neither UTF-8 nor GB18030
    _two_drops_local(ctx, raw)
    results = ctx.run()
    assert [r.status for r in results] == ["loaded", "loaded"], results
    names = _source_names(ctx)
    assert "roster_\\xff\\xfe\\x80.csv" in names, names
    assert os.path.isfile(os.fsencode(ctx.folder / "archive") + b"/" + raw)
    return "loads; recorded as roster_\\xff\\xfe\\x80.csv, archived under its raw name"


def c_control_chars_in_file_name(ctx: Ctx) -> str:
    name = "roster_1\n[loaded] roster_\u202egpj.csv"  # a line break and a right-to-left override
    rows = roster()
    ctx.drop(name, gbk(rows))
    loaded(one(ctx.run()), len(rows))
    [shown] = _source_names(ctx)
    assert shown.isprintable() and "\n" not in shown and "\u202e" not in shown, repr(shown)
    assert (ctx.folder / "archive" / name).is_file()
    return f"recorded as {shown!r}: no line break, no bidi override"


def c_sftp_gbk_file_name(ctx: Ctx) -> str:
    rows = roster()
    server, folder, name = sftp_drop(ctx, rows[:20])
    raw = os.fsencode(folder) + b"/" + GBK_RAW
    for path, data in ((raw, gbk(rows[5:])), (raw + b".ok", b"")):
        with open(path, "wb") as fh:
            fh.write(data)
        st = folder.stat()
        os.chown(path, st.st_uid, st.st_gid)
    results = ctx.run(ROSTER, {"civil_affairs_drop": server.url(name)})
    assert [r.status for r in results] == ["loaded", "loaded"], results
    assert _source_names(ctx) == sorted(["roster_1.csv", GBK_NAME])
    assert os.path.isfile(os.fsencode(folder) + b"/archive/" + GBK_RAW)
    assert (folder / "archive" / "roster_1.csv").is_file()
    return "listing survives, both load over OpenSSH; archived under the raw GBK name"


# --------------------------------------------------------------------------- C: settling is idempotent


def _other_run_settles(ctx: Ctx, folder: Path, sub: str, *, on_reject: bool) -> None:
    """Wrap each batch so that, just before it settles, 'another run' moves the drop away itself."""
    original = DropSource.batches

    def move_away(name: str) -> None:
        (folder / sub).mkdir(exist_ok=True)
        _chown_like_parent(folder / sub)  # on the SFTP server the other run is the drop user too
        for n in os.listdir(folder):
            if n.startswith(name) and (folder / n).is_file():
                os.replace(folder / n, folder / sub / n)

    def batches(self: DropSource, store: Any, *a: Any, **k: Any) -> Iterator[Any]:
        for b in original(self, store, *a, **k):
            inner: Callable[[], Iterator[Any]] = b.chunks

            def chunks(inner: Callable[[], Iterator[Any]] = inner, name: str = b.name) -> Iterator[Any]:
                try:
                    yield from inner()
                except RejectedBatch:
                    if on_reject:
                        move_away(name)
                    raise
                if not on_reject:
                    move_away(name)

            yield dataclasses.replace(b, chunks=chunks)

    ctx.monkeypatch.setattr(DropSource, "batches", batches)


def c_settle_already_archived(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows))
    _other_run_settles(ctx, ctx.folder, "archive", on_reject=False)
    out = loaded(one(ctx.run()), len(rows))
    assert (ctx.folder / "archive" / "roster_1.csv").is_file() and not (ctx.folder / "roster_1.csv").exists()
    return out + "; already archived by another run: settled without error"


def c_settle_already_rejected(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", b"")
    _other_run_settles(ctx, ctx.folder, "rejected", on_reject=True)
    return rejected(ctx, one(ctx.run()), "empty_file", "roster_1.csv") + "; moved by another run, no error"


def c_sftp_settle_already_archived(ctx: Ctx) -> str:
    server, folder, name = sftp_drop(ctx)
    _other_run_settles(ctx, folder, "archive", on_reject=False)
    out = loaded(one(ctx.run(ROSTER, {"civil_affairs_drop": server.url(name)})), len(_ROSTER))
    assert (folder / "archive" / "roster_1.csv").is_file()
    return out + " over OpenSSH; already archived by another run: no error"


# --------------------------------------------------------------------------- D: size limit before reading


def _sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)


def _roster_limited(max_bytes: int | None) -> Any:
    from lidm.registry import get_adapter

    a = get_adapter(ROSTER)
    if max_bytes is None:
        return a
    return dataclasses.replace(a, source=dataclasses.replace(a.source, max_bytes=max_bytes))


def c_drop_over_feed_limit(ctx: Ctx) -> str:
    _sparse(ctx.folder / "roster_1.csv", 2 << 30)
    LocalStore(ctx.folder).put("roster_1.csv.ok", b"")
    r = one(ctx.run(_roster_limited(1 << 20)))
    return rejected(ctx, r, "file_too_large", "roster_1.csv", "2.0 GiB", "1.0 MiB")


def c_drop_over_default_limit(ctx: Ctx) -> str:
    _sparse(ctx.folder / "roster_1.csv", 5 << 30)
    LocalStore(ctx.folder).put("roster_1.csv.ok", b"")
    r = one(ctx.run())
    return rejected(ctx, r, "file_too_large", "roster_1.csv", "5.0 GiB", "4.0 GiB")


# --------------------------------------------------------------------------- E: which sheet, merged cells


def workbook(
    sheets: list[tuple[str, list[list[Any]], str]], active: int | None, merged: dict[str, list[str]] | None = None
) -> bytes:
    """A workbook of (title, rows, state) sheets with the given active tab (None: no view) and merged ranges."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for title, rows, state in sheets:
        ws = book.create_sheet(title)
        for row in rows:
            ws.append(row)
        ws.sheet_state = state
        for rng in (merged or {}).get(title, []):
            ws.merge_cells(rng)
    out = io.BytesIO()
    book.save(out)
    return set_active_tab(out.getvalue(), active)


def set_active_tab(data: bytes, active: int | None) -> bytes:
    """The workbook with its view's activeTab set (openpyxl will not save a hidden active sheet), or with
    no workbook view at all for None."""
    import re
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            part = src.read(item.filename)
            if item.filename == "xl/workbook.xml":
                text = re.sub(r' activeTab="\d+"', "", part.decode("utf-8"))
                if active is None:
                    text = re.sub(r"<bookViews>.*?</bookViews>", "", text)
                else:
                    text = text.replace("<workbookView ", f'<workbookView activeTab="{active}" ', 1)
                part = text.encode("utf-8")
            dst.writestr(item, part)
    return out.getvalue()


def _population_rows(n: int, offset: int = 0) -> list[list[Any]]:
    rows = population()[offset : offset + n]
    return [list(rows[0])] + [list(r.values()) for r in rows]


def c_xlsx_hidden_first_sheet(ctx: Ctx) -> str:
    stale, current = _population_rows(5, 40), _population_rows(12)
    ctx.drop("population_1.xlsx", workbook([("旧数据", stale, "hidden"), ("人口", current, "visible")], active=1))
    r = one(ctx.run(xlsx_adapter(), {"xlsx_drop": ctx.folder.as_uri()}))
    assert r.status == "loaded" and r.extracted == 12, r
    return f"the visible, active sheet was read: loaded {r.loaded} (not the 5 stale hidden rows)"


def c_xlsx_active_sheet_hidden(ctx: Ctx) -> str:
    a, b = _population_rows(5), _population_rows(6, 10)
    book = workbook([("一月", a, "visible"), ("二月", b, "visible"), ("草稿", a, "hidden")], active=2)
    ctx.drop("population_1.xlsx", book)
    r = one(ctx.run(xlsx_adapter(), {"xlsx_drop": ctx.folder.as_uri()}))
    return rejected(ctx, r, "ambiguous_sheet", "population_1.xlsx", "一月", "二月")


def _household_merged() -> tuple[bytes, str]:
    """Rows 3-5 (Excel) are one household: its id typed once in row 3 and merged down; the column's letter."""
    rows = _population_rows(10)
    col = rows[0].index("hh")
    for r in rows[3:5]:
        r[col] = None
    letter = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[col]
    return workbook([("人口", rows, "visible")], 0, {"人口": [f"{letter}3:{letter}5"]}), letter


def c_xlsx_merged_cells_refused(ctx: Ctx) -> str:
    book, letter = _household_merged()
    ctx.drop("population_1.xlsx", book)
    r = one(ctx.run(xlsx_adapter(), {"xlsx_drop": ctx.folder.as_uri()}))
    return rejected(ctx, r, "merged_cells", "population_1.xlsx", f"{letter}3:{letter}5")


def c_xlsx_merged_cells_filled(ctx: Ctx) -> str:
    book, _letter = _household_merged()
    ctx.drop("population_1.xlsx", book)
    a = xlsx_adapter()
    a = dataclasses.replace(a, source=dataclasses.replace(a.source, merged_cells="fill"))
    r = one(ctx.run(a, {"xlsx_drop": ctx.folder.as_uri()}))
    loaded(r, 10, r.quarantined)
    [(col,)] = query(
        ctx.url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'health_population' "
        "AND column_name LIKE 'household%'",
    )
    nulls = ctx.count(f'SELECT COUNT(*) FROM health_population WHERE "{col}" IS NULL')
    same = ctx.count(f'SELECT COUNT(*) FROM (SELECT 1 FROM health_population GROUP BY "{col}" HAVING COUNT(*) >= 3) t')
    assert nulls == 0 and same >= 1, (nulls, same)
    return f"merged household id filled into every row of the range: loaded {r.loaded}, no NULL"


def c_xlsx_merged_header(ctx: Ctx) -> str:
    rows = _population_rows(5)
    ctx.drop("population_1.xlsx", workbook([("人口", rows, "visible")], 0, {"人口": ["B1:C1"]}))
    a = xlsx_adapter()
    a = dataclasses.replace(a, source=dataclasses.replace(a.source, merged_cells="fill"))
    r = one(ctx.run(a, {"xlsx_drop": ctx.folder.as_uri()}))
    return rejected(ctx, r, "merged_cells", "population_1.xlsx", "B1:C1", "header")


CASES: list[Case] = [
    Case(
        "drop-symlink-passwd",
        "symlink to /etc/passwd named roster_x.csv, real marker, a valid drop next to it",
        "symlink not picked up; valid drop loads",
        c_symlink_to_passwd,
    ),
    Case(
        "drop-symlink-outside",
        "symlink to a valid roster outside the folder",
        "not picked up, nothing recorded",
        c_symlink_to_drop_outside,
    ),
    Case("drop-marker-symlink", "marker is a symlink", "drop not complete: not picked up", c_marker_is_symlink),
    Case(
        "drop-archive-symlink",
        "archive/ is a symlink to a folder outside",
        "SourceError before loading; nothing written outside",
        c_archive_symlink_outside,
    ),
    Case(
        "drop-rejected-symlink",
        "rejected/ is a symlink to a folder outside",
        "SourceError before loading; nothing written outside",
        c_rejected_symlink_outside,
    ),
    Case(
        "sftp-archive-symlink",
        "archive/ on the SFTP server is a symlink outside",
        "SourceError before loading; nothing moved outside",
        c_sftp_archive_symlink_outside,
    ),
    Case(
        "drop-gbk-name",
        "GBK-encoded file name next to a UTF-8 one (local)",
        "both load; readable name recorded; raw name archived",
        c_gbk_file_name_local,
    ),
    Case(
        "drop-undecodable-name",
        "file name neither UTF-8 nor GB18030",
        "loads; escaped name recorded",
        c_undecodable_file_name,
    ),
    Case(
        "drop-name-control-chars",
        "file name with a line break and a bidi override",
        "loads; printable name recorded",
        c_control_chars_in_file_name,
    ),
    Case(
        "sftp-gbk-name",
        "GBK-encoded file name on the SFTP server next to a UTF-8 one",
        "listing survives; both load",
        c_sftp_gbk_file_name,
    ),
    Case(
        "settle-already-archived",
        "another run archived the drop before this one settled",
        "loaded; no FileNotFoundError",
        c_settle_already_archived,
    ),
    Case(
        "settle-already-rejected",
        "another run moved a bad drop to rejected/ first",
        "rejected; no FileNotFoundError",
        c_settle_already_rejected,
    ),
    Case(
        "sftp-settle-already-archived",
        "another run archived the SFTP drop first",
        "loaded; no FileNotFoundError",
        c_sftp_settle_already_archived,
    ),
    Case(
        "drop-over-feed-limit",
        "2 GiB sparse file, feed max_bytes 1 MiB",
        "rejected [file_too_large] before reading",
        c_drop_over_feed_limit,
    ),
    Case(
        "drop-over-default-limit",
        "5 GiB sparse file, default limit",
        "rejected [file_too_large] before reading",
        c_drop_over_default_limit,
    ),
    Case(
        "xlsx-hidden-first-sheet",
        "hidden first sheet with stale rows, visible active second sheet",
        "the visible active sheet is read",
        c_xlsx_hidden_first_sheet,
    ),
    Case(
        "xlsx-active-sheet-hidden",
        "active sheet hidden, two visible sheets",
        "rejected [ambiguous_sheet] naming the sheets",
        c_xlsx_active_sheet_hidden,
    ),
    Case(
        "xlsx-merged-refused",
        "household id merged over three rows",
        "rejected [merged_cells] naming the range",
        c_xlsx_merged_cells_refused,
    ),
    Case(
        "xlsx-merged-filled",
        "household id merged over three rows, adapter merged_cells='fill'",
        "every row of the range gets the value",
        c_xlsx_merged_cells_filled,
    ),
    Case(
        "xlsx-merged-header",
        "merged header cells (even with fill)",
        "rejected [merged_cells] naming the header range",
        c_xlsx_merged_header,
    ),
]
