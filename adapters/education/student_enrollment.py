"""学籍信息: the education bureau's monthly student enrollment workbook (XLSX, Chinese headers) dropped on SFTP."""

from lidm import Adapter, DropSource, codes, date, labels

adapter = Adapter(
    contract="education.student_enrollment",
    source=DropSource(connection="education_drop", pattern="xjxx_*.xlsx", format="xlsx", marker=".ok"),
    mapping={
        "id_number": "身份证件号",
        "name": "姓名",
        "gender": labels("性别"),
        "birth_date": date("出生日期", "%Y-%m-%d", "%Y/%m/%d"),
        "household_id": "户号",
        "school_code": "学校标识码",
        "school_name": "学校名称",
        "school_stage": labels("学段"),
        "grade": "年级",
        "enrollment_status": labels("学籍状态"),
        "enrollment_date": date("入学日期", "%Y-%m-%d", excel_serial=True),
        "status_change_date": date("学籍变动日期", "%Y/%m/%d"),
        "boarding": codes("是否寄宿", {"是": "true", "否": "false"}),
        "hardship_level": labels("家庭经济困难认定等级"),
        "district_code": "学校所在区县代码",
        "updated_at": "更新时间",
    },
    ignore=("班级",),
    pool="education",
)
