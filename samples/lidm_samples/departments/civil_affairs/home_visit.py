"""civil_affairs.home_visit: what street and village staff find on home visits (走访), the streets' XLSX drop.

Drawn from a random stream of its own (``world.rng("visits")``), so every other feed's rows stay exactly as they were.
Visited are about half of the active roster households (their heads: household findings are reported under the head)
and a few people on no roster; most visits find nothing new. ``visit_cohorts`` names the people planted for the four
visit rules and their near misses (``lidm_samples.planted_visits`` restates the rules over ``visit_rows``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from lidm_samples.people import REFERENCE_DATE, Person, RosterMember
from lidm_samples.sources import (
    DUPLICATE,
    SampleSource,
    SampleTable,
    inject,
    set_value,
    text,
    wrong_check_char,
)
from lidm_samples.world import World, age_on

HEADER = (
    "走访记录编号",
    "身份证号",
    "姓名",
    "家庭编号",
    "区县代码",
    "街道代码",
    "村（社区）代码",
    "城乡类别",
    "走访日期",
    "走访人",
    "现家庭人口数",
    "家庭人口增减",
    "家庭人均月收入（元）",
    "收入变化",
    "健康状况变化",
    "住房状况变化",
    "就业状况变化",
    "服务需求",
    "走访情况说明",
    "录入时间",
)
# The rules' defaults, restated (rules/visit_*.yaml): yuan per person per month.
DIBAO_STANDARD = 700  # visit_income_above_dibao_standard
EDGE_STANDARD = 1050  # visit_income_above_edge_standard (1.5 x the dibao standard)
HARDSHIP_INCOME = 1050  # visit_hardship_not_on_roster: at or below this, with a lost job or a new serious illness
INCOME = {"rose": "增加", "fell": "减少", "unchanged": "无变化"}
HEALTH = {"new_serious_illness": "新患重病", "new_disability": "新增残疾", "worsened": "病情加重", "none": "无变化"}
HOUSING = {"unsafe_house": "住房成为危房", "lost_home": "无房可住", "none": "无变化"}
EMPLOYMENT = {"found_job": "新就业", "lost_job": "失业", "none": "无变化"}
AREA = {"urban": "城镇", "rural": "农村"}
NEEDS = {
    "care": "生活照料",
    "rehabilitation": "康复",
    "companionship": "陪伴探访",
    "employment_services": "就业服务",
    "legal_aid": "法律援助",
    "education": "教育",
    "housing": "住房",
    "medical": "医疗",
}
# cohort -> which visit rule it is planted for (or is a near miss of); ``visit_cohorts`` fills them
COHORTS = (
    "visit_dibao_income_rose",  # dibao, per-capita income above the dibao standard
    "visit_dibao_income_at_standard",  # near miss: exactly the standard (not above it)
    "visit_edge_income_rose",  # dibao edge, above the edge standard
    "visit_edge_income_between",  # near miss: above the dibao standard, not the edge standard
    "visit_serious_illness",  # on the roster, a new serious illness or disability, no medical assistance
    "visit_illness_assisted",  # near miss: the same, already given medical assistance
    "visit_illness_worsened",  # near miss: an illness worsened (not new)
    "visit_rural_unsafe_house",  # a rural roster household's house became unsafe or is lost
    "visit_urban_unsafe_house",  # near miss: an urban one (public rental housing's, not renovation's)
    "visit_hardship_off_roster",  # on no roster, lost a job or fell seriously ill, low income
    "visit_jobless_off_roster_well_off",  # near miss: lost a job, income well above the line
    "visit_hardship_on_roster",  # near miss: the same hardship, on the roster already
)


@dataclass(frozen=True)
class Finding:
    """What one visit found, before it is written in the template's words."""

    person: Person
    member: RosterMember | None
    area: str
    income: Decimal | None
    income_change: str = "unchanged"
    health: str = "none"
    housing: str = "none"
    employment: str = "none"
    size_change: int = 0
    needs: tuple[str, ...] = ()


def _is_town(person: Person) -> bool:
    return person.street_code[6] == "1"  # towns (镇) are numbered 1xx, streets (街道) 0xx


Plan = tuple[tuple[Finding, ...], dict[str, tuple[str, ...]]]
_PLANS: list[tuple[World, Plan]] = []  # the last few worlds' plans: the rows, the truth and the tests ask often


def _plan(world: World) -> Plan:
    """Every visit finding, planted ones first, and the planted cohorts (ID numbers); computed once per world."""
    for seen, plan in _PLANS:
        if seen is world:
            return plan
    plan = _draw(world)
    _PLANS[:] = [*_PLANS[-3:], (world, plan)]
    return plan


