"""The city's employers, with the same names and unified social credit codes in every table."""

from __future__ import annotations

import random
from dataclasses import dataclass

from lidm_samples.people import DISTRICTS, Person
from lidm_samples.world import World

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
