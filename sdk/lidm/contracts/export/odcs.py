"""ODCS v3 contracts of what one consumer receives: its view of each granted dataset, testable with datacontract-cli.

The catalogue's contracts describe a dataset as a department delivers it; a consumer reads something else: the view
``lidm_<consumer>.<table>`` that `lidm grants apply` made for it, with pseudonyms instead of tokens, masks, only the
granted fields and only the granted rows. Each contract written here describes exactly that view (its columns come
from the code that builds the views, lidm.central.grants.delivered) and names the server to test it on, so a
consuming team runs ``datacontract test`` against what it actually reads. No credential is ever written: the team
logs in as its own user, which the DBA made a member of its consumer role.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from lidm.contracts.consumers import Consumer
from lidm.contracts.export.jsonschema import check_pattern
from lidm.contracts.load import odcs_schema
from lidm.contracts.model import Contract, Field, Grant, GrantLevel, LogicalType
from lidm.contracts.scope import RowFilter, describe
from lidm.errors import ConfigError, ContractError

API_VERSION = "v3.2.0"  # enum as a list of {value, label} is ODCS 3.2 (RFC 0033)
SERVER = "central"
PSEUDONYM_PATTERN = "^[0-9a-f]{64}$"  # lidm.central.release.pseudonym: HMAC-SHA256, hex


@dataclass(frozen=True)
class DeliveredColumn:
    """One column of a consumer's view: the field it shows, at which level, and its PostgreSQL type."""

    name: str
    physical_type: str
    field: Field
    level: GrantLevel
    pseudonym: bool  # a token column, released as this consumer's pseudonym


@dataclass(frozen=True)
class Delivery:
    """One consumer's view of one dataset, as `grants apply` makes it; no columns: every granted field is withheld."""

    contract: Contract
    grant: Grant  # the deciding grant (the consumer's own, or its group's)
    consumer: Consumer
    role: str
    schema: str
    view: str
    columns: tuple[DeliveredColumn, ...]
    withheld: tuple[str, ...]  # granted clear, stored only encrypted: clear only by re-identification
    row_filter: RowFilter = ()  # (column, values) pairs the view's rows are limited to


@dataclass(frozen=True)
class Server:
    """Where the views are: host, port and database of the central PostgreSQL database (never a user or password)."""

    host: str
    port: int
    database: str

    @classmethod
    def from_url(cls, url: str) -> Server:
        """The server of a SQLAlchemy URL (LIDM_CENTRAL_URL); consumer views exist only on PostgreSQL."""
        import sqlalchemy as sa

        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise ConfigError("LIDM_CENTRAL_URL is not a SQLAlchemy URL; set it to the central database") from None
        if parsed.get_backend_name() != "postgresql" or not parsed.database:
            raise ConfigError(
                f"consumer views exist only on PostgreSQL (`lidm grants apply`), but LIDM_CENTRAL_URL is "
                f"{parsed.get_backend_name()}; set it to the central PostgreSQL database (with its database name)"
            )
        return cls(parsed.host or "localhost", parsed.port or 5432, parsed.database)


def _custom(**values: Any) -> list[dict[str, Any]]:
    return [{"property": k, "value": v} for k, v in values.items() if v not in (None, [], (), "")]


def _options(c: DeliveredColumn) -> dict[str, Any]:
    """The value limits that hold for the column as delivered: the contract's for clear values, the shape of a
    pseudonym, none for a mask (its shape is the gateway's display form)."""
    f = c.field
    if c.pseudonym:
        return {"minLength": 64, "maxLength": 64, "pattern": PSEUDONYM_PATTERN}
    if c.level is not GrantLevel.CLEAR:
        return {}
    out: dict[str, Any] = {}
    if f.type is LogicalType.STRING:
        out = {"minLength": f.min_length, "maxLength": f.max_length, "pattern": f.pattern}
    if f.type in (LogicalType.NUMBER, LogicalType.INTEGER, LogicalType.DATE):
        out = {"minimum": f.minimum, "maximum": f.maximum}
    return {k: v for k, v in out.items() if v is not None}


def _quality(c: DeliveredColumn, d: Delivery, city_prefix: str) -> list[dict[str, Any]]:
    """Beyond the limits: the field's domain check (a division code of this city, …) and the grant's row scope, as
    one rule (datacontract-cli keys a field's invalidValues rules by field, so two would collide)."""
    arguments: dict[str, Any] = {}
    about = []
    pattern = check_pattern(c.field, city_prefix) if c.level is GrantLevel.CLEAR else None
    if pattern is not None:
        arguments["pattern"] = pattern
        about.append(f"the gateway's {', '.join(ch.value for ch in c.field.checks)} check")
    scope = dict(d.row_filter)
    if c.name in scope:
        arguments["validValues"] = list(scope[c.name])
        about.append(f"row scope {d.grant.rows.value}: only these values reach {d.consumer.id}")
    if not arguments:
        return []
    text = "; ".join(about)
    description = text[0].upper() + text[1:] + "."
    return [
        {
            "type": "library",
            "metric": "invalidValues",
            "arguments": arguments,
            "mustBe": 0,
            "dimension": "conformity",
            "description": description,
        }
    ]


