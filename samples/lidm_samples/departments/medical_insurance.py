"""医保局 (medical security bureau): settlements and medical assistance on its medical security platform."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from lidm_samples.departments.health import (
    Settlement,
    assisted_on,
    hospital_settlements,
    insurance_types,
    update_time,
)
from lidm_samples.people import REFERENCE_DATE, RosterMember
from lidm_samples.sources import (
    SampleSource,
    SampleTable,
    a_day,
    code,
    day,
    inject,
    integer,
    money,
    set_value,
    text,
    tie_at_boundary,
    timestamp,
    wrong_check_char,
)
from lidm_samples.world import World

INSURANCE_CODES = {"employee": "310", "resident": "390"}  # 险种类型 (insutype)
MED_TYPES = {"outpatient": "11", "chronic_outpatient": "14", "inpatient": "21"}  # 医疗类别 (med_type)
REIMBURSEMENT_COLUMNS = {
    "setl_id": text(64),
    "psn_no": text(32),  # the platform's own person number: not shared
    "certno": text(18),
    "psn_name": text(50),
    "insutype": code(3),
    "med_type": code(2),
    "fixmedins_code": text(32),
    "fixmedins_name": text(200),
    "hosp_lv": code(2),
    "begndate": day(),
    "enddate": day(),
    "setl_date": day(),
    "medfee_sumamt": money(),
    "hifp_pay": money(),  # basic medical insurance fund
    "hifmi_pay": money(),  # critical illness insurance (resident) / large-amount supplement (employee)
    "maf_pay": money(),  # medical assistance fund
    "inscp_selfpay": money(),
    "psn_part_amt": money(),
    "refd_setl_flag": code(1),  # 0 settled, 1 reversed
    "insu_admdvs": code(6),
    "updt_time": timestamp(),
}


def _yuan(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2)


def insurance_reimbursements(world: World, bad: int) -> SampleTable:
    rng = world.rng("medical_insurance.insurance_reimbursements")
    person_no = {p.id_number: f"430100{i:014d}" for i, p in enumerate(world.people, start=1)}
    rows = []
    for s in hospital_settlements(world):
        if s.insurance is None:
            continue  # uninsured: never reaches the medical security platform
        rows.append(
            {
                "setl_id": s.insurance_id,
                "psn_no": person_no[s.person.id_number],
                "certno": s.person.id_number,
                "psn_name": s.person.name,
                "insutype": INSURANCE_CODES[s.insurance],
                "med_type": MED_TYPES[s.visit_type],
                "fixmedins_code": s.hospital.insurance_code,
                "fixmedins_name": s.hospital.name,
                "hosp_lv": s.hospital.grade,
                "begndate": s.admission,
                "enddate": s.discharge,
                "setl_date": s.settled,
                "medfee_sumamt": _yuan(s.total),
                "hifp_pay": _yuan(s.basic),
                "hifmi_pay": _yuan(s.critical),
                "maf_pay": _yuan(s.assistance),
                "inscp_selfpay": _yuan(s.policy_self_pay),
                "psn_part_amt": _yuan(s.out_of_pocket),
                "refd_setl_flag": "1" if s.reversed else "0",
                "insu_admdvs": s.person.district_code,
                # settled at the counter; a reversal (refund) restamps the row days later
                "updt_time": update_time(rng, s.settled + timedelta(days=rng.randint(3, 20) if s.reversed else 0), 12),
            }
        )
    tie_at_boundary(rows, "updt_time")
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:medical_insurance.insurance_reimbursements",
        {
            "bad_check_char": wrong_check_char("certno"),
            "unknown_insurance_type": set_value("insutype", "320"),  # civil-servant subsidy: not in the contract
            "negative_basic_paid": set_value("hifp_pay", Decimal("-35.50")),
            "missing_settlement_date": set_value("setl_date", None),
            "duplicate_key": None,
        },
    )
    return SampleTable(REIMBURSEMENT_COLUMNS, rows, kinds)


CATEGORY_CODES = {
    "tekun": "11",
    "dibao": "12",
    "dibao_edge": "13",
    "return_risk": "14",
    "rigid_expense": "15",
    "other_hardship": "19",
}
KIND_CODES = {"premium_subsidy": "1", "outpatient": "2", "inpatient": "3", "catastrophic": "4", "re_assistance": "5"}
CHANNEL_CODES = {"one_stop": "1", "manual": "2"}
STATUS_CODES = {"approved": "1", "paid": "2", "revoked": "3"}
PREMIUM = {2025: Decimal("400.00"), 2026: Decimal("400.00")}  # individual resident premium, yuan a year
PREMIUM_RATIO = {"tekun": 100, "dibao": 100, "dibao_edge": 50, "return_risk": 50}
RE_ASSISTANCE_FLOOR = 1_000_000  # fen of yearly in-scope self pay left after one-stop assistance
ASSISTANCE_COLUMNS = {
    "jzjlh": text(64),
    "sfzh": text(18),
    "xm": text(50),
    "dxlb": code(2),
    "jzlx": code(1),
    "jznd": integer(),
    "zzbl": money(),
    "jsid": text(64),
    "jzjs": money(),
    "jzje": money(),
    "jzrq": day(),
    "jsqd": code(1),
    "ffzt": code(1),
    "cbdq": code(6),
    "gxsj": timestamp(),
}


def premium_subsidy_faults(world: World) -> dict[str, str]:
    """What went wrong with this year's premium subsidy of each premium_subsidy_missing member: missing, at a
    lower ratio (50% for a member of a 100% category), or revoked."""
    out = {}
    planted = world.cohort("premium_subsidy_missing")
    full = [p for p in planted if PREMIUM_RATIO[world.roster_by_id[p.id_number].category] == 100]
    half = [p for p in planted if PREMIUM_RATIO[world.roster_by_id[p.id_number].category] < 100]
    for group, kinds in ((full, ("missing", "wrong_ratio", "revoked")), (half, ("missing", "revoked"))):
        for i, person in enumerate(group):
            out[person.id_number] = kinds[i % len(kinds)]
    return out


def medical_assistance_rows(world: World) -> list[dict[str, object]]:
    """The medical assistance platform's rows, before any fault is put in."""
    rng = world.rng("medical_insurance.medical_assistance")
    schemes = insurance_types(world)
    rows: list[dict[str, object]] = []

    def add(
        member: RosterMember,
        kind: str,
        year: int,
        ratio: int,
        base: Decimal,
        amount: Decimal,
        on: date,
        status: str,
        settlement: str | None = None,
        channel: str | None = None,
    ) -> None:
        paid_on = on + timedelta(days=rng.randint(0, 25)) if status != "approved" else on
        rows.append(
            {
                "jzjlh": f"YLJZ{member.person.district_code}{year}{len(rows) + 1:06d}",
                "sfzh": member.person.id_number,
                "xm": member.person.name,
                "dxlb": CATEGORY_CODES[member.category],
                "jzlx": KIND_CODES[kind],
                "jznd": year,
                "zzbl": Decimal(ratio).quantize(Decimal("0.01")),
                "jsid": settlement,
                "jzjs": base,
                "jzje": amount,
                "jzrq": on,
                "jsqd": CHANNEL_CODES[channel] if channel else None,
                "ffzt": STATUS_CODES[status],
                "cbdq": member.person.district_code,
                "gxsj": update_time(rng, min(paid_on, REFERENCE_DATE - timedelta(days=1))),
            }
        )

    # premium subsidies: paid in the autumn collection period before the insurance year, or on approval
    faults = premium_subsidy_faults(world)
    for member in world.roster:
        if member.category not in PREMIUM_RATIO or schemes[member.person.id_number] != "resident":
            continue
        for year, premium in PREMIUM.items():
            on = a_day(rng, date(year - 1, 9, 1), date(year - 1, 12, 31))
            if on < member.approval_date <= min(date(year, 12, 31), REFERENCE_DATE - timedelta(days=1)):
                # approved after the collection period: subsidised within weeks of the approval
                on = min(member.approval_date + timedelta(days=rng.randint(0, 20)), REFERENCE_DATE - timedelta(days=1))
            if not assisted_on(member, on):
                continue
            ratio, status = PREMIUM_RATIO[member.category], "paid"
            fault = faults.get(member.person.id_number) if year == REFERENCE_DATE.year else None
            if fault == "missing":
                continue  # left out of this year's subsidy list
            if fault == "wrong_ratio":
                ratio = 50  # subsidised as a dibao_edge member
            elif fault == "revoked":
                status = "revoked"  # reversed after the collection: recorded, never paid
            amount = (premium * ratio / 100).quantize(Decimal("0.01"))
            add(member, "premium_subsidy", year, ratio, premium, amount, on, status)

    # one-stop assistance in the settlements, and re-assistance of what is still too heavy afterwards
    left: dict[tuple[str, int], list[Settlement]] = {}
    for s in hospital_settlements(world):
        if not s.assistance:
            continue
        member = world.roster_by_id[s.person.id_number]
        status = "revoked" if s.reversed else "paid" if s.settled < REFERENCE_DATE - timedelta(days=30) else "approved"
        add(
            member,
            s.assistance_kind,
            s.settled.year,
            s.assistance_ratio,
            _yuan(s.assistance_base),
            _yuan(s.assistance),
            s.settled,
            status,
            s.insurance_id,
            "one_stop",
        )
        if not s.reversed:
            left.setdefault((s.person.id_number, s.settled.year), []).append(s)
    for (id_number, year), settled in sorted(left.items()):
        base = sum(s.policy_self_pay for s in settled)
        last = max(s.settled for s in settled)
        if base < RE_ASSISTANCE_FLOOR or last > REFERENCE_DATE - timedelta(days=40):
            continue
        member = world.roster_by_id[id_number]
        on = a_day(rng, last + timedelta(days=20), min(last + timedelta(days=60), REFERENCE_DATE - timedelta(days=1)))
        status = "paid" if on < REFERENCE_DATE - timedelta(days=20) else "approved"
        add(
            member,
            "re_assistance",
            year,
            50,
            _yuan(base),
            _yuan(min(base // 2, 3_000_000)),
            on,
            status,
            channel="manual",
        )

    tie_at_boundary(rows, "gxsj")
    return rows


def medical_assistance(world: World, bad: int) -> SampleTable:
    rows = medical_assistance_rows(world)
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:medical_insurance.medical_assistance",
        {
            "bad_check_char": wrong_check_char("sfzh"),
            "unknown_category": set_value("dxlb", "18"),
            "ratio_above_100": set_value("zzbl", Decimal("120.00")),
            "negative_amount": set_value("jzje", Decimal("-50.00")),
            "duplicate_key": None,
        },
    )
    return SampleTable(ASSISTANCE_COLUMNS, rows, kinds)


SOURCES = [
    SampleSource(
        "medical_insurance.insurance_reimbursements",
        "mi_db",
        insurance_reimbursements,
        table="setl_d",
        server="mariadb",
    ),
    SampleSource(
        "medical_insurance.medical_assistance",
        "mi_db",
        medical_assistance,
        table="t_yljz_mx",
        server="mariadb",
    ),
]
