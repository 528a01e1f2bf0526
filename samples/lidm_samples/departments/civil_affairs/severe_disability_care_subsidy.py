"""civil_affairs.severe_disability_care_subsidy: the care subsidy for severely disabled people
(重度残疾人护理补贴)."""

from __future__ import annotations

from datetime import date, timedelta
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

CARE_COLUMNS = {
    "sfzh": text(18),
    "xm": text(50),
    "jtbh": text(32),
    "dsrklb": code(2),
    "cjlb": code(1),
    "cjdj": code(1),
    "hlfs": code(1),  # 1 居家护理, 2 机构托养, 3 日间照料
    "ybzje": money(),
    "sprq": day(),
    "ffqsrq": day(),
    "zhffyf": code(7),
    "zzrq": day(),
    "zzyy": code(2),
    "zt": code(1),
    "yhkh": text(32),
    "qxdm": code(6),
    "jddm": code(9),
    "gxsj": timestamp(),
}
CARE_END_CODES = {"regraded": "01", "certificate_invalid": "02", "deceased": "03", "moved_out": "04"}
CARE_AMOUNT = {"1": yuan(150), "2": yuan(100)}
CARE_SUBSIDY_SINCE = date(2016, 1, 1)  # the two disability subsidies were introduced nationwide in 2016


def not_applied_care_subsidies(world: World) -> list[Person]:
    """Severely disabled active roster members left out of the care subsidy: the "policy not applied" cases
    (the world's care_subsidy_missing cohort; their certificate is valid)."""
    return list(world.cohort("care_subsidy_missing"))


def not_applied_care_subsidy(world: World) -> Person | None:
    """The first of ``not_applied_care_subsidies``, or None."""
    left_out = not_applied_care_subsidies(world)
    return left_out[0] if left_out else None


def care_subsidy_rows(world: World) -> list[dict[str, Any]]:
    """重度残疾人护理补贴 rows before any fault: grade 1-2 certificate holders, means-test free, except the
    roster members left out."""
    rng = world.rng("civil_affairs.severe_disability_care_subsidy")
    held = certificates(world)
    left_out = {p.id_number for p in not_applied_care_subsidies(world)}
    rows = []
    for person in world.cohort("severe_disabled"):
        if person.id_number in left_out:
            continue  # eligible but never approved: the monitoring must find these people
        member = world.roster_of(person)
        kind, grade = held[person.id_number]
        approval = a_day(rng, max(CARE_SUBSIDY_SINCE, person.birth_date), REFERENCE_DATE - timedelta(days=1))
        start = month_start(approval)
        status, end, reason, paid = "active", None, None, REFERENCE_DATE
        settled = (REFERENCE_DATE - approval).days > 60
        # Roster members stay active so the only gaps monitoring finds among them are the ones left out.
        if member is None and settled and person.residence_status == "moved_out":
            status, reason = "terminated", "moved_out"
        elif member is None and settled and rng.random() < 0.05:
            status, reason = "terminated", rng.choice(("regraded", "certificate_invalid"))
        elif member is None and settled and rng.random() < 0.04:
            status = "suspended"
            paid = a_day(rng, approval, REFERENCE_DATE - timedelta(days=31))
        if status == "terminated":
            end = a_day(rng, approval + timedelta(days=31), REFERENCE_DATE - timedelta(days=1))
            paid = end
        rows.append(
            {
                "sfzh": person.id_number,
                "xm": person.name,
                "jtbh": member.household_id if member else None,
                "dsrklb": CATEGORY_CODES[member.category] if member else None,
                "cjlb": kind,
                "cjdj": grade,
                "hlfs": rng.choices(("1", "2", "3"), weights=(80, 10, 10))[0],
                "ybzje": CARE_AMOUNT[grade],
                "sprq": approval,
                "ffqsrq": start,
                "zhffyf": f"{max(paid, start):%Y-%m}",
                "zzrq": end,
                "zzyy": CARE_END_CODES[reason] if reason else None,
                "zt": STATUS_CODES[status],
                "yhkh": bank_card(rng),
                "qxdm": person.district_code,
                "jddm": person.street_code,
                "gxsj": moment(rng),
            }
        )
    return rows


def severe_disability_care_subsidy(world: World, bad: int) -> SampleTable:
    """重度残疾人护理补贴: grade 1-2 certificate holders, means-test free; some roster members are left out."""
    rows = care_subsidy_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:civil_affairs.severe_disability_care_subsidy",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_care_mode": set_value("hlfs", "9"),
            "unknown_disability_grade": set_value("cjdj", "0"),
            "missing_name": set_value("xm", None),
            DUPLICATE: None,
        },
    )
    return SampleTable(CARE_COLUMNS, rows, kinds)
