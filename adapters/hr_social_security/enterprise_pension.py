"""企业职工基本养老保险: the HR and social security bureau's enterprise pension register, one row per insured
person, read in full from its database."""

from lidm import Adapter, SqlSource, codes

adapter = Adapter(
    contract="hr_social_security.enterprise_pension",
    source=SqlSource(connection="hr_db", table="t_qyzgyl"),
    mapping={
        "id_number": "sfzh",
        "name": "xm",
        "insured_kind": codes("cbsf", {"1": "employee", "2": "individual"}),
        "employer_name": "dwmc",
        "insured_date": "cbrq",
        "status": codes("cbzt", {"10": "contributing", "20": "receiving", "30": "suspended", "40": "terminated"}),
        "contribution_base": "jfjs",
        "contribution_months": "ljjfys",
        "monthly_pension": "yjbylj",
        "pension_start_date": "dyksrq",
        "termination_date": "zzrq",
        "termination_reason": codes(
            "zzyy", {"1": "deceased", "2": "transferred_out", "3": "settled_abroad", "9": "other"}
        ),
        "district_code": "cbqx",
        "updated_at": "gxsj",
    },
    pool="hr_social_security",
)
