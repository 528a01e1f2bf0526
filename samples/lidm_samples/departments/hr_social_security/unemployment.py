"""hr_social_security.unemployment: unemployment registrations and the benefit paid on them."""

from __future__ import annotations

from datetime import date, timedelta

from lidm_samples.departments.hr_social_security.careers import add_months, careers, stamp
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.sources import (
    SampleTable,
    big_integer,
    code,
    day,
    inject,
    integer,
    set_value,
    text,
    tie_at_boundary,
    timestamp,
    wrong_check_char,
)
from lidm_samples.world import World, age_on

REGISTRATION_STATUSES = {"registered": "1", "deregistered": "2"}
BENEFIT_STATUSES = {"not_entitled": "0", "receiving": "1", "suspended": "2", "expired": "3", "terminated": "4"}
DEREGISTRATION_REASONS = {
    "employed": "01",
    "retired": "02",
    "enlisted": "03",
    "education": "04",
    "moved_out": "05",
    "imprisoned": "06",
    "refused_service": "07",
    "no_contact": "08",
    "deceased": "09",
    "other": "99",
}
UNEMPLOYMENT_COLUMNS = {
    "sydjbh": text(32),  # 失业登记编号
    "sfzh": text(18),
    "xm": text(50),
    "lxdh": text(20),
    "djrq": day(),  # 失业登记日期
    "jykn": code(1),  # 是否就业困难人员 1/0
    "djzt": code(1),  # 登记状态
    "lqqx": integer(),  # 失业保险金领取期限（月）
    "yffbz": big_integer(),  # 月发放标准（分）
    "lqksrq": day(),
    "lqzzrq": day(),
    "lqzt": code(1),  # 领取状态
    "zxrq": day(),  # 注销日期
    "zxyy": code(2),  # 注销原因
    "djqx": code(6),
    "djjd": code(9),
    "gxsj": timestamp(),
}


def _benefit_fen(start: date) -> int:
    """90% of Changsha's minimum monthly wage in force when payment starts."""
    if start < date(2022, 4, 1):
        return 153000
    return 173700 if start < date(2025, 4, 1) else 189000


def unemployment(world: World, bad: int) -> SampleTable:
    rng = world.rng("hr_social_security.unemployment")
    disabled = {p.id_number for p in world.cohort("disabled")}
    rows = []
    for career in careers(world).values():
        p = career.person
        member = world.roster_of(p)
        age = age_on(p)
        if p.id_number in disabled or (member and rng.random() < 0.85):
            difficulty = True
        else:
            older = age >= (40 if p.gender == "female" else 50)
            difficulty = rng.random() < (0.4 if older else 0.08)
        for r in career.registrations:
            start = end = None
            status = "not_entitled"
            if r.months:
                start = min(r.registered + timedelta(days=rng.randint(1, 20)), REFERENCE_DATE)
                end = add_months(start, r.months) - timedelta(days=1)
                if r.deregistered and r.deregistered <= end:
                    status, end = "terminated", r.deregistered
                elif end < REFERENCE_DATE:
                    status = "expired"
                else:
                    status, end = ("suspended" if rng.random() < 0.05 else "receiving"), None
            rows.append(
                {
                    "sydjbh": r.registration_id,
                    "sfzh": p.id_number,
                    "xm": p.name,
                    "lxdh": p.phone,
                    "djrq": r.registered,
                    "jykn": "1" if difficulty else "0",
                    "djzt": REGISTRATION_STATUSES["deregistered" if r.deregistered else "registered"],
                    "lqqx": r.months,
                    "yffbz": _benefit_fen(start) if start else 0,
                    "lqksrq": start,
                    "lqzzrq": end,
                    "lqzt": BENEFIT_STATUSES[status],
                    "zxrq": r.deregistered,
                    "zxyy": DEREGISTRATION_REASONS[r.reason] if r.reason else None,
                    "djqx": p.district_code,
                    "djjd": p.street_code,
                    "gxsj": stamp(rng, max(d for d in (r.registered, start, end, r.deregistered) if d)),
                }
            )
    tie_at_boundary(rows, "gxsj")
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:hr_social_security.unemployment",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_registration_status": set_value("djzt", "9"),
            "negative_benefit_amount": set_value("yffbz", -189000),
            "benefit_months_over_24": set_value("lqqx", 36),
            "duplicate_key": None,
        },
    )
    return SampleTable(UNEMPLOYMENT_COLUMNS, rows, kinds)
