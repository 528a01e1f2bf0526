"""One synthetic city shared by every department's sample source, with the overlaps monitoring looks for.

The same people appear across departments the way they do in a real city: a roster member who is also a
registered unemployed person, a hospital patient with high out-of-pocket costs, a severely disabled
certificate holder, students, people who died, a disaster-affected household, a relocated household on
the rolls of two districts. Each overlap is a named cohort, chosen here once, so every department's
generator (and the monitoring tests) agree on who is in it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

from lidm.samples.people import (
    DISTRICTS,
    REFERENCE_DATE,
    Person,
    RosterMember,
    generate_people,
    generate_roster,
)

# Cohort names; values are lists of people (or of household heads for *_households).
COHORTS = (
    "deceased",  # died: residence_status deceased (one of them is still on the roster as active)
    "roster_unemployed",  # roster members of working age who are registered unemployed
    "unemployed",  # every registered unemployed person (includes roster_unemployed)
    "high_out_of_pocket",  # patients whose out-of-pocket medical costs are high (some on the roster)
    "severe_disabled",  # disability certificate grade 1 or 2 (some on the roster)
    "disabled",  # every disability certificate holder (includes severe_disabled)
    "students",  # living people aged 3-22 enrolled in a school
    "disaster_households",  # heads of households hit by a disaster (at least one on the roster)
    "relocated_two_districts",  # heads of roster households relocated into another district
    "relocated_households",  # heads of all relocated households (includes relocated_two_districts)
    "children_in_need",  # orphans and de-facto unsupported children
    "return_risk",  # heads of households under return-to-poverty monitoring
    "pensioners",  # people of pension age drawing a pension
    "employed",  # working-age people with a job record
)


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
            raise KeyError(f"no cohort {name}; known: {', '.join(COHORTS)}")
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
    """A deterministic city of ``size`` people; cohorts are guaranteed non-empty from a few hundred people."""
    people = generate_people(size, seed)
    roster = generate_roster(people, share=roster_share, seed=seed)
    world = World(size, seed, people, roster)
    rng = world.rng("cohorts")
    on_roster = [m.person for m in roster]
    roster_living = world.living(on_roster)
    working = world.aged(18, 59)
    roster_working = world.aged(18, 59, on_roster)

    def choose(name: str, build: Callable[[], list[Person]]) -> None:
        world.cohorts[name] = sorted(build(), key=lambda p: p.id_number)

    choose("deceased", lambda: [p for p in people if p.residence_status == "deceased"])
    choose("roster_unemployed", lambda: _pick(rng, roster_working, 0.25, at_least=1))
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
        heads = _heads(world, roster_living)
        return _pick(rng, [h for h in heads if h.residence_status != "deceased"], 0.03, at_least=1)

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
    return world


def other_district(district: str, rng: random.Random) -> str:
    """A district of the city other than ``district`` (for relocations and double enrolments)."""
    return rng.choice([d for d in DISTRICTS if d != district])
