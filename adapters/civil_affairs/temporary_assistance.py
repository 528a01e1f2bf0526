"""临时救助: civil affairs' temporary assistance cases, a PostgreSQL table read incrementally on timestamptz gxsj."""

from lidm import Adapter, SqlSource, codes
from lidm_adapters.civil_affairs._codes import LOW_INCOME_CATEGORY

adapter = Adapter(
    contract="civil_affairs.temporary_assistance",
    source=SqlSource(connection="civil_affairs_db", table="t_lsjz_aj", watermark="gxsj"),
    mapping={
        "case_id": "ajbh",
        "id_number": "sfzh",
        "name": "xm",
        "household_id": "jtbh",
        "low_income_category": codes("dsrklb", LOW_INCOME_CATEGORY),
        "assistance_type": codes("jzlx", {"1": "urgent", "2": "expense"}),
        "reason": codes(
            "jzyy",
            {
                "01": "sudden_accident",
                "02": "illness",
                "03": "disaster",
                "04": "education",
                "05": "basic_living",
                "99": "other",
            },
        ),
        "advance_aid": codes("sfxxjz", {"1": "true", "0": "false"}),
        "non_local": codes("sfydjz", {"1": "true", "0": "false"}),
        "amount": "jzje",
        "in_kind_value": "swzk",
        "application_date": "sqrq",
        "approval_date": "sprq",
        "approval_level": codes("spjb", {"1": "county", "2": "township"}),
        "payment_date": "ffrq",
        "disbursement_status": codes("ffzt", {"1": "approved", "2": "paid", "3": "revoked"}),
        "district_code": "qxdm",
        "street_code": "jddm",
        "updated_at": "gxsj",
    },
    pool="civil_affairs",
)
