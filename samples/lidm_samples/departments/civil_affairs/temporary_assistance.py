"""civil_affairs.temporary_assistance: temporary assistance cases (临时救助), incremental on a timestamptz."""

from __future__ import annotations

import random
from datetime import date, timedelta

from lidm_samples.departments.civil_affairs._common import CATEGORY_CODES, CHINA_TIME
from lidm_samples.people import REFERENCE_DATE, Person
from lidm_samples.sources import (
    DUPLICATE,
    SampleTable,
    a_day,
    code,
    day,
    inject,
    moment,
    money,
    set_value,
    text,
    tie_at_boundary,
    timestamp_tz,
    wrong_check_char,
    yuan,
)
from lidm_samples.world import World, other_district

TEMPORARY_COLUMNS = {
    "ajbh": text(40),
    "sfzh": text(18),
    "xm": text(50),
    "jtbh": text(32),
    "dsrklb": code(2),
    "jzlx": code(1),  # 1 急难型, 2 支出型
    "jzyy": code(2),
    "sfxxjz": code(1),  # 先行救助 1/0
    "sfydjz": code(1),  # 异地（急难发生地）救助 1/0
    "jzje": money(),
    "swzk": money(),
    "sqrq": day(),
    "sprq": day(),
    "spjb": code(1),  # 1 区县民政, 2 乡镇（街道）
    "ffrq": day(),
    "ffzt": code(1),  # 1 已审批, 2 已发放, 3 已撤销
    "qxdm": code(6),
    "jddm": code(9),
    "gxsj": timestamp_tz(),
}
REASON_CODES = {
    "sudden_accident": "01",
    "illness": "02",
    "disaster": "03",
    "education": "04",
    "basic_living": "05",
    "other": "99",
}
# reason -> (assistance type code, lowest and highest amount in yuan)
_TEMPORARY_AID = {
    "sudden_accident": ("1", 1000, 10000),
    "illness": ("2", 2000, 20000),
    "disaster": ("1", 1000, 5000),
    "education": ("2", 1000, 6000),
    "basic_living": ("1", 500, 3000),
    "other": ("1", 300, 2000),
}
TOWNSHIP_LIMIT = 2000  # 乡镇（街道）may approve up to this amount; above it the county approves


def _applicants(world: World, rng: random.Random) -> list[tuple[Person, str]]:
    """(person, reason) per case: roster members, disaster-hit households and people with high medical costs."""
    roster = world.living([m.person for m in world.roster])
    cases = [(p, rng.choice(("basic_living", "education", "sudden_accident", "other"))) for p in roster]
    cases = rng.sample(cases, max(1, round(0.2 * len(cases))))
    disaster = world.living(world.cohort("disaster_households"))
    cases += [(p, "disaster") for p in rng.sample(disaster, max(1, round(0.5 * len(disaster))))]
    patients = world.cohort("high_out_of_pocket")
    cases += [(p, "illness") for p in rng.sample(patients, max(1, round(0.4 * len(patients))))]
    return cases


def temporary_assistance(world: World, bad: int) -> SampleTable:
    """临时救助 cases, stamped with a zone-aware update time (timestamptz) the extract's watermark follows."""
    rng = world.rng("civil_affairs.temporary_assistance")
    last_day = REFERENCE_DATE - timedelta(days=1)
    rows = []
    for seq, (person, reason) in enumerate(_applicants(world, rng), start=1):
        member = world.roster_of(person)
        kind, low, high = _TEMPORARY_AID[reason]
        applied = a_day(rng, date(2024, 1, 1), last_day)
        if member is not None and member.approval_date < last_day:
            applied = a_day(rng, max(applied, member.approval_date), last_day)
        on_roster = (
            member is not None
            and member.approval_date <= applied
            and (member.termination_date is None or member.termination_date > applied)
        )
        non_local = reason == "sudden_accident" and rng.random() < 0.3
        district = other_district(person.district_code, rng) if non_local else person.district_code
        advance = kind == "1" and rng.random() < 0.3
        amount = rng.randrange(low, high + 1, 100)
        approved = applied if advance else min(applied + timedelta(days=rng.randint(1, 20)), last_day)
        status = rng.choices(("2", "1", "3"), weights=(82, 12, 6))[0]
        if status == "1" and (REFERENCE_DATE - approved).days > 30:
            status = "2"  # approved long ago means paid by now
        paid = min(approved + timedelta(days=rng.randint(0, 10)), last_day) if status == "2" else None
        in_kind = yuan(rng.randrange(200, 801, 50)) if reason in ("disaster", "sudden_accident") else yuan(0)
        rows.append(
            {
                "ajbh": f"LSJZ{district}{applied:%Y}{seq:05d}",
                "sfzh": person.id_number,
                "xm": person.name,
                "jtbh": member.household_id if on_roster and member else None,
                "dsrklb": CATEGORY_CODES[member.category] if on_roster and member else None,
                "jzlx": kind,
                "jzyy": REASON_CODES[reason],
                "sfxxjz": "1" if advance else "0",
                "sfydjz": "1" if non_local else "0",
                "jzje": yuan(amount),
                "swzk": in_kind,
                "sqrq": applied,
                "sprq": approved,
                "spjb": "2" if advance or amount <= TOWNSHIP_LIMIT else "1",
                "ffrq": paid,
                "ffzt": status,
                "qxdm": district,
                "jddm": f"{district}001" if non_local else person.street_code,
                "gxsj": moment(rng, days=(REFERENCE_DATE - (paid or approved)).days).replace(tzinfo=CHINA_TIME),
            }
        )
    tie_at_boundary(rows, "gxsj")
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:civil_affairs.temporary_assistance",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_reason": set_value("jzyy", "88"),
            "negative_amount": set_value("jzje", yuan(-500)),
            "missing_application_date": set_value("sqrq", None),
            "unknown_disbursement_status": set_value("ffzt", "9"),
            DUPLICATE: None,
        },
    )
    return SampleTable(TEMPORARY_COLUMNS, rows, kinds)
