"""Columnar validation: ID numbers, dates, enums, ranges, phones, division codes; reasons never hold values."""

from __future__ import annotations

import pyarrow as pa
import pytest
from lidm_samples import make_id_number

from lidm import idnumber
from lidm.adapter import codes, date, fen_to_yuan
from lidm.contracts import load_catalog
from lidm.validate import ROW, Validator

GOOD_ID = "430102199003071234"  # check character 4 is valid for this body


def test_check_char_matches_the_standard_example():
    # The worked example of GB 11643-1999: 11010519491231002X.
    assert idnumber.check_char("11010519491231002") == "X"
    assert idnumber.check_char(GOOD_ID[:17]) == GOOD_ID[17]


def test_problems_flag_each_kind():
    feb30 = "43010219900230123"
    values = idnumber.normalize(
        pa.array([GOOD_ID, GOOD_ID[:17] + "0", "4301021990030712", feb30 + idnumber.check_char(feb30), None])
    )
    p = idnumber.problems(values)
    assert p["checksum"].tolist() == [False, True, False, False, False]
    assert p["format"].tolist() == [False, False, True, False, False]
    # 1990-02-30 does not exist; Arrow would roll it over to March 2nd if not checked.
    assert p["birth_date"].tolist() == [False, False, False, True, False]


def test_allowed_forms_are_normalized():
    x_id = "11010519491231002x"
    wide = "".join(chr(0xFF10 + int(c)) for c in GOOD_ID)
    out = idnumber.normalize(pa.array([f" {x_id} ", wide])).to_pylist()
    assert out == ["11010519491231002X", GOOD_ID]


def _population_chunk(**overrides):
    row = {
        "id_number": GOOD_ID,
        "name": "王小明",
        "gender": "male",
        "birth_date": "1990-03-07",
        "household_id": "H1",
        "phone": "13812345678",
        "district_code": "430102",
        "street_code": "430102001",
        "address": "长沙市芙蓉区",
        "residence_status": "registered",
        "updated_at": "2026-11-27 08:00:00",
    }
    rows = [row, row | overrides]
    table = pa.table({k: pa.array([r[k] for r in rows], pa.string()) for k in row})
    return table.append_column(ROW, pa.array([1, 2], pa.int64()))


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"id_number": GOOD_ID[:17] + "0"}, "id_number", "id_number.checksum"),
        ({"name": None}, "name", "required"),
        ({"name": "   "}, "name", "required"),
        ({"gender": "9"}, "gender", "enum"),
        ({"birth_date": "1990-02-30"}, "birth_date", "type"),
        ({"birth_date": "1899-12-31"}, "birth_date", "range"),
        ({"phone": "12345"}, "phone", "phone"),
        ({"district_code": "110101"}, "district_code", "division_code"),
        ({"street_code": "43010200"}, "street_code", "pattern"),
        ({"updated_at": "yesterday"}, "updated_at", "type"),
    ],
)
def test_each_bad_value_is_quarantined_with_field_and_reason(overrides, field, code):
    v = Validator(load_catalog()["health.population"], "4301")
    result = v.validate(v.normalize(_population_chunk(**overrides)))
    assert result.valid.num_rows == 1
    assert result.bad_rows.tolist() == [1]
    problems = result.problems[1]
    assert (problems[0].field, problems[0].code) == (field, code)
    for value in overrides.values():
        if value and value.strip():
            assert value not in problems[0].message


def test_valid_rows_come_out_typed():
    v = Validator(load_catalog()["health.population"], "4301")
    result = v.validate(_population_chunk())
    assert result.valid.schema.field("birth_date").type == pa.date32()
    assert result.valid.schema.field("updated_at").type == pa.timestamp("us")
    assert result.valid[ROW].to_pylist() == [1, 2]


def test_a_whole_chunk_of_generated_ids_passes():
    from datetime import date as d

    ids = [make_id_number("430104", d(1950 + i % 60, 1 + i % 12, 1 + i % 28), i % 1000) for i in range(5000)]
    p = idnumber.problems(pa.array(ids))
    assert not any(m.any() for m in p.values())


def test_conversions():
    assert codes("xb", {"1": "male"}).apply(pa.array(["1", " 1", "9", None])).to_pylist() == ["male", "male", "9", None]
    assert date("d", "%Y%m%d").apply(pa.array(["19900307", "19900230"])).to_pylist() == ["1990-03-07", "19900230"]
    assert fen_to_yuan("f").apply(pa.array(["65000", "x", "-5"])).to_pylist() == ["650.00", "x", "-0.05"]


def test_labels_map_the_contracts_own_labels_and_refuse_a_field_without_any():
    from lidm import labels
    from lidm.contracts import load_catalog
    from lidm.errors import ConfigError

    roster = load_catalog()["civil_affairs.low_income_roster"]
    status = labels("保障状态", extra={"正常": "active"}).bind(roster.field("status"))
    assert status.apply(pa.array(["在保", "终止", "正常", "其他", None])).to_pylist() == [
        "active",
        "terminated",
        "active",
        "其他",  # unknown: kept, so validation quarantines it as enum
        None,
    ]
    with pytest.raises(ConfigError, match="lists no labels"):
        labels("姓名").bind(roster.field("name"))


def test_born_today_is_judged_by_the_city_clock_not_utc():
    """A person born today in the city is valid, whatever the UTC date; born 'tomorrow' there is not."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    contract = load_catalog()["civil_affairs.low_income_roster"]
    ahead, behind = "Pacific/Kiritimati", "Etc/GMT+12"  # UTC+14 and UTC-12: always a day or more apart
    born = datetime.now(ZoneInfo(ahead)).date()
    body = f"430102{born:%Y%m%d}123"
    value = pa.array([body + idnumber.check_char(body)])
    assert not idnumber.problems(value, born)["birth_date"].any()
    assert idnumber.problems(value, datetime.now(ZoneInfo(behind)).date())["birth_date"].all()
    field = next(f for f in contract.fields if f.name == "id_number")
    for zone, bad in ((ahead, False), (behind, True)):
        _typed, found = Validator(contract, "4301", zone)._field_checks(field, value)
        flagged = any(code == "id_number.birth_date" and mask.any() for code, _m, mask in found)
        assert flagged is bad, zone


def test_a_nul_character_is_quarantined_in_any_text_field():
    contract = load_catalog()["civil_affairs.low_income_roster"]
    field = next(f for f in contract.fields if f.name == "name")
    _typed, found = Validator(contract, "4301")._field_checks(field, pa.array(["张\x00三", "李四", None]))
    [mask] = [m for code, message, m in found if code == "nul_character"]
    assert mask.tolist() == [True, False, False]
    assert all("\x00" not in message for _c, message, _m in found)
