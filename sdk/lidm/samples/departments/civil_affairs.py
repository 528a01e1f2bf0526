"""民政局 (civil affairs): the low-income roster (a daily GBK CSV drop) and the assistance system's tables.

The tables live in the civil-affairs PostgreSQL database: children in need, the two disability subsidies
(full monthly snapshots) and temporary assistance cases (incremental on a timestamptz update time).
"""

from __future__ import annotations

import random
from datetime import date, timedelta, timezone

from lidm.samples.people import REFERENCE_DATE, Person
from lidm.samples.sources import (
    DUPLICATE,
    SampleSource,
    SampleTable,
    a_day,
    bank_card,
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
    timestamp_tz,
    wrong_check_char,
    yuan,
)
from lidm.samples.world import World, other_district
from lidm.samples.write import ROSTER_HEADER, roster_rows


def low_income_roster(world: World, bad: int) -> SampleTable:
    rows = roster_rows(world.roster, bad=bad, seed=world.seed)
    kinds = {("duplicate_key" if k == "duplicate_id" else k): n for k, n in rows.bad_kinds.items()}
    return SampleTable({c: text() for c in ROSTER_HEADER}, rows.rows, kinds)


# --- shared civil-affairs codes ------------------------------------------------------------------------

GENDER_CODES = {"male": "1", "female": "2"}
# The low-income category as the assistance system codes it.
CATEGORY_CODES = {
    "dibao": "10",
    "tekun": "20",
    "dibao_edge": "30",
    "rigid_expense": "40",
    "return_risk": "50",
    "other_hardship": "90",
}
STATUS_CODES = {"active": "1", "suspended": "2", "terminated": "3"}
# Disability category codes of the certificate (GB/T 26341): 1 visual … 7 multiple.
DISABILITY_TYPES = ("1", "2", "3", "4", "5", "6", "7")
_DISABILITY_WEIGHTS = (14, 16, 2, 36, 12, 12, 8)
CHINA_TIME = timezone(timedelta(hours=8))


def _certificate(world: World, person: Person) -> tuple[str, str]:
    """(disability type code, grade) of a person's certificate, the same in every civil-affairs subsidy."""
    rng = world.rng(f"disability_certificate:{person.id_number}")
    kind = rng.choices(DISABILITY_TYPES, weights=_DISABILITY_WEIGHTS)[0]
    severe = person.id_number in {p.id_number for p in world.cohort("severe_disabled")}
    return kind, rng.choice(("1", "2") if severe else ("3", "4"))


def _month_start(day: date) -> date:
    return day.replace(day=1)


# --- 孤儿和事实无人抚养儿童 -----------------------------------------------------------------------------

CHILD_COLUMNS = {
    "sfzh": text(18),
    "xm": text(50),
    "xb": code(1),
    "csrq": day(),
    "etlb": code(2),  # 01 孤儿, 02 事实无人抚养儿童
    "yyfs": code(1),  # 1 机构集中养育, 2 社会散居
    "yyjgmc": text(100),
    "jhrgx": code(2),
    "jhrlxdh": text(20),
    "yfbz_fen": integer(),  # 基本生活费月标准, kept in fen
    "rdrq": code(8),  # YYYYMMDD
    "zzrq": code(8),
    "zzyy": code(2),
    "bzzt": code(1),
    "qxdm": code(6),
    "jddm": code(9),
    "gxsj": timestamp(),
}
GUARDIAN_CODES = {"grandparent": "10", "sibling": "20", "other_relative": "30", "institution": "40", "other": "90"}
CHILD_END_CODES = {"adult": "01", "adopted": "02", "parent_resumed": "03", "deceased": "04", "moved_out": "05"}
# Monthly basic living allowance in Changsha (fen): institutional care pays more than family care.
CHILD_ALLOWANCE_FEN = {"1": 215000, "2": 165000}
_WELFARE_HOMES = {
    "430112": "望城区儿童福利院",
    "430121": "长沙县儿童福利院",
    "430181": "浏阳市儿童福利院",
    "430182": "宁乡市儿童福利院",
}
# 事实无人抚养儿童 exist as a category since the 2019 national opinion took effect.
DE_FACTO_SINCE = date(2019, 7, 1)


