"""应急管理局 (emergency management): natural disaster relief records, a daily GBK CSV drop with Chinese headers."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from lidm_samples.people import REFERENCE_DATE, Person
from lidm_samples.sources import (
    DUPLICATE,
    SampleSource,
    SampleTable,
    a_day,
    inject,
    moment,
    set_value,
    text,
    wrong_check_char,
    yuan,
)
from lidm_samples.world import World

RELIEF_HEADER = (
    "救助记录编号",
    "家庭编号",
    "户主身份证号",
    "户主姓名",
    "救助人口数",
    "灾害种类",
    "灾害发生日期",
    "救助类别",
    "房屋损毁程度",
    "救助金额",
    "实物救助内容",
    "实物折款",
    "审批日期",
    "救助起始日期",
    "救助终止日期",
    "发放状态",
    "区县代码",
    "街道代码",
    "更新时间",
)
# The disasters of the last two seasons in and around Changsha: (label in the relief system, day it struck).
DISASTERS = (
    ("风雹", date(2025, 5, 9)),
    ("洪涝", date(2025, 7, 28)),
    ("低温冷冻和雪灾", date(2026, 1, 21)),
    ("风雹", date(2026, 4, 12)),
    ("洪涝", date(2026, 6, 18)),
    ("地质灾害", date(2026, 6, 19)),
    ("干旱", date(2026, 8, 25)),
    ("森林火灾", date(2026, 10, 30)),
)
DAMAGE_LABELS = ("未损坏", "一般损坏", "严重损坏", "倒塌")
_DAMAGE_WEIGHTS = (40, 35, 15, 10)
WINTER_SPRING = (date(2025, 12, 15), date(2026, 3, 31))  # the 2025-26 winter-spring relief period
EMERGENCY_KIT = ("棉被2床、大米25公斤、食用油5升", 380)
WINTER_KIT = ("棉衣2件、棉被1床、大米25公斤", 460)
_LAST_DAY = REFERENCE_DATE - timedelta(days=1)


def _household(world: World, head: Person) -> tuple[str, int]:
    """(household id, persons covered): the civil-affairs household where the family is on the roster."""
    members = world.households[head.household_id]
    on_roster = [m for m in (world.roster_of(p) for p in members) if m is not None]
    household_id = on_roster[0].household_id if on_roster else head.household_id
    return household_id, max(1, len(world.living(members)))


def _status(rng: random.Random, approved: date) -> str:
    if (REFERENCE_DATE - approved).days <= 15:
        return "已审批待发放"
    return "已撤销" if rng.random() < 0.03 else "已发放"


@dataclass(frozen=True)
class _Grant:
    """One relief decision for a household: what kind, when approved, how much, for which period."""

    kind: str
    approved: date
    amount: int
    start: date
    end: date
    kit: tuple[str, int] = ("", 0)


def _grants(rng: random.Random, struck: date, damage: str, persons: int, transitional: bool = True) -> list[_Grant]:
    """Emergency aid for every household; transitional aid and rebuilding for damaged houses; winter-spring aid.

    Transitional relief is approved within about two weeks of the disaster (its three months may run past the
    reference date); ``transitional=False`` leaves it out: the household the relief system overlooked.
    """
    day = min(struck + timedelta(days=rng.randint(1, 7)), _LAST_DAY)
    out = [_Grant("应急救助", day, rng.randrange(300, 801, 100) * persons, day, day, EMERGENCY_KIT)]
    if damage in ("严重损坏", "倒塌"):
        # Transitional relief: 20 yuan a person a day for three months while the house is unusable.
        start = struck + timedelta(days=rng.randint(10, 15))
        approved = start - timedelta(days=rng.randint(1, 5))
        if transitional and start <= _LAST_DAY:
            out.append(_Grant("过渡期生活救助", approved, 20 * 90 * persons, start, start + timedelta(days=89)))
        if struck + timedelta(days=30) <= _LAST_DAY:
            rebuilt = a_day(rng, struck + timedelta(days=30), min(struck + timedelta(days=90), _LAST_DAY))
            aid = rng.randrange(30000, 50001, 1000) if damage == "倒塌" else rng.randrange(5000, 12001, 500)
            out.append(_Grant("倒损住房恢复重建", rebuilt, aid, rebuilt, rebuilt))
    if struck < WINTER_SPRING[0] and rng.random() < 0.5:
        approved = WINTER_SPRING[0] - timedelta(days=rng.randint(3, 10))
        out.append(_Grant("冬春生活救助", approved, rng.randrange(500, 1501, 100), *WINTER_SPRING, WINTER_KIT))
    return out


# Disasters recent enough for the monitoring window (the last 180 days) and old enough for relief to be due.
RECENT_DISASTERS = tuple(d for d in DISASTERS if 20 <= (REFERENCE_DATE - d[1]).days <= 170 and d[0] != "干旱")


def relief_rows(world: World) -> list[dict[str, Any]]:
    """One row per relief granted to a disaster_households head, in the relief system's own labels, before
    any fault. Planted heads were hit by a recent disaster that left the house badly damaged or collapsed:
    the disaster_no_transitional ones got no transitional relief, the disaster_transitional ones did."""
    rng = world.rng("emergency.disaster_relief")
    overlooked = {p.id_number for c in ("disaster_no_transitional", "disaster_off_roster") for p in world.cohort(c)}
    relieved = {p.id_number for c in ("disaster_transitional", "disaster_off_roster_relieved") for p in world.cohort(c)}
    rows: list[dict[str, Any]] = []
    for head in world.cohort("disaster_households"):
        label, struck = rng.choice(DISASTERS)
        damage = rng.choices(DAMAGE_LABELS, weights=_DAMAGE_WEIGHTS)[0]
        planted = head.id_number in overlooked or head.id_number in relieved
        if planted:
            label, struck = rng.choice(RECENT_DISASTERS)
            damage = rng.choice(("严重损坏", "倒塌"))
        household_id, persons = _household(world, head)
        for g in _grants(rng, struck, damage, persons, transitional=head.id_number not in overlooked):
            status = _status(rng, g.approved)
            if planted and status == "已撤销":
                status = "已发放"
            rows.append(
                {
                    "救助记录编号": f"ZHJZ{struck:%Y}{len(rows) + 1:06d}",
                    "家庭编号": household_id,
                    "户主身份证号": head.id_number,
                    "户主姓名": head.name,
                    "救助人口数": str(persons),
                    "灾害种类": label,
                    "灾害发生日期": f"{struck:%Y/%m/%d}",
                    "救助类别": g.kind,
                    "房屋损毁程度": damage,
                    "救助金额": f"{yuan(g.amount)}",
                    "实物救助内容": g.kit[0],
                    "实物折款": f"{yuan(g.kit[1])}",
                    "审批日期": f"{g.approved:%Y/%m/%d}",
                    "救助起始日期": f"{g.start:%Y/%m/%d}",
                    "救助终止日期": f"{g.end:%Y/%m/%d}",
                    "发放状态": status,
                    "区县代码": head.district_code,
                    "街道代码": head.street_code,
                    # Touched by the nightly sync some time after approval.
                    "更新时间": moment(rng, days=(REFERENCE_DATE - g.approved).days),
                }
            )
    return rows


def disaster_relief(world: World, bad: int) -> SampleTable:
    """The relief system's daily drop: ``relief_rows`` with the faults asked for."""
    rows = relief_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:emergency.disaster_relief",
        {
            "bad_check_char": wrong_check_char("户主身份证号"),
            "unknown_disaster_type": set_value("灾害种类", "沙尘暴"),
            "impossible_approval_date": set_value("审批日期", "2026/02/30"),
            "negative_amount": set_value("救助金额", "-800.00"),
            "zero_household_size": set_value("救助人口数", "0"),
            DUPLICATE: None,
        },
    )
    return SampleTable({c: text() for c in RELIEF_HEADER}, rows, kinds)


SOURCES = [
    SampleSource(
        "emergency.disaster_relief",
        "emergency_drop",
        disaster_relief,
        file=f"disaster_relief_{REFERENCE_DATE:%Y%m%d}.csv",
        encoding="gb18030",
    ),
]
