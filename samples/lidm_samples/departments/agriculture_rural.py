"""农业农村局 (agriculture and rural affairs): relocation, retired fishermen and return-to-poverty monitoring,
three monthly drops in one SFTP folder (a UTF-8 CSV with BOM, an XLSX and a GBK CSV)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from lidm_samples.people import DISTRICTS, REFERENCE_DATE, Person, relation_of, streets_of
from lidm_samples.sources import (
    SampleSource,
    SampleTable,
    a_day,
    inject,
    moment,
    set_value,
    text,
    wrong_check_char,
)
from lidm_samples.world import World, age_on, other_district

_COMMUNITIES = ("幸福家园", "同心苑", "安居小区", "新村社区", "和美家园", "振兴花园")


def _street_name(street_code: str) -> str:
    return next(n for c, n in streets_of(street_code[:6]) if c == street_code)


def poverty_household_id(head: Person) -> str:
    """The poverty-registration household number, shared by relocation and return-to-poverty monitoring."""
    return "FP" + head.household_id.removeprefix("HH")


def _living_members(world: World, person: Person) -> list[Person]:
    return world.living(world.households[person.household_id])


def _stamp(rng: random.Random) -> str:
    return f"{moment(rng):%Y-%m-%d %H:%M:%S}"


def _header(*names: str) -> dict[str, Any]:
    return {n: text() for n in names}


# --- 易地扶贫搬迁 (relocated households) -----------------------------------------------------------------

RELOCATED_COLUMNS = _header(
    "户编号",
    "户主姓名",
    "户主身份证号",
    "联系电话",
    "搬迁人口",
    "搬迁对象类别",
    "安置方式",
    "迁出地区县代码",
    "迁出地乡镇代码",
    "安置地区县代码",
    "安置地街道代码",
    "安置点名称",
    "安置地址",
    "搬迁入住日期",
    "户籍是否迁入",
    "劳动力人数",
    "已就业劳动力人数",
    "更新时间",
)


def relocated_rows(world: World) -> list[dict[str, Any]]:
    """One row per relocated household, before any fault; roster households relocated into another district keep
    their origin: with the hukou left behind (relocated_two_districts) or moved along (relocated_hukou_moved)."""
    rng = world.rng("agriculture_rural.relocated_households")
    two_districts = {p.id_number for p in world.cohort("relocated_two_districts")}
    moved_along = {p.id_number for p in world.cohort("relocated_hukou_moved")}
    rows = []
    for head in world.cohort("relocated_households"):
        on_roster = world.roster_of(head) is not None
        if head.id_number in two_districts or head.id_number in moved_along:
            # Moved into another district; with the registration left behind, on the rolls of both districts.
            origin, origin_street = head.district_code, head.street_code
            district = other_district(origin, rng)
            street, _ = rng.choice(streets_of(district))
            hukou_moved = head.id_number in moved_along
        else:
            district, street = head.district_code, head.street_code
            origin = district
            towns = [c for c, n in streets_of(district) if n.endswith("镇") and c != street]
            origin_street = rng.choice(towns or [c for c, _ in streets_of(district) if c != street])
            hukou_moved = rng.random() < 0.85
        district_name, _ = DISTRICTS[district]
        street_name = _street_name(street)
        centralized = rng.random() < 0.75
        room = f"{rng.randint(1, 20)}栋{rng.randint(1, 4)}单元{rng.randint(1, 11)}{rng.randint(1, 4):02d}室"
        if centralized:
            site = f"{district_name}{street_name}易地扶贫搬迁集中安置点"
            address = f"长沙市{district_name}{street_name}{rng.choice(_COMMUNITIES)}{room}"
        elif district == head.district_code and street == head.street_code:
            site, address = None, head.address
        else:
            site, address = None, f"长沙市{district_name}{street_name}{rng.choice(_COMMUNITIES)}{room}"
        members = _living_members(world, head)
        labour = sum(1 for p in members if 16 <= age_on(p) <= 59)
        rows.append(
            {
                "户编号": poverty_household_id(head),
                "户主姓名": head.name,
                "户主身份证号": head.id_number,
                "联系电话": head.phone or "",
                "搬迁人口": len(members),
                "搬迁对象类别": "脱贫户" if on_roster or rng.random() < 0.4 else "同步搬迁户",
                "安置方式": "集中安置" if centralized else "分散安置",
                "迁出地区县代码": origin,
                "迁出地乡镇代码": origin_street,
                "安置地区县代码": district,
                "安置地街道代码": street,
                "安置点名称": site or "",
                "安置地址": address,
                "搬迁入住日期": f"{a_day(rng, date(2016, 6, 1), date(2020, 12, 31)):%Y/%m/%d}",
                "户籍是否迁入": "是" if hukou_moved else "否",
                "劳动力人数": labour,
                "已就业劳动力人数": rng.randint(max(0, labour - 1), labour),
                "更新时间": _stamp(rng),
            }
        )
    return rows


def relocated_households(world: World, bad: int) -> SampleTable:
    """The relocation register's monthly drop: ``relocated_rows`` with the faults asked for."""
    rows = relocated_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:agriculture_rural.relocated_households",
        {
            "bad_check_char": wrong_check_char("户主身份证号"),
            "unknown_relocation_category": set_value("搬迁对象类别", "水库移民户"),
            "impossible_relocation_date": set_value("搬迁入住日期", "2019/02/30"),
            "origin_outside_city": set_value("迁出地区县代码", "430624"),  # 湘阴县, 岳阳: not a division of the city
            "duplicate_key": None,
        },
    )
    return SampleTable(RELOCATED_COLUMNS, rows, kinds)


