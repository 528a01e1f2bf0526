"""What a consumer's views deliver, column by column and typed as PostgreSQL types them: its ODCS contracts' input.

Read from the very plan `grants apply` carries out (model.desired), never from a second reading of the grants, so
an exported contract cannot drift from the view it describes. A view selects from its released table, made by
``CREATE TABLE … AS`` over the dataset table (lidm.central.release), so each column has the base column's type,
except a pseudonym, which ``encode(…, 'hex')`` makes text.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from lidm.central.grants.model import ConsumerGrants, View, deciding_grant, desired
from lidm.central.schema import dataset_table
from lidm.contracts.export.odcs import DeliveredColumn, Delivery
from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import Contract, Grant
from lidm.errors import ContractError

PSEUDONYM_TYPE = "text"  # release.pseudonym_sql: encode(sha256(...), 'hex')


def _columns(view: View, contract: Contract, grant: Grant) -> tuple[DeliveredColumn, ...]:
    table = dataset_table(contract, sa.MetaData())
    source = {col: f for f, col, _ in contract.output_columns()}
    pseudonyms = {col for col, _ in view.scopes}
    out = []
    for name in view.columns:
        f = source[name]
        pseudonym = name in pseudonyms
        physical = PSEUDONYM_TYPE if pseudonym else table.c[name].type.compile(dialect=postgresql.dialect()).lower()
        out.append(DeliveredColumn(name, physical, f, grant.fields[f.name], pseudonym))
    return tuple(out)


def deliveries(catalog: ContractCatalog, consumer: str) -> list[Delivery]:
    """Per dataset a consumer's grants reach, its view as `grants apply` makes it (no columns: no view is made)."""
    wanted: ConsumerGrants | None = next((w for w in desired(catalog) if w.consumer.id == consumer), None)
    if wanted is None:
        known = ", ".join(sorted(catalog.consumers.members)) if catalog.consumers else "none"
        raise ContractError(f"no consumer {consumer} in consumers.yaml; known: {known}")
    grants: dict[str, list[Grant]] = {}
    for contract, grant in catalog.grants_for(consumer):
        grants.setdefault(contract.id, []).append(grant)
    out = []
    for view in (*wanted.views, *wanted.unexposed):
        contract = catalog[view.contract]
        grant = deciding_grant(consumer, contract, grants[contract.id])
        out.append(
            Delivery(
                contract=contract,
                grant=grant,
                consumer=wanted.consumer,
                role=wanted.role,
                schema=view.schema,
                view=view.name,
                columns=_columns(view, contract, grant),
                withheld=view.withheld,
                row_filter=view.row_filter,
            )
        )
    return sorted(out, key=lambda d: d.contract.id)
