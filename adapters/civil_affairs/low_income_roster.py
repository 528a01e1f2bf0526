"""低收入人口名单: civil affairs' roster, a daily GBK CSV with Chinese headers dropped on SFTP."""

from lidm import LOW_INCOME_CATEGORY_SHORT, Adapter, DropSource, code_list, codes, date, labels

adapter = Adapter(
    contract="civil_affairs.low_income_roster",
    source=DropSource(connection="civil_affairs_drop", pattern="roster_*.csv", encoding="gbk", marker=".ok"),
    mapping={
        "id_number": "身份证号",
        "name": "姓名",
        "household_id": "家庭编号",
        "relation_to_head": labels("与户主关系"),
        "category": labels("保障类别", extra=LOW_INCOME_CATEGORY_SHORT),
        # every category held, the primary one included: 低保、防返贫监测
        "categories": code_list("全部类别", LOW_INCOME_CATEGORY_SHORT),
        "district_code": "区县代码",
        "street_code": "街道代码",
        "approval_date": date("认定日期", "%Y-%m-%d", "%Y/%m/%d"),
        "termination_date": date("终止日期", "%Y-%m-%d", "%Y/%m/%d"),
        "monthly_amount": "月保障金额",
        # 城镇住房困难: 是/否, empty when the household was not assessed (rural households)
        "housing_difficulty": codes("城镇住房困难", {"是": "true", "否": "false"}),
        "status": labels("保障状态"),
        "exit_reason": labels("退出原因"),
        # 城镇/农村 as the contract labels them; older exports of the system wrote 城市/乡村
        "urban_rural": labels("城乡属性", extra={"城市": "urban", "乡村": "rural"}),
        "phone": "联系电话",
        "updated_at": "更新时间",
    },
    pool="civil_affairs",
)
