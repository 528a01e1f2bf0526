"""Re-identification: the one audited way to turn a stored sealed row back into one of a person's values.

A consumer whose grant gives a field at level ``clear`` while the contract stores it only encrypted (the id
number and name a civil affairs case worker needs to pay a benefit) asks for it here, naming a purpose. The
request is checked against the grant (field level, encrypted storage, the grant's row scope), the values are
decrypted, and an audit entry (consumer, purpose, dataset, field, how many values, the keys asked for) is
committed in its own transaction *before* any value is returned: no audit entry, no values. The other caller
of ``Protector.decrypt`` is the push, which delivers granted clear fields and is audited by its push entry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag

from lidm.central import audit, db
from lidm.central.schema import dataset_table, warning_state
from lidm.config import Settings
from lidm.contracts import scope
from lidm.contracts.load import ContractCatalog, load_catalog
from lidm.contracts.model import SEALED, Contract, Grant, GrantLevel, Protection
from lidm.errors import KeyringError, LidmError
from lidm.keys import load_keyring
from lidm.protect import Protector

WARNING_CONTRACT = "platform.warning"
MIN_PURPOSE = 4
_LONG_NUMBER = re.compile(r"\d{15,}")  # an id number (15 or 18 digits) typed into the purpose


class ReidentifyError(LidmError):
    """A re-identification request was refused; the message says why, never a value."""


@dataclass(frozen=True)
class Reidentified:
    """One key asked for and the clear value of the field (None when the row has no value)."""

    key: str
    value: str | None


def consumer_grant(catalog: ContractCatalog, consumer: str, dataset: str) -> Grant | None:
    """The consumer's grant on a dataset: its own grant first, else one through a group it belongs to."""
    found = [g for c, g in catalog.grants_for(consumer) if c.id == dataset]
    direct = [g for g in found if g.consumer == consumer]
    return (direct or found or [None])[0]


def _check(catalog: ContractCatalog, consumer: str, purpose: str, dataset: str, field: str) -> tuple[Contract, Grant]:
    if len((purpose or "").strip()) < MIN_PURPOSE:
        raise ReidentifyError(
            f"re-identification needs a purpose of at least {MIN_PURPOSE} characters (why these people, which case)"
        )
    if _LONG_NUMBER.search(purpose):
        raise ReidentifyError("the purpose must not contain an id number or other long number; name the case")
    contract = catalog[dataset]
    try:
        f = contract.field(field)
    except KeyError:
        raise ReidentifyError(f"{dataset} has no field {field}") from None
    grant = consumer_grant(catalog, consumer, dataset)
    if grant is None or grant.fields.get(field) != GrantLevel.CLEAR:
        level = str(grant.fields[field]) if grant and field in grant.fields else "no access"
        raise ReidentifyError(
            f"{consumer} may not re-identify {dataset}.{field}: its grant gives {level}, re-identification needs "
            "clear; change the contract's lidmGrants through the contract review"
        )
    if Protection.ENCRYPT not in f.protection:
        raise ReidentifyError(
            f"{dataset}.{field} is not stored encrypted ({', '.join(p.value for p in f.protection)}); "
            "read it from the consumer's view instead"
        )
    if len(contract.key) != 1:
        raise ReidentifyError(f"{dataset} has a composite key ({', '.join(contract.key)}); not supported here")
    return contract, grant


def _scope(catalog: ContractCatalog, contract: Contract, grant: Grant, consumer: str, table: sa.Table):  # type: ignore[no-untyped-def]
    """The grant's row scope as a condition, the same as the consumer's database view."""
    member = catalog.consumers.members[consumer] if catalog.consumers else None
    if member is None:
        return sa.true()
    return sa.and_(sa.true(), *(table.c[col].in_(values) for col, values in scope.row_filter(contract, grant, member)))


def reidentify(
    settings: Settings, *, consumer: str, purpose: str, dataset: str, field: str, keys: Sequence[str]
) -> list[Reidentified]:
    """Clear values of an encrypted field for the rows with these keys (record ids, warning ids or key tokens),
    for a consumer granted that field clear; audited before anything is returned."""
    catalog = load_catalog(settings.contracts_dir)
    contract, grant = _check(catalog, consumer, purpose, dataset, field)
    wanted = list(dict.fromkeys(str(k).strip() for k in keys if str(k).strip()))
    if not wanted:
        raise ReidentifyError("name at least one key (a record id, warning id or key token)")
    keyring = load_keyring(settings)
    t = dataset_table(contract, sa.MetaData())
    key_col, enc_col = t.c[contract.key_columns()[0]], t.c[SEALED]
    warning = contract.id == WARNING_CONTRACT
    columns = [key_col, enc_col] + ([warning_state.c.sealed_by] if warning else [])
    source = t.outerjoin(warning_state, warning_state.c.warning_id == key_col) if warning else t
    scope = _scope(catalog, contract, grant, consumer, t)
    engine = db.connect(settings)
    try:
        db.ensure_current(engine, settings)
        found: dict[str, tuple[bytes | None, str]] = {}
        with engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                query = sa.select(*columns).select_from(source)
                query = query.where(key_col.in_(wanted[start : start + 500]), scope)
                for row in conn.execute(query):
                    sealed_by = (row.sealed_by if warning else None) or contract.id
                    found[str(row[0])] = (row[1], sealed_by)
        missing = [k for k in wanted if k not in found]
        if missing:
            raise ReidentifyError(
                f"{len(missing)} of {len(wanted)} keys are not rows of {dataset} that {consumer} may read "
                f"(match the key column {key_col.name}); nothing was decrypted"
            )
        values = [Reidentified(k, _open(catalog, keyring, found[k], field, dataset)) for k in wanted]
        if any(v.value and len(v.value) > 1 and v.value in purpose for v in values):
            raise ReidentifyError("the purpose must not contain the values asked for; name the case instead")
        with engine.begin() as conn:
            audit.append(
                conn,
                actor=consumer,
                action="reidentify",
                subject=f"{dataset}.{field}",
                detail={
                    "consumer": consumer,
                    "purpose": purpose.strip(),
                    "dataset": dataset,
                    "field": field,
                    "values": sum(v.value is not None for v in values),
                    "key_column": key_col.name,
                    "keys": wanted,
                    "operator": audit.operator(),
                },
                keyring=keyring,
            )
    finally:
        engine.dispose()
    return values


def _open(catalog: ContractCatalog, keyring, found: tuple[bytes | None, str], field: str, dataset: str) -> str | None:  # type: ignore[no-untyped-def]
    sealed, contract_id = found
    if sealed is None:
        return None
    try:
        return Protector(catalog[contract_id], keyring).decrypt(sealed, field)
    except (InvalidTag, ValueError, KeyError, KeyringError):
        raise KeyringError(
            f"{dataset}.{field}: a row cannot be opened with this keyring (key fingerprint {bytes(sealed[1:5]).hex()}, "
            f"sealed by {contract_id}); the keyring must hold the key the row was sealed with"
        ) from None
