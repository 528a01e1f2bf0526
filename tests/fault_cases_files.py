"""Fault-suite cases (issue 14): files. Each case builds one situation and returns what happened; the suite then
checks the batch invariant and scans every message for personal numbers (see _faults.assert_whole)."""

from __future__ import annotations

import dataclasses
import json
import os

from _db import query
from _faults import ID, ROSTER, ROSTER_HEADER, Case, Ctx, gbk, loaded, one, quarantine_rows, rejected, roster
from lidm_samples.sources import csv_bytes

from lidm import Adapter
from lidm.keys import load_keyring
from lidm.protect import unseal
from lidm.registry import get_adapter
from lidm.validate import LINE


def _roster_as(encoding: str | None = None, delimiter: str | None = None) -> Adapter:
    a = get_adapter(ROSTER)
    source = a.source
    if encoding:
        source = dataclasses.replace(source, encoding=encoding)
    if delimiter:
        source = dataclasses.replace(source, delimiter=delimiter)
    return dataclasses.replace(a, source=source)


# --------------------------------------------------------------------------- files that exhaust memory


def _sparse(ctx: Ctx, name: str, head: bytes, size: int) -> None:
    """A file of `size` bytes whose end is a hole (reads as NUL bytes), as a copy that never finished leaves."""
    ctx.drop(name, head)
    os.truncate(ctx.folder / name, size)


def c_nul_tail(ctx: Ctx) -> str:
    head = gbk(roster())
    _sparse(ctx, "roster_1.csv", head, len(head) + (16 << 20))
    r = one(ctx.run())
    return rejected(ctx, r, "nul_bytes", "roster_1.csv", f"byte offset {len(head)}", "sparse or truncated")


def c_nul_all(ctx: Ctx) -> str:
    _sparse(ctx, "roster_1.csv", b"", 8 << 20)
    r = one(ctx.run())
    return rejected(ctx, r, "nul_bytes", "roster_1.csv", "byte offset 0", "sparse or truncated")


def c_nul_tail_short(ctx: Ctx) -> str:
    head = gbk(roster())
    ctx.drop("roster_1.csv", head + b"\x00" * 12)
    r = one(ctx.run())
    return rejected(ctx, r, "nul_bytes", "roster_1.csv", f"byte offset {len(head)}")


def c_nul_run_mid_file(ctx: Ctx) -> str:
    rows = roster()
    head, tail = gbk(rows[:10]), gbk(rows[10:]).split(b"\r\n", 1)[1]
    ctx.drop("roster_1.csv", head + b"\x00" * 4096 + tail)
    r = one(ctx.run())
    return rejected(ctx, r, "nul_bytes", "roster_1.csv", f"byte offset {len(head)}", "line 12")


def c_header_without_line_break(ctx: Ctx) -> str:
    ctx.drop("roster_1.csv", ",".join(ROSTER_HEADER).encode("gb18030") * 20_000)
    r = one(ctx.run())
    return rejected(ctx, r, "header", "roster_1.csv", "row 1", "64 KiB")


# --------------------------------------------------------------------------- smaller ones: the right message


def c_ctrl_z_at_end(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows) + b"\x1a")
    return loaded(one(ctx.run()), len(rows))


