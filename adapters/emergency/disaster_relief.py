"""自然灾害救助: emergency management's disaster relief records, a daily GBK CSV with Chinese headers on SFTP."""

from lidm import Adapter, DropSource, codes, date, labels

adapter = Adapter(
    contract="emergency.disaster_relief",
    source=DropSource(connection="emergency_drop", pattern="disaster_relief_*.csv", encoding="gbk", marker=".ok"),
    mapping={
        "record_id": "救助记录编号",
        "household_id": "家庭编号",
        "id_number": "户主身份证号",
        "name": "户主姓名",
        "household_size": "救助人口数",
        "disaster_type": codes(
            "灾害种类",
            {
                "洪涝": "flood",
                "干旱": "drought",
                "地质灾害": "landslide",
                "台风": "typhoon",
                "风雹": "storm",
                "低温冷冻和雪灾": "freeze",
                "地震": "earthquake",
                "森林火灾": "fire",
                "其他": "other",
            },
        ),
        "disaster_date": date("灾害发生日期", "%Y/%m/%d", "%Y-%m-%d"),
        "relief_kind": labels("救助类别"),
        "house_damage_level": labels("房屋损毁程度"),
        "amount": "救助金额",
        "in_kind_items": "实物救助内容",
        "in_kind_value": "实物折款",
        "approval_date": date("审批日期", "%Y/%m/%d", "%Y-%m-%d"),
        "relief_start_date": date("救助起始日期", "%Y/%m/%d", "%Y-%m-%d"),
        "relief_end_date": date("救助终止日期", "%Y/%m/%d", "%Y-%m-%d"),
        "status": labels("发放状态"),
        "district_code": "区县代码",
        "street_code": "街道代码",
        "updated_at": "更新时间",
    },
    pool="emergency",
)
