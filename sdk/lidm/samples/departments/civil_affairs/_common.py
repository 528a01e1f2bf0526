"""Codes and certificates the civil-affairs assistance system's tables share."""

from __future__ import annotations

from datetime import date, timedelta, timezone

from lidm.samples.people import Person
from lidm.samples.world import World

GENDER_CODES = {"male": "1", "female": "2"}
# The low-income category as the assistance system codes it.
CATEGORY_CODES = {
    "dibao": "10",
    "tekun": "20",
    "dibao_edge": "30",
    "rigid_expense": "40",
    "return_risk": "50",
    "other_hardship": "90",
}
STATUS_CODES = {"active": "1", "suspended": "2", "terminated": "3"}
# Disability category codes of the certificate (GB/T 26341): 1 visual … 7 multiple.
DISABILITY_TYPES = ("1", "2", "3", "4", "5", "6", "7")
_DISABILITY_WEIGHTS = (14, 16, 2, 36, 12, 12, 8)
CHINA_TIME = timezone(timedelta(hours=8))


def _certificate(world: World, person: Person) -> tuple[str, str]:
    """(disability type code, grade) of a person's certificate, the same in every civil-affairs subsidy."""
    rng = world.rng(f"disability_certificate:{person.id_number}")
    kind = rng.choices(DISABILITY_TYPES, weights=_DISABILITY_WEIGHTS)[0]
    severe = person.id_number in {p.id_number for p in world.cohort("severe_disabled")}
    return kind, rng.choice(("1", "2") if severe else ("3", "4"))


def _month_start(day: date) -> date:
    return day.replace(day=1)
