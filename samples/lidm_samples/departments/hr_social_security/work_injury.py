"""hr_social_security.work_injury: work-injury benefit claims, from recognition to payment."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from lidm_samples.departments.hr_social_security.careers import add_years, careers, stamp
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.sources import (
    SampleTable,
    a_day,
    code,
    day,
    inject,
    money,
    set_value,
    text,
    tie_at_boundary,
    timestamp,
    wrong_check_char,
    yuan,
)
from lidm_samples.world import World

INJURY_KINDS = {"accident": "1", "occupational_disease": "2"}
CARE_LEVELS = {"full": "1", "major": "2", "partial": "3"}
INJURY_BENEFITS = {
    "medical": "01",
    "rehabilitation": "02",
    "assistive_device": "03",
    "hospital_meal": "04",
    "lump_sum_disability": "05",
    "disability_allowance": "06",
    "nursing_care": "07",
    "lump_sum_medical": "08",
    "funeral": "09",
    "dependant_pension": "10",
    "lump_sum_death": "11",
}
CLAIM_STATUSES = {
    "accepted": "1",
    "approved": "2",
    "paying": "3",
    "paid": "4",
    "suspended": "5",
    "terminated": "6",
    "rejected": "7",
}
# Months of the worker's own wage paid as the lump-sum disability grant, and the monthly disability
# allowance as a share of it (grades 1-4), per the Regulations on Work-Related Injury Insurance.
_LUMP_MONTHS = {1: 27, 2: 25, 3: 23, 4: 21, 5: 18, 6: 16, 7: 13, 8: 11, 9: 9, 10: 7}
_ALLOWANCE_SHARE = {1: 0.90, 2: 0.85, 3: 0.80, 4: 0.75}
_CARE_SHARE = {"full": 0.5, "major": 0.4, "partial": 0.3}  # of the city's average monthly wage
_CITY_AVERAGE_WAGE = 8900
_RECOGNITION_PREFIX = {"430121": "长县人社工伤认字", "430181": "浏人社工伤认字", "430182": "宁人社工伤认字"}
WORK_INJURY_COLUMNS = {
    "sqbh": text(32),  # 待遇申领编号
    "sfzh": text(18),
    "xm": text(50),
    "dwmc": text(200),
    "tyxydm": code(18),
    "shlb": code(1),  # 伤害类别
    "shrq": day(),  # 受伤害日期
    "rdsbh": text(50),  # 工伤认定决定书编号
    "rdrq": day(),
    "scdj": code(2),  # 伤残等级 01-10
    "zlzadj": code(1),  # 生活自理障碍等级
    "jdrq": day(),  # 劳动能力鉴定结论日期
    "dylb": code(2),  # 待遇类别
    "ydyje": money(),  # 月待遇金额
    "ycxje": money(),  # 一次性支付金额
    "dyqsrq": day(),
    "dyzzrq": day(),
    "dyzt": code(1),
    "cbqx": code(6),  # 参保地区县
    "gxsj": timestamp(),
}


def work_injury(world: World, bad: int) -> SampleTable:
    rng = world.rng("hr_social_security.work_injury")
    everyone = careers(world)
    jobs = {
        pid: [j for j in c.jobs if j.form in ("employee", "public_welfare_post") and j.end_reason != "deceased"]
        for pid, c in everyone.items()
    }
    pool = world.aged(18, 64, [c.person for pid, c in everyone.items() if jobs[pid]])
    on_roster = [p for p in pool if world.roster_of(p)]
    injured = rng.sample(on_roster, min(len(on_roster), 2))
    others = [p for p in pool if not world.roster_of(p)]
    injured += rng.sample(others, min(len(others), max(1, round(0.012 * len(others)))))
    rows = []
    claim_no = 0
    for p in sorted(injured, key=lambda x: x.id_number):
        j = rng.choice(jobs[p.id_number])
        last = min(j.end or REFERENCE_DATE, REFERENCE_DATE - timedelta(days=40))
        injured_on = a_day(rng, max(j.start, add_years(REFERENCE_DATE, -6)), last)
        kind = "occupational_disease" if rng.random() < 0.1 else "accident"
        recognised = min(injured_on + timedelta(days=rng.randint(20, 120)), REFERENCE_DATE - timedelta(days=10))
        prefix = _RECOGNITION_PREFIX.get(p.district_code, "长人社工伤认字")
        recognition_no = f"{prefix}〔{recognised.year}〕第{rng.randint(100, 3999):04d}号"
        assessed = recognised + timedelta(days=rng.randint(120, 400))
        grade = care = None
        if assessed < REFERENCE_DATE - timedelta(days=5):
            grade = rng.choices(range(1, 11), weights=(1, 1, 2, 2, 4, 5, 8, 10, 14, 20))[0]
            if grade <= 4:
                care = rng.choices(("full", "major", "partial", None), weights=(3, 3, 3, 2))[0]
        else:
            assessed = None
        wage = rng.randint(4200, 11000)
        claims: list[tuple[str, Decimal, Decimal, date, date | None, str]] = []
        paid_on = min(recognised + timedelta(days=rng.randint(20, 90)), REFERENCE_DATE)
        medical = yuan(rng.uniform(3000, 90000 if grade and grade <= 4 else 30000))
        claims.append(("medical", yuan(0), medical, paid_on, None, "paid" if paid_on < REFERENCE_DATE else "approved"))
        if rng.random() < 0.6:
            claims.append(("hospital_meal", yuan(0), yuan(30 * rng.randint(7, 90)), paid_on, None, "paid"))
        if grade and assessed:
            granted = min(assessed + timedelta(days=rng.randint(15, 45)), REFERENCE_DATE)
            claims.append(("lump_sum_disability", yuan(0), yuan(wage * _LUMP_MONTHS[grade]), granted, None, "paid"))
            if grade <= 4:
                first = date(granted.year, granted.month, 1)
                allowance = yuan(wage * _ALLOWANCE_SHARE[grade])
                claims.append(("disability_allowance", allowance, yuan(0), first, None, "paying"))
                if care:
                    nursing = yuan(_CITY_AVERAGE_WAGE * _CARE_SHARE[care])
                    claims.append(("nursing_care", nursing, yuan(0), first, None, "paying"))
            elif j.end and j.end > granted:
                # Grades 5-10 who leave the employer get the one-off medical grant when the contract ends.
                grant = yuan(wage * rng.randint(6, 12))
                claims.append(("lump_sum_medical", yuan(0), grant, j.end, None, "paid"))
            if rng.random() < 0.15:
                claims.append(("rehabilitation", yuan(0), yuan(rng.uniform(2000, 20000)), granted, None, "paid"))
        for benefit, monthly, once, start, end, status in claims:
            claim_no += 1
            rows.append(
                {
                    "sqbh": f"GS{p.district_code}{start.year}{claim_no:06d}",
                    "sfzh": p.id_number,
                    "xm": p.name,
                    "dwmc": j.employer.name if j.employer else None,
                    "tyxydm": j.employer.credit_code if j.employer else None,
                    "shlb": INJURY_KINDS[kind],
                    "shrq": injured_on,
                    "rdsbh": recognition_no,
                    "rdrq": recognised,
                    "scdj": f"{grade:02d}" if grade else None,
                    "zlzadj": CARE_LEVELS[care] if care else None,
                    "jdrq": assessed,
                    "dylb": INJURY_BENEFITS[benefit],
                    "ydyje": monthly,
                    "ycxje": once,
                    "dyqsrq": start,
                    "dyzzrq": end,
                    "dyzt": CLAIM_STATUSES[status],
                    "cbqx": p.district_code,
                    "gxsj": stamp(rng, start),
                }
            )
    tie_at_boundary(rows, "gxsj")
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:hr_social_security.work_injury",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_benefit_kind": set_value("dylb", "99"),
            "negative_lump_sum": set_value("ycxje", Decimal("-1500.00")),
            "missing_recognition_no": set_value("rdsbh", None),
            "duplicate_key": None,
        },
    )
    return SampleTable(WORK_INJURY_COLUMNS, rows, kinds)
