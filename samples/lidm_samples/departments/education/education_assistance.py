"""education.education_assistance: the daily student aid CSV (UTF-8 with BOM)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

from lidm_samples.departments.education.students import STAGE_LABELS, Student, students
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.sources import SampleTable, a_day, inject, moment, set_value, text, wrong_check_char, yuan
from lidm_samples.world import World
from lidm_samples.write import CATEGORY_LABELS

AID_LABELS = {
    "grant": "国家助学金",
    "living_allowance": "生活补助",
    "work_study": "勤工助学",
    "student_loan": "助学贷款",
    "fee_waiver": "学费减免",
}
TERM_LABELS = {"autumn": "秋季学期", "spring": "春季学期", "full_year": "全学年"}
DISBURSEMENT_LABELS = {"approved": "已审批", "paid": "已发放", "revoked": "已撤销"}
ASSISTANCE_HEADER = (
    "资助记录编号", "学生身份证号", "学生姓名", "救助家庭编号", "低收入人口类别", "学段", "资助项目", "资助金额",
    "学年", "学期", "学校标识码", "学校名称", "审批日期", "发放日期", "发放状态", "区县代码", "更新时间",
)  # fmt: skip
# Yearly standards: living allowance for boarders (half for day pupils), national grants by hardship tier.
_ALLOWANCE = {"preschool": 1000, "primary": 1000, "junior": 1250}
_GRANT = {
    "senior": {"especially_difficult": 3000, "difficult": 2000, "generally_difficult": 1000},
    "secondary_vocational": {"especially_difficult": 2000, "difficult": 2000, "generally_difficult": 2000},
    "higher": {"especially_difficult": 4400, "difficult": 3300, "generally_difficult": 2200},
}
_FEES = {"senior": 1100, "secondary_vocational": 2400, "higher": 5500}  # per year waived for roster families


def _awards(rng: random.Random, s: Student, roster: bool) -> list[tuple[str, str, str, Decimal]]:
    """(academic year, term, aid kind, amount) for a student this year and, in the same stage, last year."""
    level = s.hardship if s.hardship in ("especially_difficult", "difficult") else "generally_difficult"
    years = ["2026-2027"] + (["2025-2026"] if s.grade > 1 else [])
    out = []
    for year in years:
        terms = ("autumn",) if year == "2026-2027" else ("autumn", "spring")
        for term in terms:
            if s.stage in _ALLOWANCE:
                yearly = _ALLOWANCE[s.stage] * (1 if s.boarding or s.stage == "preschool" else 0.5)
                out.append((year, term, "living_allowance", yuan(yearly / 2)))
            else:
                if s.stage != "secondary_vocational" or s.grade <= 2:  # vocational grants cover the first two years
                    out.append((year, term, "grant", yuan(_GRANT[s.stage][level] / 2)))
                if roster:
                    out.append((year, term, "fee_waiver", yuan(_FEES[s.stage] / 2)))
                if s.stage == "higher" and rng.random() < 0.3:
                    out.append((year, term, "work_study", yuan(rng.randrange(1200, 3001, 100))))
        if s.stage == "higher" and rng.random() < 0.6:
            out.append((year, "full_year", "student_loan", yuan(rng.randrange(8000, 16001, 1000))))
    return out


def _term_dates(rng: random.Random, year: str, term: str) -> tuple[date, date]:
    """(approval, payment) for an award: approved early in the term, paid within weeks."""
    first = int(year[:4])
    if term == "spring":
        approved = a_day(rng, date(first + 1, 3, 10), date(first + 1, 4, 15))
    elif term == "full_year":
        approved = a_day(rng, date(first, 8, 15), date(first, 9, 30))
    else:
        approved = a_day(rng, date(first, 9, 20), date(first, 10, 31))
    return approved, approved + timedelta(days=rng.randint(10, 45))


def education_assistance_rows(world: World) -> list[dict[str, str | None]]:
    """The student aid CSV's rows before any fault: awards to enrolled students of roster families and of
    families the school assessed in hardship; the student_aid_missing cohort was overlooked."""
    rng = world.rng("education.education_assistance")
    overlooked = {p.id_number for c in ("student_aid_missing", "hardship_student_overlooked") for p in world.cohort(c)}
    rows = []
    number = 0
    for s in students(world):
        if s.status != "enrolled" or s.person.id_number in overlooked:
            continue  # no new aid while suspended, and none once the student has left the school
        member = world.roster_of(s.person)
        if member:
            if member.status == "terminated" and (member.termination_date or REFERENCE_DATE) < date(2026, 9, 1):
                continue
        elif s.hardship not in ("especially_difficult", "difficult", "generally_difficult"):
            continue
        for year, term, kind, amount in _awards(rng, s, member is not None):
            approved, paid = _term_dates(rng, year, term)
            status = "paid" if paid < REFERENCE_DATE else "approved"
            if member and member.status == "terminated" and member.termination_date and approved >= date(2026, 9, 1):
                status = "revoked"  # the family left the roster after the award was approved
            number += 1
            last = paid if status == "paid" else approved
            rows.append(
                {
                    "资助记录编号": f"XSZZ{s.school.district}{year[:4]}{number:07d}",
                    "学生身份证号": s.person.id_number,
                    "学生姓名": s.person.name,
                    "救助家庭编号": member.household_id if member else None,
                    "低收入人口类别": CATEGORY_LABELS[member.category] if member else None,
                    "学段": STAGE_LABELS[s.stage],
                    "资助项目": AID_LABELS[kind],
                    "资助金额": f"{amount:.2f}",
                    "学年": year,
                    "学期": TERM_LABELS[term],
                    "学校标识码": s.school.code,
                    "学校名称": s.school.name,
                    "审批日期": f"{approved:%Y/%m/%d}",
                    "发放日期": f"{paid:%Y/%m/%d}" if status == "paid" else None,
                    "发放状态": DISBURSEMENT_LABELS[status],
                    "区县代码": s.school.district,
                    "更新时间": moment(rng, days=max(1, (REFERENCE_DATE - last).days)),
                }
            )
    return rows


def education_assistance(world: World, bad: int) -> SampleTable:
    rows = education_assistance_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:education.education_assistance",
        {
            "bad_check_char": wrong_check_char("学生身份证号"),
            "unknown_aid_kind": set_value("资助项目", "奖学金"),
            "negative_amount": set_value("资助金额", "-500.00"),
            "impossible_approval_date": set_value("审批日期", "2026/02/30"),
            "duplicate_key": None,
        },
    )
    return SampleTable({c: text() for c in ASSISTANCE_HEADER}, rows, kinds)
