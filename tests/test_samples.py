"""The synthetic sources are valid, deterministic, and faulty exactly where asked."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
from lidm_samples import (
    DISTRICTS,
    POPULATION_BAD_KINDS,
    REFERENCE_TIME,
    ROSTER_BAD_KINDS,
    generate_people,
    generate_roster,
    id_check_char,
    make_id_number,
    population_rows,
    roster_rows,
    write_population_table,
    write_roster_drop,
)


@pytest.fixture(scope="module")
def people():
    return generate_people(1000, seed=7)


@pytest.fixture(scope="module")
def roster(people):
    return generate_roster(people, share=0.05, seed=7)


def test_check_char_known_values():
    # The worked example of GB 11643-1999 and one ending in X.
    assert id_check_char("11010519491231002") == "X"
    assert make_id_number("440524", date(1880, 1, 1), 1) == "440524188001010014"
    with pytest.raises(ValueError):
        make_id_number("4301", date(2000, 1, 1), 1)


def test_id_numbers_are_valid(people):
    assert len(people) == 1000
    assert len({p.id_number for p in people}) == 1000
    for p in people:
        assert len(p.id_number) == 18 and p.id_number[:17].isdigit()
        assert id_check_char(p.id_number[:17]) == p.id_number[17]
        assert p.id_number[:6] in DISTRICTS and p.id_number[:6] == p.district_code
        assert datetime.strptime(p.id_number[6:14], "%Y%m%d").date() == p.birth_date
        assert int(p.id_number[16]) % 2 == (1 if p.gender == "male" else 0)
        assert p.street_code.startswith(p.district_code) and len(p.street_code) == 9
        assert p.address.startswith("长沙市" + DISTRICTS[p.district_code][0])
        assert p.phone is None or (len(p.phone) == 11 and p.phone[0] == "1" and p.phone[1] in "3456789")
        assert REFERENCE_TIME - timedelta(days=30) <= p.updated_at < REFERENCE_TIME


def test_names_include_short_and_rare(people):
    lengths = Counter(len(p.name) for p in people)
    assert lengths[2] and lengths[3]
    not_gbk = [p for p in people if not _encodes(p.name, "gbk")]
    assert not_gbk and all(_encodes(p.name, "gb18030") for p in people)


def _encodes(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def test_deterministic(people):
    assert generate_people(1000, seed=7) == people
    assert generate_people(1000, seed=8) != people
    assert population_rows(people, bad=5, seed=1) == population_rows(people, bad=5, seed=1)
    assert population_rows(people, bad=5, seed=1).rows != population_rows(people, bad=5, seed=2).rows


def test_households(people):
    households: dict[str, list] = {}
    for p in people:
        households.setdefault(p.household_id, []).append(p)
    sizes = Counter(len(members) for members in households.values())
    assert set(sizes) <= {1, 2, 3, 4, 5} and sizes[1] and max(sizes) > 1
    for hh, members in households.items():
        assert hh.startswith("HH" + members[0].district_code) and len(hh) == 15
        assert len({(m.address, m.street_code) for m in members}) == 1


def test_roster(people, roster):
    assert 0.03 * len(people) <= len(roster) <= 0.08 * len(people)
    assert [m for m in roster if m.person.residence_status == "deceased"]
    by_person_hh: dict[str, set] = {}
    for m in roster:
        by_person_hh.setdefault(m.person.household_id, set()).add(m.household_id)
        assert m.household_id.startswith("MZ" + m.person.district_code) and len(m.household_id) == 15
        assert (m.status == "terminated") == (m.termination_date is not None)
        if m.category == "dibao":
            assert 300 <= m.monthly_amount <= 900
        elif m.category == "tekun":
            assert 1000 <= m.monthly_amount <= 1500
        else:
            assert m.monthly_amount == 0
    assert all(len(ids) == 1 for ids in by_person_hh.values())
    assert generate_roster(people, share=0.05, seed=7) == roster


@pytest.mark.parametrize("bad", [0, 1, 3, 5, 12])
def test_population_bad_rows(people, bad):
    sample = population_rows(people, bad=bad, seed=3)
    assert sum(sample.bad_kinds.values()) == bad
    assert set(sample.bad_kinds) <= set(POPULATION_BAD_KINDS)
    if bad >= len(POPULATION_BAD_KINDS):
        assert set(sample.bad_kinds) == set(POPULATION_BAD_KINDS)
    rows = sample.rows
    assert len(rows) == len(people) + sample.bad_kinds.get("duplicate_id", 0)
    wrong = sum(id_check_char(r["sfzh"][:17]) != r["sfzh"][17] for r in rows)
    assert wrong == sample.bad_kinds.get("bad_check_char", 0)
    assert sum(r["xb"] == "9" for r in rows) == sample.bad_kinds.get("unknown_gender", 0)
    assert sum(r["csrq"] == "20231345" for r in rows) == sample.bad_kinds.get("impossible_birth_date", 0)
    assert sum(r["xm"] is None for r in rows) == sample.bad_kinds.get("missing_name", 0)
    dupes = sum(n - 1 for n in Counter(r["sfzh"] for r in rows).values())
    assert dupes == sample.bad_kinds.get("duplicate_id", 0)


@pytest.mark.parametrize("bad", [0, 5, 7])
def test_roster_bad_rows(roster, bad):
    sample = roster_rows(roster, bad=bad, seed=3)
    assert sum(sample.bad_kinds.values()) == bad and set(sample.bad_kinds) <= set(ROSTER_BAD_KINDS)
    rows = sample.rows
    wrong = sum(id_check_char(r["身份证号"][:17]) != r["身份证号"][17] for r in rows)
    assert wrong == sample.bad_kinds.get("bad_check_char", 0)
    assert sum(r["保障类别"] == "低收入" for r in rows) == sample.bad_kinds.get("unknown_category", 0)
    assert sum(r["月保障金额"] == "-5.00" for r in rows) == sample.bad_kinds.get("negative_amount", 0)
    assert sum(r["认定日期"] == "2026-02-30" for r in rows) == sample.bad_kinds.get("impossible_approval_date", 0)
    dupes = sum(n - 1 for n in Counter(r["身份证号"] for r in rows).values())
    assert dupes == sample.bad_kinds.get("duplicate_id", 0)


def test_roster_drop_is_gb18030_with_marker(tmp_path, people):
    # A roster holding every person guarantees a name outside GBK in the file.
    members = generate_roster(people, share=1.0, seed=1)
    rows = roster_rows(members, bad=5, seed=1).rows
    path = write_roster_drop(tmp_path / "drop", rows)
    assert path == tmp_path / "drop" / "roster_20261127.csv"
    assert (tmp_path / "drop" / "roster_20261127.csv.ok").read_bytes() == b""
    assert path.stat().st_mtime_ns <= (tmp_path / "drop" / "roster_20261127.csv.ok").stat().st_mtime_ns
    assert sorted(p.name for p in path.parent.iterdir()) == ["roster_20261127.csv", "roster_20261127.csv.ok"]
    data = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    text = data.decode("gb18030")
    assert text.splitlines()[0] == (
        "身份证号,姓名,家庭编号,与户主关系,保障类别,区县代码,街道代码,认定日期,终止日期,月保障金额,城镇住房困难,保障状态,联系电话,更新时间,"
        "全部类别,退出原因,城乡属性"
    )
    assert data.count(b"\r\n") == len(rows) + 1
    read = list(csv.DictReader(text.splitlines()))
    assert read == rows
    assert any(not _encodes(r["姓名"], "gbk") for r in read)


def test_roster_drop_without_marker(tmp_path, roster):
    path = write_roster_drop(tmp_path, roster_rows(roster).rows, name="r.csv", marker=False)
    assert path.exists() and not (tmp_path / "r.csv.ok").exists()


def test_population_table_round_trip(tmp_path, people):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'health.db'}")
    sample = population_rows(people, bad=5, seed=2)
    assert write_population_table(engine, sample.rows) == len(sample.rows)
    assert write_population_table(engine, sample.rows) == len(sample.rows)  # drop-and-create is repeatable
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM t_population")).scalar_one() == len(sample.rows)
        first = conn.execute(sa.text("SELECT sfzh, csrq, gxsj FROM t_population LIMIT 1")).one()
    assert isinstance(first.csrq, str) and len(first.csrq) == 8
    engine.dispose()


def test_the_mariadb_server_is_given_as_every_other_odbc_connection(tmp_path):
    """`lidm sample --mariadb odbc:DRIVER=…` (the form LIDM_CONNECTIONS uses) and the bare string mean the same."""
    from lidm_samples.sources import Servers

    bare = "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;UID=root;PWD="
    assert Servers(tmp_path, mariadb_odbc="odbc:" + bare).mariadb_odbc == bare
    assert Servers(tmp_path, mariadb_odbc=bare).mariadb_odbc == bare
