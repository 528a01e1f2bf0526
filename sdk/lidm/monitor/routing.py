"""Who holds a warning: the office of the rule's department at the rule's level, where the person lives.

A rule says its level (``level: city | county | street``). A county warning goes to the county bureau of the
rule's department whose districts hold the person's district; a street warning to the street office of the
person's street. Where the division table has no such office (a department without county bureaus, a street not
in the table, a person without a street code) the warning goes one level up, and its ``action_level`` says where
it actually landed, so nothing is left without a holder.

Hand-overs (转办/退回, lidm.monitor.handover) use the same table: a transfer to a department lands at that
department's office at the warning's level for the person; a return goes one level up (street → county bureau,
county bureau → city department); a city department other than civil affairs returns to civil affairs, which
leads the monitoring (牵头) and cannot return further.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from lidm.contracts.consumers import Consumers
from lidm.contracts.load import ContractCatalog
from lidm.errors import ConfigError

LEAD = "civil_affairs"  # the department that leads the monitoring and takes warnings no one else will
ALL_LEVELS = ("city", "county", "street")


def offices(
    consumers: Consumers | None, department: str, level: str, enabled: Sequence[str] = ALL_LEVELS
) -> dict[str, str]:
    """Division code (district for county, street for street) -> the consumer that holds warnings there; none at a
    level the deployment does not route to yet (LIDM_ROUTING_LEVELS)."""
    if consumers is None or level == "city" or level not in enabled:
        return {}
    out: dict[str, str] = {}
    for m in consumers.members.values():
        if m.acts_for == department and m.kind == level:
            for code in m.streets if level == "street" else m.districts:
                out.setdefault(code, m.id)
    return out


def routed(
    consumers: Consumers | None,
    department: str,
    level: str,
    district: Any,
    street: Any,
    enabled: Sequence[str] = ALL_LEVELS,
) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """SQL for (target_consumer, action_level) of warnings raised from rows with these district and street columns."""
    city = sa.literal(department, sa.String)
    holder: sa.ColumnElement[Any] = city
    landed: sa.ColumnElement[Any] = sa.literal("city", sa.String)
    for step in ("county", "street")[: {"city": 0, "county": 1, "street": 2}[level]]:
        table = offices(consumers, department, step, enabled)
        if not table:
            continue
        column = street if step == "street" else district
        holder = sa.case(table, value=column, else_=holder)
        landed = sa.case({code: step for code in table}, value=column, else_=landed)
    return holder, landed


def holder_for(
    consumers: Consumers | None,
    department: str,
    level: str,
    district: str | None,
    street: str | None,
    enabled: Sequence[str] = ALL_LEVELS,
) -> tuple[str, str]:
    """The same routing for one person, in Python: (consumer id, level it landed at)."""
    streets, counties = (
        offices(consumers, department, "street", enabled),
        offices(consumers, department, "county", enabled),
    )
    if level == "street" and street and street in streets:
        return streets[street], "street"
    if level in ("street", "county") and district and district in counties:
        return counties[district], "county"
    return department, "city"


def parent(
    consumers: Consumers | None, holder: str, district: str | None, enabled: Sequence[str] = ALL_LEVELS
) -> tuple[str, str] | None:
    """Where a return goes: one level up; None for the lead department, which cannot return."""
    member = consumers.members.get(holder) if consumers else None
    department = member.acts_for if member else holder
    level = member.level if member else "city"
    if level == "street":
        return holder_for(consumers, department, "county", district, None, enabled)
    if level == "county":
        return department, "city"
    return None if department == LEAD else (LEAD, "city")


def holders(catalog: ContractCatalog, department: str) -> list[str]:
    """The offices that can hold a department's warnings (lidm.monitor.routing): its city bureau first."""
    if catalog.consumers is None:
        return [department]
    found = [m.id for m in catalog.consumers.holders(department)]
    return found if department in found else [department, *found]


def holder_department(catalog: ContractCatalog, holder: str) -> str:
    """The department an office acts for: a county bureau's or a street office's department, else itself."""
    member = catalog.consumers.members.get(holder) if catalog.consumers else None
    return member.acts_for if member else holder


def offices_named(catalog: ContractCatalog, names: list[str] | tuple[str, ...], departments: list[str]) -> list[str]:
    """The offices a push or a collect serves: a department code stands for all its offices (city bureau first),
    an office's consumer id (education.yuelu, civil_affairs.430104003) for itself. Unknown names are refused."""
    out: list[str] = []
    for name in names:
        member = catalog.consumers.members.get(name) if catalog.consumers else None
        if name in departments:
            out += holders(catalog, name)
        elif member is not None and member.kind in ("county", "street") and member.acts_for in departments:
            out.append(name)
        else:
            raise ConfigError(
                f"no department or office {name}; a department code ({', '.join(departments)}) or an office's id "
                "from contracts/consumers.yaml (e.g. education.yuelu)"
            )
    return list(dict.fromkeys(out))
