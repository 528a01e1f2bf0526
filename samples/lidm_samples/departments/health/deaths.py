"""health.deaths: death records, with the dates of death other departments' records agree with."""

from __future__ import annotations

from datetime import date, timedelta

from lidm_samples.departments.health._common import CENTRES, GENDER_CODES, MAJOR_HOSPITALS, STREETS, near, update_time
from lidm_samples.people import DISTRICTS, REFERENCE_DATE, Person
from lidm_samples.sources import (
    SampleTable,
    a_day,
    code,
    inject,
    set_value,
    text,
    tie_at_boundary,
    timestamp,
    wrong_check_char,
)
from lidm_samples.world import World


def death_dates(world: World) -> dict[str, tuple[date, date]]:
    """(date of death, date reported) per deceased person; other departments' records agree with these."""
    rng = world.rng("health.deaths:dates")
    out: dict[str, tuple[date, date]] = {}
    for person in world.cohort("deceased"):
        # The register marked the death (updated_at) after it happened and was reported.
        last = min(person.updated_at.date(), REFERENCE_DATE - timedelta(days=2))
        last = max(last, min(person.birth_date + timedelta(days=1), REFERENCE_DATE - timedelta(days=2)))
        member = world.roster_of(person)
        if member is not None and member.status == "active":
            first = max(member.approval_date + timedelta(days=1), last - timedelta(days=60))  # still being paid
        else:
            first = last - timedelta(days=3 * 365)
        if member is not None:
            first = max(first, member.approval_date + timedelta(days=1))  # alive when approved
        first = min(max(first, person.birth_date + timedelta(days=1)), last)
        died = a_day(rng, first, last)
        out[person.id_number] = (died, a_day(rng, died, min(died + timedelta(days=10), last)))
    return out


DEATH_PLACES = {"medical_institution": "1", "en_route": "2", "home": "3", "care_institution": "4", "other": "5"}
DEATH_CAUSES = {
    "infectious": "01",
    "neoplasm": "02",
    "cardio_cerebrovascular": "03",
    "respiratory": "04",
    "other_disease": "05",
    "injury": "06",
    "unknown": "99",
}
DEATH_COLUMNS = {
    "sfzh": text(18),
    "xm": text(50),
    "xb": code(1),
    "swrq": code(8),  # YYYYMMDD text, as the registration system keeps it
    "swdd": code(1),
    "gbsylb": code(2),
    "swzmbh": text(40),
    "bgdw": text(200),
    "bgrq": code(8),
    "xxly": code(1),
    "qxdm": code(6),
    "jddm": code(9),
    "gxsj": timestamp(),
}


def _police_station(person: Person) -> str:
    name = DISTRICTS[person.district_code][0]
    street = STREETS[person.street_code]
    bureau = f"长沙市公安局{name}分局" if name.endswith("区") else f"{name}公安局"
    return f"{bureau}{street.removesuffix('街道').removesuffix('镇')}派出所"


def _funeral_home(person: Person) -> str:
    return {"430181": "浏阳市殡仪馆", "430182": "宁乡市殡仪馆"}.get(person.district_code, "长沙市殡仪馆")


def deaths(world: World, bad: int) -> SampleTable:
    rng = world.rng("health.deaths")
    dates = death_dates(world)
    rows = []
    for seq, person in enumerate(world.cohort("deceased"), start=1):
        died, reported = dates[person.id_number]
        source = rng.choices(("1", "2", "3"), weights=(78, 14, 8))[0]
        certificate = None
        cause: str | None = None
        if source == "1":
            place = rng.choices(list(DEATH_PLACES.values()), weights=(52, 5, 33, 7, 3))[0]
            reporter = near(rng, person, MAJOR_HOSPITALS).name if place in "12" else CENTRES[person.street_code].name
            cause = rng.choices(list(DEATH_CAUSES.values()), weights=(1, 25, 40, 12, 12, 7, 3))[0]
            certificate = f"{person.district_code}{died.year}{seq:05d}"
        elif source == "2":
            place, reporter = "9", _police_station(person)
        else:
            place, reporter = rng.choice(("3", "9")), _funeral_home(person)
            cause = rng.choice((None, "99"))
        rows.append(
            {
                "sfzh": person.id_number,
                "xm": person.name,
                "xb": GENDER_CODES[person.gender],
                "swrq": f"{died:%Y%m%d}",
                "swdd": place,
                "gbsylb": cause,
                "swzmbh": certificate,
                "bgdw": reporter,
                "bgrq": f"{reported:%Y%m%d}",
                "xxly": source,
                "qxdm": person.district_code,
                "jddm": person.street_code,
                "gxsj": update_time(rng, reported),
            }
        )
    tie_at_boundary(rows, "gxsj")
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:health.deaths",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_death_place": set_value("swdd", "7"),
            "impossible_death_date": set_value("swrq", "20260230"),
            "missing_data_source": set_value("xxly", None),
            "duplicate_key": None,
        },
    )
    return SampleTable(DEATH_COLUMNS, rows, kinds)
