"""医疗救助: medical assistance records (premium subsidies, one-stop and manual assistance) from the MI database."""

from lidm import Adapter, SqlSource, codes

adapter = Adapter(
    contract="medical_insurance.medical_assistance",
    source=SqlSource(connection="mi_db", table="t_yljz_mx", watermark="gxsj"),
    mapping={
        "record_id": "jzjlh",
        "id_number": "sfzh",
        "name": "xm",
        "low_income_category": codes(
            "dxlb",
            {
                "11": "tekun",
                "12": "dibao",
                "13": "dibao_edge",
                "14": "return_risk",
                "15": "rigid_expense",
                "19": "other_hardship",
            },
        ),
        "medical_assistance_kind": codes(
            "jzlx",
            {"1": "premium_subsidy", "2": "outpatient", "3": "inpatient", "4": "catastrophic", "5": "re_assistance"},
        ),
        "assistance_year": "jznd",
        "subsidy_ratio": "zzbl",
        "settlement_id": "jsid",
        "assistance_base": "jzjs",
        "amount": "jzje",
        "assistance_date": "jzrq",
        "settlement_channel": codes("jsqd", {"1": "one_stop", "2": "manual"}),
        "disbursement_status": codes("ffzt", {"1": "approved", "2": "paid", "3": "revoked"}),
        "district_code": "cbdq",
        "updated_at": "gxsj",
    },
    pool="medical_insurance",
)
