"""Ground truth for the monitoring rules: whom each rule must flag in a synthetic city, and whom it must not.

``expected_warnings`` re-states every rule of ``rules/`` in plain Python over the world and the generators' own
decisions (careers, settlements, students, and each department's rows before any fault is put in), so it is
independent of SQL, of the adapters and of the rule files: the test's ground truth. It assumes the sources were
written with ``bad=0``. Sets hold raw ID numbers (``Person.id_number``); the central database holds their tokens.

``planted_cases`` are the people the world plants for each rule (always among the expected ones); ``near_misses``
are people who meet some of a rule's conditions but not all, whom the rule must leave alone.

The thresholds and windows below are the rules' defaults (their ``params``), restated on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

from lidm_samples import planted_leaving as leaving
from lidm_samples import planted_missing as missing
from lidm_samples import planted_visits as visits
from lidm_samples.departments import agriculture_rural as agriculture
from lidm_samples.departments import disability_federation as federation
from lidm_samples.departments import emergency, housing, medical_insurance
from lidm_samples.departments.civil_affairs._common import STATUS_CODES as CIVIL_STATUS
from lidm_samples.departments.civil_affairs.hardship_disability_subsidy import hardship_subsidy_rows
from lidm_samples.departments.civil_affairs.severe_disability_care_subsidy import care_subsidy_rows
from lidm_samples.departments.education.education_assistance import DISBURSEMENT_LABELS as AID_STATUS
from lidm_samples.departments.education.education_assistance import education_assistance_rows
from lidm_samples.departments.education.students import students
from lidm_samples.departments.health.disease_emergency_fund import DISBURSEMENT_LABELS as FUND_STATUS
from lidm_samples.departments.health.disease_emergency_fund import fund_rows
from lidm_samples.departments.health.settlements import hospital_settlements
from lidm_samples.departments.hr_social_security.careers import careers
from lidm_samples.people import REFERENCE_DATE, RosterMember
from lidm_samples.world import World

MEDICAL_THRESHOLD_FEN = 2_000_000  # high_medical_cost_*: 20000 yuan of in-policy self pay (政策范围内的个人自负) ...
MEDICAL_WINDOW_DAYS = 365  # ... over the last year, or a fund case approved in it
DISASTER_WINDOW_DAYS = 180  # disaster_no_transitional_relief
STUDENT_AID_WINDOW_DAYS = 365  # student_no_education_assistance
FULL_RATIO, HALF_RATIO = 100, 50  # premium_subsidy_not_full / premium_subsidy_not_half
FULL_CATEGORIES, HALF_CATEGORIES = ("dibao", "tekun"), ("dibao_edge", "return_risk")

RULES = (
    "disability_no_living_subsidy",
    "disaster_no_transitional_relief",
    "high_medical_cost_assistance",
    "high_medical_cost_rigid_expense",
    "housing_no_public_rental",
    "premium_subsidy_not_full",
    "premium_subsidy_not_half",
    "relocated_enrolled_twice",
    "return_risk_not_on_roster",
    "roster_deceased",
    "roster_unemployed",
    "rural_dangerous_house_not_renovated",
    "severe_disability_no_care_subsidy",
    "student_no_education_assistance",
    *missing.RULES,  # subjects not the roster (主动发现): lidm_samples.planted_missing
    *leaving.RULES,  # on the roster, may no longer qualify (应退), and people who left: lidm_samples.planted_leaving
    *visits.RULES,  # what home visits find (走访): lidm_samples.planted_visits
)


def _decode(table: dict[str, str]) -> dict[str, str]:
    return {v: k for k, v in table.items()}


def _ids(people: Iterable[object]) -> set[str]:
    return {p.id_number for p in people}  # type: ignore[attr-defined]


def _active(world: World) -> dict[str, RosterMember]:
    """Active roster members by ID number: every rule's subject but one."""
    return {m.person.id_number: m for m in world.roster if m.status == "active"}


