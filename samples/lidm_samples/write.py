"""Source-shaped rows and writers: the health DB table and the civil-affairs CSV drop.

Column names, codes and encodings are the departments' own, so the adapters are exercised against what they
will really read, including a controlled number of faulty rows.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lidm_samples.people import Person, RosterMember, id_check_char
from lidm_samples.sources import inject

GENDER_CODES = {"male": "1", "female": "2"}
RESIDENCE_CODES = {"registered": "10", "resident": "20", "moved_out": "30", "deceased": "90"}
RELATION_LABELS = {
    "head": "户主",
    "spouse": "配偶",
    "child": "子女",
    "parent": "父母",
    "grandchild": "孙子女",
    "other": "其他",
}
CATEGORY_LABELS = {
    "dibao": "低保",
    "tekun": "特困",
    "dibao_edge": "低保边缘",
    "rigid_expense": "刚性支出困难",
    "return_risk": "防返贫监测",
    "other_hardship": "其他困难",
}
STATUS_LABELS = {"active": "在保", "suspended": "暂停", "gradual_exit": "渐退", "terminated": "终止"}
EXIT_REASON_LABELS = {
    "income_improved": "家庭经济状况好转",
    "employed": "就业",
    "pension": "领取养老金",
    "moved_out": "户籍迁出",
    "deceased": "死亡",
    "transferred": "转入其他类别",
    "other": "其他",
}
YES_NO = {True: "是", False: "否"}
URBAN_RURAL_LABELS = {"urban": "城镇", "rural": "农村"}
ROSTER_HEADER_LINE = (
    "身份证号,姓名,家庭编号,与户主关系,保障类别,区县代码,街道代码,"
    "认定日期,终止日期,月保障金额,城镇住房困难,保障状态,联系电话,更新时间,全部类别,退出原因,城乡属性"
)
ROSTER_HEADER = tuple(ROSTER_HEADER_LINE.split(","))

POPULATION_BAD_KINDS = ("bad_check_char", "unknown_gender", "impossible_birth_date", "missing_name", "duplicate_id")
ROSTER_BAD_KINDS = ("bad_check_char", "unknown_category", "negative_amount", "impossible_approval_date", "duplicate_id")


@dataclass
class SampleRows:
    """Rows plus how many faulty rows of each kind were injected, so a test can expect exact rejections."""

    rows: list[dict[str, Any]]
    bad_kinds: dict[str, int] = field(default_factory=dict)


def _wrong_check(rng: random.Random, id_number: str) -> str:
    right = id_check_char(id_number[:17])
    return id_number[:17] + rng.choice([c for c in "0123456789X" if c != right])


def _inject(
    rows: list[dict[str, Any]],
    bad: int,
    seed: int,
    kinds: Sequence[str],
    alter: dict[str, Callable[[random.Random, dict[str, Any]], None]],
) -> SampleRows:
    """The shared fault injector with these kinds; ``duplicate_id`` appends a copy of a clean row."""
    if bad < 0 or bad > len(rows):
        raise ValueError("bad must be between 0 and the number of clean rows")
    table = {kind: (None if kind == "duplicate_id" else alter[kind]) for kind in kinds}
    return SampleRows(rows, inject(rows, bad, seed, table))


def population_rows(people: Sequence[Person], bad: int = 0, seed: int = 0) -> SampleRows:
    """Rows of the health table ``t_population``; ``bad`` of them faulty (kinds in ``POPULATION_BAD_KINDS``)."""
    rows = [
        {
            "sfzh": p.id_number,
            "xm": p.name,
            "xb": GENDER_CODES[p.gender],
            "csrq": f"{p.birth_date:%Y%m%d}",
            "hh": p.household_id,
            "lxdh": p.phone,
            "qxdm": p.district_code,
            "jddm": p.street_code,
            "jzdz": p.address,
            "rkzt": RESIDENCE_CODES[p.residence_status],
            "gxsj": p.updated_at,
        }
        for p in people
    ]
    return _inject(
        rows,
        bad,
        seed,
        POPULATION_BAD_KINDS,
        {
            "bad_check_char": lambda rng, row: row.update(sfzh=_wrong_check(rng, row["sfzh"])),
            "unknown_gender": lambda rng, row: row.update(xb="9"),
            "impossible_birth_date": lambda rng, row: row.update(csrq="20231345"),
            "missing_name": lambda rng, row: row.update(xm=None),
        },
    )


def roster_rows(members: Sequence[RosterMember], bad: int = 0, seed: int = 0) -> SampleRows:
    """Rows of the civil-affairs CSV, all strings; ``bad`` faulty (kinds in ``ROSTER_BAD_KINDS``)."""
    rows = [
        {
            "身份证号": m.person.id_number,
            "姓名": m.person.name,
            "家庭编号": m.household_id,
            "与户主关系": RELATION_LABELS[m.relation_to_head],
            "保障类别": CATEGORY_LABELS[m.category],
            "区县代码": m.person.district_code,
            "街道代码": m.person.street_code,
            "认定日期": m.approval_date.isoformat(),
            "终止日期": m.termination_date.isoformat() if m.termination_date else "",
            "月保障金额": f"{m.monthly_amount:.2f}",
            "城镇住房困难": "" if m.housing_difficulty is None else YES_NO[m.housing_difficulty],
            "保障状态": STATUS_LABELS[m.status],
            "联系电话": m.person.phone or "",
            "更新时间": f"{m.updated_at:%Y-%m-%d %H:%M:%S}",
            "全部类别": "、".join(CATEGORY_LABELS[c] for c in m.categories),
            "退出原因": EXIT_REASON_LABELS[m.exit_reason] if m.exit_reason else "",
            "城乡属性": URBAN_RURAL_LABELS[m.urban_rural],
        }
        for m in members
    ]
    return _inject(
        rows,
        bad,
        seed,
        ROSTER_BAD_KINDS,
        {
            "bad_check_char": lambda rng, row: row.update(身份证号=_wrong_check(rng, row["身份证号"])),
            "unknown_category": lambda rng, row: row.update(保障类别="低收入"),
            "negative_amount": lambda rng, row: row.update(月保障金额="-5.00"),
            "impossible_approval_date": lambda rng, row: row.update(认定日期="2026-02-30"),
        },
    )


def population_table(metadata: sa.MetaData, name: str = "t_population") -> sa.Table:
    """The health system's table; no primary key, because the source really does hold duplicates."""
    return sa.Table(
        name,
        metadata,
        sa.Column("sfzh", sa.String(18), nullable=False),
        sa.Column("xm", sa.String(50)),
        sa.Column("xb", sa.CHAR(1)),
        sa.Column("csrq", sa.CHAR(8)),
        sa.Column("hh", sa.String(32)),
        sa.Column("lxdh", sa.String(20)),
        sa.Column("qxdm", sa.CHAR(6)),
        sa.Column("jddm", sa.CHAR(9)),
        sa.Column("jzdz", sa.String(200)),
        sa.Column("rkzt", sa.CHAR(2)),
        sa.Column("gxsj", sa.DateTime()),
    )


def write_population_table(
    engine: sa.Engine, rows: Sequence[dict[str, Any]], table: str = "t_population", batch: int = 1000
) -> int:
    """Drop, create and fill the table in one transaction; returns the number of rows inserted."""
    target = population_table(sa.MetaData(), table)
    with engine.begin() as conn:
        target.drop(conn, checkfirst=True)
        target.create(conn)
        for start in range(0, len(rows), batch):
            conn.execute(target.insert(), list(rows[start : start + batch]))
    return len(rows)


def write_roster_drop(
    folder: Path,
    rows: Sequence[dict[str, Any]],
    name: str = "roster_20261127.csv",
    encoding: str = "gb18030",
    marker: bool = True,
) -> Path:
    """Write the CSV via a ``.part`` file renamed into place, then the ``.ok`` marker: never a partial drop.

    Keep ``gb18030`` (a superset of GBK): with ``gbk`` a rare name character raises UnicodeEncodeError.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    part = folder / f".{name}.part"
    with part.open("w", encoding=encoding, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROSTER_HEADER, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({key: ("" if row.get(key) is None else row[key]) for key in ROSTER_HEADER} for row in rows)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(part, path)
    if marker:
        (folder / f"{name}.ok").touch()
    return path
