"""A grant's rows as conditions: the one place that says which column a row scope filters and on which values.

The consumer's database view, `lidm reidentify`, recall's list of who saw a batch and the exported contracts all
read the scope from here, so they cannot disagree about what a county or a street office sees.
"""

from __future__ import annotations

from lidm.contracts.consumers import Consumer
from lidm.contracts.model import Contract, Grant, Protection, RowScope
from lidm.errors import ContractError

RowFilter = tuple[tuple[str, tuple[str, ...]], ...]  # (column, values) pairs, all of which a row must meet

_NEEDS = {
    RowScope.OWN_DISTRICTS: ("district",),
    RowScope.OWN_DEPARTMENT: ("department",),
    RowScope.OWN_DEPARTMENT_DISTRICTS: ("department", "district"),
    RowScope.OWN_STREETS: ("street",),
}
_PROPERTY = {"district": "lidmDistrictField", "department": "lidmDepartmentField", "street": "lidmStreetField"}


def needs(scope: RowScope) -> tuple[str, ...]:
    """What a scope filters on: district, department, street (nothing for all rows)."""
    return _NEEDS.get(scope, ())


def missing_property(contract: Contract, scope: RowScope) -> str | None:
    """The contract property a scope needs and the contract does not set, if any."""
    for what in needs(scope):
        if _column(contract, what) is None:
            return _PROPERTY[what]
    return None


def row_filter(contract: Contract, grant: Grant, consumer: Consumer) -> RowFilter:
    """The (column, values) pairs the grant limits the consumer's rows to; refused when the contract or the
    consumer cannot say (no such field, stored protected, a county without districts)."""
    out = []
    for what in needs(grant.rows):
        name = _column(contract, what)
        if name is None:
            raise ContractError(
                f"{contract.source_file}: grant to {grant.consumer} limits rows but {_PROPERTY[what]} is unset"
            )
        if Protection.CLEAR not in contract.field(name).protection:
            raise ContractError(f"{contract.source_file}: {_PROPERTY[what]} {name} must be stored clear to filter rows")
        values = {
            "district": consumer.districts,
            "street": consumer.streets,
            "department": (consumer.acts_for,),
        }[what]
        if not values:
            raise ContractError(
                f"consumers.yaml: {consumer.id} has no {what}s; {contract.id} grants {grant.rows.value}"
            )
        out.append((name, tuple(values)))
    return tuple(out)


def describe(rows: RowFilter) -> str:
    """The filter for people: 'district_code is 430104 and target_department is education'."""
    return " and ".join(f"{col} is {' or '.join(values)}" for col, values in rows)


def _column(contract: Contract, what: str) -> str | None:
    fields = {"district": contract.district_field, "department": contract.department_field}
    return fields.get(what, contract.street_field)
