"""退捕渔民: the agriculture bureau's register of fishermen retired under the Yangtze fishing ban, a monthly XLSX."""

from lidm import Adapter, DropSource, codes, date, labels

adapter = Adapter(
    contract="agriculture_rural.retired_fishermen",
    source=DropSource(connection="agriculture_drop", pattern="retired_fishermen_*.xlsx", format="xlsx"),
    mapping={
        "id_number": "身份证号",
        "name": "姓名",
        "household_id": "户号",
        "phone": "联系电话",
        "fisherman_type": codes("渔民类型", {"持证渔民": "licensed", "无证渔民": "unlicensed"}),
        "fishing_licence_no": "捕捞许可证号",
        "vessel_no": "渔船名号",
        "retirement_date": date("退捕日期", "%Y-%m-%d"),
        "compensation_amount": "补偿金额（元）",
        "transition_allowance": "过渡期生活补助（元）",
        "resettlement_employment": labels("转产就业情况"),
        "pension_insured": codes("是否参加养老保险", {"是": "true", "否": "false"}),
        "pension_subsidy_amount": "养老保险补贴（元）",
        "status": labels("帮扶状态"),
        "termination_date": date("终止日期", "%Y-%m-%d"),
        "district_code": "区县代码",
        "street_code": "乡镇街道代码",
        "updated_at": "更新时间",
    },
    pool="agriculture_rural",
)
