"""Code tables of the civil affairs bureau's own database (民政业务系统), shared by its adapters."""

from types import MappingProxyType

# 低收入人口类别 (dsrklb)
LOW_INCOME_CATEGORY = MappingProxyType(
    {
        "10": "dibao",
        "20": "tekun",
        "30": "dibao_edge",
        "40": "rigid_expense",
        "50": "return_risk",
        "90": "other_hardship",
    }
)

# 保障状态 (zt)
STATUS = MappingProxyType({"1": "active", "2": "suspended", "3": "terminated"})
