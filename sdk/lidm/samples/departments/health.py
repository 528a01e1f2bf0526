"""卫健委 (health commission): the population register, death records and hospital settlements in its own
database, and the disease emergency relief fund's spreadsheet dropped by its fund office."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from lidm.samples.people import DISTRICTS, REFERENCE_DATE, REFERENCE_TIME, STREET_NAMES, Person, RosterMember
from lidm.samples.sources import (
    SampleSource,
    SampleTable,
    a_day,
    big_integer,
    code,
    inject,
    set_value,
    text,
    tie_at_boundary,
    timestamp,
    wrong_check_char,
)
from lidm.samples.world import World, age_on
from lidm.samples.write import population_rows

POPULATION_COLUMNS = {
    "sfzh": text(18),
    "xm": text(50),
    "xb": code(1),
    "csrq": code(8),
    "hh": text(32),
    "lxdh": text(20),
    "qxdm": code(6),
    "jddm": code(9),
    "jzdz": text(200),
    "rkzt": code(2),
    "gxsj": timestamp(),
}


def population(world: World, bad: int) -> SampleTable:
    rows = population_rows(world.people, bad=bad, seed=world.seed)
    kinds = {("duplicate_key" if k == "duplicate_id" else k): n for k, n in rows.bad_kinds.items()}
    return SampleTable(POPULATION_COLUMNS, rows.rows, kinds)


# --- hospitals -----------------------------------------------------------------------------------------

GENDER_CODES = {"male": "1", "female": "2"}
_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def _credit_code(district: str, number: int) -> str:
    """统一社会信用代码 of a public institution (GB 32100-2015, with its check character)."""
    body = f"12{district}{(444_870_000 + number * 7_919) % 10**9:09d}"
    total = sum(_CREDIT_CHARS.index(c) * w for c, w in zip(body, _CREDIT_WEIGHTS, strict=True))
    return body + _CREDIT_CHARS[(31 - total % 31) % 31]


@dataclass(frozen=True)
class Hospital:
    """A medical institution, with the codes each department knows it by."""

    name: str
    district: str
    grade: str  # NHSA hospital level code: 01-04 tertiary, 05-07 secondary, 08-10 primary, 11 unrated
    credit_code: str  # the health platform's institution code
    insurance_code: str  # 定点医疗机构编码 of the medical security platform

    @property
    def level(self) -> str:
        number = int(self.grade)
        return "tertiary" if number <= 4 else "secondary" if number <= 7 else "primary" if number <= 10 else "unrated"


_MAJOR = (
    ("中南大学湘雅医院", "430105", "02"),
    ("中南大学湘雅二医院", "430102", "02"),
    ("中南大学湘雅三医院", "430104", "02"),
    ("湖南省人民医院", "430102", "02"),
    ("湖南省肿瘤医院", "430104", "02"),
    ("湖南省儿童医院", "430103", "02"),
    ("湖南中医药大学第一附属医院", "430111", "02"),
    ("长沙市中心医院", "430111", "02"),
    ("长沙市第一医院", "430105", "02"),
    ("长沙市第三医院", "430103", "02"),
    ("长沙市第四医院", "430104", "03"),
    ("长沙县人民医院", "430121", "03"),
    ("浏阳市人民医院", "430181", "03"),
    ("宁乡市人民医院", "430182", "03"),
    ("浏阳市中医医院", "430181", "05"),
    ("宁乡市中医医院", "430182", "05"),
    ("望城区人民医院", "430112", "05"),
    ("望城区中医医院", "430112", "06"),
)


def _hospitals() -> list[Hospital]:
    named = list(_MAJOR)
    for district, (_, streets) in DISTRICTS.items():
        for street in streets:
            if street.endswith("镇"):
                named.append((f"{street}中心卫生院", district, "08"))
            else:
                named.append((f"{street}社区卫生服务中心", district, "11"))
    return [
        Hospital(name, district, grade, _credit_code(district, i), f"H{district}{i + 101:05d}")
        for i, (name, district, grade) in enumerate(named)
    ]


HOSPITALS = _hospitals()
MAJOR_HOSPITALS = [h for h in HOSPITALS if h.level in ("tertiary", "secondary")]


STREETS = STREET_NAMES
CENTRES = {c: next(h for h in HOSPITALS if h.name.startswith(s) and h.district == c[:6]) for c, s in STREETS.items()}
CHILDREN_HOSPITAL = "湖南省儿童医院"


def _near(rng: random.Random, person: Person | None, pool: list[Hospital]) -> Hospital:
    """A hospital in the person's district most of the time, else anywhere in the city; children's
    hospital for children only."""
    child = person is not None and age_on(person) < 14
    if child and rng.random() < 0.5:
        return next(h for h in HOSPITALS if h.name == CHILDREN_HOSPITAL)
    pool = [h for h in pool if h.name != CHILDREN_HOSPITAL]
    local = [h for h in pool if person is not None and h.district == person.district_code]
    return rng.choice(local) if local and rng.random() < 0.6 else rng.choice(pool)


def update_time(rng: random.Random, day: date, delay_hours: float = 30) -> datetime:
    """A record's update time, some hours after the working day it happened, with microseconds."""
    start = datetime.combine(day, time(8)) + timedelta(seconds=rng.randrange(int(delay_hours * 3600)))
    latest = REFERENCE_TIME - timedelta(seconds=rng.randrange(60, 3600))
    return min(start, latest).replace(microsecond=rng.randrange(1, 10**6))


