"""One career history per person (jobs and unemployment registrations), decided once for every table."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from lidm_samples.departments.hr_social_security.employers import Employer, Employers
from lidm_samples.people import REFERENCE_DATE, Person
from lidm_samples.sources import a_day, moment
from lidm_samples.world import World, age_on

RECORDS_FROM = date(2001, 1, 1)  # the employment service's records begin here


def add_years(day_: date, years: int) -> date:
    try:
        return day_.replace(year=day_.year + years)
    except ValueError:  # 29 February
        return day_.replace(year=day_.year + years, day=28)


def add_months(day_: date, months: int) -> date:
    index = day_.year * 12 + day_.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day_.day, 28))


@dataclass
class Job:
    record_id: str
    form: str  # employee | flexible | self_employed | public_welfare_post
    employer: Employer | None
    registered: date
    start: date
    end: date | None = None
    end_reason: str | None = None

    @property
    def years(self) -> float:
        return ((self.end or REFERENCE_DATE) - self.start).days / 365.25


@dataclass
class Registration:
    registration_id: str
    registered: date
    deregistered: date | None = None
    reason: str | None = None
    months: int = 0  # unemployment benefit months granted; 0 when not entitled


@dataclass
class Career:
    person: Person
    jobs: list[Job] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)

    @property
    def current(self) -> Job | None:
        return next((j for j in self.jobs if j.end is None), None)


def _benefit_months(job: Job | None) -> int:
    """Months of unemployment benefit: contributions of at least a year, and not a voluntary quit."""
    if job is None or job.form not in ("employee", "public_welfare_post") or job.end_reason == "resigned":
        return 0
    if job.years < 1:
        return 0
    return 12 if job.years < 5 else 18 if job.years < 10 else 24


class _Numbers:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str, person: Person, day_: date) -> str:
        self.n += 1
        return f"{prefix}{person.district_code}{day_.year}{self.n:06d}"


def careers(world: World) -> dict[str, Career]:
    """Everyone's jobs and unemployment registrations, keyed by ID number (one private generator)."""
    rng = world.rng("hr_social_security.careers")
    employers = Employers.of(world)
    number = _Numbers()
    out: dict[str, Career] = {}

    def job(person: Person, form: str, start: date, end: date | None = None, reason: str | None = None) -> Job:
        if form == "employee":
            public = end is None and rng.random() < 0.08  # public-sector jobs are rarely lost
            employer = rng.choice(employers.public[person.district_code] if public else employers.enterprises)
        elif form == "public_welfare_post":
            employer = employers.street_office(person)
        elif form == "self_employed":
            employer = employers.shop(rng, person)
        else:
            employer = None
        registered = min(start + timedelta(days=rng.randrange(15)), REFERENCE_DATE)
        return Job(number("JY", person, registered), form, employer, registered, start, end, reason)

    def end_reason(form: str) -> str:
        if form == "public_welfare_post":
            return "post_expired"
        if form == "self_employed":
            return "business_closed"
        if form == "flexible":
            return rng.choice(("other", "other", "resigned"))
        reasons = ("contract_expired", "resigned", "dismissed", "employer_closed", "other")
        return rng.choices(reasons, weights=(35, 35, 10, 12, 8))[0]

    employees = {p.id_number for p in world.cohort("roster_employees")}
    # lidm_samples.leavers: roster members whose job as an employee began lately (应退 or already 渐退)
    hired = {p.id_number for c in ("newly_employed", "exiting_employed") for p in world.cohorts.get(c, [])}
    employees |= hired
    for p in world.cohort("employed"):
        on_roster = world.roster_of(p) is not None
        adult = add_years(p.birth_date, 18)
        weights = (45, 22, 5, 28) if on_roster else (72, 16, 8, 4)
        form = rng.choices(("employee", "flexible", "self_employed", "public_welfare_post"), weights=weights)[0]
        form = "employee" if p.id_number in employees else form
        earliest = max(adult, add_years(REFERENCE_DATE, -3 if form == "public_welfare_post" else -20))
        career = Career(p)
        current = job(p, form, a_day(rng, earliest, REFERENCE_DATE - timedelta(days=30)))
        if p.id_number in hired:  # a wage record from two to four months ago
            current.start = REFERENCE_DATE - timedelta(days=60 + int(p.id_number[14:17]) % 60)
            current.registered = current.start + timedelta(days=3)
        if (current.start - adult).days > 3 * 365 and rng.random() < 0.45:
            jobless = rng.random() < 0.25
            gap = rng.randint(90, 400) if jobless else rng.randint(1, 60)
            prev_end = current.start - timedelta(days=gap)
            prev_start = a_day(rng, max(adult, add_years(prev_end, -8), RECORDS_FROM), prev_end - timedelta(days=200))
            if prev_start < prev_end:
                prev_form = rng.choices(("employee", "flexible", "self_employed"), weights=(80, 14, 6))[0]
                prev = job(p, prev_form, prev_start, prev_end, end_reason(prev_form))
                career.jobs.append(prev)
                if jobless:
                    registered = prev_end + timedelta(days=rng.randint(3, 30))
                    career.registrations.append(
                        Registration(
                            number("SY", p, registered), registered, current.start, "employed", _benefit_months(prev)
                        )
                    )
        career.jobs.append(current)
        out[p.id_number] = career

    for p in world.cohort("unemployed"):
        adult = add_years(p.birth_date, 18)
        career = Career(p)
        registered = min(
            a_day(rng, max(adult + timedelta(days=30), add_years(REFERENCE_DATE, -3)), REFERENCE_DATE),
            REFERENCE_DATE - timedelta(days=1),
        )
        last = None
        if (registered - adult).days > 2 * 365 and rng.random() < 0.75:
            end = registered - timedelta(days=rng.randint(3, 60))
            start = a_day(rng, max(adult, add_years(end, -12)), end - timedelta(days=200))
            if start < end:
                form = "public_welfare_post" if world.roster_of(p) and rng.random() < 0.2 else "employee"
                form = "flexible" if rng.random() < 0.1 else form
                last = job(p, form, start, end, end_reason(form))
                if (start - max(adult, date(2005, 1, 1))).days > 200 and rng.random() < 0.25:
                    before = a_day(rng, max(adult, date(2005, 1, 1), start - timedelta(days=700)), start)
                    before = min(before, start - timedelta(days=30))
                    career.registrations.append(Registration(number("SY", p, before), before, start, "employed"))
                career.jobs.append(last)
        elif (registered - adult).days > 3 * 365 and rng.random() < 0.15:
            before = a_day(rng, max(adult, add_years(registered, -6)), registered - timedelta(days=800))
            left = before + timedelta(days=rng.randint(190, 400))
            career.registrations.append(Registration(number("SY", p, before), before, left, "no_contact"))
        career.registrations.append(Registration(number("SY", p, registered), registered, months=_benefit_months(last)))
        out[p.id_number] = career

    for p in world.cohort("deceased"):
        age = age_on(p)
        if 25 <= age <= 59 and rng.random() < 0.5:
            died = p.updated_at.date()
            start = a_day(rng, add_years(died, -10), died - timedelta(days=200))
            out[p.id_number] = Career(p, [job(p, "employee", start, died, "deceased")])

    # Registered unemployed once, the registration closed since: found a job, or stopped answering.
    for p in world.cohort("unemployment_closed"):
        career = out.setdefault(p.id_number, Career(p))
        current = career.current
        if current is not None and current.start > add_years(p.birth_date, 18) + timedelta(days=120):
            closed, reason = current.start, "employed"
            registered = a_day(
                rng, max(add_years(p.birth_date, 18), closed - timedelta(days=400)), closed - timedelta(days=30)
            )
        else:
            registered = a_day(
                rng,
                max(add_years(p.birth_date, 18), add_years(REFERENCE_DATE, -3)),
                REFERENCE_DATE - timedelta(days=200),
            )
            closed, reason = (
                registered + timedelta(days=rng.randint(120, 180)),
                rng.choice(("no_contact", "refused_service")),
            )
        career.registrations.append(Registration(number("SY", p, registered), registered, closed, reason))
    return out


def stamp(rng: random.Random, last: date) -> datetime:
    """An update time after the record's last event, with microseconds."""
    return moment(rng, days=max(1, min((REFERENCE_DATE - last).days, 3000)))
