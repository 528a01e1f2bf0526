"""人社局 (human resources and social security): employment, unemployment, work injury and pensions, in its
MariaDB database.

One career history per person (jobs and unemployment registrations) and one pension scheme per pensioner are
decided once here, so the employment, unemployment, pension and work-injury tables tell the same story: an
unemployed person's last job ended just before they registered, a worker insured by an employer works there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from lidm.samples.people import DISTRICTS, REFERENCE_DATE, Person
from lidm.samples.sources import (
    SampleSource,
    SampleTable,
    a_day,
    big_integer,
    code,
    day,
    inject,
    integer,
    moment,
    money,
    set_value,
    text,
    tie_at_boundary,
    timestamp,
    wrong_check_char,
    yuan,
)
from lidm.samples.world import World, age_on

# --- employers -----------------------------------------------------------------------------------------

_TRADE_NAMES = (
    "恒达", "华顺", "鑫源", "湘泰", "星城", "麓谷", "远航", "金桥", "天成", "宏远", "新宇", "博雅",
    "永安", "嘉禾", "融城", "楚天", "三湘", "长青", "广信", "德润", "盛世", "湘粤", "中南", "银河",
)  # fmt: skip
_INDUSTRIES = (
    "建筑工程有限公司", "物流有限公司", "餐饮管理有限公司", "电子科技有限公司", "物业管理有限公司",
    "机械制造有限公司", "商贸有限公司", "家政服务有限公司", "汽车销售服务有限公司", "食品有限公司",
    "医药连锁有限公司", "信息技术有限公司", "保安服务有限公司", "环境卫生服务有限公司", "酒店管理有限公司",
)  # fmt: skip
_SHOPS = ("米粉店", "便利店", "五金店", "理发店", "水果店", "小吃店", "汽车修理店", "快递代收点", "服装店")
_AGENCIES = ("教育局", "财政局", "卫生健康局", "人力资源和社会保障局", "民政局", "城市管理和综合执法局", "自然资源局")
_INSTITUTIONS = (
    "长沙市第一中学", "长沙市雅礼中学", "长沙市长郡中学", "长沙市明德中学", "长沙市第三医院", "长沙市第四医院",
    "长沙市中心医院", "长沙市妇幼保健院", "长沙市图书馆", "长沙市实验小学", "长沙市疾病预防控制中心",
)  # fmt: skip
_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


@dataclass(frozen=True)
class Employer:
    name: str
    credit_code: str
    district: str
    public: bool = False  # a government agency or public institution (institution pension scheme)


def credit_code(rng: random.Random, prefix: str, district: str) -> str:
    """A unified social credit code (GB 32100-2015) with valid organisation-code and final check characters."""
    body = "MA4" + "".join(rng.choice(_CREDIT_CHARS) for _ in range(5))
    total = sum(int(c, 36) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    org_check = {10: "X", 11: "0"}.get(11 - total % 11, str(11 - total % 11))
    first17 = prefix + district + body + org_check
    total = sum(_CREDIT_CHARS.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return first17 + _CREDIT_CHARS[(31 - total % 31) % 31]


def _district_prefix(district: str) -> str:
    name = DISTRICTS[district][0]
    return f"长沙市{name}" if name.endswith("区") else name


@dataclass
class Employers:
    enterprises: list[Employer]
    public: dict[str, list[Employer]]  # by district

    @classmethod
    def of(cls, world: World) -> Employers:
        """The city's employers; the same names and codes in every table that mentions them."""
        rng = world.rng("hr_social_security.employers")
        seen: set[str] = set()
        enterprises = []
        while len(enterprises) < max(30, world.size // 25):
            name = rng.choice(("湖南", "长沙", "长沙市")) + rng.choice(_TRADE_NAMES) + rng.choice(_INDUSTRIES)
            if name not in seen:
                seen.add(name)
                district = rng.choice(list(DISTRICTS))
                enterprises.append(Employer(name, credit_code(rng, "91", district), district))
        public: dict[str, list[Employer]] = {}
        for district in DISTRICTS:
            names = [_district_prefix(district) + a for a in _AGENCIES]
            names += rng.sample(_INSTITUTIONS, 3)
            public[district] = [
                Employer(n, credit_code(rng, "11" if n.endswith("局") else "12", district), district, public=True)
                for n in names
            ]
        return cls(enterprises, public)

    def street_office(self, person: Person) -> Employer:
        """The street office (or township government) that places a person in a public-welfare post."""
        name, streets = DISTRICTS[person.district_code]
        street = next((s for s in streets if person.address.startswith(f"长沙市{name}{s}")), streets[0])
        suffix = "人民政府" if street.endswith("镇") else "办事处"
        return Employer(
            f"{_district_prefix(person.district_code)}{street}{suffix}",
            credit_code(random.Random(person.street_code), "11", person.district_code),
            person.district_code,
            public=True,
        )

    def shop(self, rng: random.Random, person: Person) -> Employer:
        """A self-employed person's own registered business (个体工商户)."""
        name = f"{_district_prefix(person.district_code)}{person.name[0]}记{rng.choice(_SHOPS)}"
        return Employer(name, credit_code(rng, "92", person.district_code), person.district_code)


# --- careers -------------------------------------------------------------------------------------------

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

    for p in world.cohort("employed"):
        on_roster = world.roster_of(p) is not None
        adult = add_years(p.birth_date, 18)
        weights = (45, 22, 5, 28) if on_roster else (72, 16, 8, 4)
        form = rng.choices(("employee", "flexible", "self_employed", "public_welfare_post"), weights=weights)[0]
        earliest = max(adult, add_years(REFERENCE_DATE, -3 if form == "public_welfare_post" else -20))
        career = Career(p)
        current = job(p, form, a_day(rng, earliest, REFERENCE_DATE - timedelta(days=30)))
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
    return out


def _stamp(rng: random.Random, last: date) -> datetime:
    """An update time after the record's last event, with microseconds."""
    return moment(rng, days=max(1, min((REFERENCE_DATE - last).days, 3000)))


# --- hr_social_security.employment ------------------------------------------------------------------------

EMPLOYMENT_FORMS = {"employee": "1", "flexible": "2", "self_employed": "3", "public_welfare_post": "4"}
EMPLOYMENT_END_REASONS = {
    "contract_expired": "01",
    "resigned": "02",
    "dismissed": "03",
    "employer_closed": "04",
    "post_expired": "05",
    "business_closed": "06",
    "retired": "07",
    "deceased": "08",
    "other": "99",
}
EMPLOYMENT_COLUMNS = {
    "djbh": text(32),  # 就业登记编号
    "sfzh": text(18),
    "xm": text(50),
    "jyxs": code(1),  # 就业形式
    "dwmc": text(200),  # 用人单位名称
    "tyxydm": code(18),  # 统一社会信用代码
    "djrq": code(8),  # 登记日期 YYYYMMDD
    "ksrq": code(8),
    "zzrq": code(8),
    "jyzt": code(1),  # 1 就业 2 终止
    "zzyy": code(2),  # 终止原因
    "djqx": code(6),  # 登记地区县
    "djjd": code(9),  # 登记地街道
    "gxsj": timestamp(),
}


def employment(world: World, bad: int) -> SampleTable:
    rng = world.rng("hr_social_security.employment")
    rows = []
    for career in careers(world).values():
        p = career.person
        for j in career.jobs:
            rows.append(
                {
                    "djbh": j.record_id,
                    "sfzh": p.id_number,
                    "xm": p.name,
                    "jyxs": EMPLOYMENT_FORMS[j.form],
                    "dwmc": j.employer.name if j.employer else None,
                    "tyxydm": j.employer.credit_code if j.employer else None,
                    "djrq": f"{j.registered:%Y%m%d}",
                    "ksrq": f"{j.start:%Y%m%d}",
                    "zzrq": f"{j.end:%Y%m%d}" if j.end else None,
                    "jyzt": "2" if j.end else "1",
                    "zzyy": EMPLOYMENT_END_REASONS[j.end_reason] if j.end_reason else None,
                    "djqx": p.district_code,
                    "djjd": p.street_code,
                    "gxsj": _stamp(rng, max(j.registered, j.end or j.start)),
                }
            )
    tie_at_boundary(rows, "gxsj")
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:hr_social_security.employment",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_employment_form": set_value("jyxs", "9"),
            "impossible_start_date": set_value("ksrq", "20260230"),
            "missing_name": set_value("xm", None),
            "duplicate_key": None,
        },
    )
    return SampleTable(EMPLOYMENT_COLUMNS, rows, kinds)


