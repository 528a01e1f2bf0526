"""civil_affairs.hardship_disability_subsidy: the living subsidy for disabled people in hardship
(困难残疾人生活补贴)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lidm_samples.departments.civil_affairs._common import CATEGORY_CODES, STATUS_CODES, certificates, month_start
from lidm_samples.people import REFERENCE_DATE, Person
from lidm_samples.sources import (
    DUPLICATE,
    SampleTable,
    a_day,
    bank_card,
    code,
    day,
    inject,
    moment,
    money,
    set_value,
    text,
    timestamp,
    wrong_check_char,
    yuan,
)
from lidm_samples.world import World

HARDSHIP_COLUMNS = {
    "sfzh": text(18),
    "xm": text(50),
    "jtbh": text(32),
    "dsrklb": code(2),
    "cjlb": code(1),
    "cjdj": code(1),
    "ybzje": money(),
    "sprq": day(),
    "ffqsrq": day(),
    "zhffyf": code(7),  # YYYY-MM
    "zzrq": day(),
    "zzyy": code(2),
    "zt": code(1),
    "yhkh": text(32),  # 惠民惠农财政补贴资金一卡通
    "qxdm": code(6),
    "jddm": code(9),
    "gxsj": timestamp(),
}
HARDSHIP_END_CODES = {"improved": "01", "certificate_invalid": "02", "deceased": "03", "moved_out": "04"}
HARDSHIP_AMOUNT = {"1": yuan(120), "2": yuan(120), "3": yuan(100), "4": yuan(100)}


def not_applied_living_subsidies(world: World) -> list[Person]:
    """Disabled active roster members (not tekun) left out of the living subsidy: "policy not applied" cases."""
    return list(world.cohort("living_subsidy_missing"))


def hardship_subsidy_rows(world: World) -> list[dict[str, Any]]:
    """困难残疾人生活补贴 rows before any fault: certificate holders on the low-income roster, following the roster
    status. 特困 members are not paid it (their support already covers it), and some others were left out."""
    rng = world.rng("civil_affairs.hardship_disability_subsidy")
    held = certificates(world)
    left_out = {p.id_number for p in not_applied_living_subsidies(world)}
    rows = []
    for person in world.cohort("disabled"):
        member = world.roster_of(person)
        if member is None or member.category == "tekun" or person.id_number in left_out:
            continue
        kind, grade = held[person.id_number]
        last_day = (member.termination_date or REFERENCE_DATE) - timedelta(days=1)
        approval = a_day(rng, min(max(member.approval_date, person.birth_date), last_day), last_day)
        start = month_start(approval)
        end, reason, paid = None, None, REFERENCE_DATE
        if member.status == "terminated":
            # The household left the roster, so the subsidy stopped the same day.
            end, reason, paid = member.termination_date, "improved", member.termination_date
        elif member.status == "suspended":
            paid = a_day(rng, approval, REFERENCE_DATE - timedelta(days=31))
        rows.append(
            {
                "sfzh": person.id_number,
                "xm": person.name,
                "jtbh": member.household_id,
                "dsrklb": CATEGORY_CODES[member.category],
                "cjlb": kind,
                "cjdj": grade,
                "ybzje": HARDSHIP_AMOUNT[grade],
                "sprq": approval,
                "ffqsrq": start,
                "zhffyf": f"{max(paid, start):%Y-%m}",
                "zzrq": end,
                "zzyy": HARDSHIP_END_CODES[reason] if reason else None,
                "zt": STATUS_CODES["active" if member.status == "gradual_exit" else member.status],  # 渐退: still paid
                "yhkh": bank_card(rng),
                "qxdm": person.district_code,
                "jddm": person.street_code,
                "gxsj": moment(rng),
            }
        )
    return rows


def hardship_disability_subsidy(world: World, bad: int) -> SampleTable:
    """困难残疾人生活补贴: see ``hardship_subsidy_rows``."""
    rows = hardship_subsidy_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:civil_affairs.hardship_disability_subsidy",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_disability_type": set_value("cjlb", "8"),
            "unknown_disability_grade": set_value("cjdj", "5"),
            "negative_amount": set_value("ybzje", yuan(-100)),
            DUPLICATE: None,
        },
    )
    return SampleTable(HARDSHIP_COLUMNS, rows, kinds)