# --- deaths --------------------------------------------------------------------------------------------


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
            reporter = _near(rng, person, MAJOR_HOSPITALS).name if place in "12" else CENTRES[person.street_code].name
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


# --- hospital settlements (the same events the medical security bureau settles) ---------------------------

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
    return member.status == "active" or (
        member.status == "terminated" and member.termination_date is not None and member.termination_date > day
    )


def insurance_types(world: World) -> dict[str, str]:
    """Each person's basic medical insurance: employees and some retirees in the employee scheme."""
    rng = world.rng("medical_insurance.scheme")
    employed = {p.id_number for p in world.cohort("employed")}
    retired = {p.id_number for p in world.cohort("pensioners")}
    out = {}
    for person in world.people:
        is_employee = person.id_number in employed or (person.id_number in retired and rng.random() < 0.45)
        out[person.id_number] = "employee" if is_employee else "resident"
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
    return _near(rng, person, [h for h in HOSPITALS if h.level == "tertiary"])


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

    for person in world.cohort("high_out_of_pocket"):
        icd = rng.choice(SERIOUS if age_on(person) >= 18 else ("C92.0", "Q21.1"))
        hospital = _specialist(rng, person, icd)
        for _ in range(rng.randint(1, 3)):
            total = rng.randrange(4_000_000, 30_000_000)
            add(person, hospital, "inpatient", day_in(330, 50), icd, total, rng.uniform(0.55, 0.8), rng.randint(7, 35))
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
            hospital = _near(rng, person, MAJOR_HOSPITALS)
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


VISIT_CODES = {"outpatient": "1", "chronic_outpatient": "2", "inpatient": "3"}
LEVEL_CODES = {"tertiary": "3", "secondary": "2", "primary": "1", "unrated": "9"}
EXPENSE_COLUMNS = {
    "jsdh": text(64),
    "sfzh": text(18),
    "xm": text(50),
    "yljgdm": text(32),
    "yljgmc": text(200),
    "yljgdj": code(1),
    "jzlx": code(1),
    "ryrq": code(8),
    "cyrq": code(8),
    "zdbm": text(20),
    "zdjbbz": code(1),
    "zfy": big_integer(),  # amounts in fen
    "ybzf": big_integer(),
    "zcfwnzf": big_integer(),
    "grzf": big_integer(),
    "jsrq": code(8),
    "qxdm": code(6),
    "gxsj": timestamp(),
}


def medical_expenses(world: World, bad: int) -> SampleTable:
    rng = world.rng("health.medical_expenses")
    rows = [
        {
            "jsdh": s.health_id,
            "sfzh": s.person.id_number,
            "xm": s.person.name,
            "yljgdm": s.hospital.credit_code,
            "yljgmc": s.hospital.name,
            "yljgdj": LEVEL_CODES[s.hospital.level],
            "jzlx": VISIT_CODES[s.visit_type],
            "ryrq": f"{s.admission:%Y%m%d}",
            "cyrq": f"{s.discharge:%Y%m%d}" if s.discharge else None,
            "zdbm": s.diagnosis,
            "zdjbbz": "1" if s.serious else "0",
            "zfy": s.total,
            "ybzf": s.insurance_paid,
            "zcfwnzf": s.policy_self_pay,
            "grzf": s.out_of_pocket,
            "jsrq": f"{s.settled:%Y%m%d}",
            "qxdm": s.person.district_code,
            "gxsj": update_time(rng, s.settled, 40),
        }
        for s in hospital_settlements(world)
        if not s.reversed  # a refunded visit is withdrawn from the platform
    ]
    tie_at_boundary(rows, "gxsj")
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:health.medical_expenses",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "negative_out_of_pocket": set_value("grzf", -1_250_000),
            "unknown_visit_type": set_value("jzlx", "9"),
            "impossible_admission_date": set_value("ryrq", "20260231"),
            "duplicate_key": None,
        },
    )
    return SampleTable(EXPENSE_COLUMNS, rows, kinds)


# --- disease emergency relief fund (疾病应急救助基金) -----------------------------------------------------

