"""Every kind of bad delivery named in the adapters issue gets one defined behaviour, and nothing is lost:
normalized where GB 11643 or the file format allows it, otherwise the row is quarantined or the whole
delivery is rejected with a reason that names the file, row and field."""

from __future__ import annotations

import dataclasses

import pytest
from _db import query
from lidm_samples import ROSTER_HEADER, generate_people, generate_roster, population_rows, roster_rows
from lidm_samples.sources import csv_bytes, xlsx_bytes

from lidm import Adapter, DropSource, codes
from lidm import date as date_of
from lidm.pipeline import run_feed
from lidm.registry import get_adapter
from lidm.sources.localstore import LocalStore

ROSTER = "civil_affairs.low_income_roster"
BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def roster():
    people = generate_people(400, seed=11)
    return roster_rows(generate_roster(people, share=0.1, seed=11)).rows


def _drop(folder, name: str, data: bytes) -> dict[str, str]:
    store = LocalStore(folder)
    store.put(name, data)
    store.put(name + ".ok", b"")
    return {"civil_affairs_drop": folder.as_uri()}


def _rows(url: str, table: str) -> int:
    return query(url, f"SELECT COUNT(*) FROM {table}")[0][0]


def _rejected(folder, name: str) -> str:
    assert not (folder / name).exists(), "a rejected drop leaves the inbox"
    assert (folder / "rejected" / name).exists(), "and is kept, never deleted"
    return (folder / "rejected" / f"{name}.reason.txt").read_text("utf-8")


def test_a_bom_before_a_gbk_body_is_stripped_and_the_file_loads(gateway_sqlite, tmp_path, roster):
    conns = _drop(tmp_path / "in", "roster_1.csv", BOM + csv_bytes(ROSTER_HEADER, roster, "gb18030"))
    [result] = run_feed(ROSTER, gateway_sqlite.settings, connections=conns)
    assert (result.status, result.loaded, result.quarantined) == ("loaded", len(roster), 0)


def test_a_utf8_file_declared_gbk_is_rejected_not_misread(gateway_sqlite, tmp_path, roster):
    folder = tmp_path / "in"
    conns = _drop(folder, "roster_1.csv", csv_bytes(ROSTER_HEADER, roster, "utf-8"))
    [result] = run_feed(ROSTER, gateway_sqlite.settings, connections=conns)
    assert result.status == "rejected" and "encoding" in result.reason and "encoding='utf-8'" in result.reason
    assert "roster_1.csv" in result.reason and "row 1" in result.reason
    assert "encoding='utf-8'" in _rejected(folder, "roster_1.csv")
    assert _rows(gateway_sqlite.settings.effective_central_url, "civil_affairs_low_income_roster") == 0


def test_a_gbk_file_declared_utf8_is_rejected_with_the_line_and_a_hint(gateway_sqlite, tmp_path, roster):
    adapter = get_adapter(ROSTER)
    utf8 = dataclasses.replace(adapter, source=dataclasses.replace(adapter.source, encoding="utf-8"))
    conns = _drop(tmp_path / "in", "roster_1.csv", csv_bytes(ROSTER_HEADER, roster, "gb18030"))
    [result] = run_feed(utf8, gateway_sqlite.settings, connections=conns)
    assert result.status == "rejected"
    assert "line 1 is not valid utf-8" in result.reason and "encoding='gbk'" in result.reason


def test_an_empty_file_is_rejected_and_kept(gateway_sqlite, tmp_path):
    folder = tmp_path / "in"
    [result] = run_feed(ROSTER, gateway_sqlite.settings, connections=_drop(folder, "roster_1.csv", b""))
    assert result.status == "rejected" and "empty_file" in result.reason
    assert "empty" in _rejected(folder, "roster_1.csv")


def test_a_header_only_full_snapshot_is_refused_rather_than_retiring_everything(gateway_sqlite, tmp_path, roster):
    folder = tmp_path / "in"
    run_feed(
        ROSTER,
        gateway_sqlite.settings,
        connections=_drop(folder, "roster_1.csv", csv_bytes(ROSTER_HEADER, roster, "gb18030")),
    )
    header_only = csv_bytes(ROSTER_HEADER, [], "gb18030")
    [result] = run_feed(ROSTER, gateway_sqlite.settings, connections=_drop(folder, "roster_2.csv", header_only))
    assert result.status == "rejected" and "empty_snapshot" in result.reason
    url = gateway_sqlite.settings.effective_central_url
    live = query(url, "SELECT COUNT(*) FROM civil_affairs_low_income_roster WHERE _retired_batch IS NULL")[0][0]
    assert live == len(roster)