def c_ctrl_z_crlf_at_end(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", gbk(rows)[:-2] + b"\x1a\r\n")  # no line break after the last row, then ^Z CRLF
    return loaded(one(ctx.run()), len(rows))


def _utf16(ctx: Ctx, data: bytes, adapter: Adapter | str = ROSTER, *must: str) -> str:
    ctx.drop("roster_1.csv", data)
    r = one(ctx.run(adapter))
    return rejected(ctx, r, "encoding", "roster_1.csv", "UTF-16", "encoding='utf-16'", *must)


def c_utf16le_bom_declared_gbk(ctx: Ctx) -> str:
    return _utf16(ctx, csv_bytes(ROSTER_HEADER, roster(), "utf-16"), ROSTER, "byte-order mark")


def c_utf16be_declared_gbk(ctx: Ctx) -> str:
    return _utf16(ctx, csv_bytes(ROSTER_HEADER, roster(), "utf-16-be"), ROSTER, "big-endian")


def c_utf16le_declared_utf8(ctx: Ctx) -> str:
    return _utf16(ctx, csv_bytes(ROSTER_HEADER, roster(), "utf-16-le"), _roster_as("utf-8"), "little-endian")


def c_utf16_declared_utf16(ctx: Ctx) -> str:
    rows = roster()
    ctx.drop("roster_1.csv", csv_bytes(ROSTER_HEADER, rows, "utf-16"))
    first = loaded(one(ctx.run(_roster_as("utf-16"))), len(rows))
    ctx.drop("roster_2.csv", csv_bytes(ROSTER_HEADER, rows[:-1], "utf-16-be"))  # no BOM: byte order from the NULs
    second = one(ctx.run(_roster_as("utf-16")))
    assert second.status == "loaded" and second.extracted == len(rows) - 1 and not second.quarantined, second
    return f"{first}; big-endian without BOM loaded too"


def _delimiter(ctx: Ctx, data: bytes, *must: str) -> str:
    ctx.drop("roster_1.csv", data)
    return rejected(ctx, one(ctx.run()), "delimiter", "roster_1.csv", "row 1", "the header has no ','", *must)


def c_tab_separated(ctx: Ctx) -> str:
    data = gbk(roster()).replace(b",", b"\t")
    return _delimiter(ctx, data, f"but {len(ROSTER_HEADER) - 1} tabs", "delimiter='\\t'")


def c_semicolon_separated(ctx: Ctx) -> str:
    data = gbk(roster()).replace(b",", b";")
    return _delimiter(ctx, data, f"but {len(ROSTER_HEADER) - 1} semicolons", "delimiter=';'")


def _title(ctx: Ctx, above: str, *must: str) -> str:
    ctx.drop("roster_1.csv", above.encode("gb18030") + gbk(roster()))
    r = one(ctx.run())
    return rejected(ctx, r, "header", "roster_1.csv", "the header must be the first line", *must)


def c_title_line_excel(ctx: Ctx) -> str:
    empty = len(ROSTER_HEADER) - 1
    return _title(ctx, "长沙市低保名单 2026年11月" + "," * empty + "\r\n", f"{empty} empty cells", "title")


def c_title_line_then_blank(ctx: Ctx) -> str:
    return _title(ctx, "长沙市低保名单 2026年11月\r\n\r\n", "line 3")


def c_two_title_lines(ctx: Ctx) -> str:
    return _title(ctx, "长沙市民政局\r\n低保名单 2026年11月\r\n", "line 3")


def c_blank_first_line(ctx: Ctx) -> str:
    return _title(ctx, "\r\n", "line 1 is empty")


def c_multiline_field_shifts_lines(ctx: Ctx) -> str:
    rows = roster()
    rows[1]["姓名"] = "王\r\n五"  # a quoted line break inside a field: row 2 spans lines 3 and 4
    good = rows[5][ID]
    rows[5][ID] = good[:17] + ("0" if good[17] != "0" else "1")  # row 6 starts on line 8
    data = gbk(rows)
    broken = data.split(b"\r\n")
    broken[9] = broken[9].split(b",", 1)[0]  # row 8 (line 10) has one field: skipped as malformed
    ctx.drop("roster_1.csv", b"\r\n".join(broken))
    r = one(ctx.run())
    assert r.status == "loaded" and r.quarantined >= 2, r
    where = {row: reason for reason, row, _f, _m in quarantine_rows(ctx)}
    assert where[8] == "malformed_row", where
    reason = where[6]
    columns = {
        c
        for (c,) in query(
            ctx.url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'lidm_quarantine'"
        )
    }
    if "line_number" in columns:  # the quarantine records the line each row starts on
        lines = dict(query(ctx.url, "SELECT row_number, line_number FROM lidm_quarantine"))
        assert (lines[6], lines[8]) == (8, 10), lines
    else:  # the line travels in the encrypted row
        [(payload,)] = query(ctx.url, "SELECT payload FROM lidm_quarantine WHERE row_number = 6")
        body = json.loads(unseal(load_keyring(ctx.settings), payload, f"quarantine/{ROSTER}".encode()))
        assert body.get(LINE) == 8, "row 6 does not carry the line it starts on (8)"
    return f"row 6 [{reason}] named on line 8, malformed row 8 on line 10"


CASES: list[Case] = [
    Case("nul-tail", "valid rows, then a 16 MB sparse NUL tail", "rejected [nul_bytes], offset named", c_nul_tail),
    Case("nul-all", "an 8 MB file of NUL bytes (sparse)", "rejected [nul_bytes] at offset 0", c_nul_all),
    Case("nul-tail-short", "12 NUL bytes after the last line", "rejected [nul_bytes]", c_nul_tail_short),
    Case("nul-run-mid", "4 KB of NUL bytes between rows", "rejected [nul_bytes], line named", c_nul_run_mid_file),
    Case(
        "header-no-eol", "1 MB first line, no line break", "rejected [header] past 64 KiB", c_header_without_line_break
    ),
    Case("ctrl-z", "trailing Ctrl-Z (0x1A) of an old export", "ignored: all rows loaded", c_ctrl_z_at_end),
    Case("ctrl-z-crlf", "Ctrl-Z then CRLF at the end", "ignored: all rows loaded", c_ctrl_z_crlf_at_end),
    Case(
        "utf16le-bom-as-gbk",
        "UTF-16LE with BOM, declared GBK",
        "rejected [encoding], UTF-16 hint",
        c_utf16le_bom_declared_gbk,
    ),
    Case(
        "utf16be-as-gbk",
        "UTF-16BE without BOM, declared GBK",
        "rejected [encoding], UTF-16 hint",
        c_utf16be_declared_gbk,
    ),
    Case(
        "utf16le-as-utf8",
        "UTF-16LE without BOM, declared UTF-8",
        "rejected [encoding], UTF-16 hint",
        c_utf16le_declared_utf8,
    ),
    Case("utf16-declared", "UTF-16 (BOM; BE without BOM) declared utf-16", "all rows loaded", c_utf16_declared_utf16),
    Case(
        "tab-separated", "tab-separated .csv, adapter declares ','", "rejected [delimiter], names tabs", c_tab_separated
    ),
    Case("semicolon-separated", "';'-separated, adapter declares ','", "rejected [delimiter]", c_semicolon_separated),
    Case("title-line", "Excel title row above the header", "rejected [header], looks like a title", c_title_line_excel),
    Case(
        "title-then-blank",
        "title line, blank line, header",
        "rejected [header], header on line 3",
        c_title_line_then_blank,
    ),
    Case(
        "two-title-lines", "two title lines above the header", "rejected [header], header on line 3", c_two_title_lines
    ),
    Case("blank-first-line", "a blank line above the header", "rejected [header], line 1 empty", c_blank_first_line),
    Case(
        "multiline-field-lines",
        "quoted line break in a field, a malformed row after it",
        "quarantined rows carry their file line",
        c_multiline_field_shifts_lines,
    ),
]
