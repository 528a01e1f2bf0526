"""What the health commission's datasets share: the city's hospitals, where a patient is treated, and a
record's update time."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from lidm_samples.people import DISTRICTS, REFERENCE_TIME, STREET_NAMES, Person
from lidm_samples.world import age_on

GENDER_CODES = {"male": "1", "female": "2"}
_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def _credit_code(district: str, number: int) -> str:
    """统一社会信用代码 of a public institution (GB 32100-2015, with its check character)."""
    body = f"12{district}{(444_870_000 + number * 7_919) % 10**9:09d}"
    total = sum(_CREDIT_CHARS.index(c) * w for c, w in zip(body, _CREDIT_WEIGHTS, strict=True))
    return body + _CREDIT_CHARS[(31 - total % 31) % 31]


@dataclass(frozen=True)
class Hospital:
    """A medical institution, with the codes each department knows it by."""

    name: str
    district: str
    grade: str  # NHSA hospital level code: 01-04 tertiary, 05-07 secondary, 08-10 primary, 11 unrated
    credit_code: str  # the health platform's institution code
    insurance_code: str  # 定点医疗机构编码 of the medical security platform

    @property
    def level(self) -> str:
        number = int(self.grade)
        return "tertiary" if number <= 4 else "secondary" if number <= 7 else "primary" if number <= 10 else "unrated"


_MAJOR = (
    ("中南大学湘雅医院", "430105", "02"),
    ("中南大学湘雅二医院", "430102", "02"),
    ("中南大学湘雅三医院", "430104", "02"),
    ("湖南省人民医院", "430102", "02"),
    ("湖南省肿瘤医院", "430104", "02"),
    ("湖南省儿童医院", "430103", "02"),
    ("湖南中医药大学第一附属医院", "430111", "02"),
    ("长沙市中心医院", "430111", "02"),
    ("长沙市第一医院", "430105", "02"),
    ("长沙市第三医院", "430103", "02"),
    ("长沙市第四医院", "430104", "03"),
    ("长沙县人民医院", "430121", "03"),
    ("浏阳市人民医院", "430181", "03"),
    ("宁乡市人民医院", "430182", "03"),
    ("浏阳市中医医院", "430181", "05"),
    ("宁乡市中医医院", "430182", "05"),
    ("望城区人民医院", "430112", "05"),
    ("望城区中医医院", "430112", "06"),
)


def _hospitals() -> list[Hospital]:
    named = list(_MAJOR)
    for district, (_, streets) in DISTRICTS.items():
        for street in streets:
            if street.endswith("镇"):
                named.append((f"{street}中心卫生院", district, "08"))
            else:
                named.append((f"{street}社区卫生服务中心", district, "11"))
    return [
        Hospital(name, district, grade, _credit_code(district, i), f"H{district}{i + 101:05d}")
        for i, (name, district, grade) in enumerate(named)
    ]


HOSPITALS = _hospitals()
MAJOR_HOSPITALS = [h for h in HOSPITALS if h.level in ("tertiary", "secondary")]


STREETS = STREET_NAMES
CENTRES = {c: next(h for h in HOSPITALS if h.name.startswith(s) and h.district == c[:6]) for c, s in STREETS.items()}
CHILDREN_HOSPITAL = "湖南省儿童医院"


def near(rng: random.Random, person: Person | None, pool: list[Hospital]) -> Hospital:
    """A hospital in the person's district most of the time, else anywhere in the city; children's
    hospital for children only."""
    child = person is not None and age_on(person) < 14
    if child and rng.random() < 0.5:
        return next(h for h in HOSPITALS if h.name == CHILDREN_HOSPITAL)
    pool = [h for h in pool if h.name != CHILDREN_HOSPITAL]
    local = [h for h in pool if person is not None and h.district == person.district_code]
    return rng.choice(local) if local and rng.random() < 0.6 else rng.choice(pool)


def update_time(rng: random.Random, day: date, delay_hours: float = 30) -> datetime:
    """A record's update time, some hours after the working day it happened, with microseconds."""
    start = datetime.combine(day, time(8)) + timedelta(seconds=rng.randrange(int(delay_hours * 3600)))
    latest = REFERENCE_TIME - timedelta(seconds=rng.randrange(60, 3600))
    return min(start, latest).replace(microsecond=rng.randrange(1, 10**6))
