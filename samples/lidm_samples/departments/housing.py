"""住建局 (housing): public rental housing in its PostgreSQL system, rural house renovation as a weekly XLSX drop."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from lidm_samples.people import DISTRICTS, REFERENCE_DATE, REFERENCE_TIME, Person, RosterMember, streets_of
from lidm_samples.sources import (
    SampleSource,
    SampleTable,
    a_day,
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
)
from lidm_samples.world import World

STATUS_CODES = {"active": "01", "suspended": "02", "terminated": "03"}
EXIT_REASON_CODES = {
    "income_exceeded": "01",
    "acquired_housing": "02",
    "moved_away": "03",
    "violation": "04",
    "rent_arrears": "05",
    "deceased": "06",
    "voluntary": "07",
    "other": "99",
}
SUPPORT_KIND_CODES = {"physical_allocation": "1", "rent_subsidy": "2"}
# 危房改造 labels as the renovation system prints them.
CATEGORY_LABELS = {
    "dibao": "低保户",
    "tekun": "分散供养特困人员",
    "dibao_edge": "低保边缘家庭",
    "rigid_expense": "支出型困难家庭",
    "return_risk": "防止返贫监测对象",
    "other_hardship": "其他困难家庭",
}
METHOD_LABELS = {
    "rebuild": "拆除重建",
    "repair": "维修加固",
    "relocation": "搬迁安置",
    "replacement": "置换或租赁闲置农房",
    "collective_housing": "农村集体公租房",
    "other": "其他",
}
ACCEPTANCE_LABELS = {
    "not_started": "未开工",
    "in_progress": "施工中",
    "pending": "已竣工待验收",
    "passed": "验收合格",
    "failed": "验收不合格",
    "cancelled": "已撤销",
}
_DAY = timedelta(days=1)
_VILLAGES = ("黄花", "金塘", "白沙", "杨林", "石门", "荷叶", "青山", "双江")


def _roster_households(world: World) -> dict[str, list[RosterMember]]:
    out: dict[str, list[RosterMember]] = {}
    for member in world.roster:
        out.setdefault(member.household_id, []).append(member)
    return out


def _roster_heads(world: World) -> list[RosterMember]:
    """The applicant of each roster household: its first living member."""
    heads = []
    for members in _roster_households(world).values():
        living = [m for m in members if m.person.residence_status != "deceased"]
        if living:
            heads.append(living[0])
    return heads


def _size(world: World, person: Person) -> int:
    return max(1, min(20, len(world.living(world.households[person.household_id]))))


def _sample(rng: random.Random, pool: list[Any], share: float, at_least: int = 1) -> list[Any]:
    return rng.sample(pool, min(len(pool), max(at_least, round(share * len(pool)))))


# --- 公租房 (public rental housing) ----------------------------------------------------------------------

PUBLIC_RENTAL_COLUMNS = {
    "bzjlbh": text(32),
    "jtbh": text(32),
    "sqrsfzh": code(18),
    "sqrxm": text(50),
    "bzfs": code(1),
    "jtrks": integer(),
    "xmmc": text(100),
    "fwdz": text(200),
    "bzmj": money(),
    "yzj": integer(),  # fen
    "ybtje": integer(),  # fen
    "shtgrq": code(8),
    "qsrq": day(),
    "zzrq": day(),
    "bzzt": code(2),
    "tcyy": code(2),
    "qxdm": code(6),
    "jddm": code(9),
    "gxsj": timestamp(),
}


def _next_cycle_end(start: date, days: int) -> date:
    """Last day of the lease (or subsidy year) running on the reference date; leases renew until ended."""
    end = start
    while end <= REFERENCE_DATE:
        end += timedelta(days=days)
    return end - _DAY


def _support_terms(rng: random.Random, kind: str, size: int, low_income: bool) -> tuple[Decimal, int, int]:
    """(area in m², monthly rent in fen, monthly subsidy in fen)."""
    if kind == "physical_allocation":
        area = Decimal(rng.randrange(3000, 4000) if size == 1 else rng.randrange(4000, 6000)).scaleb(-2)
        rate = rng.uniform(8.5, 11.5)  # yuan per m² per month
        reduction = 0.1 if low_income else rng.choice((0.5, 0.7, 1.0))  # 低保、特困 pay a tenth
        return area, round(float(area) * rate * reduction * 100), 0
    area = Decimal(min(15 * size, 50))  # 人均15平方米, at most 50 per household
    rate = rng.choice((12, 15, 18, 20))
    return area, 0, int(area) * rate * 100


class _Applicant(NamedTuple):
    person: Person
    household_id: str
    size: int
    low_income: bool  # 低保 or 特困: the rent is reduced


def _public_rental_row(
    rng: random.Random,
    who: _Applicant,
    kind: str,
    approval: date,
    status: str,
    exit_reason: str | None = None,
    ends: date | None = None,
) -> dict[str, Any]:
    """One support record; ``ends`` is the day a terminated record ended (the planned end otherwise)."""
    person = who.person
    start = approval + timedelta(days=rng.randint(15, 45))
    end = ends if status == "terminated" else _next_cycle_end(start, 1095 if kind == "physical_allocation" else 365)
    area, rent, subsidy = _support_terms(rng, kind, who.size, who.low_income)
    district_name, _ = DISTRICTS[person.district_code]
    street = next(n for c, n in streets_of(person.district_code) if c == person.street_code)
    project = address = None
    if kind == "physical_allocation":
        project = f"{district_name}{street.removesuffix('街道').removesuffix('镇')}公租房小区"
        building = f"{rng.randint(1, 12)}栋{rng.randint(1, 3)}单元{rng.randint(2, 18)}{rng.randint(1, 8):02d}室"
        address = f"长沙市{project}{building}"
    return {
        "bzjlbh": None,  # numbered once all records are made
        "jtbh": who.household_id,
        "sqrsfzh": person.id_number,
        "sqrxm": person.name,
        "bzfs": SUPPORT_KIND_CODES[kind],
        "jtrks": who.size,
        "xmmc": project,
        "fwdz": address,
        "bzmj": area,
        "yzj": rent,
        "ybtje": subsidy,
        "shtgrq": f"{approval:%Y%m%d}",
        "qsrq": start,
        "zzrq": end,
        "bzzt": STATUS_CODES[status],
        "tcyy": EXIT_REASON_CODES[exit_reason] if exit_reason else None,
        "qxdm": person.district_code,
        "jddm": person.street_code,
        "gxsj": moment(rng, 90),
    }


def public_rental_rows(world: World) -> list[dict[str, Any]]:
    """Support records, before any fault: roster households certified in urban housing difficulty (but those still
    waiting, the housing_waiting cohort) and relocated households; some switched between the two kinds."""
    rng = world.rng("housing.public_rental_housing")
    waiting = {p.id_number for p in world.cohort("housing_waiting")}
    housed = {p.id_number for p in world.cohort("housing_supported")}
    applicants: dict[str, _Applicant] = {}
    roster_sizes = {hid: len(world.living([m.person for m in ms])) for hid, ms in _roster_households(world).items()}
    for head in _roster_heads(world):
        if not head.housing_difficulty or head.person.id_number in waiting:
            continue  # public rental support is for households certified in housing difficulty
        low_income = head.category in ("dibao", "tekun") and head.status != "terminated"
        applicants[head.person.id_number] = _Applicant(
            head.person, head.household_id, roster_sizes[head.household_id], low_income
        )
    for person in _sample(rng, world.cohort("relocated_households"), 0.4):
        if person.id_number in waiting:
            continue
        member = world.roster_of(person)
        household = member.household_id if member else person.household_id
        applicants.setdefault(person.id_number, _Applicant(person, household, _size(world, person), False))
    rows: list[dict[str, Any]] = []
    for who in sorted(applicants.values(), key=lambda a: a.person.id_number):
        kind = rng.choices(list(SUPPORT_KIND_CODES), weights=(55, 45))[0]
        approval = a_day(rng, date(2015, 1, 1), REFERENCE_DATE - timedelta(days=120))
        status = rng.choices(list(STATUS_CODES), weights=(80, 6, 14))[0]
        current = _public_rental_row(rng, who, kind, approval, "active" if who.person.id_number in housed else status)
        if rng.random() < 0.15:  # switched kind: the earlier record ended the day before this one began
            other = "rent_subsidy" if kind == "physical_allocation" else "physical_allocation"
            earlier = a_day(rng, date(2010, 1, 1), approval - timedelta(days=365))
            rows.append(_public_rental_row(rng, who, other, earlier, "terminated", "other", current["qsrq"] - _DAY))
        if current["bzzt"] == STATUS_CODES["terminated"]:
            reasons = ["income_exceeded", "acquired_housing", "moved_away", "voluntary"]
            if kind == "physical_allocation":
                reasons += ["violation", "rent_arrears"]
            current["tcyy"] = EXIT_REASON_CODES[rng.choice(reasons)]
            current["zzrq"] = a_day(rng, current["qsrq"] + timedelta(days=30))
        rows.append(current)
    for number, row in enumerate(rows, start=1):
        row["bzjlbh"] = f"GZF{row['qxdm']}{row['shtgrq'][:4]}{number:05d}"
    tie_at_boundary(rows, "gxsj")
    return rows


def public_rental_housing(world: World, bad: int) -> SampleTable:
    """The housing system's support records (``public_rental_rows``); faults only below the newest watermark."""
    rows = public_rental_rows(world)
    # Faults go into rows below the newest watermark, so a re-read of the boundary changes nothing.
    top = max(r["gxsj"] for r in rows)
    older = [r for r in rows if r["gxsj"] != top]
    kinds = inject(
        older,
        bad,
        f"{world.seed}:housing.public_rental_housing",
        {
            "bad_check_char": wrong_check_char("sqrsfzh"),
            "unknown_support_kind": set_value("bzfs", "3"),
            "impossible_approval_date": set_value("shtgrq", "20260230"),
            "negative_rent": set_value("yzj", -4500),
            "duplicate_key": None,
        },
    )
    return SampleTable(PUBLIC_RENTAL_COLUMNS, older + [r for r in rows if r["gxsj"] == top], kinds)