def _mobile(rng: random.Random) -> str:
    return "1" + rng.choice("35789") + f"{rng.randrange(10**9):09d}"


def children_in_need(world: World, bad: int) -> SampleTable:
    """The child welfare register: every child in the children_in_need cohort, allowance in fen."""
    rng = world.rng("civil_affairs.children_in_need")
    rows = []
    for child in world.cohort("children_in_need"):
        orphan = rng.random() < 0.4
        institution = orphan and rng.random() < 0.5
        placement = "1" if institution else "2"
        earliest = max(child.birth_date, date(2000, 1, 1) if orphan else DE_FACTO_SINCE)
        approval = a_day(rng, earliest, REFERENCE_DATE - timedelta(days=1))
        status, end, reason = "active", None, None
        settled = (REFERENCE_DATE - approval).days > 60
        if child.residence_status == "moved_out" and settled:
            status, reason = "terminated", "moved_out"
        elif settled and rng.random() < 0.08:
            status, reason = "terminated", "adopted" if orphan else rng.choice(("adopted", "parent_resumed"))
        elif rng.random() < 0.03:
            status = "suspended"
        if status == "terminated":
            end = a_day(rng, approval + timedelta(days=30), REFERENCE_DATE - timedelta(days=1))
        if institution:
            relation = "institution"
            home = _WELFARE_HOMES.get(child.district_code, "长沙市儿童福利院")
            phone = f"0731-8{rng.randrange(10**7):07d}"
        else:
            relation = rng.choices(("grandparent", "other_relative", "sibling", "other"), weights=(65, 25, 7, 3))[0]
            home, phone = None, _mobile(rng)
        rows.append(
            {
                "sfzh": child.id_number,
                "xm": child.name,
                "xb": GENDER_CODES[child.gender],
                "csrq": child.birth_date,
                "etlb": "01" if orphan else "02",
                "yyfs": placement,
                "yyjgmc": home,
                "jhrgx": GUARDIAN_CODES[relation],
                "jhrlxdh": phone,
                "yfbz_fen": CHILD_ALLOWANCE_FEN[placement],
                "rdrq": f"{approval:%Y%m%d}",
                "zzrq": f"{end:%Y%m%d}" if end else None,
                "zzyy": CHILD_END_CODES[reason] if reason else None,
                "bzzt": STATUS_CODES[status],
                "qxdm": child.district_code,
                "jddm": child.street_code,
                "gxsj": moment(rng),
            }
        )
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:civil_affairs.children_in_need",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_child_kind": set_value("etlb", "09"),
            "impossible_approval_date": set_value("rdrq", "20260230"),
            "negative_allowance": set_value("yfbz_fen", -165000),
            DUPLICATE: None,
        },
    )
    return SampleTable(CHILD_COLUMNS, rows, kinds)


# --- 困难残疾人生活补贴 ---------------------------------------------------------------------------------

HARDSHIP_COLUMNS = {
    "sfzh": text(18),
    "xm": text(50),
    "jtbh": text(32),
    "dsrklb": code(2),
    "cjlb": code(1),
    "cjdj": code(1),
    "ybzje": money(),
    "sprq": day(),
    "ffqsrq": day(),
    "zhffyf": code(7),  # YYYY-MM
    "zzrq": day(),
    "zzyy": code(2),
    "zt": code(1),
    "yhkh": text(32),  # 惠民惠农财政补贴资金一卡通
    "qxdm": code(6),
    "jddm": code(9),
    "gxsj": timestamp(),
}
HARDSHIP_END_CODES = {"improved": "01", "certificate_invalid": "02", "deceased": "03", "moved_out": "04"}
HARDSHIP_AMOUNT = {"1": yuan(120), "2": yuan(120), "3": yuan(100), "4": yuan(100)}