# --- 退捕渔民 (retired fishermen) ------------------------------------------------------------------------

RIVERSIDE = {"430112": "望", "430104": "岳", "430105": "开"}  # districts on the Xiang river, and their short names
FISHERMEN_COLUMNS = _header(
    "身份证号",
    "姓名",
    "户号",
    "联系电话",
    "渔民类型",
    "捕捞许可证号",
    "渔船名号",
    "退捕日期",
    "补偿金额（元）",
    "过渡期生活补助（元）",
    "转产就业情况",
    "是否参加养老保险",
    "养老保险补贴（元）",
    "帮扶状态",
    "终止日期",
    "区县代码",
    "乡镇街道代码",
    "更新时间",
)
EMPLOYMENT_LABELS = {
    "employed": "务工就业",
    "self_employed": "自主创业",
    "public_welfare_post": "公益性岗位安置",
    "unemployed": "有就业意愿未就业",
    "not_in_labour_force": "超过劳动年龄或丧失劳动能力",
}
STATUS_LABELS = {"active": "在保", "suspended": "暂停", "terminated": "终止"}


def retired_fishermen(world: World, bad: int) -> SampleTable:
    """Fishermen who left the Xiang river in the 2019-2020 fishing ban: working-age people of riverside districts."""
    rng = world.rng("agriculture_rural.retired_fishermen")
    pool = [p for p in world.aged(25, 59) if p.district_code in RIVERSIDE]
    on_roster = [p for p in pool if world.roster_of(p) is not None]
    chosen = {p.id_number: p for p in rng.sample(pool, min(len(pool), max(2, round(0.02 * len(pool)))))}
    for p in rng.sample(on_roster, min(len(on_roster), max(1, round(0.1 * len(on_roster))))):
        chosen.setdefault(p.id_number, p)
    rows = []
    for number, person in enumerate(sorted(chosen.values(), key=lambda p: p.id_number), start=1):
        licensed = rng.random() < 0.7
        retired = a_day(rng, date(2019, 6, 1), date(2020, 12, 31))
        has_vessel = licensed or rng.random() < 0.3
        short = RIVERSIDE[person.district_code]
        licence = f"湘长{short}渔捕（{rng.randint(2012, 2018)}）{number:06d}号" if licensed else None
        vessel = f"湘{short}渔{rng.randint(1, 99999):05d}" if has_vessel else None
        compensation = rng.randrange(300, 1500) * 100 if has_vessel else rng.randrange(20, 100) * 100
        employment = rng.choices(list(EMPLOYMENT_LABELS), weights=(50, 15, 15, 15, 5))[0]
        insured = rng.random() < 0.85
        status = rng.choices(list(STATUS_LABELS), weights=(85, 5, 10))[0]
        ended = a_day(rng, date(2021, 1, 1)) if status == "terminated" else None
        rows.append(
            {
                "身份证号": person.id_number,
                "姓名": person.name,
                "户号": person.household_id,
                "联系电话": person.phone,
                "渔民类型": "持证渔民" if licensed else "无证渔民",
                "捕捞许可证号": licence,
                "渔船名号": vessel,
                "退捕日期": retired,
                "补偿金额（元）": compensation,
                "过渡期生活补助（元）": 800 * rng.choice((6, 12, 18, 24)),
                "转产就业情况": EMPLOYMENT_LABELS[employment],
                "是否参加养老保险": "是" if insured else "否",
                "养老保险补贴（元）": rng.choice((500, 1000, 1500, 2000, 3000)) if insured else 0,
                "帮扶状态": STATUS_LABELS[status],
                "终止日期": ended,
                "区县代码": person.district_code,
                "乡镇街道代码": person.street_code,
                "更新时间": moment(rng).replace(microsecond=0),
            }
        )
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:agriculture_rural.retired_fishermen",
        {
            "bad_check_char": wrong_check_char("身份证号"),
            "unknown_fisherman_type": set_value("渔民类型", "兼业渔民"),
            "impossible_retirement_date": set_value("退捕日期", "2020-02-30"),
            "negative_compensation": set_value("补偿金额（元）", -12000),
            "duplicate_key": None,
        },
    )
    return SampleTable(FISHERMEN_COLUMNS, rows, kinds)