def test_a_header_only_incremental_drop_is_settled_as_unchanged(gateway_sqlite, tmp_path):
    from lidm.contracts import load_catalog

    contract = load_catalog()["emergency.disaster_relief"]
    adapter = Adapter(
        contract=contract.id,
        source=DropSource(connection="drop", pattern="relief_*.csv"),
        mapping={f: f for f in contract.field_names},
        name="test.header_only",
    )
    folder = tmp_path / "in"
    store = LocalStore(folder)
    store.put("relief_1.csv", csv_bytes(contract.field_names, [], "utf-8"))
    store.put("relief_1.csv.ok", b"")
    [result] = run_feed(adapter, gateway_sqlite.settings, connections={"drop": folder.as_uri()})
    assert (result.status, result.extracted) == ("unchanged", 0)
    assert (folder / "archive" / "relief_1.csv").exists()


def test_wrong_and_missing_column_names_reject_the_delivery_naming_the_column(gateway_sqlite, tmp_path, roster):
    folder = tmp_path / "in"
    header = ["证件号码" if h == "身份证号" else h for h in ROSTER_HEADER]
    renamed = [{("证件号码" if k == "身份证号" else k): v for k, v in row.items()} for row in roster]
    [result] = run_feed(
        ROSTER,
        gateway_sqlite.settings,
        connections=_drop(folder, "roster_1.csv", csv_bytes(header, renamed, "gb18030")),
    )
    assert result.status == "rejected" and "missing_column" in result.reason and "身份证号" in result.reason

    dropped = [h for h in ROSTER_HEADER if h != "联系电话"]
    [result] = run_feed(
        ROSTER,
        gateway_sqlite.settings,
        connections=_drop(folder, "roster_2.csv", csv_bytes(dropped, roster, "gb18030")),
    )
    assert result.status == "rejected" and "联系电话" in result.reason


def test_an_unexpected_column_is_refused_unless_the_adapter_ignores_it(gateway_sqlite, tmp_path, roster):
    folder = tmp_path / "in"
    header = [*ROSTER_HEADER, "备注"]
    data = csv_bytes(header, [{**r, "备注": "x"} for r in roster], "gb18030")
    [result] = run_feed(ROSTER, gateway_sqlite.settings, connections=_drop(folder, "roster_1.csv", data))
    assert result.status == "rejected" and "unexpected_column" in result.reason and "备注" in result.reason

    ignoring = dataclasses.replace(get_adapter(ROSTER), ignore=("备注",))
    [result] = run_feed(ignoring, gateway_sqlite.settings, connections=_drop(folder, "roster_2.csv", data))
    assert result.status == "loaded" and result.loaded == len(roster)


def test_id_number_forms_the_standard_allows_are_normalized_and_join(gateway_sqlite, tmp_path, roster):
    """Full-width digits, a lowercase x and a 15-digit legacy number all become the 18-character form:
    the mask shows the canonical number and the token equals the one of the canonical number."""
    rows = [dict(r) for r in roster[:40]]
    canonical = [r["身份证号"] for r in rows]
    with_x = (
        next(i for i, n in enumerate(canonical) if n.endswith("X")) if any(n.endswith("X") for n in canonical) else None
    )
    born_1900s = next(i for i, n in enumerate(canonical) if n[6:8] == "19" and i != with_x)
    rows[0]["身份证号"] = "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in canonical[0])  # full-width
    if with_x is not None:
        rows[with_x]["身份证号"] = canonical[with_x][:17] + "x"
    legacy = canonical[born_1900s][:6] + canonical[born_1900s][8:17]
    assert len(legacy) == 15
    rows[born_1900s]["身份证号"] = legacy
    conns = _drop(tmp_path / "in", "roster_1.csv", csv_bytes(ROSTER_HEADER, rows, "gb18030"))
    [result] = run_feed(ROSTER, gateway_sqlite.settings, connections=conns)
    assert (result.status, result.loaded, result.quarantined) == ("loaded", len(rows), 0)

    import pyarrow as pa

    from lidm.contracts import load_catalog
    from lidm.keys import load_keyring
    from lidm.protect import Protector

    protector = Protector(load_catalog()[ROSTER], load_keyring(gateway_sqlite.settings))
    tokens = set(protector.token(pa.array(canonical)).to_pylist())
    url = gateway_sqlite.settings.effective_central_url
    stored = {bytes(t).hex() for (t,) in query(url, "SELECT id_number_token FROM civil_affairs_low_income_roster")}
    assert stored == tokens
    masks = {m for (m,) in query(url, "SELECT id_number_masked FROM civil_affairs_low_income_roster")}
    assert masks == {n[:4] + "*" * 14 for n in canonical}  # the city only (issue 15)


