"""机关事业单位基本养老保险: the HR and social security bureau's pension register of government agencies and public
institutions (amounts in fen), read in full from its database."""

from lidm import Adapter, SqlSource, codes, date, fen_to_yuan

adapter = Adapter(
    contract="hr_social_security.institution_pension",
    source=SqlSource(connection="hr_db", table="t_jgsyyl"),
    mapping={
        "id_number": "sfzh",
        "name": "xm",
        "employer_name": "dwmc",
        "insured_date": date("cbrq", "%Y%m%d"),
        "status": codes("cbzt", {"10": "contributing", "20": "receiving", "30": "suspended", "40": "terminated"}),
        "monthly_pension": fen_to_yuan("yjbylj"),
        "pension_start_date": date("dyksrq", "%Y%m%d"),
        "termination_date": date("zzrq", "%Y%m%d"),
        "termination_reason": codes(
            "zzyy", {"1": "deceased", "2": "transferred_out", "3": "settled_abroad", "9": "other"}
        ),
        "district_code": "cbqx",
        "updated_at": "gxsj",
    },
    pool="hr_social_security",
)