def hardship_disability_subsidy(world: World, bad: int) -> SampleTable:
    """困难残疾人生活补贴: disability certificate holders on the low-income roster; follows the roster status."""
    rng = world.rng("civil_affairs.hardship_disability_subsidy")
    rows = []
    for person in world.cohort("disabled"):
        member = world.roster_of(person)
        if member is None:
            continue
        kind, grade = _certificate(world, person)
        last_day = (member.termination_date or REFERENCE_DATE) - timedelta(days=1)
        approval = a_day(rng, min(max(member.approval_date, person.birth_date), last_day), last_day)
        start = _month_start(approval)
        end, reason, paid = None, None, REFERENCE_DATE
        if member.status == "terminated":
            # The household left the roster, so the subsidy stopped the same day.
            end, reason, paid = member.termination_date, "improved", member.termination_date
        elif member.status == "suspended":
            paid = a_day(rng, approval, REFERENCE_DATE - timedelta(days=31))
        rows.append(
            {
                "sfzh": person.id_number,
                "xm": person.name,
                "jtbh": member.household_id,
                "dsrklb": CATEGORY_CODES[member.category],
                "cjlb": kind,
                "cjdj": grade,
                "ybzje": HARDSHIP_AMOUNT[grade],
                "sprq": approval,
                "ffqsrq": start,
                "zhffyf": f"{max(paid, start):%Y-%m}",
                "zzrq": end,
                "zzyy": HARDSHIP_END_CODES[reason] if reason else None,
                "zt": STATUS_CODES[member.status],
                "yhkh": bank_card(rng),
                "qxdm": person.district_code,
                "jddm": person.street_code,
                "gxsj": moment(rng),
            }
        )
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:civil_affairs.hardship_disability_subsidy",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_disability_type": set_value("cjlb", "8"),
            "unknown_disability_grade": set_value("cjdj", "5"),
            "negative_amount": set_value("ybzje", yuan(-100)),
            DUPLICATE: None,
        },
    )
    return SampleTable(HARDSHIP_COLUMNS, rows, kinds)


# --- 重度残疾人护理补贴 ---------------------------------------------------------------------------------

CARE_COLUMNS = {
    "sfzh": text(18),
    "xm": text(50),
    "jtbh": text(32),
    "dsrklb": code(2),
    "cjlb": code(1),
    "cjdj": code(1),
    "hlfs": code(1),  # 1 居家护理, 2 机构托养, 3 日间照料
    "ybzje": money(),
    "sprq": day(),
    "ffqsrq": day(),
    "zhffyf": code(7),
    "zzrq": day(),
    "zzyy": code(2),
    "zt": code(1),
    "yhkh": text(32),
    "qxdm": code(6),
    "jddm": code(9),
    "gxsj": timestamp(),
}
CARE_END_CODES = {"regraded": "01", "certificate_invalid": "02", "deceased": "03", "moved_out": "04"}
CARE_AMOUNT = {"1": yuan(150), "2": yuan(100)}
CARE_SUBSIDY_SINCE = date(2016, 1, 1)  # the two disability subsidies were introduced nationwide in 2016


def not_applied_care_subsidy(world: World) -> Person | None:
    """The severe_disabled roster member left out of the care subsidy: the "policy not applied" case.

    It is the first severe_disabled cohort member (by id_number) who is an active roster member, kept
    out only when someone else remains, so the snapshot is never empty.
    """
    cohort = world.cohort("severe_disabled")
    for person in cohort:
        member = world.roster_of(person)
        if member is not None and member.status == "active" and len(cohort) > 1:
            return person
    return None


