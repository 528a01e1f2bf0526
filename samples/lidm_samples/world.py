"""One synthetic city shared by every department's sample source, with the overlaps monitoring looks for.

The same people appear across departments the way they do in a real city: a roster member who is also a
registered unemployed person, a hospital patient with high out-of-pocket costs, a severely disabled
certificate holder, students, people who died, a disaster-affected household, a relocated household on
the rolls of two districts. Each overlap is a named cohort, chosen here once, so every department's
generator (and the monitoring tests) agree on who is in it.

On top of the random overlaps the world plants, for every monitoring rule, cases the rule must find and near misses
it must not (``PLANTED``): departments' generators read these cohorts, and ``lidm_samples.planted`` turns the world
into each rule's expected warnings.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property

from lidm_samples.people import (
    DISTRICTS,
    REFERENCE_DATE,
    Person,
    RosterMember,
    generate_people,
    generate_roster,
    monthly_amount,
)

# Cohort names; values are lists of people (or of household heads for *_households).
COHORTS = (
    "deceased",  # died: residence_status deceased (some still on the roster: deceased_on_roster, deceased_left_roster)
    "roster_unemployed",  # roster members of working age who are registered unemployed
    "unemployed",  # every registered unemployed person (includes roster_unemployed)
    "high_out_of_pocket",  # patients whose out-of-pocket medical costs are high (some on the roster)
    "severe_disabled",  # disability certificate grade 1 or 2 (some on the roster)
    "disabled",  # every disability certificate holder (includes severe_disabled)
    "students",  # living people aged 3-22 enrolled in a school
    "disaster_households",  # heads of households hit by a disaster (at least one on the roster)
    "relocated_two_districts",  # heads of active roster households relocated into another district, hukou left behind
    "relocated_households",  # heads of all relocated households (includes relocated_two_districts)
    "children_in_need",  # orphans and de-facto unsupported children
    "return_risk",  # heads of households under return-to-poverty monitoring
    "pensioners",  # people of pension age drawing a pension
    "employed",  # working-age people with a job record
)
# Planted cases: people each monitoring rule must find, and near misses it must not (lidm_samples.planted).
# All are living, active roster members (or heads of active roster households) unless said otherwise.
PLANTED = (
    "deceased_on_roster",  # died recently; civil affairs has not heard, so the member is still active
    "deceased_left_roster",  # died; civil affairs ended the member's assistance (near miss, terminated)
    "unemployment_closed",  # working age, an unemployment registration that was closed (near miss)
    "catastrophic_costs",  # a long stay for a serious illness: out-of-pocket costs far above 20000 yuan
    "emergency_fund_roster",  # helped by the disease emergency fund this year (and no high costs)
    "emergency_fund_lapsed",  # a fund case that was revoked or is more than a year old (near miss)
    "housing_waiting",  # heads of households in urban housing difficulty without public rental support
    "housing_supported",  # heads of households in urban housing difficulty in public rental (near miss)
    "premium_subsidy_missing",  # this year's premium subsidy missing, at a lower ratio or revoked
    "roster_employees",  # premium-subsidy categories employed as employees: employer-insured (near miss)
    "relocated_hukou_moved",  # heads relocated into another district, hukou moved along (near miss)
    "return_risk_off_roster",  # heads of monitored households, risk not eliminated, not on the roster
    "return_risk_eliminated",  # heads of households whose risk was eliminated, not on the roster (near miss)
    "renovation_stalled",  # heads of rural households whose C/D house renovation failed, stalled or was dropped
    "renovation_resumed",  # heads whose dropped renovation was approved again and is under way (near miss)
    "care_subsidy_missing",  # grade 1-2 certificate, never given the severe-disability care subsidy
    "living_subsidy_missing",  # grade 3-4 certificate, not tekun, never given the hardship living subsidy
    "tekun_disabled",  # tekun with a certificate: no living subsidy, by policy (near miss)
    "disaster_no_transitional",  # heads whose house collapsed or was badly damaged lately, no transitional aid
    "disaster_transitional",  # heads whose house was badly damaged lately and who got transitional aid (near miss)
    "student_aid_missing",  # enrolled in primary school or above this year, no student aid at all
    "student_suspended",  # on leave from school (休学), no aid (near miss)
    "living_subsidy_beyond",  # return_risk with a grade 3-4 certificate: beyond the subsidy's categories (near miss)
    "return_risk_above_standard",  # monitored, not on the roster, income above the dibao standard (near miss)
    # On the roster, may no longer qualify (应退) and people who left (lidm_samples.leavers)
    "dibao_and_return_risk",  # dibao households also under return-to-poverty monitoring (two categories)
    "newly_employed",  # a job as an employee (a wage record) started in the last half year
    "exiting_employed",  # the same, already in gradual exit (渐退) for it (near miss)
    "pension_started",  # began drawing an enterprise pension this year
    "moved_out_on_roster",  # hukou moved out of the city, still active
    "moved_out_left_roster",  # hukou moved out, assistance ended for it (near miss)
    "left_roster_unemployed",  # left the roster this year (income improved), now registered unemployed
    "left_roster_long_ago",  # left years ago, now registered unemployed (near miss: beyond the watch period)
    "legal_aid_refused",  # an active adult member's legal aid application refused this year
    "legal_aid_granted",  # the same, granted (near miss)
    "died_on_dibao",  # an active dibao or tekun member died last week (funeral fee waiver)
    # On no roster at all (主动发现): people whose situation matches a programme, and near misses.
    "hardship_student_overlooked",  # a pupil and a preschool child certified in hardship, no student aid
    "hardship_student_aided",  # certified in hardship, student aid paid (near miss)
    "student_not_difficult",  # assessed 不困难 by the school, no aid (near miss)
    "severe_disabled_off_roster",  # grade 1-2 certificate, no pension, high policy-scope self pay
    "mild_disabled_off_roster",  # grade 3-4 certificate, the same signals (near miss)
    "self_pay_off_roster",  # a catastrophic stay: policy-scope self pay far above 20000 yuan, no assistance
    "disaster_off_roster",  # heads whose house collapsed or was badly damaged lately, no transitional aid
    "disaster_off_roster_relieved",  # the same, transitional aid given (near miss)
    "child_allowance_missing",  # recognised orphans or de-facto unsupported children, allowance 0
    "child_allowance_paid",  # recognised, allowance paid (near miss)
)
# Categories that must each have at least this many active roster members for the planted cases.
_CATEGORY_NEEDS = {"tekun": 1, "rigid_expense": 2, "dibao_edge": 3, "return_risk": 3, "other_hardship": 4}
_HOUSING_DIFFICULTY_SHARE = 0.3  # urban roster households certified in housing difficulty


def age_on(person: Person, day: date = REFERENCE_DATE) -> int:
    born = person.birth_date
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass
class World:
    """People, the roster, and the cohorts every department's rows are drawn from."""

    size: int
    seed: int
    people: list[Person]
    roster: list[RosterMember]
    cohorts: dict[str, list[Person]] = field(default_factory=dict)

    def rng(self, name: str) -> random.Random:
        """A generator private to one dataset, so adding a dataset never shifts another's rows."""
        return random.Random(f"{self.seed}:{name}")

    @cached_property
    def by_id(self) -> dict[str, Person]:
        return {p.id_number: p for p in self.people}

    @cached_property
    def households(self) -> dict[str, list[Person]]:
        out: dict[str, list[Person]] = {}
        for p in self.people:
            out.setdefault(p.household_id, []).append(p)
        return out

    @cached_property
    def roster_by_id(self) -> dict[str, RosterMember]:
        return {m.person.id_number: m for m in self.roster}

    def roster_of(self, person: Person) -> RosterMember | None:
        return self.roster_by_id.get(person.id_number)

    def living(self, people: Sequence[Person] | None = None) -> list[Person]:
        return [p for p in (self.people if people is None else people) if p.residence_status != "deceased"]

    def aged(self, low: int, high: int, people: Sequence[Person] | None = None) -> list[Person]:
        """Living people with low <= age <= high."""
        return [p for p in self.living(people) if low <= age_on(p) <= high]

    def cohort(self, name: str) -> list[Person]:
        if name not in self.cohorts:
            raise KeyError(f"no cohort {name}; known: {', '.join(COHORTS + PLANTED)}")
        return self.cohorts[name]


