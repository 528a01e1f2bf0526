"""易地扶贫搬迁户: the agriculture bureau's relocated households, a monthly UTF-8 CSV with BOM and Chinese headers."""

from lidm import Adapter, DropSource, codes, date, labels

adapter = Adapter(
    contract="agriculture_rural.relocated_households",
    source=DropSource(connection="agriculture_drop", pattern="relocated_households_*.csv", encoding="utf-8"),
    mapping={
        "household_id": "户编号",
        "id_number": "户主身份证号",
        "name": "户主姓名",
        "phone": "联系电话",
        "household_size": "搬迁人口",
        "relocation_category": labels(
            "搬迁对象类别", extra={"建档立卡贫困户": "registered_poor"}
        ),  # the name before 2021
        "resettlement_mode": labels("安置方式"),
        "origin_district_code": "迁出地区县代码",
        "origin_street_code": "迁出地乡镇代码",
        "district_code": "安置地区县代码",
        "street_code": "安置地街道代码",
        "resettlement_site": "安置点名称",
        "resettlement_address": "安置地址",
        "relocation_date": date("搬迁入住日期", "%Y/%m/%d"),
        "hukou_transferred": codes("户籍是否迁入", {"是": "true", "否": "false"}),
        "labour_count": "劳动力人数",
        "employed_labour_count": "已就业劳动力人数",
        "updated_at": "更新时间",
    },
    pool="agriculture_rural",
)
