"""Hospital settlements: the same visits and stays the health commission records and the medical
security bureau settles, split between insurance and medical assistance."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from lidm_samples.departments.health._common import CENTRES, HOSPITALS, MAJOR_HOSPITALS, Hospital, near
from lidm_samples.departments.hr_social_security.careers import careers
from lidm_samples.people import REFERENCE_DATE, Person, RosterMember
from lidm_samples.sources import a_day
from lidm_samples.world import World, age_on

# ICD-10 main diagnoses: SERIOUS are on the province's list of serious and catastrophic diseases (重特大疾病)
SERIOUS = ("C34.9", "C16.9", "C22.0", "C50.9", "C18.9", "C92.0", "N18.5", "I61.9", "I21.9", "Q21.1")
OUTPATIENT = ("J06.9", "K29.7", "M54.5", "J20.9", "H10.9", "L30.9", "K52.9", "J02.9")
CHRONIC = ("I10", "E11.9", "J44.9", "I25.1", "M17.9", "F20.9")
INPATIENT = ("J18.9", "K35.8", "S72.0", "K80.2", "I63.9", "J44.1", "S82.2", "N20.0")

# Basic insurance (percent paid above the deductible, by hospital level) and the annual critical-illness
# threshold, roughly Changsha's 2026 rules; medical assistance covers a share of the in-scope self pay.
DEDUCTIBLE = {"tertiary": 100_000, "secondary": 50_000, "primary": 20_000, "unrated": 20_000}  # fen
INPATIENT_RATIO = {
    "resident": {"tertiary": 55, "secondary": 70, "primary": 85, "unrated": 85},
    "employee": {"tertiary": 85, "secondary": 88, "primary": 90, "unrated": 90},
}
OUTPATIENT_RATIO = {
    "resident": {"outpatient": 50, "chronic_outpatient": 60},
    "employee": {"outpatient": 60, "chronic_outpatient": 75},
}
CRITICAL_THRESHOLD = 1_500_000  # fen of in-scope self pay left after basic insurance
CRITICAL_RATIO = {"resident": 60, "employee": 80}
ORDINARY = {  # visit type -> (diagnoses, total cost range in fen, in-scope share, days of the stay)
    "outpatient": (OUTPATIENT, (3_000, 60_000), (0.7, 0.95), (0, 0)),
    "chronic_outpatient": (CHRONIC, (15_000, 250_000), (0.8, 0.95), (0, 0)),
    "inpatient": (INPATIENT, (300_000, 3_500_000), (0.75, 0.92), (3, 20)),
}
ASSISTANCE_RATIO = {"tekun": 100, "dibao": 70, "dibao_edge": 60, "return_risk": 60, "rigid_expense": 50}


@dataclass
class Settlement:
    """One outpatient visit or hospital stay as settled; amounts in fen."""

    number: int
    person: Person
    hospital: Hospital
    visit_type: str
    admission: date
    discharge: date | None
    diagnosis: str
    insurance: str | None  # employee | resident | None when uninsured
    total: int
    in_scope: int
    basic: int = 0
    critical: int = 0
    assistance: int = 0
    assistance_kind: str = ""  # outpatient | inpatient | catastrophic when assisted
    assistance_ratio: int = 0
    category: str | None = None  # the roster category medical assistance was given for
    reversed: bool = False  # refunded and reversed at the medical security bureau

    @property
    def settled(self) -> date:
        return self.discharge or self.admission

    @property
    def serious(self) -> bool:
        return self.diagnosis in SERIOUS

    @property
    def health_id(self) -> str:
        return f"{self.hospital.credit_code}{self.settled:%Y%m%d}{self.number:06d}"

    @property
    def insurance_id(self) -> str:
        return f"{self.hospital.insurance_code}{self.settled:%Y%m%d}{self.number:08d}"

    @property
    def insurance_paid(self) -> int:
        return self.basic + self.critical + self.assistance

    @property
    def assistance_base(self) -> int:
        """In-scope self pay after basic and critical-illness insurance: what medical assistance works on."""
        return self.in_scope - self.basic - self.critical

    @property
    def policy_self_pay(self) -> int:
        return self.assistance_base - self.assistance

    @property
    def out_of_pocket(self) -> int:
        return self.total - self.insurance_paid


def assisted_on(member: RosterMember | None, day: date) -> bool:
    """Whether a roster member was entitled to assistance on ``day`` (approved, not suspended or ended)."""
    if member is None or member.approval_date > day:
        return False
    return member.status in ("active", "gradual_exit") or (  # 渐退: still assisted until it ends
        member.status == "terminated" and member.termination_date is not None and member.termination_date > day
    )


# Low-income categories whose resident premium medical assistance subsidises (资助参保).
PREMIUM_SUBSIDY_CATEGORIES = ("tekun", "dibao", "dibao_edge", "return_risk")


def insurance_types(world: World) -> dict[str, str]:
    """Each person's basic medical insurance: people in a job as an employee, and some retirees, in the employee
    scheme; everyone else (flexible workers, the self-employed, public-welfare posts) in the resident scheme.

    Retirees of the categories whose premium is subsidised are insured as residents: what the premium-subsidy
    monitoring expects of anyone without a current job as an employee.
    """
    rng = world.rng("medical_insurance.scheme")
    employees = {i for i, c in careers(world).items() if c.current is not None and c.current.form == "employee"}
    retired = {p.id_number for p in world.cohort("pensioners")}
    subsidised = {m.person.id_number for m in world.roster if m.category in PREMIUM_SUBSIDY_CATEGORIES}
    out = {}
    for person in world.people:
        retiree = person.id_number in retired and rng.random() < 0.45 and person.id_number not in subsidised
        out[person.id_number] = "employee" if person.id_number in employees or retiree else "resident"
    return out


def _settle(world: World, s: Settlement) -> None:
    """Split the cost between basic and critical-illness insurance and one-stop medical assistance."""
    if s.insurance is None:
        return
    if s.visit_type == "inpatient":
        eligible = max(0, s.in_scope - DEDUCTIBLE[s.hospital.level])
        s.basic = min(eligible * INPATIENT_RATIO[s.insurance][s.hospital.level] // 100, 25_000_000)
        left = eligible - s.basic
        if left > CRITICAL_THRESHOLD:
            s.critical = (left - CRITICAL_THRESHOLD) * CRITICAL_RATIO[s.insurance] // 100
    else:
        s.basic = s.in_scope * OUTPATIENT_RATIO[s.insurance][s.visit_type] // 100
    member = world.roster_of(s.person)
    if member is not None and member.category in ASSISTANCE_RATIO and assisted_on(member, s.admission):
        s.category = member.category
        s.assistance_ratio = ASSISTANCE_RATIO[member.category]
        s.assistance = s.assistance_base * s.assistance_ratio // 100
        if s.visit_type != "inpatient":
            s.assistance_kind = "outpatient"
        else:
            s.assistance_kind = "catastrophic" if s.serious and s.total > 5_000_000 else "inpatient"


def _specialist(rng: random.Random, person: Person, diagnosis: str) -> Hospital:
    """Where a seriously ill patient is treated: a tertiary hospital, often the cancer hospital for cancers."""
    if diagnosis.startswith("C") and age_on(person) >= 14 and rng.random() < 0.5:
        return next(h for h in HOSPITALS if h.name == "湖南省肿瘤医院")
    return near(rng, person, [h for h in HOSPITALS if h.level == "tertiary"])


def hospital_settlements(world: World) -> list[Settlement]:
    """Every settlement of the last year: serious stays of the high out-of-pocket cohort and ordinary visits."""
    rng = world.rng("health.settlements")
    schemes = insurance_types(world)
    out: list[Settlement] = []

    def add(p: Person, where: Hospital, kind: str, day: date, icd: str, fen: int, scope: float, days: int = 0) -> None:
        discharge = day + timedelta(days=days) if kind == "inpatient" else None
        s = Settlement(len(out) + 1, p, where, kind, day, discharge, icd, schemes[p.id_number], fen, int(fen * scope))
        out.append(s)

    def day_in(first: int, last: int) -> date:
        return a_day(rng, REFERENCE_DATE - timedelta(days=first), REFERENCE_DATE - timedelta(days=last))

    planted = ("catastrophic_costs", "severe_disabled_off_roster", "mild_disabled_off_roster", "self_pay_off_roster")
    catastrophic = {p.id_number for c in planted for p in world.cohort(c)}
    for person in world.cohort("high_out_of_pocket"):
        icd = rng.choice(SERIOUS if age_on(person) >= 18 else ("C92.0", "Q21.1"))
        hospital = _specialist(rng, person, icd)
        for stay in range(rng.randint(1, 3)):
            total = rng.randrange(4_000_000, 30_000_000)
            scope = rng.uniform(0.55, 0.8)
            if stay == 0 and person.id_number in catastrophic:
                total, scope = max(total, 20_000_000), 0.6  # 80000 yuan and more outside the policy scope alone
            add(person, hospital, "inpatient", day_in(330, 50), icd, total, scope, rng.randint(7, 35))
        if icd in ("N18.5", "C34.9", "C50.9", "C92.0"):  # dialysis or chemotherapy between the stays
            for _ in range(rng.randint(1, 3)):
                fen = rng.randrange(80_000, 600_000)
                add(person, hospital, "chronic_outpatient", day_in(300, 2), icd, fen, rng.uniform(0.75, 0.95))

    living = world.living()
    for person in sorted(rng.sample(living, round(0.08 * len(living))), key=lambda p: p.id_number):
        uninsured = rng.random() < 0.03
        for _ in range(rng.randint(1, 3)):
            kind = rng.choices(("outpatient", "chronic_outpatient", "inpatient"), weights=(70, 12, 18))[0]
            if kind == "chronic_outpatient" and age_on(person) < 40:
                kind = "outpatient"
            hospital = near(rng, person, MAJOR_HOSPITALS)
            if kind == "outpatient" and rng.random() < 0.5:
                hospital = CENTRES[person.street_code]
            icds, fen, scope, stay = ORDINARY[kind]
            icd, total = rng.choice(icds), rng.randrange(*fen)
            add(person, hospital, kind, day_in(365, 40), icd, total, rng.uniform(*scope), rng.randint(*stay))
            if uninsured:
                out[-1].insurance = None
            elif rng.random() < 0.02:
                out[-1].reversed = True
    for s in out:
        _settle(world, s)
    return out