def _households(world: World, heads: Iterable[object]) -> set[str]:
    """Roster heads of the active roster households these people belong to."""
    active = _active(world)
    chosen = {active[h].household_id for h in _ids(heads) if h in active}
    return {i for i, m in active.items() if m.household_id in chosen and m.relation_to_head == "head"}


def _day(text: str) -> date:
    return datetime.strptime(text, "%Y/%m/%d").date()


# --- what each department holds, as facts -------------------------------------------------------------------


def _dead(world: World) -> set[str]:
    return _ids(world.cohort("deceased"))  # health.deaths: one record per death


def _registered_unemployed(world: World) -> set[str]:
    return {i for i, c in careers(world).items() if any(r.deregistered is None for r in c.registrations)}


def _employees(world: World) -> set[str]:
    """People with a current job as an employee (employment_form employee, status employed)."""
    return {i for i, c in careers(world).items() if any(j.form == "employee" and j.end is None for j in c.jobs)}


def _high_medical_costs(world: World, as_of: date) -> set[str]:
    since = as_of - timedelta(days=MEDICAL_WINDOW_DAYS)
    totals: dict[str, int] = {}
    for s in hospital_settlements(world):
        if not s.reversed and s.settled >= since:  # a reversed settlement never reaches health.medical_expenses
            totals[s.person.id_number] = totals.get(s.person.id_number, 0) + s.policy_self_pay
    heavy = {i for i, fen in totals.items() if fen > MEDICAL_THRESHOLD_FEN}
    granted = {FUND_STATUS["approved"], FUND_STATUS["paid"]}
    fund = {
        r["身份证号"] for r in fund_rows(world) if r["身份证号"] and r["拨付状态"] in granted and r["审核日期"] >= since
    }
    return heavy | fund


def medically_assisted(world: World, as_of: date) -> set[str]:
    """People given inpatient, catastrophic-illness or re-assistance (approved or paid) within the window."""
    kind, status = _decode(medical_insurance.KIND_CODES), _decode(medical_insurance.STATUS_CODES)
    since = as_of - timedelta(days=MEDICAL_WINDOW_DAYS)
    return {
        str(r["sfzh"])
        for r in medical_insurance.medical_assistance_rows(world)
        if kind[str(r["jzlx"])] in ("inpatient", "catastrophic", "re_assistance")
        and status[str(r["ffzt"])] in ("approved", "paid")
        and r["jzrq"] >= since  # type: ignore[operator]
    }


def _public_rental_households(world: World) -> set[str]:
    status = _decode(housing.STATUS_CODES)
    return {r["jtbh"] for r in housing.public_rental_rows(world) if status[r["bzzt"]] in ("active", "suspended")}


def _premium_covered(world: World, as_of: date, ratio: int) -> set[str]:
    kind, status = _decode(medical_insurance.KIND_CODES), _decode(medical_insurance.STATUS_CODES)
    return {
        str(r["sfzh"])
        for r in medical_insurance.medical_assistance_rows(world)
        if kind[str(r["jzlx"])] == "premium_subsidy"
        and r["jznd"] == as_of.year
        and Decimal(str(r["zzbl"])) >= ratio
        and status[str(r["ffzt"])] in ("approved", "paid")
    }


def _valid_certificates(world: World, grades: tuple[str, ...] = ("1", "2", "3", "4")) -> set[str]:
    valid = federation.STATUS_CODES["valid"]
    return {r["sfzh"] for r in federation.certificate_rows(world) if r["zjzt"] == valid and r["cjdj"] in grades}


def _paid_subsidy(rows: list[dict[str, object]]) -> set[str]:
    running = {CIVIL_STATUS["active"], CIVIL_STATUS["suspended"]}
    return {str(r["sfzh"]) for r in rows if r["zt"] in running}


def _monitoring(world: World, standard: int | None = None) -> set[str]:
    """Monitored people (risk not eliminated), those at or below an annual income standard if one is given."""
    return {
        r["证件号码"]
        for r in agriculture.monitoring_rows(world)
        if r["监测状态"] == "风险未消除" and (standard is None or Decimal(r["家庭人均纯收入"]) <= standard)
    }


