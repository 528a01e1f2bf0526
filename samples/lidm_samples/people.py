"""Synthetic Changsha residents and a civil-affairs roster drawn from them.

Everything is derived from ``random.Random(seed)`` and a fixed reference date, so a seed always yields the
same people: tests, benchmarks and demos can compare runs byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from lidm.idnumber import check_char

REFERENCE_DATE = date(2026, 11, 27)
REFERENCE_TIME = datetime(2026, 11, 27)


# District code -> (name, streets). Towns (镇) get codes 1xx, streets (街道) 0xx, as in the real scheme.
DISTRICTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "430102": ("芙蓉区", ("文艺路街道", "朝阳街街道", "韭菜园街道", "五里牌街道", "火星街道", "马王堆街道")),
    "430103": ("天心区", ("坡子街街道", "城南路街道", "裕南街街道", "金盆岭街道", "新开铺街道", "暮云街道")),
    "430104": ("岳麓区", ("望月湖街道", "岳麓街道", "橘子洲街道", "银盆岭街道", "梅溪湖街道", "麓谷街道")),
    "430105": ("开福区", ("东风路街道", "清水塘街道", "湘雅路街道", "伍家岭街道", "四方坪街道", "洪山街道")),
    "430111": ("雨花区", ("侯家塘街道", "左家塘街道", "圭塘街道", "砂子塘街道", "东塘街道", "洞井街道")),
    "430112": ("望城区", ("高塘岭街道", "喻家坡街道", "月亮岛街道", "乌山街道", "铜官街道", "乔口镇")),
    "430121": ("长沙县", ("星沙街道", "湘龙街道", "泉塘街道", "榔梨街道", "黄兴镇", "安沙镇")),
    "430181": ("浏阳市", ("淮川街道", "荷花街道", "集里街道", "关口街道", "大瑶镇", "永安镇")),
    "430182": ("宁乡市", ("玉潭街道", "白马桥街道", "历经铺街道", "城郊街道", "花明楼镇", "灰汤镇")),
}

# Common surnames, roughly by frequency; 3% of households get a compound one.
_SURNAMES = (
    "王李张刘陈杨黄赵周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
    "余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
)
_COMPOUND = ("欧阳", "司马", "诸葛", "上官")
_MALE = "伟强磊军洋勇杰涛明超辉刚平鹏华飞斌宇浩俊峰建国志文博轩睿泽晨阳毅鑫凯亮旭东健龙彬"
_FEMALE = "芳娜敏静丽艳娟霞秀玲燕婷雪慧红梅琳颖佳欣怡思雨萱晶倩蓉莉兰凤琴洁璐瑶诗涵妍"
_RARE = "䶮㛃𫖮𬭚𬘭"  # in GB18030 but not in GBK: a GBK-only reader would choke on these
_COMMUNITIES = ("阳光小区", "芙蓉花园", "湘江世纪城", "金色家园", "紫薇花苑", "锦绣华庭", "麓山名苑", "新城小区")
_VILLAGES = ("新塘", "石桥", "枫树", "龙泉", "白石", "桃林")
_PHONE_SECOND = "3333355555778889999"  # 13x/15x/18x/19x dominate; 14x, 16x and 17x are rarer

RESIDENCE_STATUSES = ("registered", "resident", "moved_out", "deceased")
RELATIONS = ("head", "spouse", "child", "parent", "grandchild", "other")
CATEGORIES = ("dibao", "tekun", "dibao_edge", "rigid_expense", "return_risk", "other_hardship")
ROSTER_STATUSES = ("active", "suspended", "terminated")  # gradual_exit (渐退) is planted, never drawn


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID number."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("an ID number body is exactly 17 digits")
    return check_char(first17)


def make_id_number(division: str, birth: date, seq: int) -> str:
    """GB 11643-1999 number: division + YYYYMMDD + sequence (odd = male) + check character."""
    if len(division) != 6 or not division.isdigit() or not 0 <= seq <= 999:
        raise ValueError("division is 6 digits and seq is 0..999")
    body = f"{division}{birth:%Y%m%d}{seq:03d}"
    return body + id_check_char(body)


@dataclass
class Person:
    id_number: str
    name: str
    gender: str  # 'male' / 'female'
    birth_date: date
    household_id: str
    phone: str | None
    district_code: str
    street_code: str
    address: str
    residence_status: str
    updated_at: datetime


@dataclass
class RosterMember:
    person: Person
    household_id: str  # civil affairs' assistance household, not the health household
    relation_to_head: str
    category: str
    approval_date: date
    termination_date: date | None
    monthly_amount: Decimal
    status: str
    updated_at: datetime
    # 城镇住房困难: certified at the household's last review (urban households only); None when not assessed.
    housing_difficulty: bool | None = None
    # Categories held beside ``category`` (低保 and 防止返贫监测 at once); ``categories`` lists them all.
    extra_categories: tuple[str, ...] = ()
    exit_reason: str | None = None  # why a gradual_exit or terminated member is leaving or left

    @property
    def categories(self) -> tuple[str, ...]:
        """Every category held, the primary one first."""
        return (self.category, *(c for c in self.extra_categories if c != self.category))

    @property
    def urban_rural(self) -> str:
        """城镇 or 农村, from the street code (街道 0xx urban, 镇 1xx rural), so no random draw changes."""
        return urban_rural_of(self.person.street_code)


def urban_rural_of(street_code: str) -> str:
    """urban for a street (街道, township code 0xx), rural for a town or township (镇 1xx, 乡 2xx)."""
    return "urban" if street_code[6] == "0" else "rural"


def _street_code(district: str, index: int, street: str) -> str:
    town_index = sum(1 for s in DISTRICTS[district][1][:index] if s.endswith("镇"))
    return district + (f"{101 + town_index:03d}" if street.endswith("镇") else f"{index + 1:03d}")


def streets_of(district: str) -> list[tuple[str, str]]:
    """(9-digit code, name) of a district's streets and towns, numbered as the population register does."""
    return [(_street_code(district, i, name), name) for i, name in enumerate(DISTRICTS[district][1])]


