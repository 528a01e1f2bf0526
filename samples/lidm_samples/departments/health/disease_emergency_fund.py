"""health.disease_emergency_fund: the disease emergency relief fund's spreadsheet (疾病应急救助基金)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from lidm_samples.departments.health._common import MAJOR_HOSPITALS, near, update_time
from lidm_samples.people import REFERENCE_DATE, Person
from lidm_samples.sources import SampleTable, a_day, inject, set_value, text
from lidm_samples.world import World, age_on

EMERGENCY_TYPES = {
    "trauma": "严重创伤",
    "cardio_cerebrovascular": "急性心脑血管疾病",
    "poisoning": "急性中毒",
    "respiratory": "急性呼吸衰竭等呼吸系统急症",
    "obstetric": "危重孕产妇",
    "neonatal": "危重新生儿",
    "burn": "严重烧伤",
    "other": "其他急危重症",
}
IDENTITY_LABELS = {"unable_to_pay": "身份明确但无力缴费", "unidentified": "身份不明"}
DISBURSEMENT_LABELS = {"approved": "已审批", "paid": "已发放", "revoked": "已撤销"}
FUND_HEADER = (
    "案件编号",
    "身份证号",
    "姓名",
    "身份状态",
    "救治医院编码",
    "救治医院名称",
    "急危重症类型",
    "入院日期",
    "出院日期",
    "救治费用",
    "基金支付金额",
    "申请日期",  # typed by the fund office as plain numbers: Excel serial days
    "审核日期",
    "拨付日期",
    "拨付状态",
    "区县代码",
    "更新时间",
)


def _emergency_type(rng: random.Random, person: Person | None) -> str:
    if person is not None and age_on(person) < 1:
        return "neonatal"
    kinds = ["trauma", "cardio_cerebrovascular", "poisoning", "respiratory", "burn", "other"]
    weights = [35, 25, 10, 12, 6, 8]
    if person is not None and person.gender == "female" and 20 <= age_on(person) <= 42:
        kinds.append("obstetric")
        weights.append(15)
    return rng.choices(kinds, weights=weights)[0]


def fund_rows(world: World) -> list[dict[str, Any]]:
    """The fund office's cases, before any fault: random patients, people of unknown identity, and the planted
    roster members (emergency_fund_roster: paid this year; emergency_fund_lapsed: revoked, or over a year ago)."""
    rng = world.rng("health.disease_emergency_fund")
    living = world.living()
    helped = {p.id_number for p in world.cohort("emergency_fund_roster")}
    lapsed = {p.id_number: ("revoked", "old")[i % 2] for i, p in enumerate(world.cohort("emergency_fund_lapsed"))}
    planted = world.cohort("emergency_fund_roster") + world.cohort("emergency_fund_lapsed")
    chosen = {p.id_number for p in planted}
    pool = [p for p in living if p.id_number not in chosen]
    patients: list[Person | None] = list(rng.sample(pool, max(3, round(0.004 * len(living))))) + planted
    patients += [None] * max(1, len(patients) // 3)  # found unconscious, no papers: identity unknown
    rng.shuffle(patients)
    rows = []
    for seq, person in enumerate(patients, start=1):
        hospital = near(rng, person, MAJOR_HOSPITALS)
        admission = a_day(rng, date(2024, 1, 1), REFERENCE_DATE - timedelta(days=45))
        fate = lapsed.get(person.id_number) if person else None
        if person is not None and person.id_number in helped:
            admission = a_day(rng, REFERENCE_DATE - timedelta(days=200), REFERENCE_DATE - timedelta(days=80))
        elif fate == "old":
            admission = a_day(rng, date(2024, 1, 1), REFERENCE_DATE - timedelta(days=500))
        discharge = admission + timedelta(days=rng.randint(1, 25))
        applied = discharge + timedelta(days=rng.randint(3, 15))
        approved = applied + timedelta(days=rng.randint(5, 20))
        status = "paid" if approved < REFERENCE_DATE - timedelta(days=20) else "approved"
        if rng.random() < 0.06 and not (person is not None and person.id_number in helped):
            status = "revoked"  # the patient turned out to be insured, or the family paid
        if fate == "revoked":
            status = "revoked"
        paid_on = approved + timedelta(days=rng.randint(5, 18)) if status == "paid" else None
        total = rng.randrange(500_000, 12_000_000) / 100
        fund = round(min(total * rng.uniform(0.6, 1.0), 50_000.0), 2)
        last = max(d for d in (approved, paid_on) if d is not None)
        rows.append(
            {
                "案件编号": f"YJJZ{admission.year}{hospital.district}{seq:05d}",
                "身份证号": person.id_number if person else None,
                "姓名": person.name if person else None,
                "身份状态": IDENTITY_LABELS["unidentified" if person is None else "unable_to_pay"],
                "救治医院编码": hospital.credit_code,
                "救治医院名称": hospital.name,
                "急危重症类型": EMERGENCY_TYPES[_emergency_type(rng, person)],
                "入院日期": admission,
                "出院日期": discharge,
                "救治费用": total,
                "基金支付金额": fund,
                "申请日期": applied,
                "审核日期": approved,
                "拨付日期": paid_on,
                "拨付状态": DISBURSEMENT_LABELS[status],
                "区县代码": hospital.district,
                "更新时间": update_time(rng, last).replace(microsecond=0),  # Excel keeps whole seconds
            }
        )
    return rows


def disease_emergency_fund(world: World, bad: int) -> SampleTable:
    """The fund office's spreadsheet: ``fund_rows`` with the faults asked for."""
    rows = fund_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:health.disease_emergency_fund",
        {
            "unknown_emergency_type": set_value("急危重症类型", "急性过敏"),
            "impossible_admission_date": set_value("入院日期", "2026-02-30"),
            "negative_fund_paid": set_value("基金支付金额", -1200.0),
            "district_outside_city": set_value("区县代码", "430621"),
            "duplicate_key": None,
        },
    )
    return SampleTable({c: text() for c in FUND_HEADER}, rows, kinds)
