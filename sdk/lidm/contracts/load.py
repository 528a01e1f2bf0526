"""Load contract files: YAML → ODCS v3 JSON-Schema validation → typed Contract.

A contract is refused whole, with file, line and field, or loaded whole; nothing is half-loaded.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lidm.contracts import compiled
from lidm.contracts.consumers import FILE as CONSUMERS_FILE
from lidm.contracts.consumers import Consumers, load_consumers
from lidm.contracts.model import (
    Check,
    Classification,
    Contract,
    Field,
    Grant,
    GrantLevel,
    LogicalType,
    Protection,
    UpdateMode,
    sealed_field_id,
)
from lidm.errors import ContractError

SUPPORTED_API_VERSIONS = {"v3.1.0", "v3.2.0"}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=1)
def odcs_schema() -> dict[str, Any]:
    """The ODCS JSON Schema shipped with the open-data-contract-standard package."""
    text = (importlib.resources.files("open_data_contract_standard") / "schema.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _validator() -> Any:
    """Compiled once: building a validator re-reads the whole ODCS schema."""
    import jsonschema  # here, not at the top: a compiled catalogue never needs it (contracts.compiled)

    return jsonschema.Draft202012Validator(odcs_schema())


_ODCS_SEEN: dict[str, tuple[tuple[Any, ...], str] | None] = {}


def _first_odcs_error(doc: dict[str, Any]) -> tuple[tuple[Any, ...], str] | None:
    """First schema error by document path; remembered per document, as full validation is slow."""
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    if digest not in _ODCS_SEEN:
        errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
        _ODCS_SEEN[digest] = (tuple(errors[0].absolute_path), errors[0].message[:300]) if errors else None
    return _ODCS_SEEN[digest]


def _line_of(node: yaml.Node | None, path: list[Any]) -> int | None:
    """1-based line of the YAML node at a JSON path, as close as the path allows."""
    line = node.start_mark.line + 1 if node is not None else None
    for step in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            nxt = node.value[step]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def _custom(props: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {p.get("property"): p.get("value") for p in props or []}


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def _field(raw: dict[str, Any]) -> Field:
    custom = _custom(raw.get("customProperties"))
    opts = raw.get("logicalTypeOptions") or {}
    protection = _as_tuple(custom.get("lidmProtection"))
    if not protection:
        raise ValueError("has no lidmProtection (token, encrypt, mask, drop or clear)")
    if not raw.get("classification"):
        raise ValueError("has no classification (direct_identifier, quasi_identifier, sensitive, plain)")
    enum = raw.get("enum")
    return Field(
        name=raw["name"],
        business_name=raw.get("businessName"),
        description=raw.get("description"),
        type=LogicalType(raw.get("logicalType", "string")),
        required=bool(raw.get("required", False)),
        primary_key=bool(raw.get("primaryKey", False)),
        classification=Classification(raw["classification"]),
        protection=tuple(Protection(p) for p in protection),
        checks=tuple(Check(c) for c in _as_tuple(custom.get("lidmCheck"))),
        enum=tuple(str(e["value"] if isinstance(e, dict) else e) for e in enum) if enum else None,
        enum_labels=tuple(e.get("label") if isinstance(e, dict) else None for e in enum) if enum else None,
        min_length=opts.get("minLength"),
        max_length=opts.get("maxLength"),
        pattern=opts.get("pattern"),
        minimum=opts.get("minimum"),
        maximum=opts.get("maximum"),
        unit=custom.get("lidmUnit"),
        code_list=custom.get("lidmCodeList"),
    )


def parse_contract(doc: dict[str, Any], *, source: str = "<contract>", root: yaml.Node | None = None) -> Contract:
    """Validate one ODCS document and build its typed Contract."""
    if not isinstance(doc, dict):
        raise ContractError(f"{source}: not a YAML mapping")
    error = _first_odcs_error(doc)
    if error:
        path, message = error
        where = "/".join(str(p) for p in path) or "(document)"
        raise ContractError(f"{source}:{_line_of(root, list(path)) or '?'}: not valid ODCS v3 at {where}: {message}")
    if doc["apiVersion"] not in SUPPORTED_API_VERSIONS:
        raise ContractError(f"{source}: apiVersion {doc['apiVersion']} unsupported; use v3.1.0 or later")
    schema = doc.get("schema") or []
    if len(schema) != 1:
        raise ContractError(f"{source}: a dataset contract has exactly one schema object, found {len(schema)}")
    obj = schema[0]
    fields: list[Field] = []
    seen: set[str] = set()
    for i, raw in enumerate(obj.get("properties") or []):
        line = _line_of(root, ["schema", 0, "properties", i])
        name = raw.get("name")
        if name in seen:
            raise ContractError(f"{source}:{line}: field {name} is declared twice")
        seen.add(name)
        try:
            fields.append(_field(raw))
        except (ValueError, ValidationError) as exc:
            raise ContractError(f"{source}:{line}: field {name} {_short(exc)}") from None
    custom = _custom(doc.get("customProperties"))
    key = tuple(
        f.name
        for f in sorted(
            (f for f, raw in zip(fields, obj["properties"], strict=True) if raw.get("primaryKey")),
            key=lambda f: next(r.get("primaryKeyPosition", -1) for r in obj["properties"] if r["name"] == f.name),
        )
    )
    if not key:
        raise ContractError(f"{source}: no field is marked primaryKey; the gateway upserts on the key")
    try:
        mode = UpdateMode(custom.get("lidmUpdateMode", "full"))
    except ValueError:
        raise ContractError(f"{source}: lidmUpdateMode must be full or incremental") from None
    watermark = custom.get("lidmWatermark")
    if mode is UpdateMode.INCREMENTAL and watermark not in seen:
        raise ContractError(f"{source}: an incremental contract names its watermark field in lidmWatermark")
    grants = _grants(custom.get("lidmGrants"), source, root, doc)
    district, dept_field = custom.get("lidmDistrictField"), custom.get("lidmDepartmentField")
    street = custom.get("lidmStreetField")
    retention, retention_field = custom.get("lidmRetention"), custom.get("lidmRetentionField")
    if retention is not None and not re.fullmatch(r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?", str(retention)):
        raise ContractError(f"{source}: lidmRetention {retention} is not an ISO 8601 duration such as P5Y or P90D")
    shrink = custom.get("lidmMaxRetireFraction", 0.5)
    if isinstance(shrink, bool) or not isinstance(shrink, int | float) or not 0 <= shrink <= 1:
        raise ContractError(f"{source}: lidmMaxRetireFraction must be a number from 0 to 1 (0.5: half the live rows)")
    min_k = custom.get("lidmMinK")
    if min_k is not None and (isinstance(min_k, bool) or not isinstance(min_k, int) or min_k < 2):
        raise ContractError(f"{source}: lidmMinK must be a whole number of at least 2 (5: GB/T 37964's usual k)")
    fields_named = (
        ("lidmDistrictField", district),
        ("lidmDepartmentField", dept_field),
        ("lidmStreetField", street),
        ("lidmRetentionField", retention_field),
    )
    for prop, name in fields_named:
        if name is not None and name not in seen:
            raise ContractError(f"{source}: {prop} names {name}, which is not a field")
    ids: dict[bytes, str] = {}
    for f in fields:
        if Protection.ENCRYPT in f.protection and (other := ids.setdefault(sealed_field_id(f.name), f.name)) != f.name:
            raise ContractError(
                f"{source}: encrypted fields {other} and {f.name} share the 2-byte id that names a field inside a "
                "sealed row; rename one of them"
            )
    department = custom.get("lidmOwner") or doc.get("domain")
    contract_id = doc["id"]
    if "." not in contract_id or contract_id.split(".", 1)[0] != department:
        raise ContractError(f"{source}: id {contract_id} must be '<department>.<dataset>' owned by {department}")
    description = doc.get("description") or {}
    try:
        return Contract(
            id=contract_id,
            version=str(doc["version"]),
            department=department,
            dataset=contract_id.split(".", 1)[1],
            table=obj.get("physicalName") or contract_id.replace(".", "_"),
            title=obj.get("businessName") or obj["name"],
            description=description.get("purpose", ""),
            fields=tuple(fields),
            key=key,
            update_mode=mode,
            watermark=watermark,
            frequency=custom.get("lidmFrequency"),
            freshness=custom.get("lidmFreshness"),
            retention=None if retention is None else str(retention),
            retention_field=retention_field,
            max_retire_fraction=float(shrink),
            min_k=min_k,
            district_field=district,
            department_field=dept_field,
            street_field=street,
            grants=grants,
            source_file=source,
        )
    except ValidationError as exc:
        raise ContractError(f"{source}: {_short(exc)}") from None


def _grants(raw: Any, source: str, root: yaml.Node | None, doc: dict[str, Any]) -> tuple[Grant, ...]:
    """Grants as declared; consumer ids and levels against protections are checked by the catalogue lint."""
    if raw is None:
        return ()
    index = next((i for i, p in enumerate(doc.get("customProperties") or []) if p.get("property") == "lidmGrants"), 0)
    if not isinstance(raw, list):
        raise ContractError(f"{source}: lidmGrants must be a list of grants")
    names = {p["name"] for p in doc["schema"][0].get("properties") or []}
    out = []
    for i, g in enumerate(raw):
        line = _line_of(root, ["customProperties", index, "value", i])
        if not isinstance(g, dict) or not isinstance(g.get("fields"), dict):
            raise ContractError(f"{source}:{line}: grant {i + 1} needs a consumer and a fields map")
        unknown = sorted(set(g["fields"]) - names)
        if unknown:
            raise ContractError(
                f"{source}:{line}: grant to {g.get('consumer')} names field {unknown[0]}, which the contract lacks"
            )
        try:
            grant = Grant(line=line, **g)
        except ValidationError as exc:
            raise ContractError(f"{source}:{line}: grant to {g.get('consumer')}: {_short(exc)}") from None
        loose = [f for f in grant.linkable if grant.fields.get(f) is not GrantLevel.TOKEN]
        if loose:
            raise ContractError(
                f"{source}:{line}: grant to {grant.consumer} lists {loose[0]} as linkable, but only a field granted "
                "at level token can be linkable"
            )
        out.append(grant)
    return tuple(out)


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)


def load_contract(path: Path) -> Contract:
    """Load one contract file, refusing it with file and line on any error."""
    try:
        text = path.read_text("utf-8")
        root = yaml.compose(text, Loader=_LOADER)
        doc = yaml.load(text, Loader=_LOADER)  # a safe loader, C-accelerated where available
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else "?"
        raise ContractError(f"{path}:{line}: YAML error: {getattr(exc, 'problem', exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: cannot read: {exc}") from None
    return parse_contract(doc, source=str(path), root=root)


def default_contracts_dir() -> Path:
    """contracts/ of the source checkout, or the copy installed with the package."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "contracts"
        if (candidate / "health").is_dir():
            return candidate
    return Path(str(importlib.resources.files("lidm_contracts")))


