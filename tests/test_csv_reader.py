"""The CSV reader on its own: bounded reading, the messages for files departments really produce, and the
row and line numbers it hands the pipeline. No database."""

from __future__ import annotations

import io

import pytest

from lidm.errors import RejectedBatch
from lidm.sources import csvfile
from lidm.sources.csvfile import HEADER_LIMIT, NUL_RUN, ROW, read_csv_chunks
from lidm.validate import LINE


def _read(data: bytes, encoding: str = "utf-8", **kw) -> tuple[list[dict], list[dict]]:  # type: ignore[no-untyped-def]
    _names, chunks, _reader, malformed = read_csv_chunks(io.BytesIO(data), file="/in/f.csv", encoding=encoding, **kw)
    return [r for chunk in chunks for r in chunk.to_pylist()], malformed


def _refused(data: bytes, encoding: str = "utf-8", **kw) -> RejectedBatch:  # type: ignore[no-untyped-def]
    with pytest.raises(RejectedBatch) as info:
        _read(data, encoding, **kw)
    return info.value


def _places(rows: list[dict]) -> list[tuple[int, int]]:
    return [(r[ROW], r[LINE]) for r in rows]


# --------------------------------------------------------------------------- line numbers


def test_lines_count_quoted_line_breaks_blank_lines_and_skipped_rows() -> None:
    data = b'a,b\n1,2\n\n3,"x\ny"\n4\n5,6\r\n\r\n7,"p\r\nq"\n8,9,10\n11,12\n'
    rows, malformed = _read(data)
    assert _places(rows) == [(1, 2), (2, 4), (4, 7), (5, 9), (7, 12)]
    assert [(m["row"], m["line"]) for m in malformed] == [(3, 6), (6, 11)]
    assert rows[1]["b"] == "x\ny" and rows[3]["b"] == "p\r\nq"


def test_a_blank_line_inside_a_quoted_field_is_data() -> None:
    rows, _ = _read(b'a,b\r\n1,2\r\n"3\r\n\r\nz",4\r\n5,6\r\n')
    assert _places(rows) == [(1, 2), (2, 3), (3, 6)]


def test_lines_stay_exact_across_chunks() -> None:
    body = b"".join(b'%d,"line\r\nbreak"\r\n' % i if i % 7 == 0 else b"%d,x\r\n" % i for i in range(20_000))
    rows, _ = _read(b"a,b\r\n" + body, chunk_bytes=64 << 10)
    expected, line = [], 2
    for i in range(20_000):
        expected.append((i + 1, line))
        line += 2 if i % 7 == 0 else 1
    assert _places(rows) == expected


def test_malformed_rows_after_the_last_good_row_get_their_line() -> None:
    _rows, malformed = _read(b'a,b\n1,2\n"x\ny"\n3\n')
    assert [(m["row"], m["line"]) for m in malformed] == [(2, 3), (3, 5)]


def test_a_file_of_malformed_rows_is_refused_before_it_fills_memory(monkeypatch) -> None:
    monkeypatch.setattr(csvfile, "MALFORMED_HELD", 50)
    exc = _refused(b"a,b\n1,2\n" + b"x,y,z\n" * 200 + b"3,4\n")
    assert exc.reason == "malformed_file" and exc.row == 2, exc
    assert "at least 50 rows have 3 fields where the header has 2, from row 2 on" in str(exc)
    assert "delimiter or quoting" in str(exc)


def test_a_caller_taking_malformed_rows_as_it_reads_holds_few_and_loses_none(monkeypatch) -> None:
    monkeypatch.setattr(csvfile, "MALFORMED_HELD", 50)
    body = b"".join(b"%d,2\n" % i if i % 2 else b"%d,y,z\n" % i for i in range(400))
    _names, chunks, _reader, malformed = read_csv_chunks(
        io.BytesIO(b"a,b\n" + body), file="/in/f.csv", encoding="utf-8", chunk_bytes=256
    )
    taken, rows = [], 0
    for chunk in chunks:
        rows += chunk.num_rows
        taken += malformed  # what the pipeline does at each chunk: hold them back, then let go
        malformed.clear()
    taken += malformed
    assert rows == 200 and [(m["row"], m["line"]) for m in taken] == [(i + 1, i + 2) for i in range(0, 400, 2)]


# --------------------------------------------------------------------------- bounded reading


def test_a_nul_tail_is_refused_naming_its_offset() -> None:
    head = b"a,b\r\n1,2\r\n"
    exc = _refused(head + b"\x00" * (3 << 20))
    assert exc.reason == "nul_bytes" and f"byte offset {len(head)} (line 3)" in exc.message
    assert "sparse or truncated" in exc.message


def test_an_all_nul_file_is_refused() -> None:
    exc = _refused(b"\x00" * (2 << 20), "gbk")
    assert exc.reason == "nul_bytes" and "byte offset 0" in exc.message


def test_a_short_nul_tail_after_the_last_line_is_refused() -> None:
    exc = _refused(b"a,b\n1,2\n" + b"\x00" * 3)
    assert exc.reason == "nul_bytes" and "byte offset 8" in exc.message


