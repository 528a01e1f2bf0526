"""残联 (disability federation): the disability certificate register, a small SQLite system, read whole."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from lidm_samples.departments.health import death_dates, update_time
from lidm_samples.people import REFERENCE_DATE, Person
from lidm_samples.sources import (
    SampleSource,
    SampleTable,
    a_day,
    code,
    inject,
    set_value,
    text,
    timestamp,
    wrong_check_char,
)
from lidm_samples.world import World, age_on

TYPE_CODES = {
    "visual": "1",
    "hearing": "2",
    "speech": "3",
    "physical": "4",
    "intellectual": "5",
    "mental": "6",
    "multiple": "7",
}
TYPE_WEIGHTS = (12, 14, 2, 45, 8, 11, 8)
STATUS_CODES = {"valid": "1", "expired": "2", "cancelled": "3"}
# Planted cohorts whose members must hold a valid certificate (see lidm_samples.world.PLANTED).
PLANTED_HOLDERS = (
    "care_subsidy_missing",
    "living_subsidy_missing",
    "tekun_disabled",
    "severe_disabled_off_roster",
    "mild_disabled_off_roster",
)
REASON_CODES = {"deceased": "1", "reassessed": "2", "recovered": "3", "moved_out": "4", "voluntary": "5", "other": "9"}
CERTIFICATE_COLUMNS = {
    "cjzh": code(20),
    "sfzh": code(18),
    "xm": text(50),
    "xb": code(1),
    "csrq": text(10),  # SQLite keeps dates as text: YYYY-MM-DD
    "cjlb": code(1),
    "cjdj": code(1),
    "fzrq": text(10),
    "yxqz": text(10),
    "zjzt": code(1),
    "zxrq": text(10),
    "zxyy": code(1),
    "jhrdh": text(20),
    "hjqx": code(6),
    "hjjd": code(9),
    "gxsj": timestamp(),
}


def _valid_until(person: Person, issued: date) -> date:
    """Third-generation certificates: ten years, five for holders under 16 when issued."""
    years = 5 if age_on(person, issued) < 16 else 10
    return date(issued.year + years, issued.month, 28 if (issued.month, issued.day) == (2, 29) else issued.day)


def certificate_rows(world: World) -> list[dict[str, Any]]:
    """The certificate register's rows, before any fault is put in."""
    rng = world.rng("disability_federation.disability_certificates")
    severe = {p.id_number for p in world.cohort("severe_disabled")}
    # Planted subsidy cases hold a certificate issued in the last four years: valid whatever else happens.
    recent = {p.id_number for c in PLANTED_HOLDERS for p in world.cohort(c)}
    died = death_dates(world)
    # Some of the dead held a certificate: most were cancelled after the death was reported, and one or
    # two are still 'valid' because nobody told the federation (what monitoring must catch).
    dead = [p for p in world.cohort("deceased") if died[p.id_number][0] > p.birth_date + timedelta(days=365)]
    dead = rng.sample(dead, min(len(dead), max(3, round(0.05 * len(dead)))))
    rows = []

    def add(person: Person, kind: str, grade: int, issued: date, status: str, ended: date | None, why: str | None):
        guardian = kind in ("intellectual", "mental") or age_on(person) < 18
        rows.append(
            {
                "cjzh": f"{person.id_number}{TYPE_CODES[kind]}{grade}",
                "sfzh": person.id_number,
                "xm": person.name,
                "xb": "1" if person.gender == "male" else "2",
                "csrq": person.birth_date.isoformat(),
                "cjlb": TYPE_CODES[kind],
                "cjdj": str(grade),
                "fzrq": issued.isoformat(),
                "yxqz": _valid_until(person, issued).isoformat(),
                "zjzt": STATUS_CODES[status],
                "zxrq": ended.isoformat() if ended else None,
                "zxyy": REASON_CODES[why] if why else None,
                "jhrdh": f"1{rng.choice('3578')}{rng.randrange(10**9):09d}" if guardian else None,
                "hjqx": person.district_code,
                "hjjd": person.street_code,
                "gxsj": update_time(rng, min(ended or issued, REFERENCE_DATE - timedelta(days=1))),
            }
        )

    forgotten = {p.id_number for p in dead[: 1 if len(dead) < 5 else 2]}
    for person in world.cohort("disabled") + dead:
        kind = rng.choices(list(TYPE_CODES), weights=TYPE_WEIGHTS)[0]
        grade = rng.choice((1, 2)) if person.id_number in severe else rng.choice((3, 4))
        first = max(date(2015, 1, 1), person.birth_date + timedelta(days=180))
        if person.id_number in forgotten or person.id_number in recent:
            first = max(first, REFERENCE_DATE - timedelta(days=4 * 365))  # still within its validity
        last = died[person.id_number][0] - timedelta(days=1) if person.id_number in died else REFERENCE_DATE
        issued = a_day(rng, min(first, last), last - timedelta(days=7))
        # valid on the day that matters: the reference date, or the death for a dead holder
        on = died[person.id_number][0] if person.id_number in died else REFERENCE_DATE
        status = "valid" if _valid_until(person, issued) >= on else "expired"
        ended, why = None, None
        if person.id_number in died and person.id_number not in forgotten and status == "valid":
            reported = died[person.id_number][1]
            ended = min(reported + timedelta(days=rng.randint(5, 60)), REFERENCE_DATE - timedelta(days=1))
            status, why = "cancelled", "deceased"
        elif (
            person.id_number not in recent
            and person.residence_status == "moved_out"
            and issued < REFERENCE_DATE - timedelta(days=60)
            and rng.random() < 0.5
        ):
            ended, why = a_day(rng, issued + timedelta(days=30), REFERENCE_DATE - timedelta(days=1)), "moved_out"
            status = "cancelled"
        if person.id_number in severe and grade == 2 and issued.year >= 2016 and rng.random() < 0.3:
            # reassessed: the earlier, milder certificate was cancelled the day the new one was issued
            before = a_day(rng, date(2013, 1, 1), issued - timedelta(days=365))
            if before > person.birth_date + timedelta(days=180):
                add(person, kind, 3, before, "cancelled", issued, "reassessed")
        add(person, kind, grade, issued, status, ended, why)
    return rows


def disability_certificates(world: World, bad: int) -> SampleTable:
    rows = certificate_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:disability_federation.disability_certificates",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_disability_type": set_value("cjlb", "8"),
            "impossible_issue_date": set_value("fzrq", "2026-02-30"),
            "missing_name": set_value("xm", None),
            "duplicate_key": None,
        },
    )
    return SampleTable(CERTIFICATE_COLUMNS, rows, kinds)


SOURCES = [
    SampleSource(
        "disability_federation.disability_certificates",
        "disability_db",
        disability_certificates,
        table="cjrzxx",
        server="sqlite",
    ),
]
