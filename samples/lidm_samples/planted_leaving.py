"""Ground truth of the rules about people who may no longer qualify (应退) and people who left (渐退, still watched).

Like ``lidm_samples.planted`` (which includes these), each rule is restated in plain Python over the world and the
generators' own rows, independent of SQL and of the rule files; windows are the rules' defaults, restated on
purpose. The cohorts are chosen in ``lidm_samples.leavers``, each beside the seed's sentence it comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from lidm_samples.departments.hr_social_security.careers import careers
from lidm_samples.departments.hr_social_security.pensions import (
    PENSION_STATUSES,
    enterprise_pension,
    institution_pension,
)
from lidm_samples.leavers import NEW_JOB_DAYS, PENSION_DAYS, WATCH_DAYS
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.world import World

MEDICAL_THRESHOLD_FEN = 2_000_000  # left_roster_in_hardship: 20000 yuan of in-policy self pay in the last year
MEDICAL_WINDOW_DAYS = 365

RULES = (
    "deceased_funeral_fee_waiver",
    "left_roster_in_hardship",
    "legal_aid_refused_low_income",
    "roster_moved_out",
    "roster_newly_employed",
    "roster_pension_started",
)
LEGAL_AID_DAYS = 365  # legal_aid_refused_low_income: an application of the last year
FUNERAL_DAYS = 90  # deceased_funeral_fee_waiver: a death of the last three months


def _ids(world: World, cohort: str) -> set[str]:
    return {p.id_number for p in world.cohort(cohort)}


def _active(world: World) -> set[str]:
    return {m.person.id_number for m in world.roster if m.status == "active"}


def _newly_employed(world: World, as_of: date) -> set[str]:
    """A current job as an employee (a wage record) that started within the window."""
    since = as_of - timedelta(days=NEW_JOB_DAYS)
    return {
        i
        for i, c in careers(world).items()
        if any(j.form == "employee" and j.end is None and j.start >= since for j in c.jobs)
    }


def _pension_begun(world: World, as_of: date) -> set[str]:
    """Receiving an enterprise or institution pension that started within the window."""
    since = as_of - timedelta(days=PENSION_DAYS)
    receiving = PENSION_STATUSES["receiving"]
    out = set()
    for table in (enterprise_pension(world, 0), institution_pension(world, 0)):
        for r in table.rows:
            start = r["dyksrq"]  # 待遇享受起始日期
            if str(r["cbzt"]) == receiving and start and _as_date(start) >= since:
                out.add(str(r["sfzh"]))
    return out


def _as_date(value: object) -> date:
    if isinstance(value, date):
        return value
    text = str(value).replace("-", "").replace("/", "")
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _roster_newly_employed(world: World, as_of: date) -> set[str]:
    return _active(world) & _newly_employed(world, as_of)


def _roster_pension_started(world: World, as_of: date) -> set[str]:
    return _active(world) & _pension_begun(world, as_of)


def _roster_moved_out(world: World, as_of: date) -> set[str]:
    return {
        m.person.id_number for m in world.roster if m.status == "active" and m.person.residence_status == "moved_out"
    }


def _in_hardship(world: World, as_of: date) -> set[str]:
    """Registered unemployed, heavy in-policy self pay, or a disease emergency fund case (planted's own facts)."""
    from lidm_samples.planted import _high_medical_costs, _registered_unemployed

    return _registered_unemployed(world) | _high_medical_costs(world, as_of)


def _left_roster_in_hardship(world: World, as_of: date) -> set[str]:
    since = as_of - timedelta(days=WATCH_DAYS)
    left = {
        m.person.id_number
        for m in world.roster
        if m.status in ("gradual_exit", "terminated") and m.termination_date is not None and m.termination_date >= since
    }
    return left & _in_hardship(world, as_of)


def _legal_aid_refused_low_income(world: World, as_of: date) -> set[str]:
    from lidm_samples.departments.justice import STATUSES, legal_aid

    since = as_of - timedelta(days=LEGAL_AID_DAYS)
    refused = {
        r["受援人身份证号"]
        for r in legal_aid(world, 0).rows
        if r["案件状态"] == STATUSES["refused"] and _as_date(r["申请日期"]) >= since
    }
    return _active(world) & refused


def _deceased_funeral_fee_waiver(world: World, as_of: date) -> set[str]:
    from lidm_samples.departments.health.deaths import death_dates

    since = as_of - timedelta(days=FUNERAL_DAYS)
    paid = {
        m.person.id_number
        for m in world.roster
        if m.status in ("active", "gradual_exit") and {"dibao", "tekun"} & set(m.categories)
    }
    return {i for i, (died, _) in death_dates(world).items() if died >= since} & paid


EXPECTED: dict[str, Callable[[World, date], set[str]]] = {
    "deceased_funeral_fee_waiver": _deceased_funeral_fee_waiver,
    "left_roster_in_hardship": _left_roster_in_hardship,
    "legal_aid_refused_low_income": _legal_aid_refused_low_income,
    "roster_moved_out": _roster_moved_out,
    "roster_newly_employed": _roster_newly_employed,
    "roster_pension_started": _roster_pension_started,
}


def planted_cases(world: World) -> dict[str, set[str]]:
    """Per rule, the people planted for it (lidm_samples.leavers)."""
    return {
        "deceased_funeral_fee_waiver": _ids(world, "died_on_dibao"),
        "left_roster_in_hardship": _ids(world, "left_roster_unemployed"),
        "legal_aid_refused_low_income": _ids(world, "legal_aid_refused"),
        "roster_moved_out": _ids(world, "moved_out_on_roster"),
        "roster_newly_employed": _ids(world, "newly_employed"),
        "roster_pension_started": _ids(world, "pension_started"),
    }


def near_misses(world: World) -> dict[str, set[str]]:
    """Per rule, people meeting some but not all of its conditions."""
    since = REFERENCE_DATE - timedelta(days=NEW_JOB_DAYS)
    long_employed = {
        i
        for i in _ids(world, "roster_employees")
        if all(j.start < since for j in careers(world)[i].jobs if j.end is None)
    }
    begun = _pension_begun(world, REFERENCE_DATE)
    drawing = sorted((_active(world) & _ids(world, "pensioners")) - begun)
    return {
        # left years ago and in hardship; or leaving now (渐退, for a job) and in none
        "left_roster_in_hardship": _ids(world, "left_roster_long_ago")
        | (_ids(world, "exiting_employed") - _in_hardship(world, REFERENCE_DATE)),
        "deceased_funeral_fee_waiver": _ids(world, "deceased_left_roster"),  # ended already: the family was seen to
        "legal_aid_refused_low_income": _ids(world, "legal_aid_granted"),
        "roster_moved_out": _ids(world, "moved_out_left_roster"),
        "roster_newly_employed": _ids(world, "exiting_employed") | long_employed,
        "roster_pension_started": set(drawing[:2]),  # drawing a pension for years: weighed at their last review
    }