def _pick(rng: random.Random, pool: Sequence[Person], share: float, at_least: int = 0) -> list[Person]:
    n = min(len(pool), max(at_least, round(share * len(pool))))
    return rng.sample(list(pool), n)


def _union(*groups: Sequence[Person]) -> list[Person]:
    seen: dict[str, Person] = {}
    for group in groups:
        for p in group:
            seen.setdefault(p.id_number, p)
    return list(seen.values())


def _heads(world: World, people: Sequence[Person]) -> list[Person]:
    """Heads of the households these people belong to, once each: the first living member listed."""
    heads = []
    for p in people:
        members = world.households[p.household_id]
        heads.append(next((m for m in members if m.residence_status != "deceased"), members[0]))
    return _union(heads)


def build_world(size: int, seed: int, roster_share: float = 0.05) -> World:
    """A deterministic city of ``size`` people; cohorts are guaranteed non-empty from a few hundred people,
    and the planted cohorts from about 1500 (a smaller roster may have no student to plant, for one)."""
    people = generate_people(size, seed)
    roster = generate_roster(people, share=roster_share, seed=seed)
    world = World(size, seed, people, roster)
    _ensure_categories(world)
    _plant_deaths(world)
    _assess_housing(world)
    rng = world.rng("cohorts")
    on_roster = [m.person for m in roster]
    roster_living = world.living(on_roster)
    working = world.aged(18, 59)
    active = {m.person.id_number for m in roster if m.status == "active"}
    roster_working = world.aged(18, 59, on_roster)

    def choose(name: str, build: Callable[[], list[Person]]) -> None:
        world.cohorts[name] = sorted(build(), key=lambda p: p.id_number)

    choose("deceased", lambda: [p for p in people if p.residence_status == "deceased"])
    choose(
        "roster_unemployed",
        lambda: _union(
            _pick(rng, [p for p in roster_working if p.id_number in active], 0.25, at_least=2),
            _pick(rng, [p for p in roster_working if p.id_number not in active], 0.25),
        ),
    )
    choose("unemployed", lambda: _union(world.cohorts["roster_unemployed"], _pick(rng, working, 0.03, at_least=1)))
    choose(
        "high_out_of_pocket",
        lambda: _union(_pick(rng, roster_living, 0.10, at_least=1), _pick(rng, world.living(), 0.01, at_least=1)),
    )
    choose(
        "severe_disabled",
        lambda: _union(_pick(rng, roster_living, 0.08, at_least=1), _pick(rng, world.living(), 0.008, at_least=1)),
    )
    choose("disabled", lambda: _union(world.cohorts["severe_disabled"], _pick(rng, world.living(), 0.03)))
    choose("students", lambda: _pick(rng, world.aged(3, 22), 0.9, at_least=1))
    choose(
        "disaster_households",
        lambda: _heads(world, _union(_pick(rng, roster_living, 0.03, at_least=1), _pick(rng, people, 0.01))),
    )

    def relocated_two() -> list[Person]:
        heads = [h for h in _heads(world, roster_living) if h.id_number in active]
        return _pick(rng, [h for h in heads if h.residence_status != "deceased"], 0.03, at_least=2)

    choose("relocated_two_districts", relocated_two)
    choose(
        "relocated_households",
        lambda: _union(world.cohorts["relocated_two_districts"], _heads(world, _pick(rng, world.living(), 0.01))),
    )
    choose("children_in_need", lambda: _pick(rng, world.aged(0, 17), 0.02, at_least=3))
    choose(
        "return_risk",
        lambda: _heads(
            world,
            _union(
                [m.person for m in roster if m.category == "return_risk" and m.person.residence_status != "deceased"],
                _pick(rng, world.living(), 0.005, at_least=1),
            ),
        ),
    )
    choose("pensioners", lambda: _pick(rng, world.aged(60, 120), 0.8, at_least=1))
    jobless = {p.id_number for p in world.cohorts["unemployed"]}
    choose("employed", lambda: _pick(rng, [p for p in working if p.id_number not in jobless], 0.6))
    _plant(world)
    _plant_off_roster(world)
    _plant_leavers(world)
    return world