class ContractCatalog:
    """Every contract in a folder, by id, with the consumers their grants name."""

    def __init__(self, contracts: dict[str, Contract], consumers: Consumers | None = None) -> None:
        self._contracts = dict(sorted(contracts.items()))
        self.consumers = consumers

    def __getitem__(self, contract_id: str) -> Contract:
        try:
            return self._contracts[contract_id]
        except KeyError:
            raise ContractError(f"no contract {contract_id}; known: {', '.join(self._contracts) or 'none'}") from None

    def __iter__(self) -> Iterator[Contract]:
        return iter(self._contracts.values())

    def __contains__(self, contract_id: object) -> bool:
        return contract_id in self._contracts

    def ids(self) -> list[str]:
        return list(self._contracts)

    def __len__(self) -> int:
        return len(self._contracts)

    def grants_for(self, consumer: str) -> list[tuple[Contract, Grant]]:
        """Every grant that reaches a consumer, directly or through a group it belongs to."""
        if self.consumers is None or consumer not in self.consumers.members:
            known = ", ".join(sorted(self.consumers.members)) if self.consumers else "none"
            raise ContractError(f"no consumer {consumer}; known: {known}")
        out = []
        for c in self:
            for g in c.grants:
                if any(m.id == consumer for m in self.consumers.expand(g.consumer)):
                    out.append((c, g))
        return out


