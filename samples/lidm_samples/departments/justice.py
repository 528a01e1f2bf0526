"""司法局 (justice bureau): legal aid cases, a daily UTF-8 CSV (with a BOM) exported from its case system."""

from __future__ import annotations

import random
from datetime import date, timedelta

from lidm_samples.departments.health import update_time
from lidm_samples.people import DISTRICTS, REFERENCE_DATE, Person
from lidm_samples.sources import SampleSource, SampleTable, a_day, inject, set_value, text, wrong_check_char
from lidm_samples.world import World, age_on
from lidm_samples.write import CATEGORY_LABELS

CASE_TYPES = {
    "civil": "民事",
    "criminal": "刑事",
    "administrative": "行政",
    "labour_dispute": "劳动争议",
    "state_compensation": "国家赔偿",
    "other": "其他",
}
AID_FORMS = {
    "consultation": "法律咨询",
    "document_drafting": "代拟法律文书",
    "criminal_defence": "刑事辩护与代理",
    "litigation_agency": "诉讼代理",
    "non_litigation_agency": "非诉讼代理",
    "duty_lawyer": "值班律师法律帮助",
    "labour_arbitration": "劳动争议调解与仲裁代理",
}
BASES = {
    "low_income": "低收入人口免予核查",
    "special_group": "特定群体免予核查",
    "assistance_recipient": "救助优抚对象免予核查",
    "migrant_worker": "农民工追索劳动报酬工伤赔偿免予核查",
    "means_tested": "经核查经济困难",
    "not_required": "不受经济困难条件限制",
}
STATUSES = {
    "received": "已受理",
    "granted": "准予援助",
    "refused": "不予援助",
    "assigned": "已指派",
    "closed": "已结案",
    "terminated": "终止援助",
}
ABBREVIATIONS = {
    "430102": "芙",
    "430103": "天",
    "430104": "岳",
    "430105": "开",
    "430111": "雨",
    "430112": "望",
    "430121": "长县",
    "430181": "浏",
    "430182": "宁",
}
LAW_FIRMS = (
    "湖南麓山律师事务所",
    "湖南湘江律师事务所",
    "湖南星城律师事务所",
    "湖南橘洲律师事务所",
    "湖南芙蓉律师事务所",
    "湖南岳麓律师事务所",
    "湖南楚才律师事务所",
)
LEGAL_AID_HEADER = (
    "案件编号",
    "受援人姓名",
    "受援人身份证号",
    "联系电话",
    "案件类型",
    "援助形式",
    "经济困难审查依据",
    "低收入人口类别",
    "申请日期",
    "审查决定日期",
    "结案日期",
    "案件状态",
    "法律援助机构",
    "承办机构",
    "区县代码",
    "更新时间",
)


def _institution(district: str) -> str:
    name = DISTRICTS[district][0]
    return f"{'长沙市' if name.endswith('区') else ''}{name}法律援助中心"


def _case(rng: random.Random, person: Person, basis: str) -> tuple[str, str]:
    """(case type, form of aid) plausible for who is asking and on what basis."""
    if basis == "migrant_worker":
        return "labour_dispute", rng.choice(("labour_arbitration", "litigation_agency"))
    if basis == "not_required" or (age_on(person) < 18 and rng.random() < 0.5):
        return "criminal", rng.choice(("criminal_defence", "duty_lawyer"))
    kind = rng.choices(("civil", "labour_dispute", "administrative", "state_compensation", "other"), (70, 18, 6, 1, 5))
    form = {"labour_dispute": "labour_arbitration", "other": "consultation"}.get(kind[0])
    form = form or rng.choices(("litigation_agency", "non_litigation_agency", "document_drafting"), (70, 15, 15))[0]
    return kind[0], form