# --- planted cases --------------------------------------------------------------------------------------


def _roster_households(world: World) -> dict[str, list[RosterMember]]:
    out: dict[str, list[RosterMember]] = {}
    for member in world.roster:
        out.setdefault(member.household_id, []).append(member)
    return out


def _ensure_categories(world: World) -> None:
    """Re-categorize a few active 低保 households so that every category a planted case needs is there."""
    rng = world.rng("roster:categories")
    households = _roster_households(world)
    active = [ms for ms in households.values() if ms[0].status == "active"]
    for category, need in _CATEGORY_NEEDS.items():
        have = sum(len(_fit([m.person for m in ms])) for ms in active if ms[0].category == category)
        pool = [ms for ms in active if ms[0].category == "dibao" and (category != "tekun" or len(ms) == 1)]
        rng.shuffle(pool)
        for members in pool:
            if have >= need or sum(len(ms) for ms in active if ms[0].category == "dibao") <= 2 * len(members):
                break
            for m in members:
                m.category, m.monthly_amount = category, monthly_amount(rng, category)
            have += len(_fit([m.person for m in members]))


def _plant_deaths(world: World) -> None:
    """One more active roster member dies unreported (beside the one generate_roster keeps), and one whose
    death civil affairs did hear of: their assistance was ended the day after the death was registered."""
    rng = world.rng("roster:deaths")
    households = sorted(_roster_households(world).values(), key=lambda ms: ms[0].household_id)
    pool = [
        ms
        for ms in households
        if ms[0].status == "active"
        and ms[0].approval_date < REFERENCE_DATE - timedelta(days=120)
        and len(world.living([m.person for m in ms])) >= 2
    ]
    for kind, members in zip(
        ("deceased_on_roster", "deceased_left_roster"), rng.sample(pool, min(2, len(pool))), strict=False
    ):
        member = max((m for m in members if m.person.residence_status != "deceased"), key=lambda m: age_on(m.person))
        member.person.residence_status = "deceased"
        if kind == "deceased_left_roster":
            registered = min(member.person.updated_at.date(), REFERENCE_DATE - timedelta(days=2))
            member.status = "terminated"
            member.termination_date = registered + timedelta(days=1)
        world.cohorts[kind] = [member.person]
    for kind in ("deceased_on_roster", "deceased_left_roster"):
        world.cohorts.setdefault(kind, [])