# --- 防止返贫监测 (return-to-poverty monitoring) ---------------------------------------------------------

# return_risk_not_on_roster's annual_dibao_standard default (a placeholder, not Changsha's published figure)
ANNUAL_DIBAO_STANDARD = 8400
MONITORING_COLUMNS = _header(
    "监测户编号",
    "姓名",
    "证件号码",
    "与户主关系",
    "家庭人口数",
    "联系电话",
    "监测对象类别",
    "主要风险类型",
    "次要风险类型",
    "家庭人均纯收入",
    "识别时间",
    "风险消除时间",
    "监测状态",
    "县级代码",
    "乡镇代码",
    "更新时间",
)
# The national monitoring system's labels, by gender of the member: (male, female).
RELATION_LABELS = {
    "head": ("户主", "户主"),
    "spouse": ("配偶", "配偶"),
    "child": ("之子", "之女"),
    "parent": ("之父", "之母"),
    "grandchild": ("之孙子", "之孙女"),
    "other": ("其他", "其他"),
}
MONITORING_TYPE_LABELS = {
    "unstable_lifted": "脱贫不稳定户",
    "edge_at_risk": "边缘易致贫户",
    "sudden_hardship": "突发严重困难户",
}
RISK_LABELS = {
    "illness": "因病",
    "disability": "因残",
    "education": "因学",
    "disaster": "因自然灾害",
    "accident": "因意外事故",
    "industry_failure": "因产业项目失败",
    "unemployment": "因务工就业不稳",
    "labour_shortage": "缺劳动力",
    "housing_safety": "住房出现安全问题",
    "other": "其他",
}


