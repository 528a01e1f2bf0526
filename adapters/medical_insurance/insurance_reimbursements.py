"""医保报销结算: settlements of the medical security information platform, read incrementally from its database."""

from lidm import Adapter, SqlSource, codes

adapter = Adapter(
    contract="medical_insurance.insurance_reimbursements",
    source=SqlSource(connection="mi_db", table="setl_d", watermark="updt_time"),
    mapping={
        "settlement_id": "setl_id",
        "id_number": "certno",
        "name": "psn_name",
        "insurance_type": codes("insutype", {"310": "employee", "390": "resident"}),
        "visit_type": codes("med_type", {"11": "outpatient", "14": "chronic_outpatient", "21": "inpatient"}),
        "hospital_code": "fixmedins_code",
        "hospital_name": "fixmedins_name",
        "hospital_level": codes(
            "hosp_lv",
            {
                "01": "tertiary",
                "02": "tertiary",
                "03": "tertiary",
                "04": "tertiary",
                "05": "secondary",
                "06": "secondary",
                "07": "secondary",
                "08": "primary",
                "09": "primary",
                "10": "primary",
                "11": "unrated",
            },
        ),
        "admission_date": "begndate",
        "discharge_date": "enddate",
        "settlement_date": "setl_date",
        "total_cost": "medfee_sumamt",
        "basic_insurance_paid": "hifp_pay",
        "critical_illness_paid": "hifmi_pay",
        "medical_assistance_paid": "maf_pay",
        "policy_scope_self_pay": "inscp_selfpay",
        "out_of_pocket": "psn_part_amt",
        "settlement_status": codes("refd_setl_flag", {"0": "settled", "1": "reversed"}),
        "district_code": "insu_admdvs",
        "updated_at": "updt_time",
    },
    ignore=("psn_no",),  # the platform's internal person number: the ID number identifies the person
    pool="medical_insurance",
)
