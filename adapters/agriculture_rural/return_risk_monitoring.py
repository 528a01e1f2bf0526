"""防止返贫监测对象: the agriculture bureau's monitored households, one row per member, a monthly GBK CSV."""

from lidm import Adapter, DropSource, codes, date, labels

RISK_CAUSES = {
    "因病": "illness",
    "因残": "disability",
    "因学": "education",
    "因自然灾害": "disaster",
    "因意外事故": "accident",
    "因产业项目失败": "industry_failure",
    "因务工就业不稳": "unemployment",
    "缺劳动力": "labour_shortage",
    "住房出现安全问题": "housing_safety",
    "其他": "other",
}

adapter = Adapter(
    contract="agriculture_rural.return_risk_monitoring",
    source=DropSource(connection="agriculture_drop", pattern="return_risk_*.csv", encoding="gbk"),
    mapping={
        "id_number": "证件号码",
        "name": "姓名",
        "household_id": "监测户编号",
        "relation_to_head": codes(
            "与户主关系",
            {
                "户主": "head",
                "配偶": "spouse",
                "之子": "child",
                "之女": "child",
                "之父": "parent",
                "之母": "parent",
                "之孙子": "grandchild",
                "之孙女": "grandchild",
                "其他": "other",
            },
        ),
        "household_size": "家庭人口数",
        "phone": "联系电话",
        "monitoring_type": labels("监测对象类别"),
        "main_risk_cause": labels("主要风险类型"),
        "secondary_risk_cause": labels("次要风险类型"),
        "per_capita_net_income": "家庭人均纯收入",
        "identification_date": date("识别时间", "%Y%m%d"),
        "risk_elimination_date": date("风险消除时间", "%Y%m%d"),
        "monitoring_status": codes("监测状态", {"风险未消除": "monitoring", "风险已消除": "risk_eliminated"}),
        "district_code": "县级代码",
        "street_code": "乡镇代码",
        "updated_at": "更新时间",
    },
    pool="agriculture_rural",
)