def load_catalog(directory: Path | None = None) -> ContractCatalog:
    """Load contracts/<department>/<dataset>.yaml; the file path must match the contract id.

    Checked once per content and then read compiled (contracts.compiled): the same guarantees, in milliseconds.
    """
    directory = directory or default_contracts_dir()
    return compiled.cached(compiled.fingerprint(directory, CONSUMERS_FILE), lambda: _load_catalog(directory))


def _load_catalog(directory: Path) -> ContractCatalog:
    consumers = load_consumers(directory) if (directory / CONSUMERS_FILE).exists() else None
    contracts = {c.id: c for c in (_checked(p, directory, consumers) for p in sorted(directory.glob("*/*.yaml")))}
    return ContractCatalog(contracts, consumers)


def load_one(contract_id: str, directory: Path | None = None) -> Contract:
    """One contract by id, with the catalogue's checks: a feed run need not validate every other contract."""
    directory = directory or default_contracts_dir()
    department, _, dataset = contract_id.partition(".")
    path = directory / department / f"{dataset}.yaml"
    if not dataset or "/" in contract_id or not path.is_file():
        return load_catalog(directory)[contract_id]  # the catalogue's error lists the contracts it knows
    consumers = load_consumers(directory) if (directory / CONSUMERS_FILE).exists() else None
    return _checked(path, directory, consumers)


def _checked(path: Path, directory: Path, consumers: Consumers | None) -> Contract:
    contract = load_contract(path)
    expected = f"{path.parent.name}.{path.stem}"
    if contract.id != expected:
        raise ContractError(f"{path}: id {contract.id} does not match its path (expected {expected})")
    for grant in contract.grants:
        if consumers is not None and not consumers.known(grant.consumer):
            raise ContractError(
                f"{path}:{grant.line}: grant names unknown consumer {grant.consumer}; "
                f"declare it in {directory / CONSUMERS_FILE}"
            )
    return contract
