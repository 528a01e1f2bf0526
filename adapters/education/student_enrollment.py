"""学籍信息: the education bureau's monthly student enrollment workbook (XLSX, Chinese headers) dropped on SFTP."""

from lidm import Adapter, DropSource, codes, date

adapter = Adapter(
    contract="education.student_enrollment",
    source=DropSource(connection="education_drop", pattern="xjxx_*.xlsx", format="xlsx", marker=".ok"),
    mapping={
        "id_number": "身份证件号",
        "name": "姓名",
        "gender": codes("性别", {"男": "male", "女": "female"}),
        "birth_date": date("出生日期", "%Y-%m-%d", "%Y/%m/%d"),
        "household_id": "户号",
        "school_code": "学校标识码",
        "school_name": "学校名称",
        "school_stage": codes(
            "学段",
            {
                "学前教育": "preschool",
                "小学": "primary",
                "初中": "junior",
                "普通高中": "senior",
                "中等职业教育": "secondary_vocational",
                "高等教育": "higher",
            },
        ),
        "grade": "年级",
        "enrollment_status": codes(
            "学籍状态",
            {
                "在读": "enrolled",
                "休学": "suspended",
                "辍学": "dropped_out",
                "毕业": "graduated",
                "转学": "transferred",
            },
        ),
        "enrollment_date": date("入学日期", "%Y-%m-%d", excel_serial=True),
        "status_change_date": date("学籍变动日期", "%Y/%m/%d"),
        "boarding": codes("是否寄宿", {"是": "true", "否": "false"}),
        "hardship_level": codes(
            "家庭经济困难认定等级",
            {
                "特别困难": "especially_difficult",
                "比较困难": "difficult",
                "一般困难": "generally_difficult",
                "不困难": "not_difficult",
            },
        ),
        "district_code": "学校所在区县代码",
        "updated_at": "更新时间",
    },
    ignore=("班级",),
    pool="education",
)