def test_a_nul_run_split_between_two_blocks_is_found() -> None:
    head = b"a,b\n" + b"1,2\n" * ((1 << 20) // 4 - 1) + b"3,"  # the run starts 2 bytes before the second block
    exc = _refused(head + b"\x00" * NUL_RUN + b"\n4,5\n")
    assert exc.reason == "nul_bytes" and f"byte offset {len(head)}" in exc.message


def test_one_nul_inside_a_field_is_left_to_validation() -> None:
    rows, _ = _read(b"a,b\n1,x\x00y\n2,3\n")
    assert [r["b"] for r in rows] == ["x\x00y", "3"]


def test_a_header_without_a_line_break_is_refused_at_the_limit() -> None:
    exc = _refused(b"a," * HEADER_LIMIT)
    assert (exc.reason, exc.row) == ("header", 1) and "64 KiB" in exc.message


def test_an_oversized_row_is_named_without_holding_it() -> None:
    data = b"a,b\n1,2\n3,4\n5," + b"y" * (3 << 20) + b"\n6,7\n"
    exc = _refused(data, chunk_bytes=1 << 20)
    assert (exc.reason, exc.row, exc.field) == ("field_too_large", 3, "b"), exc
    assert "from line 4" in exc.message


def test_an_oversized_quoted_field_after_a_multiline_row() -> None:
    data = b'a,b\r\n"x\r\ny",1\r\n2,"' + "王".encode() * (1 << 20) + b'"\r\n'
    exc = _refused(data, chunk_bytes=1 << 20)
    assert (exc.reason, exc.row, exc.field) == ("field_too_large", 2, "b"), exc
    assert "from line 4" in exc.message


# --------------------------------------------------------------------------- the clear message


@pytest.mark.parametrize("tail", [b"\x1a", b"\x1a\r\n", b"\r\n\x1a", b"\r\n\x1a\n"])
def test_a_final_ctrl_z_is_ignored(tail: bytes) -> None:
    rows, malformed = _read(b"a,b\r\n1,2\r\n3,4" + tail)
    assert [(r["a"], r["b"]) for r in rows] == [("1", "2"), ("3", "4")] and not malformed


def test_a_ctrl_z_inside_the_data_is_kept() -> None:
    rows, _ = _read(b"a,b\r\n1,x\x1ay\r\n")
    assert rows[0]["b"] == "x\x1ay"


@pytest.mark.parametrize(
    ("codec", "declared", "words"),
    [
        ("utf-16", "gbk", "little-endian, with a byte-order mark"),
        ("utf-16-be", "gbk", "big-endian, a NUL byte before"),
        ("utf-16-le", "utf-8", "little-endian, a NUL byte after"),
    ],
)
def test_utf16_is_recognised(codec: str, declared: str, words: str) -> None:
    exc = _refused("身份证号,姓名\r\n1,张三\r\n".encode(codec), declared)
    assert exc.reason == "encoding" and words in exc.message and "encoding='utf-16'" in exc.message


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_declared_reads(codec: str) -> None:
    rows, _ = _read("身份证号,姓名\r\n1,张三\r\n2,李四\r\n".encode(codec), "utf-16")
    assert [(r["身份证号"], r["姓名"], r[LINE]) for r in rows] == [("1", "张三", 2), ("2", "李四", 3)]


def test_utf16_declared_for_a_utf8_file_is_refused() -> None:
    exc = _refused(b"a,b\r\n1,2\r\n", "utf-16")
    assert (exc.reason == "encoding" and "not" in exc.message) or "neither" in exc.message


@pytest.mark.parametrize(
    ("sep", "words"),
    [("\t", "but 2 tabs: the file looks tab-separated; declare delimiter='\\t'"), (";", "but 2 semicolons")],
)
def test_another_delimiter_is_named(sep: str, words: str) -> None:
    exc = _refused(sep.join(["a", "b", "c"]).encode() + b"\n1\t2\t3\n")
    assert (exc.reason, exc.row) == ("delimiter", 1) and "the header has no ','" in exc.message and words in exc.message


def test_a_declared_tab_reads() -> None:
    rows, _ = _read(b"a\tb\n1\t2\n", delimiter="\t")
    assert (rows[0]["a"], rows[0]["b"]) == ("1", "2")


@pytest.mark.parametrize(
    ("above", "words"),
    [
        ("长沙市低保名单 2026年11月,,,\r\n", "1 filled and 3 empty cells and looks like a title"),
        ("长沙市低保名单 2026年11月\r\n\r\n", "line 3 has 4 columns"),
        ("长沙市民政局\r\n低保名单\r\n", "line 3 has 4 columns"),
        ("\r\n", "line 1 is empty"),
    ],
)
def test_a_title_above_the_header_is_named(above: str, words: str) -> None:
    exc = _refused((above + "a,b,c,d\r\n1,2,3,4\r\n").encode("gb18030"), "gbk")
    assert (exc.reason, exc.row) == ("header", 1) and words in exc.message and "first line" in exc.message


def test_an_unnamed_column_is_named() -> None:
    exc = _refused(b"a,b,,d\n1,2,3,4\n")
    assert exc.reason == "header" and "column 3" in exc.message


def test_a_single_column_file_still_reads() -> None:
    rows, _ = _read(b"id\n1\n2\n")
    assert [r["id"] for r in rows] == ["1", "2"]