def _assess_housing(world: World) -> None:
    """城镇住房困难: urban roster households are assessed at review; rural (town) ones are not."""
    rng = world.rng("roster:housing")
    for members in sorted(_roster_households(world).values(), key=lambda ms: ms[0].household_id):
        urban = members[0].person.street_code[6] == "0"
        verdict = (rng.random() < _HOUSING_DIFFICULTY_SHARE) if urban else None
        for m in members:
            m.housing_difficulty = verdict


def _fit(people: Sequence[Person]) -> list[Person]:
    """People a planted case can be built on: alive and living where they are registered."""
    return [p for p in people if p.residence_status in ("registered", "resident")]


def _plant(world: World) -> None:
    """Choose the planted cohorts (PLANTED) and add them to the cohorts the departments draw from."""
    rng = world.rng("planted")
    households = _roster_households(world)
    active = [m for m in world.roster if m.status == "active"]
    members = _fit([m.person for m in active])
    by_id = {m.person.id_number: m for m in active}
    used: dict[str, set[str]] = {}

    def take(name: str, group: str, *pools: Sequence[Person], at_least: int | Sequence[int] = 1) -> list[Person]:
        """People for one planted cohort, ``at_least`` from each pool; never one planted in another cohort of the
        same group (the cohorts one rule, or a pair of rules reading the same feeds, depends on)."""
        taken = used.setdefault(group, set())
        chosen: list[Person] = []
        counts = [at_least] * len(pools) if isinstance(at_least, int) else list(at_least)
        for pool, n in zip(pools, counts, strict=True):
            fresh = sorted((p for p in pool if p.id_number not in taken), key=lambda p: p.id_number)
            picked = _pick(rng, fresh, 0.0, n)
            taken.update(p.id_number for p in picked)
            chosen += picked
        world.cohorts[name] = sorted(chosen, key=lambda p: p.id_number)
        return chosen

    def of(pool: Sequence[Person], *categories: str) -> list[Person]:
        return [p for p in pool if by_id[p.id_number].category in categories]

    def add(cohort: str, people: Sequence[Person]) -> None:
        world.cohorts[cohort] = sorted(_union(world.cohorts[cohort], people), key=lambda p: p.id_number)

    def outside(pool: Sequence[Person], *cohorts: str) -> list[Person]:
        return [p for p in pool if not any(p.id_number in ids[c] for c in cohorts)]

    ids = {name: {p.id_number for p in people} for name, people in world.cohorts.items()}
    working = world.aged(18, 59, members)
    others = ("dibao", "tekun", "dibao_edge", "return_risk", "other_hardship")
    full, half = ("dibao", "tekun"), ("dibao_edge", "return_risk")

    # people
    pupils = world.aged(7, 22, members)
    # 三(二)2 "对低收入家庭中符合条件的在园幼儿、在校学生…给予教育救助": a preschool child too, where the roster has one
    infants = world.aged(3, 5, members)
    add("students", take("student_aid_missing", "education", pupils, infants, at_least=(2, 1)))
    add("students", take("student_suspended", "education", pupils))
    take("unemployment_closed", "unemployment", outside(world.aged(20, 59, members), "unemployed"))
    # 三(二)1 "对低收入人口门诊、住院所发生的属于政策范围内的个人自负医疗费用…给予…医疗救助": other_hardship members
    # get no one-stop assistance (settlements.ASSISTANCE_RATIO), insured as residents (no job, no pension): their
    # in-policy self pay stays high. DOMAIN: 刚性支出困难 are households *not* dibao, tekun or dibao-edge, so the
    # dibao-tier and rigid_expense members with the same stay are near misses of the rigid-expense rule.
    unassisted = outside(of(members, "other_hardship"), "employed", "pensioners")
    costly = take(
        "catastrophic_costs",
        "medical",
        unassisted,
        of(members, "dibao", "tekun", "dibao_edge"),
        of(members, "rigid_expense"),
        at_least=(2, 1, 1),
    )
    add("high_out_of_pocket", costly)
    healthy = outside(of(members, *others), "high_out_of_pocket")
    take("emergency_fund_roster", "medical", healthy)
    take("emergency_fund_lapsed", "medical", healthy, at_least=2)
    free = outside(members, "employed")  # no job as an employee: insured as a resident
    take("premium_subsidy_missing", "premium", of(free, *full), of(free, *half), at_least=(3, 2))
    workers = outside(working, "unemployed")
    add("employed", take("roster_employees", "premium", of(workers, *full), of(workers, *half)))
    tekun = take("tekun_disabled", "disability", of(members, "tekun"))
    severe = take("care_subsidy_missing", "disability", members, at_least=2)
    # 三(五) "逐步将…困难残疾人生活补贴…延伸至最低生活保障边缘家庭成员和刚性支出困难家庭成员": dibao, edge and
    # rigid_expense members
    mild = outside(members, "severe_disabled")
    mild = take("living_subsidy_missing", "disability", of(mild, "dibao", "dibao_edge", "rigid_expense"), at_least=2)
    beyond = take("living_subsidy_beyond", "disability", of(outside(members, "severe_disabled"), "return_risk"))
    add("severe_disabled", severe)
    add("disabled", severe + mild + tekun + beyond)

    # households, by their head: each household carries one planted case at most
    heads = [h for h in _fit(_heads(world, members)) if h.id_number in by_id]
    taken: set[str] = set(ids["relocated_two_districts"])

    def household(name: str, pool: Sequence[Person], at_least: int = 1) -> list[Person]:
        chosen = _pick(
            rng, sorted((h for h in pool if h.id_number not in taken), key=lambda p: p.id_number), 0, at_least
        )
        taken.update(h.id_number for h in chosen)
        world.cohorts[name] = sorted(chosen, key=lambda p: p.id_number)
        return chosen

    def household_of(head: Person) -> list[RosterMember]:
        return households[by_id[head.id_number].household_id]

    # the roster's own head: housing_no_public_rental warns the head (a household whose head died lists a spouse first)
    own = [h for h in heads if by_id[h.id_number].relation_to_head == "head"]
    certified = [h for h in own if by_id[h.id_number].housing_difficulty]
    urban = [h for h in own if h.street_code[6] == "0" and not by_id[h.id_number].housing_difficulty]
    for head in rng.sample(urban, min(len(urban), max(0, 3 - len(certified)))):
        for m in household_of(head):
            m.housing_difficulty = True  # certified at the last review
        certified.append(head)
    household("housing_waiting", certified, at_least=2)
    household("housing_supported", certified)
    household("relocated_hukou_moved", heads)
    rural = [h for h in heads if any(s.endswith("镇") for s in DISTRICTS[h.district_code][1])]
    household("renovation_stalled", rural, at_least=3)
    household("renovation_resumed", rural)
    add("disaster_households", household("disaster_no_transitional", heads, at_least=2))
    add("disaster_households", household("disaster_transitional", heads))
    add("relocated_households", world.cohorts["relocated_hukou_moved"])

    # households not on the roster at all
    off_roster = [
        h
        for h in _fit(_heads(world, world.living()))
        if not any(world.roster_of(m) for m in world.households[h.household_id])
        and h.id_number not in ids["return_risk"]
    ]
    add("return_risk", household("return_risk_off_roster", off_roster, at_least=2))
    add("return_risk", household("return_risk_eliminated", off_roster))
    # 一(三) "将符合条件的防止返贫监测对象及时纳入救助兜底保障范围": only below the dibao standard (near miss: above it)
    add("return_risk", household("return_risk_above_standard", off_roster))