# --- hr_social_security.unemployment ----------------------------------------------------------------------

REGISTRATION_STATUSES = {"registered": "1", "deregistered": "2"}
BENEFIT_STATUSES = {"not_entitled": "0", "receiving": "1", "suspended": "2", "expired": "3", "terminated": "4"}
DEREGISTRATION_REASONS = {
    "employed": "01",
    "retired": "02",
    "enlisted": "03",
    "education": "04",
    "moved_out": "05",
    "imprisoned": "06",
    "refused_service": "07",
    "no_contact": "08",
    "deceased": "09",
    "other": "99",
}
UNEMPLOYMENT_COLUMNS = {
    "sydjbh": text(32),  # 失业登记编号
    "sfzh": text(18),
    "xm": text(50),
    "lxdh": text(20),
    "djrq": day(),  # 失业登记日期
    "jykn": code(1),  # 是否就业困难人员 1/0
    "djzt": code(1),  # 登记状态
    "lqqx": integer(),  # 失业保险金领取期限（月）
    "yffbz": big_integer(),  # 月发放标准（分）
    "lqksrq": day(),
    "lqzzrq": day(),
    "lqzt": code(1),  # 领取状态
    "zxrq": day(),  # 注销日期
    "zxyy": code(2),  # 注销原因
    "djqx": code(6),
    "djjd": code(9),
    "gxsj": timestamp(),
}