def severe_disability_care_subsidy(world: World, bad: int) -> SampleTable:
    """重度残疾人护理补贴: grade 1-2 certificate holders, means-test free; one roster member is left out."""
    rng = world.rng("civil_affairs.severe_disability_care_subsidy")
    left_out = not_applied_care_subsidy(world)
    rows = []
    for person in world.cohort("severe_disabled"):
        if left_out is not None and person.id_number == left_out.id_number:
            continue  # eligible but never approved: the monitoring must find this person
        member = world.roster_of(person)
        kind, grade = _certificate(world, person)
        approval = a_day(rng, max(CARE_SUBSIDY_SINCE, person.birth_date), REFERENCE_DATE - timedelta(days=1))
        start = _month_start(approval)
        status, end, reason, paid = "active", None, None, REFERENCE_DATE
        settled = (REFERENCE_DATE - approval).days > 60
        # Roster members stay active so the only gap monitoring finds among them is the one left out.
        if member is None and settled and person.residence_status == "moved_out":
            status, reason = "terminated", "moved_out"
        elif member is None and settled and rng.random() < 0.05:
            status, reason = "terminated", rng.choice(("regraded", "certificate_invalid"))
        elif member is None and settled and rng.random() < 0.04:
            status = "suspended"
            paid = a_day(rng, approval, REFERENCE_DATE - timedelta(days=31))
        if status == "terminated":
            end = a_day(rng, approval + timedelta(days=31), REFERENCE_DATE - timedelta(days=1))
            paid = end
        rows.append(
            {
                "sfzh": person.id_number,
                "xm": person.name,
                "jtbh": member.household_id if member else None,
                "dsrklb": CATEGORY_CODES[member.category] if member else None,
                "cjlb": kind,
                "cjdj": grade,
                "hlfs": rng.choices(("1", "2", "3"), weights=(80, 10, 10))[0],
                "ybzje": CARE_AMOUNT[grade],
                "sprq": approval,
                "ffqsrq": start,
                "zhffyf": f"{max(paid, start):%Y-%m}",
                "zzrq": end,
                "zzyy": CARE_END_CODES[reason] if reason else None,
                "zt": STATUS_CODES[status],
                "yhkh": bank_card(rng),
                "qxdm": person.district_code,
                "jddm": person.street_code,
                "gxsj": moment(rng),
            }
        )
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:civil_affairs.severe_disability_care_subsidy",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_care_mode": set_value("hlfs", "9"),
            "unknown_disability_grade": set_value("cjdj", "0"),
            "missing_name": set_value("xm", None),
            DUPLICATE: None,
        },
    )
    return SampleTable(CARE_COLUMNS, rows, kinds)


# --- 临时救助 -------------------------------------------------------------------------------------------

TEMPORARY_COLUMNS = {
    "ajbh": text(40),
    "sfzh": text(18),
    "xm": text(50),
    "jtbh": text(32),
    "dsrklb": code(2),
    "jzlx": code(1),  # 1 急难型, 2 支出型
    "jzyy": code(2),
    "sfxxjz": code(1),  # 先行救助 1/0
    "sfydjz": code(1),  # 异地（急难发生地）救助 1/0
    "jzje": money(),
    "swzk": money(),
    "sqrq": day(),
    "sprq": day(),
    "spjb": code(1),  # 1 区县民政, 2 乡镇（街道）
    "ffrq": day(),
    "ffzt": code(1),  # 1 已审批, 2 已发放, 3 已撤销
    "qxdm": code(6),
    "jddm": code(9),
    "gxsj": timestamp_tz(),
}
REASON_CODES = {
    "sudden_accident": "01",
    "illness": "02",
    "disaster": "03",
    "education": "04",
    "basic_living": "05",
    "other": "99",
}
# reason -> (assistance type code, lowest and highest amount in yuan)
_TEMPORARY_AID = {
    "sudden_accident": ("1", 1000, 10000),
    "illness": ("2", 2000, 20000),
    "disaster": ("1", 1000, 5000),
    "education": ("2", 1000, 6000),
    "basic_living": ("1", 500, 3000),
    "other": ("1", 300, 2000),
}
TOWNSHIP_LIMIT = 2000  # 乡镇（街道）may approve up to this amount; above it the county approves


def _applicants(world: World, rng: random.Random) -> list[tuple[Person, str]]:
    """(person, reason) per case: roster members, disaster-hit households and people with high medical costs."""
    roster = world.living([m.person for m in world.roster])
    cases = [(p, rng.choice(("basic_living", "education", "sudden_accident", "other"))) for p in roster]
    cases = rng.sample(cases, max(1, round(0.2 * len(cases))))
    disaster = world.living(world.cohort("disaster_households"))
    cases += [(p, "disaster") for p in rng.sample(disaster, max(1, round(0.5 * len(disaster))))]
    patients = world.cohort("high_out_of_pocket")
    cases += [(p, "illness") for p in rng.sample(patients, max(1, round(0.4 * len(patients))))]
    return cases


