"""疾病应急救助: the disease emergency relief fund's cases, an XLSX with Chinese headers dropped by its office."""

from lidm import Adapter, DropSource, codes, date

adapter = Adapter(
    contract="health.disease_emergency_fund",
    source=DropSource(connection="health_drop", pattern="emergency_fund_*.xlsx", format="xlsx"),
    mapping={
        "case_id": "案件编号",
        "id_number": "身份证号",
        "name": "姓名",
        "identity_status": codes("身份状态", {"身份明确但无力缴费": "unable_to_pay", "身份不明": "unidentified"}),
        "hospital_code": "救治医院编码",
        "hospital_name": "救治医院名称",
        "emergency_type": codes(
            "急危重症类型",
            {
                "严重创伤": "trauma",
                "急性心脑血管疾病": "cardio_cerebrovascular",
                "急性中毒": "poisoning",
                "急性呼吸衰竭等呼吸系统急症": "respiratory",
                "危重孕产妇": "obstetric",
                "危重新生儿": "neonatal",
                "严重烧伤": "burn",
                "其他急危重症": "other",
            },
        ),
        "admission_date": date("入院日期"),
        "discharge_date": date("出院日期"),
        "total_cost": "救治费用",
        "fund_paid": "基金支付金额",
        # typed as plain numbers in the fund office's sheet: Excel serial days
        "application_date": date("申请日期", excel_serial=True),
        "approval_date": date("审核日期"),
        "payment_date": date("拨付日期"),
        "disbursement_status": codes("拨付状态", {"已审批": "approved", "已发放": "paid", "已撤销": "revoked"}),
        "district_code": "区县代码",
        "updated_at": "更新时间",
    },
    pool="health",
)
