"""Codes and certificates the civil-affairs assistance system's tables share."""

from __future__ import annotations

from datetime import date, timedelta, timezone

from lidm_samples.departments.disability_federation import certificate_rows
from lidm_samples.world import World

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
CHINA_TIME = timezone(timedelta(hours=8))


def certificates(world: World) -> dict[str, tuple[str, str]]:
    """(disability type code, grade) of each holder's current certificate, as the disability federation issued it:
    the subsidies name the same type and grade (both systems use the GB/T 26341 type codes)."""
    return {row["sfzh"]: (row["cjlb"], row["cjdj"]) for row in certificate_rows(world)}  # the current one is last


def month_start(day: date) -> date:
    return day.replace(day=1)