# --- the rules ----------------------------------------------------------------------------------------------


def _roster_deceased(world: World, as_of: date) -> set[str]:
    paid = {m.person.id_number for m in world.roster if m.status in ("active", "gradual_exit")}  # 渐退 still paid
    return paid & _dead(world)


def _roster_unemployed(world: World, as_of: date) -> set[str]:
    return _active(world).keys() & _registered_unemployed(world)


def _high_medical_cost_assistance(world: World, as_of: date) -> set[str]:
    return (_active(world).keys() & _high_medical_costs(world, as_of)) - medically_assisted(world, as_of)


RIGID_NOT = ("dibao", "tekun", "dibao_edge", "rigid_expense")  # 刚性支出困难: households not of these


def _high_medical_cost_rigid_expense(world: World, as_of: date) -> set[str]:
    subjects = {i for i, m in _active(world).items() if not set(m.categories) & set(RIGID_NOT)}
    return subjects & _high_medical_costs(world, as_of)


def _housing_no_public_rental(world: World, as_of: date) -> set[str]:
    """Heads of households in urban housing difficulty with no current public rental support (one warning per
    household; support is the household's, recorded on its applicant)."""
    housed = _public_rental_households(world)
    return {
        i
        for i, m in _active(world).items()
        if m.housing_difficulty is True and m.relation_to_head == "head" and m.household_id not in housed
    }


def _premium(world: World, as_of: date, categories: tuple[str, ...], ratio: int) -> set[str]:
    subjects = {i for i, m in _active(world).items() if m.category in categories}
    return subjects - _premium_covered(world, as_of, ratio) - _employees(world)


def _premium_subsidy_not_full(world: World, as_of: date) -> set[str]:
    return _premium(world, as_of, FULL_CATEGORIES, FULL_RATIO)


def _premium_subsidy_not_half(world: World, as_of: date) -> set[str]:
    return _premium(world, as_of, HALF_CATEGORIES, HALF_RATIO)


def _relocated_enrolled_twice(world: World, as_of: date) -> set[str]:
    active = _active(world)
    return {
        r["户主身份证号"]
        for r in agriculture.relocated_rows(world)
        if r["户主身份证号"] in active
        and r["安置地区县代码"] != active[r["户主身份证号"]].person.district_code
        and r["户籍是否迁入"] == "否"
    }


def _return_risk_not_on_roster(world: World, as_of: date) -> set[str]:
    enrolled = {m.person.id_number for m in world.roster if m.status in ("active", "suspended", "gradual_exit")}
    return _monitoring(world, agriculture.ANNUAL_DIBAO_STANDARD) - enrolled


def _rural_dangerous_house_not_renovated(world: World, as_of: date) -> set[str]:
    acceptance = _decode(housing.ACCEPTANCE_LABELS)
    stalled, under_way = set(), set()
    for r in housing.renovation_rows(world):
        status = acceptance[r["验收状态"]]
        if r["危房等级"] in ("C级", "D级") and status in ("not_started", "failed", "cancelled"):
            stalled.add(r["户主身份证号"])
        if status in ("in_progress", "pending", "passed"):
            under_way.add(r["户主身份证号"])
    return _active(world).keys() & (stalled - under_way)


def _severe_disability_no_care_subsidy(world: World, as_of: date) -> set[str]:
    covered = _paid_subsidy(care_subsidy_rows(world))
    return (_active(world).keys() & _valid_certificates(world, ("1", "2"))) - covered


def _disability_no_living_subsidy(world: World, as_of: date) -> set[str]:
    reach = {"dibao", "dibao_edge", "rigid_expense"}  # 三(五): extended to the edge and rigid-expense families
    subjects = {i for i, m in _active(world).items() if set(m.categories) & reach and "tekun" not in m.categories}
    return (subjects & _valid_certificates(world)) - _paid_subsidy(hardship_subsidy_rows(world))


