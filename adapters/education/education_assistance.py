"""教育救助: the education bureau's student aid awards, a daily UTF-8 CSV with BOM and Chinese headers on SFTP."""

from lidm import LOW_INCOME_CATEGORY_SHORT, Adapter, DropSource, date, labels

adapter = Adapter(
    contract="education.education_assistance",
    source=DropSource(connection="education_drop", pattern="xszz_*.csv", encoding="utf-8", marker=".ok"),
    mapping={
        "record_id": "资助记录编号",
        "id_number": "学生身份证号",
        "name": "学生姓名",
        "household_id": "救助家庭编号",
        "low_income_category": labels("低收入人口类别", extra=LOW_INCOME_CATEGORY_SHORT),
        "school_stage": labels("学段"),
        "aid_kind": labels("资助项目"),
        "amount": "资助金额",
        "academic_year": "学年",
        "term": labels("学期"),
        "school_code": "学校标识码",
        "school_name": "学校名称",
        "approval_date": date("审批日期", "%Y/%m/%d"),
        "payment_date": date("发放日期", "%Y/%m/%d"),
        "disbursement_status": labels("发放状态"),
        "district_code": "区县代码",
        "updated_at": "更新时间",
    },
    pool="education",
)
