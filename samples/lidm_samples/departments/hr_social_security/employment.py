"""hr_social_security.employment: employment registrations, one per job."""

from __future__ import annotations

from lidm_samples.departments.hr_social_security.careers import careers, stamp
from lidm_samples.sources import (
    SampleTable,
    code,
    inject,
    set_value,
    text,
    tie_at_boundary,
    timestamp,
    wrong_check_char,
)
from lidm_samples.world import World

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
                    "gxsj": stamp(rng, max(j.registered, j.end or j.start)),
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