def _benefit_fen(start: date) -> int:
    """90% of Changsha's minimum monthly wage in force when payment starts."""
    if start < date(2022, 4, 1):
        return 153000
    return 173700 if start < date(2025, 4, 1) else 189000


def unemployment(world: World, bad: int) -> SampleTable:
    rng = world.rng("hr_social_security.unemployment")
    disabled = {p.id_number for p in world.cohort("disabled")}
    rows = []
    for career in careers(world).values():
        p = career.person
        member = world.roster_of(p)
        age = age_on(p)
        if p.id_number in disabled or (member and rng.random() < 0.85):
            difficulty = True
        else:
            older = age >= (40 if p.gender == "female" else 50)
            difficulty = rng.random() < (0.4 if older else 0.08)
        for r in career.registrations:
            start = end = None
            status = "not_entitled"
            if r.months:
                start = min(r.registered + timedelta(days=rng.randint(1, 20)), REFERENCE_DATE)
                end = add_months(start, r.months) - timedelta(days=1)
                if r.deregistered and r.deregistered <= end:
                    status, end = "terminated", r.deregistered
                elif end < REFERENCE_DATE:
                    status = "expired"
                else:
                    status, end = ("suspended" if rng.random() < 0.05 else "receiving"), None
            rows.append(
                {
                    "sydjbh": r.registration_id,
                    "sfzh": p.id_number,
                    "xm": p.name,
                    "lxdh": p.phone,
                    "djrq": r.registered,
                    "jykn": "1" if difficulty else "0",
                    "djzt": REGISTRATION_STATUSES["deregistered" if r.deregistered else "registered"],
                    "lqqx": r.months,
                    "yffbz": _benefit_fen(start) if start else 0,
                    "lqksrq": start,
                    "lqzzrq": end,
                    "lqzt": BENEFIT_STATUSES[status],
                    "zxrq": r.deregistered,
                    "zxyy": DEREGISTRATION_REASONS[r.reason] if r.reason else None,
                    "djqx": p.district_code,
                    "djjd": p.street_code,
                    "gxsj": _stamp(rng, max(d for d in (r.registered, start, end, r.deregistered) if d)),
                }
            )
    tie_at_boundary(rows, "gxsj")
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:hr_social_security.unemployment",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_registration_status": set_value("djzt", "9"),
            "negative_benefit_amount": set_value("yffbz", -189000),
            "benefit_months_over_24": set_value("lqqx", 36),
            "duplicate_key": None,
        },
    )
    return SampleTable(UNEMPLOYMENT_COLUMNS, rows, kinds)


# --- hr_social_security.work_injury -----------------------------------------------------------------------

