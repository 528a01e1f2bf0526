"""失业登记与失业保险金: the HR and social security bureau's unemployment registrations and benefit (amounts in
fen), read from its database."""

from lidm import Adapter, SqlSource, codes, fen_to_yuan

adapter = Adapter(
    contract="hr_social_security.unemployment",
    source=SqlSource(connection="hr_db", table="t_sydj", watermark="gxsj"),
    mapping={
        "registration_id": "sydjbh",
        "id_number": "sfzh",
        "name": "xm",
        "phone": "lxdh",
        "registration_date": "djrq",
        "employment_difficulty": codes("jykn", {"1": "true", "0": "false"}),
        "registration_status": codes("djzt", {"1": "registered", "2": "deregistered"}),
        "benefit_months": "lqqx",
        "benefit_monthly_amount": fen_to_yuan("yffbz"),
        "benefit_start_date": "lqksrq",
        "benefit_end_date": "lqzzrq",
        "benefit_status": codes(
            "lqzt", {"0": "not_entitled", "1": "receiving", "2": "suspended", "3": "expired", "4": "terminated"}
        ),
        "deregistration_date": "zxrq",
        "deregistration_reason": codes(
            "zxyy",
            {
                "01": "employed",
                "02": "retired",
                "03": "enlisted",
                "04": "education",
                "05": "moved_out",
                "06": "imprisoned",
                "07": "refused_service",
                "08": "no_contact",
                "09": "deceased",
                "99": "other",
            },
        ),
        "district_code": "djqx",
        "street_code": "djjd",
        "updated_at": "gxsj",
    },
    pool="hr_social_security",
)
