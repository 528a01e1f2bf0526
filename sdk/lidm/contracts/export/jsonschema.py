"""JSON Schema (2020-12) of one delivered row per contract, for teams that deliver files without Python."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import PHONE, Check, Contract, Field, LogicalType

_TYPES: dict[LogicalType, dict[str, Any]] = {
    LogicalType.STRING: {"type": "string"},
    LogicalType.DATE: {"type": "string", "format": "date"},
    LogicalType.TIMESTAMP: {"type": "string", "format": "date-time"},
    LogicalType.NUMBER: {"type": "number"},
    LogicalType.INTEGER: {"type": "integer"},
    LogicalType.BOOLEAN: {"type": "boolean"},
}


def check_pattern(f: Field, city_prefix: str) -> str | None:
    """The pattern a field's domain check implies (id number, phone, a division code of this city), if any."""
    if Check.DIVISION_CODE in f.checks:
        return f"^{city_prefix}[0-9]{{{max((f.max_length or 6), 6) - len(city_prefix)},}}$"
    if Check.PHONE in f.checks:
        return PHONE
    if Check.ID_NUMBER in f.checks:
        return "^[0-9]{17}[0-9Xx]$"
    return None


def _field(f: Field, city_prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {"title": f.business_name or f.name, **_TYPES[f.type]}
    if f.description:
        out["description"] = f.description
    if f.enum is not None:
        out["enum"] = list(f.enum)
        labels = dict(zip(f.enum, f.enum_labels or (), strict=False))
        out["x-lidm-labels"] = {k: v for k, v in labels.items() if v}
    for key, value in (("minLength", f.min_length), ("maxLength", f.max_length), ("pattern", f.pattern)):
        if value is not None:
            out[key] = value
    if f.type in (LogicalType.NUMBER, LogicalType.INTEGER):
        for key, value in (("minimum", f.minimum), ("maximum", f.maximum)):
            if value is not None:
                out[key] = value
    pattern = check_pattern(f, city_prefix)
    if pattern is not None:
        out["pattern"] = pattern
    if f.unit:
        out["x-lidm-unit"] = f.unit
    out["x-lidm-classification"] = f.classification.value
    out["x-lidm-protection"] = [p.value for p in f.protection]
    if not f.required:
        out = {"anyOf": [out, {"type": "null"}]} | {"title": out["title"]}
    return out


def schema(c: Contract, city_prefix: str = "4301") -> dict[str, Any]:
    """The schema a delivered row of this contract must satisfy (checks the gateway also runs)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:lidm:contract:{c.id}:{c.version}",
        "title": f"{c.title} ({c.id} {c.version})",
        "description": c.description,
        "type": "object",
        "properties": {f.name: _field(f, city_prefix) for f in c.fields},
        "required": [f.name for f in c.fields if f.required],
        "additionalProperties": False,
    }


def write(catalog: ContractCatalog, out: Path, city_prefix: str = "4301") -> list[Path]:
    """One `<contract id>.schema.json` per contract."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in catalog:
        path = out / f"{c.id}.schema.json"
        path.write_text(json.dumps(schema(c, city_prefix), ensure_ascii=False, indent=2) + "\n", "utf-8")
        paths.append(path)
    return paths