def temporary_assistance(world: World, bad: int) -> SampleTable:
    """临时救助 cases, stamped with a zone-aware update time (timestamptz) the extract's watermark follows."""
    rng = world.rng("civil_affairs.temporary_assistance")
    last_day = REFERENCE_DATE - timedelta(days=1)
    rows = []
    for seq, (person, reason) in enumerate(_applicants(world, rng), start=1):
        member = world.roster_of(person)
        kind, low, high = _TEMPORARY_AID[reason]
        applied = a_day(rng, date(2024, 1, 1), last_day)
        if member is not None and member.approval_date < last_day:
            applied = a_day(rng, max(applied, member.approval_date), last_day)
        on_roster = (
            member is not None
            and member.approval_date <= applied
            and (member.termination_date is None or member.termination_date > applied)
        )
        non_local = reason == "sudden_accident" and rng.random() < 0.3
        district = other_district(person.district_code, rng) if non_local else person.district_code
        advance = kind == "1" and rng.random() < 0.3
        amount = rng.randrange(low, high + 1, 100)
        approved = applied if advance else min(applied + timedelta(days=rng.randint(1, 20)), last_day)
        status = rng.choices(("2", "1", "3"), weights=(82, 12, 6))[0]
        if status == "1" and (REFERENCE_DATE - approved).days > 30:
            status = "2"  # approved long ago means paid by now
        paid = min(approved + timedelta(days=rng.randint(0, 10)), last_day) if status == "2" else None
        in_kind = yuan(rng.randrange(200, 801, 50)) if reason in ("disaster", "sudden_accident") else yuan(0)
        rows.append(
            {
                "ajbh": f"LSJZ{district}{applied:%Y}{seq:05d}",
                "sfzh": person.id_number,
                "xm": person.name,
                "jtbh": member.household_id if on_roster and member else None,
                "dsrklb": CATEGORY_CODES[member.category] if on_roster and member else None,
                "jzlx": kind,
                "jzyy": REASON_CODES[reason],
                "sfxxjz": "1" if advance else "0",
                "sfydjz": "1" if non_local else "0",
                "jzje": yuan(amount),
                "swzk": in_kind,
                "sqrq": applied,
                "sprq": approved,
                "spjb": "2" if advance or amount <= TOWNSHIP_LIMIT else "1",
                "ffrq": paid,
                "ffzt": status,
                "qxdm": district,
                "jddm": f"{district}001" if non_local else person.street_code,
                "gxsj": moment(rng, days=(REFERENCE_DATE - (paid or approved)).days).replace(tzinfo=CHINA_TIME),
            }
        )
    tie_at_boundary(rows, "gxsj")
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:civil_affairs.temporary_assistance",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_reason": set_value("jzyy", "88"),
            "negative_amount": set_value("jzje", yuan(-500)),
            "missing_application_date": set_value("sqrq", None),
            "unknown_disbursement_status": set_value("ffzt", "9"),
            DUPLICATE: None,
        },
    )
    return SampleTable(TEMPORARY_COLUMNS, rows, kinds)


SOURCES = [
    SampleSource(
        "civil_affairs.low_income_roster",
        "civil_affairs_drop",
        low_income_roster,
        file=f"roster_{REFERENCE_DATE:%Y%m%d}.csv",
        encoding="gb18030",
    ),
    SampleSource(
        "civil_affairs.children_in_need",
        "civil_affairs_db",
        children_in_need,
        table="t_kjet_gesw",
        server="postgres",
    ),
    SampleSource(
        "civil_affairs.hardship_disability_subsidy",
        "civil_affairs_db",
        hardship_disability_subsidy,
        table="t_cjr_knshbt",
        server="postgres",
    ),
    SampleSource(
        "civil_affairs.severe_disability_care_subsidy",
        "civil_affairs_db",
        severe_disability_care_subsidy,
        table="t_cjr_zdhlbt",
        server="postgres",
    ),
    SampleSource(
        "civil_affairs.temporary_assistance",
        "civil_affairs_db",
        temporary_assistance,
        table="t_lsjz_aj",
        server="postgres",
    ),
]