# --- 农村危房改造 (rural house renovation) ---------------------------------------------------------------

RENOVATION_COLUMNS = {
    c: text()
    for c in (
        "项目编号",
        "户编号",
        "户主姓名",
        "户主身份证号",
        "家庭人口",
        "对象类别",
        "危房等级",
        "鉴定日期",
        "批准日期",
        "改造方式",
        "补助资金（元）",
        "竣工日期",
        "验收状态",
        "验收日期",
        "房屋地址",
        "区县代码",
        "乡镇代码",
        "更新时间",
    )
}


def _town_districts() -> list[str]:
    return [d for d, (_, streets) in DISTRICTS.items() if any(s.endswith("镇") for s in streets)]


def _house_place(rng: random.Random, person: Person) -> tuple[str, str]:
    """(town code, address) of the household's rural house: where it lives if that is a town, else a town nearby."""
    towns = [(c, n) for c, n in streets_of(person.district_code) if n.endswith("镇")]
    if person.street_code in {c for c, _ in towns}:
        return person.street_code, person.address
    town_code, town = rng.choice(towns)
    district_name, _ = DISTRICTS[person.district_code]
    village = f"{rng.choice(_VILLAGES)}村{rng.randint(1, 15)}组{rng.randint(1, 80)}号"
    return town_code, f"长沙市{district_name}{town}{village}"


