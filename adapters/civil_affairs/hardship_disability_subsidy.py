"""困难残疾人生活补贴: civil affairs' hardship disability living subsidy register, a PostgreSQL table."""

from lidm import GB_DISABILITY_TYPE, Adapter, SqlSource, codes
from lidm_adapters.civil_affairs._codes import LOW_INCOME_CATEGORY, STATUS

adapter = Adapter(
    contract="civil_affairs.hardship_disability_subsidy",
    source=SqlSource(connection="civil_affairs_db", table="t_cjr_knshbt"),
    mapping={
        "id_number": "sfzh",
        "name": "xm",
        "household_id": "jtbh",
        "low_income_category": codes("dsrklb", LOW_INCOME_CATEGORY),
        "disability_type": codes("cjlb", GB_DISABILITY_TYPE),
        "disability_grade": "cjdj",
        "monthly_amount": "ybzje",
        "approval_date": "sprq",
        "start_date": "ffqsrq",
        "last_paid_month": "zhffyf",
        "termination_date": "zzrq",
        "termination_reason": codes(
            "zzyy",
            {"01": "improved", "02": "certificate_invalid", "03": "deceased", "04": "moved_out", "99": "other"},
        ),
        "status": codes("zt", STATUS),
        "bank_account": "yhkh",
        "district_code": "qxdm",
        "street_code": "jddm",
        "updated_at": "gxsj",
    },
    pool="civil_affairs",
)
