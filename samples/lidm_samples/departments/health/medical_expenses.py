"""health.medical_expenses: hospital settlements as the health platform records them."""

from __future__ import annotations

from lidm_samples.departments.health._common import update_time
from lidm_samples.departments.health.settlements import hospital_settlements
from lidm_samples.sources import (
    SampleTable,
    big_integer,
    code,
    inject,
    set_value,
    text,
    tie_at_boundary,
    timestamp,
    wrong_check_char,
)
from lidm_samples.world import World

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