def _disaster_no_transitional_relief(world: World, as_of: date) -> set[str]:
    since = as_of - timedelta(days=DISASTER_WINDOW_DAYS)
    damaged, relieved = set(), set()
    for r in emergency.relief_rows(world):
        if r["发放状态"] == "已撤销" or _day(r["灾害发生日期"]) < since:
            continue
        if r["房屋损毁程度"] in ("严重损坏", "倒塌"):
            damaged.add(r["户主身份证号"])
        if r["救助类别"] == "过渡期生活救助":
            relieved.add(r["户主身份证号"])
    return _active(world).keys() & (damaged - relieved)


def _student_no_education_assistance(world: World, as_of: date) -> set[str]:
    since = as_of - timedelta(days=STUDENT_AID_WINDOW_DAYS)
    granted = {AID_STATUS["approved"], AID_STATUS["paid"]}
    aided = {
        r["学生身份证号"]
        for r in education_assistance_rows(world)
        if r["发放状态"] in granted and _day(str(r["审批日期"])) >= since
    }
    enrolled = {s.person.id_number for s in students(world) if s.status == "enrolled"}  # 在园幼儿 included
    return (_active(world).keys() & enrolled) - aided


_EXPECTED: dict[str, Callable[[World, date], set[str]]] = {
    "disability_no_living_subsidy": _disability_no_living_subsidy,
    "disaster_no_transitional_relief": _disaster_no_transitional_relief,
    "high_medical_cost_assistance": _high_medical_cost_assistance,
    "high_medical_cost_rigid_expense": _high_medical_cost_rigid_expense,
    "housing_no_public_rental": _housing_no_public_rental,
    "premium_subsidy_not_full": _premium_subsidy_not_full,
    "premium_subsidy_not_half": _premium_subsidy_not_half,
    "relocated_enrolled_twice": _relocated_enrolled_twice,
    "return_risk_not_on_roster": _return_risk_not_on_roster,
    "roster_deceased": _roster_deceased,
    "roster_unemployed": _roster_unemployed,
    "rural_dangerous_house_not_renovated": _rural_dangerous_house_not_renovated,
    "severe_disability_no_care_subsidy": _severe_disability_no_care_subsidy,
    "student_no_education_assistance": _student_no_education_assistance,
    **missing.EXPECTED,
    **leaving.EXPECTED,
    **visits.EXPECTED,
}


def expected_warnings(world: World, as_of: date = REFERENCE_DATE) -> dict[str, set[str]]:
    """Per rule id, the raw ID numbers of everyone the rule must flag on ``as_of`` (sources written with bad=0)."""
    return {rule: set(_EXPECTED[rule](world, as_of)) for rule in RULES}


def planted_cases(world: World) -> dict[str, set[str]]:
    """Per rule id, the people the world planted for it (a subset of what the rule must flag)."""
    active = _active(world)

    def category(people: str, categories: tuple[str, ...]) -> set[str]:
        return {i for i in _ids(world.cohort(people)) if active[i].category in categories}

    # other_hardship members after a catastrophic stay: no one-stop assistance, in-policy self pay far above 20000
    unassisted = category("catastrophic_costs", ("other_hardship",))
    fund = _ids(world.cohort("emergency_fund_roster")) - medically_assisted(world, REFERENCE_DATE)
    return {
        "disability_no_living_subsidy": _ids(world.cohort("living_subsidy_missing")),
        "disaster_no_transitional_relief": _ids(world.cohort("disaster_no_transitional")),
        "high_medical_cost_assistance": unassisted | fund,
        "high_medical_cost_rigid_expense": unassisted,
        "housing_no_public_rental": _households(world, world.cohort("housing_waiting")),
        "premium_subsidy_not_full": category("premium_subsidy_missing", FULL_CATEGORIES),
        "premium_subsidy_not_half": category("premium_subsidy_missing", HALF_CATEGORIES),
        "relocated_enrolled_twice": _ids(world.cohort("relocated_two_districts")),
        "return_risk_not_on_roster": {
            p.id_number
            for h in world.cohort("return_risk_off_roster")
            for p in world.living(world.households[h.household_id])
        },
        "roster_deceased": _roster_deceased(world, REFERENCE_DATE),
        "roster_unemployed": active.keys() & _ids(world.cohort("roster_unemployed")),
        "rural_dangerous_house_not_renovated": _ids(world.cohort("renovation_stalled")),
        "severe_disability_no_care_subsidy": _ids(world.cohort("care_subsidy_missing")),
        "student_no_education_assistance": _ids(world.cohort("student_aid_missing")),
        **missing.planted_cases(world),
        **leaving.planted_cases(world),
        **visits.planted_cases(world),
    }