def _draw(world: World) -> Plan:
    rng = world.rng("visits")
    living = {p.id_number for p in world.people if p.residence_status in ("registered", "resident")}
    heads = [
        m
        for m in world.roster
        if m.status == "active" and m.relation_to_head == "head" and m.person.id_number in living
    ]
    on_roster = {m.person.id_number for m in world.roster}
    off_roster = [p for p in world.people if p.id_number in living and p.id_number not in on_roster]
    from lidm_samples.planted import medically_assisted

    assisted = medically_assisted(world, REFERENCE_DATE)
    used: set[str] = set()
    cohorts: dict[str, tuple[str, ...]] = {}
    findings: list[Finding] = []

    def take(pool: list[Any], n: int) -> list[Any]:
        free = [x for x in pool if (x.person if isinstance(x, RosterMember) else x).id_number not in used]
        chosen = rng.sample(free, min(n, len(free)))
        used.update((x.person if isinstance(x, RosterMember) else x).id_number for x in chosen)
        return chosen

    def plant(name: str, chosen: list[Any], make: Any) -> None:
        cohorts[name] = tuple(sorted((x.person if isinstance(x, RosterMember) else x).id_number for x in chosen))
        findings.extend(make(x) for x in chosen)

    def roster_finding(m: RosterMember, **kw: Any) -> Finding:
        area = kw.pop("area", "rural" if _is_town(m.person) else "urban")
        return Finding(m.person, m, area, **kw)

    dibao = [m for m in heads if "dibao" in m.categories]
    # dibao edge households are few: any active member visited, not only heads
    edge = [
        m
        for m in world.roster
        if m.status == "active"
        and m.person.id_number in living
        and "dibao_edge" in m.categories
        and "dibao" not in m.categories
    ]
    # 二(三) "发现家庭状况发生变化的，及时报告": the income rose past the standard (应退尽退, may leave)
    plant(
        "visit_dibao_income_rose",
        take(dibao, 3),
        lambda m: roster_finding(m, income=Decimal(rng.randrange(DIBAO_STANDARD + 1, 1600)), income_change="rose"),
    )
    plant(
        "visit_dibao_income_at_standard",
        take(dibao, 1),
        lambda m: roster_finding(m, income=Decimal(DIBAO_STANDARD), income_change="rose"),
    )
    plant(
        "visit_edge_income_rose",
        take(edge, 2),
        lambda m: roster_finding(m, income=Decimal(rng.randrange(EDGE_STANDARD + 1, 2400)), income_change="rose"),
    )
    plant(
        "visit_edge_income_between",
        take(edge, 1),
        lambda m: roster_finding(m, income=Decimal(rng.randrange(DIBAO_STANDARD + 1, EDGE_STANDARD))),
    )
    # 三(二)1 医疗救助: a new serious illness; one already assisted and one merely worsened are left alone
    unassisted = [m for m in heads if m.person.id_number not in assisted]
    plant(
        "visit_serious_illness",
        take(unassisted, 3),
        lambda m: roster_finding(
            m,
            income=_baseline_income(rng, m),
            health=rng.choice(("new_serious_illness", "new_disability")),
            needs=("medical", "care"),
        ),
    )
    plant(
        "visit_illness_assisted",
        take([m for m in heads if m.person.id_number in assisted], 1),
        lambda m: roster_finding(m, income=_baseline_income(rng, m), health="new_serious_illness", needs=("medical",)),
    )
    plant(
        "visit_illness_worsened",
        take(unassisted, 1),
        lambda m: roster_finding(m, income=_baseline_income(rng, m), health="worsened", needs=("rehabilitation",)),
    )
    # 三(二)3 住房救助: "唯一居住房屋为C、D级危房或者无房的农村低收入家庭"
    renovating = _renovating(world)
    plant(
        "visit_rural_unsafe_house",
        take([m for m in heads if m.person.id_number not in renovating], 3),
        lambda m: roster_finding(
            m,
            area="rural",
            income=_baseline_income(rng, m),
            housing=rng.choice(("unsafe_house", "lost_home")),
            needs=("housing",),
        ),
    )
    plant(
        "visit_urban_unsafe_house",
        take(heads, 1),
        lambda m: roster_finding(
            m, area="urban", income=_baseline_income(rng, m), housing="unsafe_house", needs=("housing",)
        ),
    )
    # 二(三) "对未纳入社会救助范围的低收入人口……发现符合救助条件的，应当告知相关救助政策" (主动发现)
    adults = [p for p in off_roster if 18 <= age_on(p) <= 75]
    plant(
        "visit_hardship_off_roster",
        take(adults, 3),
        lambda p: Finding(
            p,
            None,
            "rural" if _is_town(p) else "urban",
            Decimal(rng.randrange(300, HARDSHIP_INCOME + 1)),
            income_change="fell",
            **rng.choice(
                (
                    {"employment": "lost_job", "needs": ("employment_services",)},
                    {"health": "new_serious_illness", "needs": ("medical",)},
                )
            ),
        ),
    )
    plant(
        "visit_jobless_off_roster_well_off",
        take(adults, 1),
        lambda p: Finding(p, None, "urban", Decimal(rng.randrange(3000, 6000)), "fell", employment="lost_job"),
    )
    plant(
        "visit_hardship_on_roster",
        take([m for m in heads if m.person.id_number not in assisted], 1),
        lambda m: roster_finding(
            m, income=Decimal(400), income_change="fell", employment="lost_job", needs=("employment_services",)
        ),
    )
    # the routine visits: about half the roster households, a few people on no roster; mostly nothing new
    for m in take(heads, round(0.5 * len(heads))):
        findings.append(roster_finding(m, income=_baseline_income(rng, m), **_routine(rng)))
    for p in take(off_roster, max(5, round(0.01 * len(off_roster)))):
        income = Decimal(rng.randrange(1200, 8000))
        findings.append(Finding(p, None, "rural" if _is_town(p) else "urban", income, **_routine(rng)))
    return tuple(findings), cohorts