def _describe(c: DeliveredColumn) -> str:
    about = c.field.description or ""
    if c.pseudonym:
        about += (
            " Delivered as your pseudonym of the field (HMAC-SHA256, hex), keyed for you and this dataset (or for "
            "all your datasets granting it as linkable); it joins nothing another consumer holds."
        )
    elif c.level is GrantLevel.MASKED:
        about += " Delivered masked (its display form); the value itself is not delivered."
    return about.strip()


def _property(c: DeliveredColumn, d: Delivery, city_prefix: str) -> dict[str, Any]:
    f = c.field
    clear = c.level is GrantLevel.CLEAR
    out: dict[str, Any] = {
        "name": c.name,
        "businessName": f.business_name or f.name,
        "logicalType": f.type.value if clear else LogicalType.STRING.value,
        "physicalType": c.physical_type,
        "required": f.required,
        "classification": f.classification.value,
    }
    description = _describe(c)
    if description:
        out["description"] = description
    key_columns = d.contract.key_columns()
    if c.name in key_columns and set(key_columns) <= {col.name for col in d.columns}:
        out |= {"primaryKey": True, "primaryKeyPosition": key_columns.index(c.name) + 1}
    options = _options(c)
    if options:
        out["logicalTypeOptions"] = options
    if clear and f.enum is not None:
        labels = f.enum_labels or (None,) * len(f.enum)
        out["enum"] = [{"value": v, **({"label": lbl} if lbl else {})} for v, lbl in zip(f.enum, labels, strict=False)]
    quality = _quality(c, d, city_prefix)
    if quality:
        out["quality"] = quality
    out["customProperties"] = _custom(
        lidmField=f.name,
        lidmGrantLevel=c.level.value,
        lidmDelivered="pseudonym" if c.pseudonym else c.level.value,
        lidmUnit=f.unit,
        lidmCodeList=f.code_list,
    )
    return out


def _rows(d: Delivery) -> str:
    if not d.row_filter:
        return "every current row"
    return f"only current rows whose {describe(d.row_filter)} ({d.grant.rows.value})"


def document(d: Delivery, server: Server, city_prefix: str = "4301") -> dict[str, Any]:
    """The ODCS v3 contract of one consumer's view of one dataset, with the server to test it on."""
    c, who = d.contract, d.consumer
    withheld = (
        f" Granted clear but stored only encrypted, so not in the view (clear only by audited re-identification): "
        f"{', '.join(d.withheld)}."
        if d.withheld
        else ""
    )
    via = f" through {d.grant.consumer}" if d.grant.consumer != who.id else ""
    return {
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "id": f"{c.id}@{who.id}",
        "name": d.view,
        "version": c.version,
        "status": "active",
        "domain": c.department,
        "dataProduct": c.dataset,
        "description": {
            "purpose": c.description,
            "usage": d.grant.purpose or "",
            "limitations": (
                f"What {who.id} ({who.name}) reads in {d.schema}.{d.view}: the fields granted to it{via}, "
                f"{_rows(d)}; tokens are its own pseudonyms, masked fields their display form.{withheld}"
            ),
        },
        "servers": [
            {
                "server": SERVER,
                "type": "postgres",
                "description": f"The central database. Log in as your own user, a member of role {d.role}.",
                "host": server.host,
                "port": server.port,
                "database": server.database,
                "schema": d.schema,
                "roles": [{"role": d.role, "access": "read", "description": f"SELECT on the views of {d.schema}"}],
            }
        ],
        "schema": [
            {
                "name": d.view,
                "physicalName": d.view,
                "physicalType": "view",
                "logicalType": "object",
                "businessName": c.title,
                "description": f"{who.id}'s view of {c.id} {c.version}: {_rows(d)}.",
                "properties": [_property(col, d, city_prefix) for col in d.columns],
            }
        ],
        "customProperties": _custom(
            lidmContract=c.id,
            lidmContractVersion=c.version,
            lidmConsumer=who.id,
            lidmGrantedTo=d.grant.consumer,
            lidmRows=d.grant.rows.value,
            lidmRowFilter={col: list(values) for col, values in d.row_filter} or None,
            lidmLinkable=list(d.grant.linkable),
            lidmWithheld=list(d.withheld),
            lidmView=f"{d.schema}.{d.view}",
        ),
    }


@lru_cache(maxsize=1)
def _validator() -> Any:
    """Built once: building a validator re-reads the whole ODCS schema."""
    import jsonschema

    return jsonschema.Draft202012Validator(odcs_schema())


def write(deliveries: list[Delivery], server: Server, out: Path, city_prefix: str = "4301") -> list[Path]:
    """One `<contract id>.odcs.yaml` per delivered view, each checked against the ODCS JSON Schema first."""
    import jsonschema  # here, like lidm.contracts.load: only an export needs it

    docs = {}
    for d in deliveries:
        if not d.columns:
            continue  # no view: nothing to read, nothing to test
        doc = document(d, server, city_prefix)
        error = jsonschema.exceptions.best_match(_validator().iter_errors(doc))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(document)"
            what = f"{d.contract.id} for {d.consumer.id}"
            raise ContractError(f"{what}: the exported contract is not ODCS at {where}: {error.message[:200]}")
        docs[d.contract.id] = doc
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for cid, doc in docs.items():
        path = out / f"{cid}.odcs.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120), "utf-8")
        paths.append(path)
    return paths