EMERGENCY_TYPES = {
    "trauma": "严重创伤",
    "cardio_cerebrovascular": "急性心脑血管疾病",
    "poisoning": "急性中毒",
    "respiratory": "急性呼吸衰竭等呼吸系统急症",
    "obstetric": "危重孕产妇",
    "neonatal": "危重新生儿",
    "burn": "严重烧伤",
    "other": "其他急危重症",
}
IDENTITY_LABELS = {"unable_to_pay": "身份明确但无力缴费", "unidentified": "身份不明"}
DISBURSEMENT_LABELS = {"approved": "已审批", "paid": "已发放", "revoked": "已撤销"}
FUND_HEADER = (
    "案件编号",
    "身份证号",
    "姓名",
    "身份状态",
    "救治医院编码",
    "救治医院名称",
    "急危重症类型",
    "入院日期",
    "出院日期",
    "救治费用",
    "基金支付金额",
    "申请日期",  # typed by the fund office as plain numbers: Excel serial days
    "审核日期",
    "拨付日期",
    "拨付状态",
    "区县代码",
    "更新时间",
)


def _emergency_type(rng: random.Random, person: Person | None) -> str:
    if person is not None and age_on(person) < 1:
        return "neonatal"
    kinds = ["trauma", "cardio_cerebrovascular", "poisoning", "respiratory", "burn", "other"]
    weights = [35, 25, 10, 12, 6, 8]
    if person is not None and person.gender == "female" and 20 <= age_on(person) <= 42:
        kinds.append("obstetric")
        weights.append(15)
    return rng.choices(kinds, weights=weights)[0]


def disease_emergency_fund(world: World, bad: int) -> SampleTable:
    rng = world.rng("health.disease_emergency_fund")
    living = world.living()
    patients: list[Person | None] = list(rng.sample(living, max(3, round(0.004 * len(living)))))
    patients += [None] * max(1, len(patients) // 3)  # found unconscious, no papers: identity unknown
    rng.shuffle(patients)
    rows = []
    for seq, person in enumerate(patients, start=1):
        hospital = _near(rng, person, MAJOR_HOSPITALS)
        admission = a_day(rng, date(2024, 1, 1), REFERENCE_DATE - timedelta(days=45))
        discharge = admission + timedelta(days=rng.randint(1, 25))
        applied = discharge + timedelta(days=rng.randint(3, 15))
        approved = applied + timedelta(days=rng.randint(5, 20))
        status = "paid" if approved < REFERENCE_DATE - timedelta(days=20) else "approved"
        if rng.random() < 0.06:
            status = "revoked"  # the patient turned out to be insured, or the family paid
        paid_on = approved + timedelta(days=rng.randint(5, 18)) if status == "paid" else None
        total = rng.randrange(500_000, 12_000_000) / 100
        fund = round(min(total * rng.uniform(0.6, 1.0), 50_000.0), 2)
        last = max(d for d in (approved, paid_on) if d is not None)
        rows.append(
            {
                "案件编号": f"YJJZ{admission.year}{hospital.district}{seq:05d}",
                "身份证号": person.id_number if person else None,
                "姓名": person.name if person else None,
                "身份状态": IDENTITY_LABELS["unidentified" if person is None else "unable_to_pay"],
                "救治医院编码": hospital.credit_code,
                "救治医院名称": hospital.name,
                "急危重症类型": EMERGENCY_TYPES[_emergency_type(rng, person)],
                "入院日期": admission,
                "出院日期": discharge,
                "救治费用": total,
                "基金支付金额": fund,
                "申请日期": applied,
                "审核日期": approved,
                "拨付日期": paid_on,
                "拨付状态": DISBURSEMENT_LABELS[status],
                "区县代码": hospital.district,
                "更新时间": update_time(rng, last).replace(microsecond=0),  # Excel keeps whole seconds
            }
        )
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:health.disease_emergency_fund",
        {
            "unknown_emergency_type": set_value("急危重症类型", "急性过敏"),
            "impossible_admission_date": set_value("入院日期", "2026-02-30"),
            "negative_fund_paid": set_value("基金支付金额", -1200.0),
            "district_outside_city": set_value("区县代码", "430621"),
            "duplicate_key": None,
        },
    )
    return SampleTable({c: text() for c in FUND_HEADER}, rows, kinds)


SOURCES = [
    SampleSource("health.population", "health_db", population, table="t_population", server="mariadb"),
    SampleSource("health.deaths", "health_db", deaths, table="t_death_register", server="mariadb"),
    SampleSource("health.medical_expenses", "health_db", medical_expenses, table="t_med_settlement", server="mariadb"),
    SampleSource(
        "health.disease_emergency_fund",
        "health_drop",
        disease_emergency_fund,
        file=f"emergency_fund_{REFERENCE_DATE:%Y%m%d}.xlsx",
        serial_dates=("申请日期",),
    ),
]