INJURY_KINDS = {"accident": "1", "occupational_disease": "2"}
CARE_LEVELS = {"full": "1", "major": "2", "partial": "3"}
INJURY_BENEFITS = {
    "medical": "01",
    "rehabilitation": "02",
    "assistive_device": "03",
    "hospital_meal": "04",
    "lump_sum_disability": "05",
    "disability_allowance": "06",
    "nursing_care": "07",
    "lump_sum_medical": "08",
    "funeral": "09",
    "dependant_pension": "10",
    "lump_sum_death": "11",
}
CLAIM_STATUSES = {
    "accepted": "1",
    "approved": "2",
    "paying": "3",
    "paid": "4",
    "suspended": "5",
    "terminated": "6",
    "rejected": "7",
}
# Months of the worker's own wage paid as the lump-sum disability grant, and the monthly disability
# allowance as a share of it (grades 1-4), per the Regulations on Work-Related Injury Insurance.
_LUMP_MONTHS = {1: 27, 2: 25, 3: 23, 4: 21, 5: 18, 6: 16, 7: 13, 8: 11, 9: 9, 10: 7}
_ALLOWANCE_SHARE = {1: 0.90, 2: 0.85, 3: 0.80, 4: 0.75}
_CARE_SHARE = {"full": 0.5, "major": 0.4, "partial": 0.3}  # of the city's average monthly wage
_CITY_AVERAGE_WAGE = 8900
_RECOGNITION_PREFIX = {"430121": "长县人社工伤认字", "430181": "浏人社工伤认字", "430182": "宁人社工伤认字"}
WORK_INJURY_COLUMNS = {
    "sqbh": text(32),  # 待遇申领编号
    "sfzh": text(18),
    "xm": text(50),
    "dwmc": text(200),
    "tyxydm": code(18),
    "shlb": code(1),  # 伤害类别
    "shrq": day(),  # 受伤害日期
    "rdsbh": text(50),  # 工伤认定决定书编号
    "rdrq": day(),
    "scdj": code(2),  # 伤残等级 01-10
    "zlzadj": code(1),  # 生活自理障碍等级
    "jdrq": day(),  # 劳动能力鉴定结论日期
    "dylb": code(2),  # 待遇类别
    "ydyje": money(),  # 月待遇金额
    "ycxje": money(),  # 一次性支付金额
    "dyqsrq": day(),
    "dyzzrq": day(),
    "dyzt": code(1),
    "cbqx": code(6),  # 参保地区县
    "gxsj": timestamp(),
}