def _baseline_income(rng: random.Random, m: RosterMember) -> Decimal:
    """A per-capita income the category's standard still covers: dibao at or below it, the edge between."""
    if "dibao" in m.categories or "tekun" in m.categories:
        return Decimal(rng.randrange(100, DIBAO_STANDARD + 1))
    if "dibao_edge" in m.categories:
        return Decimal(rng.randrange(DIBAO_STANDARD + 1, EDGE_STANDARD + 1))
    return Decimal(rng.randrange(400, 1600))


def _routine(rng: random.Random) -> dict[str, Any]:
    """A routine visit's findings: most find nothing new; some a need for a service."""
    needs = tuple(sorted(rng.sample(list(NEEDS), rng.choice((1, 2))))) if rng.random() < 0.3 else ()
    if rng.random() < 0.1:
        return {"health": "worsened", "needs": needs}
    return {"needs": needs}


def _renovating(world: World) -> set[str]:
    """Heads whose rural house renovation is under way, waiting for acceptance or passed (the rule's absent)."""
    from lidm_samples.departments import housing

    under_way = {v for k, v in housing.ACCEPTANCE_LABELS.items() if k in ("in_progress", "pending", "passed")}
    return {r["户主身份证号"] for r in housing.renovation_rows(world) if r["验收状态"] in under_way}


def visit_cohorts(world: World) -> dict[str, set[str]]:
    """The planted cohorts of the visit rules, by name (COHORTS): raw ID numbers."""
    return {name: set(ids) for name, ids in _plan(world)[1].items()}


def findings(world: World) -> tuple[Finding, ...]:
    """Every visit finding, one per person (a person's latest visit)."""
    return _plan(world)[0]


def visit_rows(world: World) -> list[dict[str, Any]]:
    """The template's rows (Chinese headers and labels), one per person visited, before any fault."""
    rng = world.rng("visits.rows")
    staff = [p.name for p in rng.sample(world.people, 12)]  # the streets' visitors: synthetic names
    rows = []
    for i, f in enumerate(findings(world), 1):
        p = f.person
        visited = REFERENCE_DATE - timedelta(days=rng.randrange(1, 90))
        size = len(world.households.get(f.member.household_id if f.member else p.household_id, ())) or 1
        rows.append(
            {
                "走访记录编号": f"ZF{p.street_code}{i:06d}",
                "身份证号": p.id_number,
                "姓名": p.name,
                "家庭编号": f.member.household_id if f.member else None,
                "区县代码": p.district_code,
                "街道代码": p.street_code,
                "村（社区）代码": p.street_code + (f"2{rng.randrange(1, 30):02d}" if f.area == "rural" else "001"),
                "城乡类别": AREA[f.area],
                "走访日期": visited,
                "走访人": rng.choice(staff),
                "现家庭人口数": max(1, size + f.size_change),
                "家庭人口增减": f.size_change,
                "家庭人均月收入（元）": f.income,
                "收入变化": INCOME[f.income_change],
                "健康状况变化": HEALTH[f.health],
                "住房状况变化": HOUSING[f.housing],
                "就业状况变化": EMPLOYMENT[f.employment],
                "服务需求": "、".join(NEEDS[n] for n in f.needs) or None,
                "走访情况说明": "入户走访，了解家庭收入、健康、住房和就业情况" if f == findings(world)[0] else None,
                "录入时间": datetime.combine(
                    visited + timedelta(days=1), time(9 + rng.randrange(8), rng.randrange(60))
                ),
            }
        )
    return rows


def home_visit(world: World, bad: int) -> SampleTable:
    """The streets' drop: ``visit_rows`` with the faults asked for."""
    rows = visit_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:civil_affairs.home_visit",
        {
            "bad_check_char": wrong_check_char("身份证号"),
            "unknown_health_change": set_value("健康状况变化", "骨折"),
            "short_street_code": set_value("街道代码", "4301"),
            "impossible_visit_date": set_value("走访日期", "2026-02-30"),
            DUPLICATE: None,
        },
    )
    return SampleTable({c: text() for c in HEADER}, rows, kinds)


SOURCE = SampleSource(
    "civil_affairs.home_visit",
    "home_visit_drop",
    home_visit,
    file=f"home_visit_{REFERENCE_DATE:%Y%m%d}.xlsx",
)