def monitoring_rows(world: World) -> list[dict[str, Any]]:
    """Every living member of each monitored household, household facts repeated on each row, before any fault.
    Return_risk_off_roster households are still monitored; return_risk_eliminated ones had their risk eliminated."""
    rng = world.rng("agriculture_rural.return_risk_monitoring")
    still = {p.id_number for p in world.cohort("return_risk_off_roster")}
    cleared = {p.id_number for p in world.cohort("return_risk_eliminated")}
    above = {p.id_number for p in world.cohort("return_risk_above_standard")}
    rows = []
    for head in world.cohort("return_risk"):
        members = _living_members(world, head)
        if not members:
            continue
        acting_head = head if head in members else members[0]  # the head died: the eldest survivor listed first
        roster = world.roster_of(acting_head)
        monitored = roster is not None and "return_risk" in roster.categories and roster.status != "terminated"
        kind = rng.choices(list(MONITORING_TYPE_LABELS), weights=(40, 40, 20))[0]
        causes = rng.sample(list(RISK_LABELS), 2)
        identified = a_day(rng, date(2021, 3, 1), REFERENCE_DATE - timedelta(days=60))
        if head.id_number in cleared:
            identified = a_day(rng, date(2021, 3, 1), REFERENCE_DATE - timedelta(days=240))
        eliminated = None
        settled = identified + timedelta(days=180)  # risk is marked eliminated after half a year at the soonest
        if head.id_number in cleared or (
            not monitored and head.id_number not in still and settled <= REFERENCE_DATE and rng.random() < 0.45
        ):
            eliminated = a_day(rng, settled, REFERENCE_DATE - timedelta(days=1))
        income = rng.randrange(4500, 9000) if eliminated is None else rng.randrange(9000, 16000)
        if head.id_number in still:  # at or below the dibao standard: return_risk_not_on_roster must find them
            income = 4500 + (income - 4500) % 3000
        elif head.id_number in above:  # monitored, off the roster, above the standard (a near miss)
            income = ANNUAL_DIBAO_STANDARD + 100 + income % 400
        stamp = _stamp(rng)
        for person in members:
            relation = RELATION_LABELS[relation_of(acting_head, person)][person.gender == "female"]
            rows.append(
                {
                    "监测户编号": poverty_household_id(head),
                    "姓名": person.name,
                    "证件号码": person.id_number,
                    "与户主关系": relation,
                    "家庭人口数": len(members),
                    "联系电话": person.phone or "",
                    "监测对象类别": MONITORING_TYPE_LABELS[kind],
                    "主要风险类型": RISK_LABELS[causes[0]],
                    "次要风险类型": RISK_LABELS[causes[1]] if rng.random() < 0.5 else "",
                    "家庭人均纯收入": f"{income:.2f}",
                    "识别时间": f"{identified:%Y%m%d}",
                    "风险消除时间": f"{eliminated:%Y%m%d}" if eliminated else "",
                    "监测状态": "风险已消除" if eliminated else "风险未消除",
                    "县级代码": person.district_code,
                    "乡镇代码": person.street_code,
                    "更新时间": stamp,
                }
            )
    return rows


def return_risk_monitoring(world: World, bad: int) -> SampleTable:
    """The monitoring system's monthly drop: ``monitoring_rows`` with the faults asked for."""
    rows = monitoring_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:agriculture_rural.return_risk_monitoring",
        {
            "bad_check_char": wrong_check_char("证件号码"),
            "unknown_monitoring_type": set_value("监测对象类别", "一般农户"),
            "impossible_identification_date": set_value("识别时间", "20230230"),
            "negative_income": set_value("家庭人均纯收入", "-1200.00"),
            "duplicate_key": None,
        },
    )
    return SampleTable(MONITORING_COLUMNS, rows, kinds)


SOURCES = [
    SampleSource(
        "agriculture_rural.relocated_households",
        "agriculture_drop",
        relocated_households,
        file=f"relocated_households_{REFERENCE_DATE:%Y%m%d}.csv",
        encoding="utf-8-sig",
    ),
    SampleSource(
        "agriculture_rural.retired_fishermen",
        "agriculture_drop",
        retired_fishermen,
        file=f"retired_fishermen_{REFERENCE_DATE:%Y%m%d}.xlsx",
    ),
    SampleSource(
        "agriculture_rural.return_risk_monitoring",
        "agriculture_drop",
        return_risk_monitoring,
        file=f"return_risk_{REFERENCE_DATE:%Y%m%d}.csv",
        encoding="gb18030",
    ),
]