def work_injury(world: World, bad: int) -> SampleTable:
    rng = world.rng("hr_social_security.work_injury")
    everyone = careers(world)
    jobs = {
        pid: [j for j in c.jobs if j.form in ("employee", "public_welfare_post") and j.end_reason != "deceased"]
        for pid, c in everyone.items()
    }
    pool = world.aged(18, 64, [c.person for pid, c in everyone.items() if jobs[pid]])
    on_roster = [p for p in pool if world.roster_of(p)]
    injured = rng.sample(on_roster, min(len(on_roster), 2))
    others = [p for p in pool if not world.roster_of(p)]
    injured += rng.sample(others, min(len(others), max(1, round(0.012 * len(others)))))
    rows = []
    claim_no = 0
    for p in sorted(injured, key=lambda x: x.id_number):
        j = rng.choice(jobs[p.id_number])
        last = min(j.end or REFERENCE_DATE, REFERENCE_DATE - timedelta(days=40))
        injured_on = a_day(rng, max(j.start, add_years(REFERENCE_DATE, -6)), last)
        kind = "occupational_disease" if rng.random() < 0.1 else "accident"
        recognised = min(injured_on + timedelta(days=rng.randint(20, 120)), REFERENCE_DATE - timedelta(days=10))
        prefix = _RECOGNITION_PREFIX.get(p.district_code, "长人社工伤认字")
        recognition_no = f"{prefix}〔{recognised.year}〕第{rng.randint(100, 3999):04d}号"
        assessed = recognised + timedelta(days=rng.randint(120, 400))
        grade = care = None
        if assessed < REFERENCE_DATE - timedelta(days=5):
            grade = rng.choices(range(1, 11), weights=(1, 1, 2, 2, 4, 5, 8, 10, 14, 20))[0]
            if grade <= 4:
                care = rng.choices(("full", "major", "partial", None), weights=(3, 3, 3, 2))[0]
        else:
            assessed = None
        wage = rng.randint(4200, 11000)
        claims: list[tuple[str, Decimal, Decimal, date, date | None, str]] = []
        paid_on = min(recognised + timedelta(days=rng.randint(20, 90)), REFERENCE_DATE)
        medical = yuan(rng.uniform(3000, 90000 if grade and grade <= 4 else 30000))
        claims.append(("medical", yuan(0), medical, paid_on, None, "paid" if paid_on < REFERENCE_DATE else "approved"))
        if rng.random() < 0.6:
            claims.append(("hospital_meal", yuan(0), yuan(30 * rng.randint(7, 90)), paid_on, None, "paid"))
        if grade and assessed:
            granted = min(assessed + timedelta(days=rng.randint(15, 45)), REFERENCE_DATE)
            claims.append(("lump_sum_disability", yuan(0), yuan(wage * _LUMP_MONTHS[grade]), granted, None, "paid"))
            if grade <= 4:
                first = date(granted.year, granted.month, 1)
                allowance = yuan(wage * _ALLOWANCE_SHARE[grade])
                claims.append(("disability_allowance", allowance, yuan(0), first, None, "paying"))
                if care:
                    nursing = yuan(_CITY_AVERAGE_WAGE * _CARE_SHARE[care])
                    claims.append(("nursing_care", nursing, yuan(0), first, None, "paying"))
            elif j.end and j.end > granted:
                # Grades 5-10 who leave the employer get the one-off medical grant when the contract ends.
                grant = yuan(wage * rng.randint(6, 12))
                claims.append(("lump_sum_medical", yuan(0), grant, j.end, None, "paid"))
            if rng.random() < 0.15:
                claims.append(("rehabilitation", yuan(0), yuan(rng.uniform(2000, 20000)), granted, None, "paid"))
        for benefit, monthly, once, start, end, status in claims:
            claim_no += 1
            rows.append(
                {
                    "sqbh": f"GS{p.district_code}{start.year}{claim_no:06d}",
                    "sfzh": p.id_number,
                    "xm": p.name,
                    "dwmc": j.employer.name if j.employer else None,
                    "tyxydm": j.employer.credit_code if j.employer else None,
                    "shlb": INJURY_KINDS[kind],
                    "shrq": injured_on,
                    "rdsbh": recognition_no,
                    "rdrq": recognised,
                    "scdj": f"{grade:02d}" if grade else None,
                    "zlzadj": CARE_LEVELS[care] if care else None,
                    "jdrq": assessed,
                    "dylb": INJURY_BENEFITS[benefit],
                    "ydyje": monthly,
                    "ycxje": once,
                    "dyqsrq": start,
                    "dyzzrq": end,
                    "dyzt": CLAIM_STATUSES[status],
                    "cbqx": p.district_code,
                    "gxsj": _stamp(rng, start),
                }
            )
    tie_at_boundary(rows, "gxsj")
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:hr_social_security.work_injury",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_benefit_kind": set_value("dylb", "99"),
            "negative_lump_sum": set_value("ycxje", Decimal("-1500.00")),
            "missing_recognition_no": set_value("rdsbh", None),
            "duplicate_key": None,
        },
    )
    return SampleTable(WORK_INJURY_COLUMNS, rows, kinds)


# --- pensions ------------------------------------------------------------------------------------------

PENSION_STATUSES = {"contributing": "10", "receiving": "20", "suspended": "30", "terminated": "40"}
PENSION_END_REASONS = {"deceased": "1", "transferred_out": "2", "settled_abroad": "3", "other": "9"}


def pension_schemes(world: World) -> dict[str, str]:
    """Each pensioner's scheme (enterprise or institution; the rest draw the residents' pension, not here),
    and the same for people of pension age who died."""
    rng = world.rng("hr_social_security.pension_schemes")
    pool = world.cohort("pensioners") + [p for p in world.cohort("deceased") if age_on(p) >= 60]
    out = {}
    for p in sorted(pool, key=lambda x: x.id_number):
        draw = rng.random()
        if draw < 0.80:
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
    for p in sorted(retired, key=lambda x: x.id_number):
        started = _retirement(rng, p, institution=False)
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
        elif rng.random() < 0.02:
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
            "gxsj": _stamp(rng, r.ended or r.started or r.insured),
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
                "gxsj": _stamp(rng, ended or started),
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
                    "gxsj": _stamp(rng, insured),
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


SOURCES = [
    SampleSource("hr_social_security.employment", "hr_db", employment, table="t_jydj", server="mariadb"),
    SampleSource("hr_social_security.unemployment", "hr_db", unemployment, table="t_sydj", server="mariadb"),
    SampleSource("hr_social_security.work_injury", "hr_db", work_injury, table="t_gsdy", server="mariadb"),
    SampleSource(
        "hr_social_security.enterprise_pension", "hr_db", enterprise_pension, table="t_qyzgyl", server="mariadb"
    ),
    SampleSource(
        "hr_social_security.institution_pension", "hr_db", institution_pension, table="t_jgsyyl", server="mariadb"
    ),
]
