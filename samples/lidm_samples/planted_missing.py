"""Ground truth for the rules whose subject is not the roster (主动发现): whom each must flag, and whom it must not.

The seed (长民发〔2025〕22号 二(三)) asks: "及时、主动发现需要救助的困难群众，做到应救尽救" and
"对未纳入社会救助范围的低收入人口，重点监测其家庭状况变化情况，发现符合救助条件的，应当告知相关救助政策".
Each function below re-states one rule of
``rules/`` in plain Python over the world and the generators' own decisions (sources written with ``bad=0``), like
``lidm_samples.planted``, which merges these into its tables. The thresholds and windows are the rules' defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta

from lidm_samples.departments import disability_federation as federation
from lidm_samples.departments import emergency, medical_insurance
from lidm_samples.departments.civil_affairs._common import STATUS_CODES as CIVIL_STATUS
from lidm_samples.departments.civil_affairs.children_in_need import children_in_need
from lidm_samples.departments.civil_affairs.hardship_disability_subsidy import hardship_subsidy_rows
from lidm_samples.departments.education.education_assistance import DISBURSEMENT_LABELS as AID_STATUS
from lidm_samples.departments.education.education_assistance import education_assistance_rows
from lidm_samples.departments.education.students import students
from lidm_samples.departments.health.settlements import hospital_settlements
from lidm_samples.departments.hr_social_security.careers import careers
from lidm_samples.departments.hr_social_security.pensions import (
    PENSION_STATUSES,
    enterprise_pension,
    institution_pension,
)
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.world import World

SELF_PAY_THRESHOLD_FEN = 2_000_000  # high_self_pay_not_on_roster: 20000 yuan of policy-scope self pay ...
DISABILITY_SELF_PAY_FEN = 1_000_000  # severe_disability_not_on_roster: 10000 yuan ...
SELF_PAY_WINDOW_DAYS = 365  # ... over the last year
STUDENT_AID_WINDOW_DAYS = 365  # hardship_student_not_on_roster
DISASTER_WINDOW_DAYS = 180  # disaster_household_not_on_roster
CERTIFIED = ("especially_difficult", "difficult", "generally_difficult")  # 家庭经济困难 as the school assesses it

RULES = (
    "child_in_need_no_allowance",
    "disaster_household_not_on_roster",
    "hardship_student_not_on_roster",
    "high_self_pay_not_on_roster",
    "severe_disability_not_on_roster",
)


def _ids(people: Iterable[object]) -> set[str]:
    return {p.id_number for p in people}  # type: ignore[attr-defined]


def _on_roster(world: World) -> set[str]:
    """Everyone a roster holds now (active, suspended or in gradual exit 渐退): the rules' absent roster clause."""
    return {m.person.id_number for m in world.roster if m.status in ("active", "suspended", "gradual_exit")}


def _aided_students(world: World, as_of: date) -> set[str]:
    since = as_of - timedelta(days=STUDENT_AID_WINDOW_DAYS)
    granted = {AID_STATUS["approved"], AID_STATUS["paid"]}
    return {
        r["学生身份证号"]
        for r in education_assistance_rows(world)
        if r["发放状态"] in granted and datetime.strptime(str(r["审批日期"]), "%Y/%m/%d").date() >= since
    }


def _policy_self_pay(world: World, as_of: date, above_fen: int) -> set[str]:
    since = as_of - timedelta(days=SELF_PAY_WINDOW_DAYS)
    totals: dict[str, int] = {}
    for s in hospital_settlements(world):
        if not s.reversed and s.settled >= since:  # a reversed settlement never reaches health.medical_expenses
            totals[s.person.id_number] = totals.get(s.person.id_number, 0) + s.policy_self_pay
    return {i for i, fen in totals.items() if fen > above_fen}


def _pensioners(world: World) -> set[str]:
    receiving = PENSION_STATUSES["receiving"]
    rows = enterprise_pension(world, 0).rows + institution_pension(world, 0).rows
    return {str(r["sfzh"]) for r in rows if r["cbzt"] == receiving}


def _registered_unemployed(world: World) -> set[str]:
    return {i for i, c in careers(world).items() if any(r.deregistered is None for r in c.registrations)}


def _medically_assisted(world: World, as_of: date) -> set[str]:
    """Medical assistance other than the premium subsidy, approved or paid in the window."""
    kind, status = (
        {v: k for k, v in medical_insurance.KIND_CODES.items()},
        {v: k for k, v in medical_insurance.STATUS_CODES.items()},
    )
    since = as_of - timedelta(days=SELF_PAY_WINDOW_DAYS)
    return {
        str(r["sfzh"])
        for r in medical_insurance.medical_assistance_rows(world)
        if kind[str(r["jzlx"])] != "premium_subsidy"
        and status[str(r["ffzt"])] in ("approved", "paid")
        and r["jzrq"] >= since
    }


# --- the rules ----------------------------------------------------------------------------------------------


def _hardship_student_not_on_roster(world: World, as_of: date) -> set[str]:
    certified = {s.person.id_number for s in students(world) if s.status == "enrolled" and s.hardship in CERTIFIED}
    return certified - _on_roster(world) - _aided_students(world, as_of)


def _severe_disability_not_on_roster(world: World, as_of: date) -> set[str]:
    valid = federation.STATUS_CODES["valid"]
    severe = {r["sfzh"] for r in federation.certificate_rows(world) if r["zjzt"] == valid and r["cjdj"] in ("1", "2")}
    running = {CIVIL_STATUS["active"], CIVIL_STATUS["suspended"]}
    subsidised = {str(r["sfzh"]) for r in hardship_subsidy_rows(world) if r["zt"] in running}
    signals = _registered_unemployed(world) | _policy_self_pay(world, as_of, DISABILITY_SELF_PAY_FEN)
    return (severe & signals) - _on_roster(world) - subsidised - _pensioners(world)


