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
