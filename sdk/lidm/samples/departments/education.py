"""教育局 (education bureau): the monthly student enrollment workbook and the daily student aid CSV, both dropped
on SFTP with Chinese headers.

Who studies where, in which stage and grade, and whose family the school assessed as in hardship is decided
once here, so an aid award names the same school and stage as the student's enrollment row.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from lidm.samples.people import DISTRICTS, REFERENCE_DATE, Person
from lidm.samples.sources import (
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
from lidm.samples.world import World, age_on
from lidm.samples.write import CATEGORY_LABELS

# --- schools -------------------------------------------------------------------------------------------

STAGE_LABELS = {
    "preschool": "学前教育",
    "primary": "小学",
    "junior": "初中",
    "senior": "普通高中",
    "secondary_vocational": "中等职业教育",
    "higher": "高等教育",
}
_STAGE_DIGIT = {"preschool": "1", "primary": "2", "junior": "3", "senior": "4", "secondary_vocational": "5"}
_SENIOR = {
    "430102": ("长沙市第十一中学", "长沙市田家炳实验中学"),
    "430103": ("长沙市长郡中学", "长沙市雅礼中学"),
    "430104": ("湖南师范大学附属中学", "长沙市麓山国际实验学校"),
    "430105": ("长沙市第一中学", "长沙市明德中学", "长沙市周南中学"),
    "430111": ("长沙市南雅中学", "长沙市第二十一中学"),
    "430112": ("长沙市望城区第一中学",),
    "430121": ("长沙县第一中学", "长沙县实验中学"),
    "430181": ("浏阳市第一中学", "浏阳市第三中学"),
    "430182": ("宁乡市第一高级中学",),
}
_VOCATIONAL = {
    "430102": ("长沙财经学校",),
    "430103": ("长沙市电子工业学校",),
    "430104": ("长沙市信息职业技术学校",),
    "430105": ("长沙市第一职业中专学校",),
    "430111": ("长沙市现代服务职业中专学校",),
    "430112": ("长沙市望城区职业中专学校",),
    "430121": ("长沙县职业中专学校",),
    "430181": ("浏阳市职业中专学校",),
    "430182": ("宁乡市职业中专学校",),
}
_HIGHER = (  # (name, district, weight)
    ("中南大学", "430104", 6),
    ("湖南大学", "430104", 5),
    ("湖南师范大学", "430104", 5),
    ("长沙理工大学", "430111", 4),
    ("湖南农业大学", "430102", 3),
    ("湖南中医药大学", "430104", 3),
    ("长沙学院", "430105", 3),
    ("长沙民政职业技术学院", "430103", 3),
    ("湖南大众传媒职业技术学院", "430104", 2),
    ("长沙航空职业技术学院", "430121", 2),
)


@dataclass(frozen=True)
class School:
    code: str  # 12 digits: district, stage digit, serial
    name: str
    district: str
    stage: str


def _district_prefix(district: str) -> str:
    name = DISTRICTS[district][0]
    return f"长沙市{name}" if name.endswith("区") else name


def schools() -> dict[tuple[str, str, str], School]:
    """Schools by (stage, district, street or name); kindergartens, primary and junior schools serve a street."""
    out: dict[tuple[str, str, str], School] = {}
    for district, (_, streets) in DISTRICTS.items():
        prefix = _district_prefix(district)
        for i, street in enumerate(streets):
            stem = street.removesuffix("街道")
            town = street.endswith("镇")
            names = {
                "preschool": f"{prefix}{stem}{'中心' if town else ''}幼儿园",
                "primary": f"{prefix}{stem}{'中心' if town else ''}小学",
                "junior": f"{prefix}{stem}{'' if town or i % 2 else '实验'}中学",
            }
            for stage, name in names.items():
                out[stage, district, street] = School(
                    f"{district}{_STAGE_DIGIT[stage]}{i + 1:05d}", name, district, stage
                )
        for stage, table in (("senior", _SENIOR), ("secondary_vocational", _VOCATIONAL)):
            for i, name in enumerate(table[district]):
                out[stage, district, name] = School(
                    f"{district}{_STAGE_DIGIT[stage]}{i + 101:05d}", name, district, stage
                )
    for i, (name, district, _) in enumerate(_HIGHER):
        out["higher", district, name] = School(f"{district}6{i + 1:05d}", name, district, "higher")
    return out


# --- students ------------------------------------------------------------------------------------------

_ROSTER_HARDSHIP = {
    "tekun": "especially_difficult",
    "dibao": "especially_difficult",
    "dibao_edge": "difficult",
    "return_risk": "difficult",
    "rigid_expense": "generally_difficult",
    "other_hardship": "generally_difficult",
}


@dataclass
class Student:
    person: Person
    school: School
    grade: int
    enrolled: date
    status: str  # enrolled | suspended | dropped_out | transferred
    changed: date | None
    boarding: bool
    hardship: str | None

    @property
    def stage(self) -> str:
        return self.school.stage


def _stage(rng: random.Random, age: int) -> tuple[str, int]:
    """Stage and grade for an age on 1 September (children start primary school at 6)."""
    if age <= 5:
        return "preschool", max(1, age - 2)
    if age <= 11:
        return "primary", age - 5
    if age <= 14:
        return "junior", age - 11
    if age <= 17:
        return ("secondary_vocational" if rng.random() < 0.4 else "senior"), age - 14
    grade = max(1, age - 17 - (rng.random() < 0.25))
    return "higher", 5 if grade >= 5 and rng.random() < 0.15 else min(grade, 4)  # 5th year: medicine


def students(world: World) -> list[Student]:
    """Every student of the cohort with school, stage, grade and status (one private generator)."""
    rng = world.rng("education.students")
    by_key = schools()
    out = []
    school_year = date(REFERENCE_DATE.year if REFERENCE_DATE.month >= 9 else REFERENCE_DATE.year - 1, 9, 1)
    for p in world.cohort("students"):
        stage, grade = _stage(rng, age_on(p, school_year))
        streets = DISTRICTS[p.district_code][1]
        street = next(s for s in streets if p.address.startswith(f"长沙市{DISTRICTS[p.district_code][0]}{s}"))
        if stage in ("preschool", "primary", "junior"):
            if rng.random() < 0.05:
                street = rng.choice(streets)  # enrolled across the street boundary
            school = by_key[stage, p.district_code, street]
        elif stage == "higher":
            name, district, _ = rng.choices(_HIGHER, weights=[w for *_, w in _HIGHER])[0]
            school = by_key[stage, district, name]
        else:
            table = _SENIOR if stage == "senior" else _VOCATIONAL
            school = by_key[stage, p.district_code, rng.choice(table[p.district_code])]
        enrolled = date(school_year.year - grade + 1, 9, 1)
        draw = rng.random()
        status = "enrolled"
        if draw < 0.015:
            status = "suspended"
        elif draw < 0.025:
            status = "transferred"
        elif draw < 0.035 and stage in ("junior", "senior", "secondary_vocational"):
            status = "dropped_out"
        changed = (
            a_day(rng, enrolled + timedelta(days=20), REFERENCE_DATE - timedelta(days=1))
            if status != "enrolled"
            else None
        )
        town = p.street_code[6] == "1"
        boarding_share = {"preschool": 0, "primary": 0.2 if town else 0.02, "junior": 0.6 if town else 0.1}
        boarding = rng.random() < boarding_share.get(stage, 0.9 if stage == "higher" else 0.7)
        member = world.roster_of(p)
        if member and member.status != "terminated":
            hardship = _ROSTER_HARDSHIP[member.category]
            if hardship == "especially_difficult" and member.category == "dibao" and rng.random() < 0.4:
                hardship = "difficult"
        else:
            draw = rng.random()
            hardship = (
                rng.choice(("difficult", "generally_difficult", "generally_difficult"))
                if draw < 0.04
                else "not_difficult"
                if draw < 0.10
                else None
            )
        out.append(Student(p, school, grade, enrolled, status, changed, boarding, hardship))
    return out


# --- education.student_enrollment (monthly XLSX) ---------------------------------------------------------

ENROLLMENT_STATUS_LABELS = {
    "enrolled": "在读",
    "suspended": "休学",
    "dropped_out": "辍学",
    "graduated": "毕业",
    "transferred": "转学",
}
HARDSHIP_LABELS = {
    "especially_difficult": "特别困难",
    "difficult": "比较困难",
    "generally_difficult": "一般困难",
    "not_difficult": "不困难",
}
ENROLLMENT_HEADER = (
    "姓名", "性别", "身份证件号", "出生日期", "户号", "学校标识码", "学校名称", "学段", "年级", "班级",
    "学籍状态", "入学日期", "学籍变动日期", "是否寄宿", "家庭经济困难认定等级", "学校所在区县代码", "更新时间",
)  # fmt: skip


def student_enrollment(world: World, bad: int) -> SampleTable:
    rng = world.rng("education.student_enrollment")
    rows = []
    for s in students(world):
        p = s.person
        last = max(s.enrolled, s.changed or s.enrolled)
        rows.append(
            {
                "姓名": p.name,
                "性别": "男" if p.gender == "male" else "女",
                "身份证件号": p.id_number,
                "出生日期": p.birth_date,
                "户号": p.household_id if rng.random() < 0.9 else None,
                "学校标识码": s.school.code,
                "学校名称": s.school.name,
                "学段": STAGE_LABELS[s.stage],
                "年级": s.grade,
                "班级": f"{rng.randint(1, 12)}班",
                "学籍状态": ENROLLMENT_STATUS_LABELS[s.status],
                "入学日期": s.enrolled,
                "学籍变动日期": f"{s.changed:%Y/%m/%d}" if s.changed else None,
                "是否寄宿": "是" if s.boarding else "否",
                "家庭经济困难认定等级": HARDSHIP_LABELS[s.hardship] if s.hardship else None,
                "学校所在区县代码": s.school.district,
                "更新时间": moment(rng, days=max(1, min((REFERENCE_DATE - last).days, 400))),
            }
        )
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:education.student_enrollment",
        {
            "bad_check_char": wrong_check_char("身份证件号"),
            "unknown_school_stage": set_value("学段", "特殊教育"),
            "impossible_enrollment_date": set_value("入学日期", "2026-02-30"),
            "grade_out_of_range": set_value("年级", 9),
            "duplicate_key": None,
        },
    )
    return SampleTable({c: text() for c in ENROLLMENT_HEADER}, rows, kinds)


# --- education.education_assistance (daily CSV, UTF-8 with BOM) -------------------------------------------

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


def education_assistance(world: World, bad: int) -> SampleTable:
    rng = world.rng("education.education_assistance")
    rows = []
    number = 0
    for s in students(world):
        if s.status != "enrolled":
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


SOURCES = [
    SampleSource(
        "education.student_enrollment",
        "education_drop",
        student_enrollment,
        file=f"xjxx_{REFERENCE_DATE:%Y%m}.xlsx",
        serial_dates=("入学日期",),
    ),
    SampleSource(
        "education.education_assistance",
        "education_drop",
        education_assistance,
        file=f"xszz_{REFERENCE_DATE:%Y%m%d}.csv",
        encoding="utf-8-sig",
    ),
]