STREET_NAMES: dict[str, str] = {code: name for district in DISTRICTS for code, name in streets_of(district)}


def _address(rng: random.Random, district: str, street: str) -> str:
    prefix = f"长沙市{DISTRICTS[district][0]}{street}"
    if street.endswith("镇"):
        return f"{prefix}{rng.choice(_VILLAGES)}村{rng.randint(1, 12)}组{rng.randint(1, 60)}号"
    return (
        f"{prefix}{rng.choice(_COMMUNITIES)}{rng.randint(1, 20)}栋{rng.randint(1, 4)}单元"
        f"{rng.randint(1, 28)}{rng.randint(1, 4):02d}室"
    )


def _given(rng: random.Random, gender: str) -> str:
    pool = _MALE if gender == "male" else _FEMALE
    given = "".join(rng.choice(pool) for _ in range(1 if rng.random() < 0.2 else 2))
    if rng.random() < 0.02:
        given = given[:-1] + rng.choice(_RARE)
    return given


def _birth(rng: random.Random, age: int) -> date:
    born = date(REFERENCE_DATE.year - age, 1, 1) + timedelta(days=rng.randrange(365))
    return min(born, REFERENCE_DATE - timedelta(days=1))


def _phone(rng: random.Random) -> str:
    return "1" + rng.choice(_PHONE_SECOND + "467") + f"{rng.randrange(10**9):09d}"


def _members(rng: random.Random, size: int) -> list[tuple[str, int]]:
    """(gender, age) of a household's members, head first, then spouse, children or a parent."""
    head_age = rng.randint(25, 85)
    head_gender = rng.choice(("male", "female"))
    out = [(head_gender, head_age)]
    if size >= 2:
        spouse_age = max(20, head_age + rng.randint(-5, 5))
        out.append(("female" if head_gender == "male" else "male", spouse_age))
    for _ in range(size - len(out)):
        child_age = head_age - rng.randint(22, 38)
        if child_age < 0 or (head_age < 55 and rng.random() < 0.25):
            out.append((rng.choice(("male", "female")), min(head_age + rng.randint(22, 32), 100)))
        else:
            out.append((rng.choice(("male", "female")), child_age))
    return out


