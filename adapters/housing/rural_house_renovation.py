"""农村危房改造: the housing bureau's renovation projects, a weekly XLSX with Chinese headers dropped on SFTP."""

from lidm import Adapter, DropSource, codes, date, labels

adapter = Adapter(
    contract="housing.rural_house_renovation",
    source=DropSource(connection="housing_drop", pattern="rural_renovation_*.xlsx", format="xlsx"),
    mapping={
        "project_id": "项目编号",
        "household_id": "户编号",
        "id_number": "户主身份证号",
        "name": "户主姓名",
        "household_size": "家庭人口",
        "category": codes(
            "对象类别",
            {
                "低保户": "dibao",
                "分散供养特困人员": "tekun",
                "低保边缘家庭": "dibao_edge",
                "支出型困难家庭": "rigid_expense",
                "防止返贫监测对象": "return_risk",
                "其他困难家庭": "other_hardship",
            },
        ),
        "house_danger_grade": codes("危房等级", {"C级": "C", "D级": "D"}),
        "appraisal_date": date("鉴定日期", "%Y-%m-%d", excel_serial=True),
        "approval_date": date("批准日期", "%Y-%m-%d"),
        "renovation_method": codes(
            "改造方式",
            {
                "拆除重建": "rebuild",
                "维修加固": "repair",
                "搬迁安置": "relocation",
                "置换或租赁闲置农房": "replacement",
                "农村集体公租房": "collective_housing",
                "其他": "other",
            },
        ),
        "subsidy_amount": "补助资金（元）",
        "completion_date": date("竣工日期", "%Y-%m-%d"),
        "acceptance_status": labels("验收状态"),
        "acceptance_date": date("验收日期", "%Y-%m-%d"),
        "address": "房屋地址",
        "district_code": "区县代码",
        "street_code": "乡镇代码",
        "updated_at": "更新时间",
    },
    pool="housing",
)