def near_misses(world: World) -> dict[str, set[str]]:
    """Per rule id, people meeting some but not all of the rule's conditions on the reference date."""
    active = _active(world)
    as_of = REFERENCE_DATE

    def category(people: set[str], categories: tuple[str, ...]) -> set[str]:
        return {i for i in people if i in active and active[i].category in categories}

    employees = _ids(world.cohort("roster_employees"))
    lapsed = _ids(world.cohort("emergency_fund_lapsed"))
    catastrophic = _ids(world.cohort("catastrophic_costs"))
    rigid = category(catastrophic, ("rigid_expense",))
    # DOMAIN: 刚性支出困难 are households *not* dibao, tekun or dibao-edge: such a member with the same stay is no case
    dibao_tier = category(catastrophic, ("dibao", "tekun", "dibao_edge"))
    settled = catastrophic & medically_assisted(world, as_of)  # settled one-stop at discharge: not flagged again

    def subsidised(categories: tuple[str, ...], ratio: int) -> set[str]:
        """One member of these categories whose premium subsidy this year is right (the first, by ID number)."""
        fine = sorted(category(_premium_covered(world, as_of, ratio), categories) - employees)
        return set(fine[:1])

    care = _paid_subsidy(care_subsidy_rows(world))
    severe = sorted(active.keys() & _valid_certificates(world, ("1", "2")) & care)
    monitored_on_roster = _monitoring(world) & active.keys()
    eliminated = {
        p.id_number
        for h in world.cohort("return_risk_eliminated")
        for p in world.living(world.households[h.household_id])
    }
    above = {
        p.id_number
        for h in world.cohort("return_risk_above_standard")
        for p in world.living(world.households[h.household_id])
    }
    return {
        "disability_no_living_subsidy": _ids(world.cohort("tekun_disabled"))
        | _ids(world.cohort("living_subsidy_beyond")),
        "disaster_no_transitional_relief": _ids(world.cohort("disaster_transitional")),
        "high_medical_cost_assistance": lapsed | settled,
        "high_medical_cost_rigid_expense": lapsed | rigid | dibao_tier,
        "housing_no_public_rental": _households(world, world.cohort("housing_supported")),
        "premium_subsidy_not_full": category(employees, FULL_CATEGORIES) | subsidised(FULL_CATEGORIES, FULL_RATIO),
        "premium_subsidy_not_half": category(employees, HALF_CATEGORIES) | subsidised(HALF_CATEGORIES, HALF_RATIO),
        "relocated_enrolled_twice": _ids(world.cohort("relocated_hukou_moved")),
        "return_risk_not_on_roster": eliminated | monitored_on_roster | above,
        "roster_deceased": _ids(world.cohort("deceased_left_roster")),
        "roster_unemployed": _ids(world.cohort("unemployment_closed")),
        "rural_dangerous_house_not_renovated": _ids(world.cohort("renovation_resumed")),
        "severe_disability_no_care_subsidy": set(severe[:2]),
        "student_no_education_assistance": _ids(world.cohort("student_suspended")),
        **missing.near_misses(world),
        **leaving.near_misses(world),
        **visits.near_misses(world),
    }