def _high_self_pay_not_on_roster(world: World, as_of: date) -> set[str]:
    residents = {p.id_number for p in world.people if p.residence_status in ("registered", "resident")}
    heavy = _policy_self_pay(world, as_of, SELF_PAY_THRESHOLD_FEN)
    return (residents & heavy) - _on_roster(world) - _medically_assisted(world, as_of)


def _disaster_household_not_on_roster(world: World, as_of: date) -> set[str]:
    since = as_of - timedelta(days=DISASTER_WINDOW_DAYS)
    damaged, relieved = set(), set()
    for r in emergency.relief_rows(world):
        if r["发放状态"] == "已撤销" or datetime.strptime(r["灾害发生日期"], "%Y/%m/%d").date() < since:
            continue
        if r["房屋损毁程度"] in ("严重损坏", "倒塌"):
            damaged.add(r["户主身份证号"])
        if r["救助类别"] == "过渡期生活救助":
            relieved.add(r["户主身份证号"])
    return damaged - relieved - _on_roster(world)


def _child_in_need_no_allowance(world: World, as_of: date) -> set[str]:
    active = CIVIL_STATUS["active"]
    unpaid = {r["sfzh"] for r in children_in_need(world, 0).rows if r["bzzt"] == active and r["yfbz_fen"] <= 0}
    return unpaid - _on_roster(world)


EXPECTED: dict[str, Callable[[World, date], set[str]]] = {
    "child_in_need_no_allowance": _child_in_need_no_allowance,
    "disaster_household_not_on_roster": _disaster_household_not_on_roster,
    "hardship_student_not_on_roster": _hardship_student_not_on_roster,
    "high_self_pay_not_on_roster": _high_self_pay_not_on_roster,
    "severe_disability_not_on_roster": _severe_disability_not_on_roster,
}


def planted_cases(world: World) -> dict[str, set[str]]:
    """Per rule, the people the world planted for it (a subset of what the rule must flag)."""
    return {
        # 三(二)2: "对低收入家庭中符合条件的在园幼儿、在校学生……给予教育救助" — a pupil and a preschool child the school
        # certified in hardship, on no roster, no aid.
        "hardship_student_not_on_roster": _ids(world.cohort("hardship_student_overlooked")),
        # 二(三): "将掌握的低收入人口数据与……残联等部门掌握的……重度残疾人等数据进行交叉比对" — grade 1-2, no pension, a
        # high policy-scope self pay, on no roster.
        "severe_disability_not_on_roster": _ids(world.cohort("severe_disabled_off_roster")),
        # 三(二)1: "对低收入人口门诊、住院所发生的属于政策范围内的个人自负医疗费用……给予……医疗救助" —
        # a catastrophic stay of someone on no roster (and the severe disabled above, whose stays are as heavy).
        "high_self_pay_not_on_roster": _ids(world.cohort("self_pay_off_roster"))
        | _ids(world.cohort("severe_disabled_off_roster")),
        # 三(二)5: "对因自然灾害造成房屋倒塌或者严重损坏需恢复重建、无房可住……实施过渡期生活救助" and
        # "经应急期和过渡期生活救助后，受灾群众基本生活仍存在较大困难的，按有关规定和程序纳入最低生活保障" —
        # house collapsed or badly damaged, no transitional aid.
        "disaster_household_not_on_roster": _ids(world.cohort("disaster_off_roster")),
        # 三(五): "积极推进……孤儿基本生活保障（困境儿童保障）……与社会救助政策衔接" — recognised, allowance 0.
        "child_in_need_no_allowance": _ids(world.cohort("child_allowance_missing")),
    }


def near_misses(world: World) -> dict[str, set[str]]:
    """Per rule, people meeting some but not all of its conditions, whom it must leave alone."""
    return {
        # 二(三): "对已纳入社会救助范围的低收入人口，重点监测相关社会救助政策是否落实到位" —
        # a roster student in hardship is not missing (student_no_education_assistance
        # asks about them); one aided; one assessed 不困难.
        "hardship_student_not_on_roster": _ids(world.cohort("student_aid_missing"))
        | _ids(world.cohort("hardship_student_aided"))
        | _ids(world.cohort("student_not_difficult")),
        # "重度残疾人" is grade 1-2: a grade 3-4 holder with the same signals; a grade 1-2 holder on the roster.
        "severe_disability_not_on_roster": _ids(world.cohort("mild_disabled_off_roster"))
        | _ids(world.cohort("care_subsidy_missing")),
        # "对已纳入社会救助范围的低收入人口" — roster members with catastrophic costs are not missing.
        "high_self_pay_not_on_roster": _ids(world.cohort("catastrophic_costs")),
        # "经应急期和过渡期生活救助后" — a household given transitional aid; a roster household without it
        # (the roster rule's).
        "disaster_household_not_on_roster": _ids(world.cohort("disaster_off_roster_relieved"))
        | _ids(world.cohort("disaster_no_transitional")),
        # "孤儿基本生活保障" — a recognised child whose allowance is paid.
        "child_in_need_no_allowance": _ids(world.cohort("child_allowance_paid")),
    }


def expected_warnings(world: World, as_of: date = REFERENCE_DATE) -> dict[str, set[str]]:
    """Per rule id, the raw ID numbers the rule must flag on ``as_of``."""
    return {rule: set(EXPECTED[rule](world, as_of)) for rule in RULES}
