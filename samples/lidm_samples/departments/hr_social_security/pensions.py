"""hr_social_security.enterprise_pension and institution_pension: one scheme per pensioner, decided once."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from lidm_samples.departments.hr_social_security.careers import add_months, add_years, careers, stamp
from lidm_samples.departments.hr_social_security.employers import Employer, Employers
from lidm_samples.people import REFERENCE_DATE, Person
from lidm_samples.sources import (
    SampleTable,
    a_day,
    big_integer,
    code,
    day,
    inject,
    integer,
    money,
    set_value,
    text,
    timestamp,
    wrong_check_char,
    yuan,
)
from lidm_samples.world import World, age_on

PENSION_STATUSES = {"contributing": "10", "receiving": "20", "suspended": "30", "terminated": "40"}
PENSION_END_REASONS = {"deceased": "1", "transferred_out": "2", "settled_abroad": "3", "other": "9"}


def pension_schemes(world: World) -> dict[str, str]:
    """Each pensioner's scheme (enterprise or institution; the rest draw the residents' pension, not here),
    and the same for people of pension age who died."""
    rng = world.rng("hr_social_security.pension_schemes")
    pool = world.cohort("pensioners") + [p for p in world.cohort("deceased") if age_on(p) >= 60]
    out = {}
    started = {p.id_number for p in world.cohorts.get("pension_started", [])}
    for p in sorted(pool, key=lambda x: x.id_number):
        draw = rng.random()
        if draw < 0.80 or p.id_number in started:  # lidm_samples.leavers: a pension begun this year
            out[p.id_number] = "enterprise"
        elif draw < 0.93:
            out[p.id_number] = "institution"
    return out


def _retirement(rng: random.Random, p: Person, institution: bool) -> date:
    """Pension start: the month after the statutory retirement birthday (women workers 50, cadres 55)."""
    age = 60 if p.gender == "male" else 55 if institution or rng.random() < 0.3 else 50
    birthday = add_years(p.birth_date, age)
    return min(add_months(date(birthday.year, birthday.month, 1), 1), REFERENCE_DATE)


def _work_start(rng: random.Random, p: Person) -> date:
    return max(add_years(p.birth_date, rng.randint(18, 24)), date(1950, 1, 1) + timedelta(days=rng.randrange(700)))


def _months_between(start: date, end: date) -> int:
    return max(0, (end.year - start.year) * 12 + end.month - start.month)


ENTERPRISE_PENSION_COLUMNS = {
    "sfzh": text(18),
    "xm": text(50),
    "cbsf": code(1),  # 参保身份 1 单位职工 2 灵活就业人员
    "dwmc": text(200),
    "cbrq": day(),  # 参保日期
    "cbzt": code(2),  # 参保状态
    "jfjs": money(),  # 月缴费基数
    "ljjfys": integer(),  # 累计缴费月数
    "yjbylj": money(),  # 月基本养老金
    "dyksrq": day(),  # 待遇享受起始日期
    "zzrq": day(),
    "zzyy": code(1),
    "cbqx": code(6),  # 参保地区县
    "gxsj": timestamp(),
}


@dataclass
class _Insured:
    """One person's enterprise pension record, before it is written in the bureau's columns."""

    person: Person
    kind: str  # employee | individual
    employer: Employer | None
    insured: date
    status: str
    months: int
    base: Decimal = Decimal("0.00")
    pension: Decimal = Decimal("0.00")
    started: date | None = None
    ended: date | None = None
    reason: str | None = None


def enterprise_pension(world: World, bad: int) -> SampleTable:
    rng = world.rng("hr_social_security.enterprise_pension")
    employers = Employers.of(world)
    schemes = pension_schemes(world)
    everyone = careers(world)
    records: list[_Insured] = []

    deceased = [p for p in world.cohort("deceased") if schemes.get(p.id_number) == "enterprise"]
    still_paid = {p.id_number for p in rng.sample(deceased, min(len(deceased), 1 if len(deceased) < 10 else 2))}
    retired = [p for p in world.cohort("pensioners") if schemes.get(p.id_number) == "enterprise"] + deceased
    begun = {p.id_number for p in world.cohorts.get("pension_started", [])}
    for p in sorted(retired, key=lambda x: x.id_number):
        started = _retirement(rng, p, institution=False)
        if p.id_number in begun:  # paid up to fifteen years late (补缴), drawing since six weeks ago
            started = REFERENCE_DATE - timedelta(days=45)
        work = _work_start(rng, p)
        insured = max(work, date(1986, 1, 1) + timedelta(days=rng.randrange(6 * 365)))
        if insured > started - timedelta(days=365):
            insured = work
        months = min(900, max(180, int(_months_between(work, started) * rng.uniform(0.75, 1.0))))
        kind = "employee" if rng.random() < 0.85 else "individual"
        employer = rng.choice(employers.enterprises) if kind == "employee" else None
        record = _Insured(p, kind, employer, insured, "receiving", months, started=started)
        pension = yuan((1150 + months / 12 * 62) * rng.uniform(0.85, 1.3))
        if p.id_number in still_paid:
            record.pension = pension  # the death has not reached the pension system: monitoring must catch it
        elif p.residence_status == "deceased":
            record.status, record.ended, record.reason = "terminated", max(p.updated_at.date(), started), "deceased"
        elif rng.random() < 0.02 and p.id_number not in begun:
            record.status = "suspended"  # the annual proof-of-life check was missed: payment paused
        else:
            record.pension = pension
        records.append(record)

    for c in everyone.values():
        p, now = c.person, c.current
        if not c.jobs or p.residence_status == "deceased":
            continue
        if now and now.employer and now.employer.public and now.form == "employee":
            continue  # a public-sector employee is in the institution scheme
        first = min(j.start for j in c.jobs)
        insured = a_day(rng, max(add_years(p.birth_date, 18), add_years(first, -6)), first)
        if now:
            kind = "employee" if now.form in ("employee", "public_welfare_post") else "individual"
            if kind == "individual" and rng.random() < 0.35:
                continue  # not every flexible worker or shopkeeper pays in
            if kind == "employee":
                base = yuan(rng.uniform(4081, 9000) if rng.random() < 0.85 else rng.uniform(9000, 20403))
            else:
                base = yuan(4081 if rng.random() < 0.7 else 6802)  # 60% or 100% of the average wage
            months = min(900, max(1, int(_months_between(insured, REFERENCE_DATE) * rng.uniform(0.8, 1.0))))
            employer = now.employer if kind == "employee" else None
            records.append(_Insured(p, kind, employer, insured, "contributing", months, base=base))
        else:
            last = max(c.jobs, key=lambda j: j.start)
            if last.form == "flexible":
                continue
            months = max(1, int(_months_between(insured, last.end or REFERENCE_DATE) * rng.uniform(0.8, 1.0)))
            records.append(_Insured(p, "employee", last.employer, insured, "suspended", min(months, 900)))

    moved = [p for p in world.aged(25, 59) if p.residence_status == "moved_out" and p.id_number not in everyone]
    for p in rng.sample(moved, round(0.15 * len(moved))):
        insured = a_day(rng, add_years(p.birth_date, 18), REFERENCE_DATE - timedelta(days=800))
        left = a_day(rng, insured + timedelta(days=365), REFERENCE_DATE - timedelta(days=30))
        months = max(1, int(_months_between(insured, left) * rng.uniform(0.7, 1.0)))
        employer = rng.choice(employers.enterprises)
        records.append(
            _Insured(p, "employee", employer, insured, "terminated", months, ended=left, reason="transferred_out")
        )

    rows = [
        {
            "sfzh": r.person.id_number,
            "xm": r.person.name,
            "cbsf": "1" if r.kind == "employee" else "2",
            "dwmc": r.employer.name if r.employer else None,
            "cbrq": r.insured,
            "cbzt": PENSION_STATUSES[r.status],
            "jfjs": r.base,
            "ljjfys": r.months,
            "yjbylj": r.pension,
            "dyksrq": r.started,
            "zzrq": r.ended,
            "zzyy": PENSION_END_REASONS[r.reason] if r.reason else None,
            "cbqx": r.person.district_code,
            "gxsj": stamp(rng, r.ended or r.started or r.insured),
        }
        for r in records
    ]
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:hr_social_security.enterprise_pension",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_insured_status": set_value("cbzt", "50"),
            "negative_pension": set_value("yjbylj", Decimal("-2350.00")),
            "contribution_months_over_900": set_value("ljjfys", 1200),
            "duplicate_key": None,
        },
    )
    return SampleTable(ENTERPRISE_PENSION_COLUMNS, rows, kinds)


INSTITUTION_PENSION_COLUMNS = {
    "sfzh": text(18),
    "xm": text(50),
    "dwmc": text(200),  # 参保单位（机关事业单位）
    "cbrq": code(8),  # 参保日期 YYYYMMDD
    "cbzt": code(2),
    "yjbylj": big_integer(),  # 月基本养老金（分）
    "dyksrq": code(8),
    "zzrq": code(8),
    "zzyy": code(1),
    "cbqx": code(6),
    "gxsj": timestamp(),
}
INSTITUTION_REFORM = date(2014, 10, 1)  # agencies and public institutions joined the contributory scheme


def institution_pension(world: World, bad: int) -> SampleTable:
    rng = world.rng("hr_social_security.institution_pension")
    employers = Employers.of(world)
    schemes = pension_schemes(world)
    rows = []

    def ymd(d: date | None) -> str | None:
        return f"{d:%Y%m%d}" if d else None

    members = [p for p in world.cohort("pensioners") + world.cohort("deceased") if schemes.get(p.id_number)]
    for p in sorted(members, key=lambda x: x.id_number):
        if schemes[p.id_number] != "institution":
            continue
        started = _retirement(rng, p, institution=True)
        work = _work_start(rng, p)
        insured = max(work, INSTITUTION_REFORM) if started > INSTITUTION_REFORM else work
        status, pension, ended, reason = "receiving", round(rng.uniform(4200, 9800) * 100), None, None
        if p.residence_status == "deceased":
            status, pension, ended, reason = "terminated", 0, max(p.updated_at.date(), started), "deceased"
        rows.append(
            {
                "sfzh": p.id_number,
                "xm": p.name,
                "dwmc": rng.choice(employers.public[p.district_code]).name,
                "cbrq": ymd(insured),
                "cbzt": PENSION_STATUSES[status],
                "yjbylj": pension,
                "dyksrq": ymd(started),
                "zzrq": ymd(ended),
                "zzyy": PENSION_END_REASONS[reason] if reason else None,
                "cbqx": p.district_code,
                "gxsj": stamp(rng, ended or started),
            }
        )
    for c in careers(world).values():
        now = c.current
        if now and now.form == "employee" and now.employer and now.employer.public:
            p = c.person
            insured = max(now.start, INSTITUTION_REFORM)
            rows.append(
                {
                    "sfzh": p.id_number,
                    "xm": p.name,
                    "dwmc": now.employer.name,
                    "cbrq": ymd(insured),
                    "cbzt": PENSION_STATUSES["contributing"],
                    "yjbylj": 0,
                    "dyksrq": None,
                    "zzrq": None,
                    "zzyy": None,
                    "cbqx": now.employer.district,
                    "gxsj": stamp(rng, insured),
                }
            )
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:hr_social_security.institution_pension",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_insured_status": set_value("cbzt", "50"),
            "impossible_pension_start": set_value("dyksrq", "20260230"),
            "missing_employer": set_value("dwmc", None),
            "duplicate_key": None,
        },
    )
    return SampleTable(INSTITUTION_PENSION_COLUMNS, rows, kinds)