def _renovation_progress(rng: random.Random, grade: str, planted: str | None = None) -> dict[str, Any]:
    """Appraisal, approval, works and acceptance of one project; ``planted`` forces where it stands now:
    failed, not_started or cancelled (stalled), in_progress, or cancelled_long_ago (an earlier project)."""
    appraisal = a_day(rng, date(2019, 3, 1), REFERENCE_DATE - timedelta(days=20))
    if planted in ("failed", "cancelled_long_ago"):
        appraisal = a_day(rng, date(2019, 3, 1), REFERENCE_DATE - timedelta(days=3 * 365))
    elif planted == "not_started":
        appraisal = a_day(rng, REFERENCE_DATE - timedelta(days=80), REFERENCE_DATE - timedelta(days=40))
    elif planted == "cancelled":
        appraisal = a_day(rng, REFERENCE_DATE - timedelta(days=2 * 365), REFERENCE_DATE - timedelta(days=150))
    elif planted == "in_progress":
        appraisal = a_day(rng, REFERENCE_DATE - timedelta(days=300), REFERENCE_DATE - timedelta(days=150))
    approval: date | None = appraisal + timedelta(days=rng.randint(10, 20 if planted == "not_started" else 45))
    completion = acceptance = None
    assert approval is not None
    if planted == "not_started":
        status = "not_started"  # approved, the builder has not come yet
    elif planted in ("cancelled", "cancelled_long_ago"):
        status = "cancelled"
    elif planted == "in_progress":
        status = "in_progress"
    elif planted == "failed":
        completion = approval + timedelta(days=rng.randint(60, 180))
        acceptance = completion + timedelta(days=rng.randint(7, 40))
        status = "failed"
    elif approval > REFERENCE_DATE:
        approval, status = None, "not_started"
    elif rng.random() < 0.05:
        status = "cancelled"  # e.g. the household moved in with relatives, or declined
    else:
        completion = approval + timedelta(days=rng.randint(60, 180))
        if completion > REFERENCE_DATE:
            completion = None
            status = "not_started" if (REFERENCE_DATE - approval).days < 20 else "in_progress"
        else:
            acceptance = completion + timedelta(days=rng.randint(7, 40))
            if acceptance > REFERENCE_DATE:
                acceptance, status = None, "pending"
            else:
                status = rng.choices(("passed", "failed"), weights=(92, 8))[0]
    if grade == "C":
        method, subsidy = "repair", rng.randrange(100, 201) * 100
    else:
        method = rng.choices(("rebuild", "relocation", "replacement", "collective_housing"), weights=(70, 12, 10, 8))[0]
        low, high = {"rebuild": (350, 500), "relocation": (300, 400), "replacement": (100, 200)}.get(method, (300, 400))
        subsidy = rng.randrange(low, high + 1) * 100
    return {
        "鉴定日期": appraisal,
        "批准日期": approval,
        "改造方式": METHOD_LABELS[method],
        "补助资金（元）": subsidy,
        "竣工日期": completion,
        "验收状态": ACCEPTANCE_LABELS[status],
        "验收日期": acceptance,
    }


