"""法律援助案件: the justice bureau's legal aid cases, a daily UTF-8 CSV (BOM) with Chinese headers."""

from lidm import LOW_INCOME_CATEGORY_SHORT, Adapter, DropSource, codes, date, labels

adapter = Adapter(
    contract="justice.legal_aid",
    source=DropSource(connection="justice_drop", pattern="legal_aid_*.csv", encoding="utf-8"),
    mapping={
        "case_id": "案件编号",
        "id_number": "受援人身份证号",
        "name": "受援人姓名",
        "phone": "联系电话",
        "case_type": labels("案件类型"),
        "aid_form": codes(
            "援助形式",
            {
                "法律咨询": "consultation",
                "代拟法律文书": "document_drafting",
                "刑事辩护与代理": "criminal_defence",
                "诉讼代理": "litigation_agency",
                "非诉讼代理": "non_litigation_agency",
                "值班律师法律帮助": "duty_lawyer",
                "劳动争议调解与仲裁代理": "labour_arbitration",
            },
        ),
        "means_test_basis": codes(
            "经济困难审查依据",
            {
                "低收入人口免予核查": "low_income",
                "特定群体免予核查": "special_group",
                "救助优抚对象免予核查": "assistance_recipient",
                "农民工追索劳动报酬工伤赔偿免予核查": "migrant_worker",
                "经核查经济困难": "means_tested",
                "不受经济困难条件限制": "not_required",
            },
        ),
        "low_income_category": labels("低收入人口类别", extra=LOW_INCOME_CATEGORY_SHORT),
        "application_date": date("申请日期", "%Y/%m/%d"),
        "decision_date": date("审查决定日期", "%Y/%m/%d"),
        "closing_date": date("结案日期", "%Y/%m/%d"),
        "case_status": labels("案件状态"),
        "institution_name": "法律援助机构",
        "undertaker_org": "承办机构",
        "district_code": "区县代码",
        "updated_at": "更新时间",
    },
    pool="justice",
)