def test_a_15_digit_number_with_an_impossible_birth_date_is_quarantined(gateway_sqlite, tmp_path, roster):
    rows = [dict(r) for r in roster[:10]]
    rows[3]["身份证号"] = "430102801301001"  # month 13
    conns = _drop(tmp_path / "in", "roster_1.csv", csv_bytes(ROSTER_HEADER, rows, "gb18030"))
    [result] = run_feed(ROSTER, gateway_sqlite.settings, connections=conns)
    assert (result.loaded, result.quarantined) == (9, 1)
    [(reason, row, field)] = query(
        gateway_sqlite.settings.effective_central_url, "SELECT reason, row_number, field FROM lidm_quarantine"
    )
    assert (reason, row, field) == ("id_number.birth_date", 4, "id_number")


def _xlsx_population_adapter() -> Adapter:
    return Adapter(
        contract="health.population",
        source=DropSource(connection="xlsx_drop", pattern="population_*.xlsx", format="xlsx"),
        mapping={
            "id_number": "sfzh",
            "name": "xm",
            "gender": codes("xb", {"1": "male", "2": "female"}),
            "birth_date": date_of("csrq", "%Y%m%d", excel_serial=True),
            "household_id": "hh",
            "phone": "lxdh",
            "district_code": "qxdm",
            "street_code": "jddm",
            "address": "jzdz",
            "residence_status": codes(
                "rkzt", {"10": "registered", "20": "resident", "30": "moved_out", "90": "deceased"}
            ),
            "updated_at": "gxsj",
        },
        name="test.population_xlsx",
    )


def test_excel_dates_typed_as_serial_numbers_are_read_as_dates(gateway_sqlite, tmp_path):
    people = generate_people(60, seed=4)
    rows = population_rows(people).rows
    half = len(rows) // 2
    for row, person in zip(rows, people, strict=True):
        row["csrq"] = person.birth_date  # a date cell...
    columns = list(rows[0])
    folder = tmp_path / "x"
    store = LocalStore(folder)
    store.put("population_1.xlsx", xlsx_bytes(columns, rows))
    store.put("population_1.xlsx.ok", b"")
    # The next snapshot: the first half only (half the rows retired: within lidmMaxRetireFraction), with its
    # birth dates typed as plain serial numbers.
    serial = xlsx_bytes(columns, rows[:half], serial_dates=("csrq",))
    store.put("population_2.xlsx", serial)
    store.put("population_2.xlsx.ok", b"")
    first = run_feed(_xlsx_population_adapter(), gateway_sqlite.settings, connections={"xlsx_drop": folder.as_uri()})
    assert [r.status for r in first] == ["loaded", "loaded"]
    assert sum(r.quarantined for r in first) == 0
    # Read as the same dates: the serial half changed nothing, only the retired second half differs.
    assert first[1].unchanged == half, first[1]
    url = gateway_sqlite.settings.effective_central_url
    births = sorted(
        str(b) for (b,) in query(url, "SELECT birth_date FROM health_population WHERE _retired_batch IS NULL")
    )
    assert births == sorted(p.birth_date.isoformat() for p in people[:half])


def test_a_broken_workbook_is_rejected_and_kept(gateway_sqlite, tmp_path):
    folder = tmp_path / "x"
    store = LocalStore(folder)
    store.put("population_1.xlsx", b"PK\x03\x04 not really a workbook")
    store.put("population_1.xlsx.ok", b"")
    [result] = run_feed(_xlsx_population_adapter(), gateway_sqlite.settings, connections={"xlsx_drop": folder.as_uri()})
    assert result.status == "rejected" and "malformed_file" in result.reason and "population_1.xlsx" in result.reason
    assert (folder / "rejected" / "population_1.xlsx").exists()
