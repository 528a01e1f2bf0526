"""疾病应急救助: the disease emergency relief fund's cases, an XLSX with Chinese headers dropped by its office."""

from lidm import Adapter, DropSource, date, labels

adapter = Adapter(
    contract="health.disease_emergency_fund",
    source=DropSource(connection="health_drop", pattern="emergency_fund_*.xlsx", format="xlsx"),
    mapping={
        "case_id": "案件编号",
        "id_number": "身份证号",
        "name": "姓名",
        "identity_status": labels("身份状态"),
        "hospital_code": "救治医院编码",
        "hospital_name": "救治医院名称",
        "emergency_type": labels("急危重症类型"),
        "admission_date": date("入院日期"),
        "discharge_date": date("出院日期"),
        "total_cost": "救治费用",
        "fund_paid": "基金支付金额",
        # typed as plain numbers in the fund office's sheet: Excel serial days
        "application_date": date("申请日期", excel_serial=True),
        "approval_date": date("审核日期"),
        "payment_date": date("拨付日期"),
        "disbursement_status": labels("拨付状态"),
        "district_code": "区县代码",
        "updated_at": "更新时间",
    },
    pool="health",
)