def legal_aid(world: World, bad: int) -> SampleTable:
    rng = world.rng("justice.legal_aid")
    applicants: list[tuple[Person, str, str | None, date]] = []  # person, basis, low-income category, earliest day
    # low-income applicants prove their category while on the roster (not suspended, not yet terminated)
    adults = [
        m
        for m in world.roster
        if m.person.residence_status != "deceased"
        and age_on(m.person) >= 18
        and (m.status == "active" or (m.termination_date or date.min) > date(2024, 3, 1))
    ]
    for member in rng.sample(adults, max(1, round(0.06 * len(adults)))):
        applicants.append((member.person, "low_income", member.category, member.approval_date))
    # lidm_samples.leavers: roster members whose application this year was refused, or granted (a near miss)
    decided_as = {p.id_number: s for s in ("refused", "granted") for p in world.cohorts.get(f"legal_aid_{s}", [])}
    have = {p.id_number for p, *_ in applicants}
    for pid in sorted(decided_as.keys() - have):
        member = world.roster_by_id[pid]
        applicants.append((member.person, "low_income", member.category, member.approval_date))
    on_roster = {m.person.id_number for m in world.roster}
    others = [p for p in world.aged(14, 90) if p.id_number not in on_roster]
    for person in rng.sample(others, max(3, round(0.006 * len(others)))):
        if age_on(person) < 18 or age_on(person) >= 70:
            basis = "special_group"
        else:
            basis = rng.choices(
                ("migrant_worker", "means_tested", "not_required", "assistance_recipient"), (35, 40, 15, 10)
            )[0]
        applicants.append((person, basis, None, date(2024, 1, 1)))

    cases = []
    for person, basis, category, earliest in applicants:
        member = world.roster_of(person)
        latest = REFERENCE_DATE - timedelta(days=1)
        if member is not None and member.termination_date is not None:
            latest = min(latest, member.termination_date - timedelta(days=1))  # proved while still on the roster
        cases.append((a_day(rng, max(earliest, date(2024, 1, 1)), latest), person, basis, category))
    cases.sort(key=lambda c: (c[0], c[1].id_number))  # numbered in the order they came in

    rows = []
    seq: dict[tuple[str, int], int] = {}
    for applied, person, basis, category in cases:
        if person.id_number in decided_as:  # applied two months ago, decided within the week
            applied = REFERENCE_DATE - timedelta(days=60)
        case_type, form = _case(rng, person, basis)
        district = person.district_code
        seq[district, applied.year] = seq.get((district, applied.year), 0) + 1
        age = (REFERENCE_DATE - applied).days
        status = rng.choices(
            ("received", "granted", "refused", "assigned", "closed", "terminated"), (4, 4, 4, 18, 65, 5)
        )[0]
        if age < 10:
            status = "received"
        if person.id_number in decided_as:
            status = decided_as[person.id_number]
        decided = applied + timedelta(days=rng.randint(1, 7)) if status != "received" else None
        closed = None
        if status in ("closed", "terminated") and decided is not None:
            if age < 40:
                status = "assigned"
            else:
                closed = a_day(rng, decided + timedelta(days=20), min(decided + timedelta(days=240), REFERENCE_DATE))
        undertaker = None
        if status in ("assigned", "closed", "terminated"):
            town = DISTRICTS[district][1][0].removesuffix("街道")
            undertaker = rng.choice(LAW_FIRMS) if rng.random() < 0.8 else f"{DISTRICTS[district][0]}{town}法律服务所"
        last = closed or decided or applied
        rows.append(
            {
                "案件编号": f"{ABBREVIATIONS[district]}法援〔{applied.year}〕{seq[district, applied.year]}号",
                "受援人姓名": person.name,
                "受援人身份证号": person.id_number,
                "联系电话": person.phone or "",
                "案件类型": CASE_TYPES[case_type],
                "援助形式": AID_FORMS[form],
                "经济困难审查依据": BASES[basis],
                "低收入人口类别": CATEGORY_LABELS[category] if category else "",
                "申请日期": f"{applied:%Y/%m/%d}",
                "审查决定日期": f"{decided:%Y/%m/%d}" if decided else "",
                "结案日期": f"{closed:%Y/%m/%d}" if closed else "",
                "案件状态": STATUSES[status],
                "法律援助机构": _institution(district),
                "承办机构": undertaker or "",
                "区县代码": district,
                "更新时间": f"{update_time(rng, last):%Y-%m-%d %H:%M:%S}",
            }
        )
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:justice.legal_aid",
        {
            "bad_check_char": wrong_check_char("受援人身份证号"),
            "unknown_case_type": set_value("案件类型", "知识产权"),
            "impossible_application_date": set_value("申请日期", "2026/02/30"),
            "bad_phone": set_value("联系电话", "0731-123"),
            "duplicate_key": None,
        },
    )
    return SampleTable({c: text() for c in LEGAL_AID_HEADER}, rows, kinds)


SOURCES = [
    SampleSource(
        "justice.legal_aid",
        "justice_drop",
        legal_aid,
        file=f"legal_aid_{REFERENCE_DATE:%Y%m%d}.csv",
        encoding="utf-8-sig",
    ),
]