def _renovation_updated(rng: random.Random, progress: dict[str, Any]) -> datetime:
    """Last touched on the day of its latest step; projects under way get a progress report every week."""
    if progress["验收状态"] in (ACCEPTANCE_LABELS["not_started"], ACCEPTANCE_LABELS["in_progress"]):
        return moment(rng, 7).replace(microsecond=0)
    last = max(d for k, d in progress.items() if k.endswith("日期") and d is not None)
    stamp = datetime.combine(last, time(8, 30)) + timedelta(seconds=rng.randrange(9 * 3600))
    return min(stamp, REFERENCE_TIME - timedelta(seconds=rng.randrange(1, 3600)))


STALLED = ("failed", "not_started", "cancelled")


def renovation_rows(world: World) -> list[dict[str, Any]]:
    """Projects of roster households and disaster-hit households in districts with towns, before any fault; the
    houses stand in towns. A renovation_stalled household's project failed acceptance, has not started or was
    dropped; a renovation_resumed household dropped one years ago and a new one is under way."""
    rng = world.rng("housing.rural_house_renovation")
    rural = set(_town_districts())
    stalled = {p.id_number: STALLED[i % len(STALLED)] for i, p in enumerate(world.cohort("renovation_stalled"))}
    resumed = {p.id_number for p in world.cohort("renovation_resumed")}
    owners: dict[str, tuple[Person, str, int, str]] = {}
    roster_sizes = {hid: len(world.living([m.person for m in ms])) for hid, ms in _roster_households(world).items()}
    chosen = stalled.keys() | resumed
    planted = [h for h in _roster_heads(world) if h.person.id_number in chosen]
    others = [h for h in _roster_heads(world) if h.person.district_code in rural and h.person.id_number not in chosen]
    for head in planted + _sample(rng, others, 0.5):
        owners[head.person.id_number] = (head.person, head.household_id, roster_sizes[head.household_id], head.category)
    hit = world.living([p for p in world.cohort("disaster_households") if p.district_code in rural])
    for person in _sample(rng, hit, 0.7, at_least=0):
        member = world.roster_of(person)
        if person.id_number not in owners:
            household, category = (member.household_id, member.category) if member else (person.household_id, None)
            owners[person.id_number] = (person, household, _size(world, person), category or "other_hardship")
    rows = []
    for person, household_id, size, category in sorted(owners.values(), key=lambda o: o[0].id_number):
        grade = rng.choices(("C", "D"), weights=(45, 55))[0]
        steps = (
            ["cancelled_long_ago", "in_progress"] if person.id_number in resumed else [stalled.get(person.id_number)]
        )
        town, address = _house_place(rng, person)
        for step in steps:
            progress = _renovation_progress(rng, grade, step)
            rows.append(
                {
                    "项目编号": f"WG{person.district_code}{progress['鉴定日期'].year}{len(rows) + 1:04d}",
                    "户编号": household_id,
                    "户主姓名": person.name,
                    "户主身份证号": person.id_number,
                    "家庭人口": size,
                    "对象类别": CATEGORY_LABELS[category],
                    "危房等级": f"{grade}级",
                    **progress,
                    "房屋地址": address,
                    "区县代码": person.district_code,
                    "乡镇代码": town,
                    "更新时间": _renovation_updated(rng, progress),
                }
            )
    return rows


def rural_house_renovation(world: World, bad: int) -> SampleTable:
    """The renovation system's weekly workbook: ``renovation_rows`` with the faults asked for."""
    rows = renovation_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:housing.rural_house_renovation",
        {
            "bad_check_char": wrong_check_char("户主身份证号"),
            "unknown_danger_grade": set_value("危房等级", "B级"),
            "impossible_approval_date": set_value("批准日期", "2026-02-30"),
            "negative_subsidy": set_value("补助资金（元）", -5000),
            "duplicate_key": None,
        },
    )
    return SampleTable(RENOVATION_COLUMNS, rows, kinds)


SOURCES = [
    SampleSource(
        "housing.public_rental_housing",
        "housing_db",
        public_rental_housing,
        table="t_gzf_bzjl",
        server="postgres",
    ),
    SampleSource(
        "housing.rural_house_renovation",
        "housing_drop",
        rural_house_renovation,
        file=f"rural_renovation_{REFERENCE_DATE:%Y%m%d}.xlsx",
        serial_dates=("鉴定日期",),
    ),
]
