"""National-standard code tables that many departments' systems store as digits, written once here so
adapters map them with `codes(column, GB_...)` instead of each retyping them."""

from __future__ import annotations

from types import MappingProxyType

# GB/T 2261.1-2003 人的性别代码 (0 unknown and 9 unstated have no contract code: such rows are quarantined).
GB_GENDER = MappingProxyType({"1": "male", "2": "female"})

# GB/T 26341-2010 残疾人残疾分类和分级: 残疾类别 1 视力 … 7 多重.
GB_DISABILITY_TYPE = MappingProxyType(
    {
        "1": "visual",
        "2": "hearing",
        "3": "speech",
        "4": "physical",
        "5": "intellectual",
        "6": "mental",
        "7": "multiple",
    }
)

# 低收入人口类别 by the short names used in everyday exports across departments; the contract's own labels
# are the full names (最低生活保障对象 …), so `labels(col, extra=LOW_INCOME_CATEGORY_SHORT)` accepts both.
LOW_INCOME_CATEGORY_SHORT = MappingProxyType(
    {
        "低保": "dibao",
        "特困": "tekun",
        "低保边缘": "dibao_edge",
        "刚性支出困难": "rigid_expense",
        "防返贫监测": "return_risk",
        "其他困难": "other_hardship",
    }
)
