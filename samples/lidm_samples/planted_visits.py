"""Ground truth of the rules that read what home visits find (走访, civil_affairs.home_visit).

The seed (长民发〔2025〕22号 二(三)): "组织动员乡镇（街道）干部、村（社区）工作人员……经常性走访困难群众，
发现家庭状况发生变化的，及时报告并将变化情况录入低收入人口数据库".
Like ``lidm_samples.planted`` (which includes these), each rule is restated in plain Python over the
generator's own findings (``lidm_samples.departments.civil_affairs.home_visit``, one per person: the latest visit)
and the other departments' rows, independent of SQL and of the rule files; thresholds are the rules' defaults,
restated on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from lidm_samples.departments.civil_affairs import home_visit as visits
from lidm_samples.world import World

RULES = (
    "visit_hardship_not_on_roster",
    "visit_illness_no_medical_aid",
    "visit_income_above_dibao_standard",
    "visit_income_above_edge_standard",
    "visit_rural_unsafe_house",
)
NEW_ILLNESS = ("new_serious_illness", "new_disability")


def _active(world: World) -> dict[str, tuple[str, ...]]:
    """Active roster members' categories by ID number: the roster-subject rules' subject."""
    return {m.person.id_number: m.categories for m in world.roster if m.status == "active"}


def _income_above(world: World, held: str, not_held: str | None, line: int) -> set[str]:
    active = _active(world)
    return {
        f.person.id_number
        for f in visits.findings(world)
        if f.person.id_number in active
        and held in active[f.person.id_number]
        and (not_held is None or not_held not in active[f.person.id_number])
        and f.income is not None
        and f.income > line
    }


def _visit_income_above_dibao_standard(world: World, as_of: date) -> set[str]:
    return _income_above(world, "dibao", None, visits.DIBAO_STANDARD)


def _visit_income_above_edge_standard(world: World, as_of: date) -> set[str]:
    return _income_above(world, "dibao_edge", "dibao", visits.EDGE_STANDARD)


def _visit_illness_no_medical_aid(world: World, as_of: date) -> set[str]:
    from lidm_samples.planted import medically_assisted

    ill = {f.person.id_number for f in visits.findings(world) if f.health in NEW_ILLNESS}
    return (ill & _active(world).keys()) - medically_assisted(world, as_of)


def _visit_rural_unsafe_house(world: World, as_of: date) -> set[str]:
    from lidm_samples.departments import housing

    under_way = {housing.ACCEPTANCE_LABELS[k] for k in ("in_progress", "pending", "passed")}
    renovating = {r["户主身份证号"] for r in housing.renovation_rows(world) if r["验收状态"] in under_way}
    unsafe = {
        f.person.id_number
        for f in visits.findings(world)
        if f.area == "rural" and f.housing in ("unsafe_house", "lost_home")
    }
    return (unsafe & _active(world).keys()) - renovating


def _visit_hardship_not_on_roster(world: World, as_of: date) -> set[str]:
    enrolled = {m.person.id_number for m in world.roster if m.status in ("active", "suspended", "gradual_exit")}
    return {
        f.person.id_number
        for f in visits.findings(world)
        if f.income is not None
        and f.income <= visits.HARDSHIP_INCOME
        and (f.employment == "lost_job" or f.health in NEW_ILLNESS)
        and f.person.id_number not in enrolled
    }


EXPECTED: dict[str, Callable[[World, date], set[str]]] = {
    "visit_hardship_not_on_roster": _visit_hardship_not_on_roster,
    "visit_illness_no_medical_aid": _visit_illness_no_medical_aid,
    "visit_income_above_dibao_standard": _visit_income_above_dibao_standard,
    "visit_income_above_edge_standard": _visit_income_above_edge_standard,
    "visit_rural_unsafe_house": _visit_rural_unsafe_house,
}


def planted_cases(world: World) -> dict[str, set[str]]:
    """Per rule, the people the visits planted for it."""
    c = visits.visit_cohorts(world)
    return {
        # "发现家庭状况发生变化的，及时报告" — a visit found the income past the line (应退尽退)
        "visit_income_above_dibao_standard": c["visit_dibao_income_rose"],
        "visit_income_above_edge_standard": c["visit_edge_income_rose"],
        # 三(二)1 "对低收入人口……给予门诊救助、住院救助、重特大疾病医疗救助" — newly ill or disabled, no assistance
        "visit_illness_no_medical_aid": c["visit_serious_illness"],
        # 三(二)3 "对唯一居住房屋为C、D级危房或者无房的农村低收入家庭，通过农村危房改造等方式保障住房安全"
        "visit_rural_unsafe_house": c["visit_rural_unsafe_house"],
        # 二(三) "对未纳入社会救助范围的低收入人口……发现符合救助条件的，应当告知相关救助政策"
        "visit_hardship_not_on_roster": c["visit_hardship_off_roster"],
    }


def near_misses(world: World) -> dict[str, set[str]]:
    """Per rule, people meeting some but not all of its conditions."""
    c = visits.visit_cohorts(world)
    return {
        # exactly at the standard is not above it; an edge household between the two lines
        "visit_income_above_dibao_standard": c["visit_dibao_income_at_standard"] | c["visit_edge_income_between"],
        # the edge line is higher: an edge household between the lines; dibao households are the other rule's
        "visit_income_above_edge_standard": c["visit_edge_income_between"] | c["visit_dibao_income_rose"],
        # already given medical assistance; an illness that worsened is not new
        "visit_illness_no_medical_aid": c["visit_illness_assisted"] | c["visit_illness_worsened"],
        # an urban household's unsafe house is public rental housing's, not rural renovation's
        "visit_rural_unsafe_house": c["visit_urban_unsafe_house"],
        # lost a job but well off; the same hardship on the roster already (not missing)
        "visit_hardship_not_on_roster": c["visit_jobless_off_roster_well_off"] | c["visit_hardship_on_roster"],
    }
