"""走访情况: what street and village staff find on home visits, dropped by each street as the XLSX template
(走访情况登记表, adapters/civil_affairs/home_visit_template/) or as a GBK CSV exported from its own system."""

from lidm import Adapter, DropSource, code_list, date, labels

# 服务需求: the template's words for the services a household asks for (the contract's `needs` codes)
NEEDS = {
    "生活照料": "care",
    "康复": "rehabilitation",
    "康复服务": "rehabilitation",
    "陪伴探访": "companionship",
    "就业服务": "employment_services",
    "法律援助": "legal_aid",
    "教育": "education",
    "住房": "housing",
    "医疗": "medical",
}

adapter = Adapter(
    contract="civil_affairs.home_visit",
    # format auto: a street saves the template (.xlsx, its first sheet) or its system's CSV export (GBK)
    source=DropSource(connection="home_visit_drop", pattern="home_visit_*", format="auto", encoding="gbk", sheet=0),
    mapping={
        "visit_id": "走访记录编号",
        "id_number": "身份证号",
        "name": "姓名",
        "household_id": "家庭编号",
        "district_code": "区县代码",
        "street_code": "街道代码",
        "village_code": "村（社区）代码",
        "area_kind": labels("城乡类别"),
        "visit_date": date("走访日期", "%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", excel_serial=True),
        "visitor": "走访人",
        "household_size_now": "现家庭人口数",
        "household_size_change": "家庭人口增减",
        "monthly_income_per_capita": "家庭人均月收入（元）",
        "income_change": labels("收入变化"),
        "health_change": labels("健康状况变化"),
        "housing_change": labels("住房状况变化"),
        "employment_change": labels("就业状况变化"),
        "needs": code_list("服务需求", NEEDS),
        "notes": "走访情况说明",
        "entered_at": "录入时间",
    },
    pool="civil_affairs",
)
