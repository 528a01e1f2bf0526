"""civil_affairs.children_in_need: orphans and children without de facto care (孤儿和事实无人抚养儿童)."""

from __future__ import annotations

import random
from datetime import date, timedelta

from lidm_samples.departments.civil_affairs._common import GENDER_CODES, STATUS_CODES
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.sources import (
    DUPLICATE,
    SampleTable,
    a_day,
    code,
    day,
    inject,
    integer,
    moment,
    set_value,
    text,
    timestamp,
    wrong_check_char,
)
from lidm_samples.world import World

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
    unpaid = {p.id_number for p in world.cohort("child_allowance_missing")}
    planted = unpaid | {p.id_number for p in world.cohort("child_allowance_paid")}
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
        if child.id_number in planted:  # recognised and on the register (lidm_samples.world.PLANTED)
            status, reason = "active", None
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
                "yfbz_fen": 0 if child.id_number in unpaid else CHILD_ALLOWANCE_FEN[placement],
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
