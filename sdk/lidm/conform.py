"""Conform: source columns to contract fields, refusing schema drift before any row is read twice."""

from __future__ import annotations

import pyarrow as pa

from lidm.adapter import Adapter
from lidm.contracts.model import Contract
from lidm.errors import ConfigError, RejectedBatch
from lidm.validate import LINE, ROW


def check_mapping(adapter: Adapter, contract: Contract) -> None:
    """Every contract field is mapped or explicitly absent; nothing maps to a field the contract lacks."""
    fields = set(contract.field_names)
    unknown = sorted(set(adapter.mapping) - fields)
    if unknown:
        raise ConfigError(f"adapter {adapter.name}: maps {', '.join(unknown)}, not fields of {contract.id}")
    unmapped = [f for f in contract.field_names if f not in adapter.mapping]
    if unmapped:
        raise ConfigError(
            f"adapter {adapter.name}: contract fields {', '.join(unmapped)} are not mapped; map them or set them "
            "to None to declare them absent from this source"
        )
    absent_required = [f.name for f in contract.fields if f.required and adapter.mapping.get(f.name) is None]
    if absent_required:
        raise ConfigError(f"adapter {adapter.name}: required fields {', '.join(absent_required)} cannot be absent")
    for name, conv in adapter.converters().items():
        conv.bind(contract.field(name))  # a conversion that needs the field (labels) says now if it cannot


def check_columns(columns: list[str], adapter: Adapter, file: str) -> None:
    """Refuse a delivery whose columns differ from what the adapter declares (named, with the fix)."""
    present = {c.lower() for c in columns if c not in (ROW, LINE)}
    wanted = adapter.source_columns()
    for missing in sorted(wanted - present):
        field = next(f for f, c in adapter.converters().items() if c.column.lower() == missing)
        raise RejectedBatch(
            "missing_column",
            f"source column '{missing}' (for contract field {field}) is missing",
            file=file,
            field=missing,
        )
    extra = sorted(present - wanted - {c.lower() for c in adapter.ignore})
    if extra:
        raise RejectedBatch(
            "unexpected_column",
            f"source column '{extra[0]}' is not in the adapter's mapping; if the department added it on purpose, "
            "declare it in the adapter's ignore= (or map it) so nothing arrives unseen",
            file=file,
            field=extra[0],
        )


def conform(chunk: pa.Table, adapter: Adapter, contract: Contract) -> pa.Table:
    """Contract-shaped chunk (plus the row-number column) from a source chunk."""
    lower = chunk.rename_columns([c.lower() for c in chunk.column_names])
    converters = adapter.converters()
    cols: dict[str, pa.Array] = {}
    for f in contract.fields:
        conv = converters.get(f.name)
        if conv is None:
            cols[f.name] = pa.nulls(chunk.num_rows, pa.string())
        else:
            cols[f.name] = conv.bind(f).apply(lower[conv.column.lower()].combine_chunks())
    cols[ROW] = lower[ROW].combine_chunks()
    if LINE in lower.column_names:
        cols[LINE] = lower[LINE].combine_chunks()
    return pa.table(cols)
