"""医疗费用: hospital settlements collected by the regional health information platform (amounts in fen)."""

from lidm import Adapter, SqlSource, codes, date, fen_to_yuan

adapter = Adapter(
    contract="health.medical_expenses",
    source=SqlSource(connection="health_db", table="t_med_settlement", watermark="gxsj"),
    mapping={
        "settlement_id": "jsdh",
        "id_number": "sfzh",
        "name": "xm",
        "hospital_code": "yljgdm",
        "hospital_name": "yljgmc",
        "hospital_level": codes("yljgdj", {"3": "tertiary", "2": "secondary", "1": "primary", "9": "unrated"}),
        "visit_type": codes("jzlx", {"1": "outpatient", "2": "chronic_outpatient", "3": "inpatient"}),
        "admission_date": date("ryrq", "%Y%m%d"),
        "discharge_date": date("cyrq", "%Y%m%d"),
        "diagnosis_code": "zdbm",
        "serious_illness": codes("zdjbbz", {"1": "true", "0": "false"}),
        "total_cost": fen_to_yuan("zfy"),
        "insurance_paid": fen_to_yuan("ybzf"),
        "policy_scope_self_pay": fen_to_yuan("zcfwnzf"),
        "out_of_pocket": fen_to_yuan("grzf"),
        "settlement_date": date("jsrq", "%Y%m%d"),
        "district_code": "qxdm",
        "updated_at": "gxsj",
    },
    pool="health",
)
