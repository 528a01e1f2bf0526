"""XLSX drops: which sheet is read (named, visible index, or the active visible sheet; never a hidden one by
accident) and merged cells (refused with their range named, or filled with the top-left value)."""

from __future__ import annotations

from typing import Any

import pytest
from fault_cases_drops import set_active_tab, workbook
from lidm_samples.sources import xlsx_bytes

from lidm.errors import RejectedBatch
from lidm.sources.xlsxfile import read_xlsx_chunks

HEADER = ["code", "name", "household"]
FILE = "/drops/book.xlsx"


def _rows(tag: str, n: int = 3) -> list[list[Any]]:
    return [HEADER] + [[f"{tag}{i}", f"n{i}", f"h{i}"] for i in range(1, n + 1)]


def _read(data: bytes, **kw: Any) -> dict[str, list[Any]]:
    _names, chunks, _digest = read_xlsx_chunks(data, file=FILE, **kw)
    out: dict[str, list[Any]] = {}
    for t in chunks:
        for k, v in t.to_pydict().items():
            out.setdefault(k, []).extend(v)
    return out


def _refused(data: bytes, code: str, **kw: Any) -> str:
    with pytest.raises(RejectedBatch) as info:
        _read(data, **kw)
    assert info.value.reason == code, str(info.value)
    return info.value.message


# --------------------------------------------------------------------------- which sheet


def test_hidden_first_sheet_is_not_read_the_active_visible_one_is():
    data = workbook([("old", _rows("stale", 5), "hidden"), ("current", _rows("c"), "visible")], active=1)
    assert _read(data)["code"] == ["c1", "c2", "c3"]


def test_the_active_sheet_wins_among_visible_sheets():
    data = workbook([("a", _rows("a"), "visible"), ("b", _rows("b"), "visible")], active=1)
    assert _read(data)["code"] == ["b1", "b2", "b3"]


@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_a_hidden_active_sheet_is_ambiguous_and_names_the_sheets(state):
    data = workbook([("一月", _rows("a"), "visible"), ("二月", _rows("b"), "visible"), ("草稿", _rows("x"), state)], 2)
    message = _refused(data, "ambiguous_sheet")
    assert "草稿" in message and "一月" in message and "二月" in message


def test_a_hidden_active_sheet_is_refused_even_with_one_visible_sheet():
    data = workbook([("draft", _rows("x"), "hidden"), ("current", _rows("c"), "visible")], active=0)
    assert "draft" in _refused(data, "ambiguous_sheet")


def test_no_recorded_view_reads_the_only_visible_sheet():
    data = workbook([("old", _rows("stale"), "hidden"), ("current", _rows("c"), "visible")], active=None)
    assert _read(data)["code"] == ["c1", "c2", "c3"]


def test_no_recorded_view_and_several_visible_sheets_is_ambiguous():
    data = workbook([("a", _rows("a"), "visible"), ("b", _rows("b"), "visible")], active=None)
    message = _refused(data, "ambiguous_sheet")
    assert "a, b" in message


def test_a_named_sheet_is_read_whatever_is_active():
    data = workbook([("a", _rows("a"), "visible"), ("人口", _rows("p"), "visible")], active=0)
    assert _read(data, sheet="人口")["code"] == ["p1", "p2", "p3"]


def test_a_named_sheet_that_is_hidden_or_missing_is_refused():
    data = workbook([("old", _rows("stale"), "hidden"), ("current", _rows("c"), "visible")], active=1)
    assert "hidden" in _refused(data, "ambiguous_sheet", sheet="old")
    assert "current" in _refused(data, "missing_sheet", sheet="Sheet9")


def test_an_index_counts_visible_sheets_only():
    data = workbook(
        [("old", _rows("stale"), "hidden"), ("a", _rows("a"), "visible"), ("b", _rows("b"), "visible")], active=1
    )
    assert _read(data, sheet=0)["code"] == ["a1", "a2", "a3"]
    assert _read(data, sheet=1)["code"] == ["b1", "b2", "b3"]
    assert "2 visible sheet(s)" in _refused(data, "missing_sheet", sheet=2)


def test_the_projects_own_sample_workbooks_still_read():
    data = xlsx_bytes(HEADER, [dict(zip(HEADER, r, strict=True)) for r in _rows("s")[1:]])
    assert _read(data)["code"] == ["s1", "s2", "s3"]
    assert _read(set_active_tab(data, None))["code"] == ["s1", "s2", "s3"]


# --------------------------------------------------------------------------- merged cells


def _household(merges: list[str]) -> bytes:
    rows = _rows("c", 5)
    for r in rows[3:5]:
        r[2] = None  # rows 4-5 (Excel) belong to the household typed in row 3
    return workbook([("s", rows, "visible")], 0, {"s": merges})


def test_merged_cells_are_refused_by_default_naming_the_range():
    message = _refused(_household(["C3:C5"]), "merged_cells")
    assert "C3:C5" in message and "fill" in message


def test_merged_cells_fill_takes_the_top_left_value():
    got = _read(_household(["C3:C5"]), merged_cells="fill")
    assert got["household"] == ["h1", "h2", "h2", "h2", "h5"]
    assert got["__row"] == [1, 2, 3, 4, 5]


def test_a_merge_across_columns_fills_each_column():
    rows = _rows("c", 3)
    rows[2][2] = None
    data = workbook([("s", rows, "visible")], 0, {"s": ["B3:C3"]})
    assert "B3:C3" in _refused(data, "merged_cells")
    got = _read(data, merged_cells="fill")
    assert got["name"][1] == got["household"][1] == "n2"


@pytest.mark.parametrize("mode", ["refuse", "fill"])
def test_a_merge_in_the_header_row_is_always_refused(mode):
    data = workbook([("s", _rows("c"), "visible")], 0, {"s": ["B1:C1"]})
    message = _refused(data, "merged_cells", merged_cells=mode)
    assert "B1:C1" in message and "header" in message


def test_several_ranges_are_named_together():
    data = _household(["C3:C5", "B5:B6"])
    message = _refused(data, "merged_cells")
    assert "C3:C5" in message and "B5:B6" in message


def test_a_merge_beside_the_table_is_not_the_tables_business():
    data = workbook([("s", _rows("c"), "visible")], 0, {"s": ["F2:G3"]})
    assert _read(data)["code"] == ["c1", "c2", "c3"]


def test_a_table_that_starts_in_column_b_maps_merges_to_its_own_columns():
    rows = [[None, *r] for r in _rows("c", 4)]
    rows[3][3] = None
    data = workbook([("s", rows, "visible")], 0, {"s": ["D3:D4"]})
    assert "D3:D4" in _refused(data, "merged_cells")
    assert _read(data, merged_cells="fill")["household"] == ["h1", "h2", "h2", "h4"]