def generate_people(n: int, seed: int) -> list[Person]:
    """``n`` residents in households of 1-5 members; at least one is deceased (the monitoring case)."""
    rng = random.Random(seed)
    people: list[Person] = []
    seen: set[str] = set()
    household_no = 0
    while len(people) < n:
        household_no += 1
        district = rng.choice(list(DISTRICTS))
        index = rng.randrange(len(DISTRICTS[district][1]))
        street = DISTRICTS[district][1][index]
        street_code = _street_code(district, index, street)
        address = _address(rng, district, street)
        household_id = f"HH{district}{household_no:07d}"
        surname = rng.choice(_COMPOUND) if rng.random() < 0.03 else rng.choice(_SURNAMES)
        size = min(rng.choices((1, 2, 3, 4, 5), weights=(18, 30, 27, 15, 10))[0], n - len(people))
        for position, (gender, age) in enumerate(_members(rng, size)):
            birth = _birth(rng, age)
            while True:
                seq = rng.randrange(500) * 2 + (1 if gender == "male" else 0)
                id_number = make_id_number(district, birth, seq)
                if id_number not in seen:
                    seen.add(id_number)
                    break
            family = surname if position != 1 else rng.choice(_SURNAMES)  # a spouse keeps their own surname
            status = rng.choices(RESIDENCE_STATUSES, weights=(58, 30, 8, 4 if age < 70 else 15))[0]
            people.append(
                Person(
                    id_number=id_number,
                    name=family + _given(rng, gender),
                    gender=gender,
                    birth_date=birth,
                    household_id=household_id,
                    phone=_phone(rng) if age >= 14 and rng.random() < 0.85 else None,
                    district_code=district,
                    street_code=street_code,
                    address=address,
                    residence_status=status,
                    updated_at=REFERENCE_TIME - timedelta(seconds=rng.randrange(1, 30 * 86400)),
                )
            )
    if people and not any(p.residence_status == "deceased" for p in people):
        min(people, key=lambda p: p.birth_date).residence_status = "deceased"
    return people


def relation_of(head: Person, member: Person) -> str:
    """Relation inferred from ages, mirroring how ``_members`` composes a household."""
    if member is head:
        return "head"
    years = (member.birth_date - head.birth_date).days / 365.25
    if abs(years) < 16:
        return "spouse" if member.gender != head.gender else "other"
    if years < 0:
        return "parent"
    return "grandchild" if years >= 40 else "child"


def monthly_amount(rng: random.Random, category: str) -> Decimal:
    """A member's monthly cash assistance: 低保 and 特困 are paid in cash, the other categories are not."""
    if category == "dibao":
        return Decimal(rng.randrange(30000, 90001, 50)).scaleb(-2)
    if category == "tekun":
        return Decimal(rng.randrange(100000, 150001, 50)).scaleb(-2)
    return Decimal("0.00")


def _roster_household(
    rng: random.Random, members: Sequence[Person], head: Person, mz_id: str, active: bool
) -> list[RosterMember]:
    category = rng.choices(CATEGORIES, weights=(60, 10, 12, 6, 7, 5))[0]
    if category == "tekun" and len(members) > 1:
        category = "dibao"  # 特困 support is for people living alone without any supporter
    approval = date(2015, 1, 1) + timedelta(days=rng.randrange((REFERENCE_DATE - date(2015, 3, 1)).days))
    status = rng.choices(ROSTER_STATUSES, weights=(85, 5, 10))[0]
    status = "active" if active else status  # a deceased member still paid: what monitoring must catch
    termination = None
    if status == "terminated":
        termination = approval + timedelta(days=rng.randint(1, (REFERENCE_DATE - approval).days))
    out = []
    for person in members:
        out.append(
            RosterMember(
                person=person,
                household_id=mz_id,
                relation_to_head=relation_of(head, person),
                category=category,
                approval_date=approval,
                termination_date=termination,
                monthly_amount=monthly_amount(rng, category),
                status=status,
                updated_at=REFERENCE_TIME - timedelta(seconds=rng.randrange(1, 30 * 86400)),
            )
        )
    return out


def generate_roster(people: Sequence[Person], share: float = 0.05, seed: int = 0) -> list[RosterMember]:
    """Whole households covering about ``share`` of ``people``: living members, plus one deceased one."""
    rng = random.Random(seed)
    households: dict[str, list[Person]] = {}
    for person in people:
        households.setdefault(person.household_id, []).append(person)
    order = list(households)
    rng.shuffle(order)
    target = max(1, round(share * len(people))) if share > 0 else 0
    roster: list[RosterMember] = []
    number = rng.randrange(10**5)
    have_dead = False
    for hh in order:
        members = households[hh]
        dead_here = any(m.residence_status == "deceased" for m in members)
        if len(roster) >= target:
            if have_dead:
                break
            if not dead_here:
                continue  # enough people, still looking for a household with a death
        keep_dead = dead_here and not have_dead  # civil affairs has not yet heard of this one death
        chosen = [m for m in members if keep_dead or m.residence_status != "deceased"]
        if chosen:
            number += 1
            mz_id = f"MZ{chosen[0].district_code}{number:07d}"
            roster += _roster_household(rng, chosen, members[0], mz_id, active=keep_dead)
            have_dead = have_dead or keep_dead
    return roster