def _plant_off_roster(world: World) -> None:
    """The planted cohorts of the rules whose subject is not the roster (主动发现): people on no roster at all whose
    situation matches a programme, and near misses; each person in one of these cohorts at most."""
    rng = world.rng("planted:off_roster")
    off = [p for p in _fit(world.living()) if world.roster_of(p) is None]
    busy = {
        p.id_number
        for c in ("disabled", "employed", "unemployed", "pensioners", "children_in_need")
        for p in world.cohorts[c]
    }
    hit = {p.id_number for c in ("disaster_households", "return_risk") for p in world.cohorts[c]}
    taken: set[str] = set()

    def take(name: str, *pools: Sequence[Person], at_least: int = 1) -> list[Person]:
        chosen: list[Person] = []
        for pool in pools:
            fresh = sorted((p for p in pool if p.id_number not in taken), key=lambda p: p.id_number)
            picked = _pick(rng, fresh, 0.0, at_least)
            taken.update(p.id_number for p in picked)
            chosen += picked
        world.cohorts[name] = sorted(chosen, key=lambda p: p.id_number)
        return chosen

    def add(cohort: str, people: Sequence[Person]) -> None:
        world.cohorts[cohort] = sorted(_union(world.cohorts[cohort], people), key=lambda p: p.id_number)

    pupils, infants = world.aged(7, 22, off), world.aged(3, 5, off)
    add("students", take("hardship_student_overlooked", pupils, infants))
    add("students", take("hardship_student_aided", pupils))
    add("students", take("student_not_difficult", pupils))
    # Adults without a job, a pension or a certificate: insured as residents, so a catastrophic stay leaves a high
    # policy-scope self pay (lidm_samples.departments.health.settlements).
    adults = [p for p in world.aged(18, 59, off) if p.id_number not in busy]
    severe = take("severe_disabled_off_roster", adults, at_least=2)
    mild = take("mild_disabled_off_roster", adults)
    costly = take("self_pay_off_roster", adults, at_least=2)
    add("severe_disabled", severe)
    add("disabled", severe + mild)
    add("high_out_of_pocket", severe + mild + costly)
    homes = [
        h
        for h in _fit(_heads(world, off))
        if not any(world.roster_of(m) for m in world.households[h.household_id]) and h.id_number not in hit
    ]
    add("disaster_households", take("disaster_off_roster", homes, at_least=2))
    add("disaster_households", take("disaster_off_roster_relieved", homes))
    children = [p for p in world.aged(0, 17, off) if p.id_number not in busy]
    add("children_in_need", take("child_allowance_missing", children, at_least=2))
    add("children_in_need", take("child_allowance_paid", children))


def other_district(district: str, rng: random.Random) -> str:
    """A district of the city other than ``district`` (for relocations and double enrolments)."""
    return rng.choice([d for d in DISTRICTS if d != district])


def _plant_leavers(world: World) -> None:
    """The planted cohorts of 应退 and 渐退 (lidm_samples.leavers): roster members who may no longer qualify, people
    who left and are still watched, and a household holding two categories; each person in one cohort at most."""
    from lidm_samples.leavers import plant_leavers  # a module of its own: world.py is shared and near its limit

    plant_leavers(world, _fit, _pick)
