"""就业登记: the HR and social security bureau's employment registrations, one row per job, read from its database."""

from lidm import Adapter, SqlSource, codes, date

adapter = Adapter(
    contract="hr_social_security.employment",
    source=SqlSource(connection="hr_db", table="t_jydj", watermark="gxsj"),
    mapping={
        "record_id": "djbh",
        "id_number": "sfzh",
        "name": "xm",
        "employment_form": codes(
            "jyxs", {"1": "employee", "2": "flexible", "3": "self_employed", "4": "public_welfare_post"}
        ),
        "employer_name": "dwmc",
        "employer_credit_code": "tyxydm",
        "registration_date": date("djrq", "%Y%m%d"),
        "start_date": date("ksrq", "%Y%m%d"),
        "end_date": date("zzrq", "%Y%m%d"),
        "status": codes("jyzt", {"1": "employed", "2": "ended"}),
        "end_reason": codes(
            "zzyy",
            {
                "01": "contract_expired",
                "02": "resigned",
                "03": "dismissed",
                "04": "employer_closed",
                "05": "post_expired",
                "06": "business_closed",
                "07": "retired",
                "08": "deceased",
                "99": "other",
            },
        ),
        "district_code": "djqx",
        "street_code": "djjd",
        "updated_at": "gxsj",
    },
    pool="hr_social_security",
)
