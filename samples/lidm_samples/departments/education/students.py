"""Schools and students: who studies where, in which stage and grade, and whose family the school assessed
as in hardship, decided once for both education datasets."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from lidm_samples.people import DISTRICTS, REFERENCE_DATE, Person
from lidm_samples.sources import a_day
from lidm_samples.world import World, age_on

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
    no_aid = {p.id_number for p in world.cohort("student_aid_missing")}
    on_leave = {p.id_number for p in world.cohort("student_suspended")}
    planted = ("hardship_student_overlooked", "hardship_student_aided")
    certified = {p.id_number for c in planted for p in world.cohort(c)}
    not_difficult = {p.id_number for p in world.cohort("student_not_difficult")}
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
        if p.id_number in no_aid or p.id_number in on_leave:
            status = "suspended" if p.id_number in on_leave else "enrolled"  # planted (lidm_samples.world.PLANTED)
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
        if p.id_number in certified or p.id_number in not_difficult:  # planted off the roster (world.PLANTED)
            status, changed = "enrolled", None
            hardship = "difficult" if p.id_number in certified else "not_difficult"
        out.append(Student(p, school, grade, enrolled, status, changed, boarding, hardship))
    return out
