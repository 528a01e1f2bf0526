"""Columnar validation compiled from a contract: every check runs on a whole chunk at once.

Bad rows are never dropped: they come back with machine-readable reasons for the quarantine.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lidm import dates, idnumber
from lidm.contracts.model import PHONE, Check, Contract, Field, LogicalType

ROW = "__row"  # source row number carried beside the data through the pipeline
LINE = "__line"  # a text file's line where the row starts (drops only); quarantine reasons name both

ARROW_TYPES: dict[LogicalType, pa.DataType] = {
    LogicalType.STRING: pa.string(),
    LogicalType.DATE: pa.date32(),
    LogicalType.TIMESTAMP: pa.timestamp("us"),
    LogicalType.NUMBER: pa.float64(),
    LogicalType.INTEGER: pa.int64(),
    LogicalType.BOOLEAN: pa.bool_(),
}
_PATTERNS = {
    LogicalType.DATE: r"^\d{4}-\d{2}-\d{2}$",
    LogicalType.TIMESTAMP: r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$",
    LogicalType.NUMBER: r"^[+-]?(\d+(\.\d*)?|\.\d+)$",
    LogicalType.INTEGER: r"^[+-]?\d+$",
    LogicalType.BOOLEAN: r"^(?i)(true|false|1|0|yes|no|t|f|y|n)$",
}


@dataclass(frozen=True)
class Problem:
    """One reason a row is quarantined: which field, a stable code, and a message with no values in it."""

    field: str
    code: str
    message: str


@dataclass
class Validated:
    valid: pa.Table  # typed per contract, plus ROW
    bad_rows: np.ndarray  # indices into the input chunk
    problems: dict[int, list[Problem]]  # input index -> its problems


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False).astype(bool)


def _as_string(values: pa.Array) -> pa.Array:
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return pc.utf8_trim_whitespace(values)
    return pc.cast(values, pa.string())


def _parse(values: pa.Array, ftype: LogicalType, ok: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Cast strings to the field's type; values that fail become null and are flagged."""
    target = ARROW_TYPES[ftype]
    masked = pc.if_else(pa.array(ok), values, pa.nulls(len(values), values.type))
    if ftype is LogicalType.BOOLEAN:
        low = pc.utf8_lower(masked)
        out = pc.is_in(low, value_set=pa.array(["true", "1", "yes", "t", "y"]))
        return pc.if_else(masked.is_null(), pa.nulls(len(values), pa.bool_()), out), ok
    if ftype is LogicalType.TIMESTAMP:
        masked = pc.replace_substring(masked, "T", " ")
    try:
        if ftype is LogicalType.DATE:
            out = pc.cast(dates.parse(masked, ("%Y-%m-%d",)), target)
            return out, ok & ~_np(pc.and_(out.is_null(), masked.is_valid()))
        return pc.cast(masked, target), ok
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # A well-shaped but impossible value (month 13) fails the whole cast: retry value by value.
        parsed, bad = [], ok.copy()
        for i, v in enumerate(masked.to_pylist()):
            try:
                parsed.append(None if v is None else pa.scalar(v).cast(target).as_py())
            except (pa.ArrowInvalid, ValueError):
                parsed.append(None)
                bad[i] = False
        return pa.array(parsed, type=target), bad


def _coerce(values: pa.Array, ftype: LogicalType) -> tuple[pa.Array, np.ndarray]:
    """Bring a source column to the field's Arrow type; returns (typed, well_typed mask)."""
    target = ARROW_TYPES[ftype]
    present = _np(values.is_valid())
    if values.type == target:
        return values, present
    if ftype is LogicalType.STRING:
        return _as_string(values), present
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        text = pc.utf8_trim_whitespace(values)
        text = pc.if_else(pc.equal(text, ""), pa.nulls(len(text), pa.string()), text)
        shaped = _np(pc.match_substring_regex(text, _PATTERNS[ftype]))
        return _parse(text, ftype, shaped)
    try:
        return pc.cast(values, target), present
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _coerce(pc.cast(values, pa.string()), ftype)


class Validator:
    """The checks of one contract, compiled once and run per chunk."""

    def __init__(self, contract: Contract, city_prefix: str, timezone: str = "Asia/Shanghai") -> None:
        self.contract = contract
        self.city_prefix = city_prefix
        self.timezone = timezone

    def normalize(self, table: pa.Table) -> pa.Table:
        """Forms the standard allows (full-width digits, lowercase x) become canonical before anything else."""
        for f in self.contract.fields:
            if Check.ID_NUMBER in f.checks and f.name in table.column_names:
                col = _as_string(table[f.name].combine_chunks())
                table = table.set_column(table.schema.get_field_index(f.name), f.name, idnumber.normalize(col))
        return table

    def _field_checks(self, f: Field, raw: pa.Array) -> tuple[pa.Array, list[tuple[str, str, np.ndarray]]]:
        found: list[tuple[str, str, np.ndarray]] = []
        n = len(raw)
        text_missing = (
            _np(pc.equal(pc.utf8_trim_whitespace(raw), "")) if pa.types.is_string(raw.type) else np.zeros(n, bool)
        )
        missing = ~_np(raw.is_valid()) | text_missing
        if f.required:
            found.append(("required", f"{f.name} is required but empty", missing))
        if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
            # PostgreSQL text cannot hold U+0000 and SQLite would keep it silently: the same rule on both.
            nul = _np(pc.fill_null(pc.match_substring(raw, "\x00"), False))
            found.append(("nul_character", f"{f.name} contains a NUL character (byte 0)", nul))
        if pa.types.is_timestamp(raw.type) and raw.type.tz is not None:
            # A zone-aware source (timestamptz) is read as the city's wall-clock time, like every other source.
            raw = pc.local_timestamp(pc.cast(raw, pa.timestamp(raw.type.unit, tz=self.timezone)))
        typed, well = _coerce(raw, f.type)
        type_bad = ~missing & ~well
        found.append(("type", f"{f.name} is not a valid {f.type.value}", type_bad))
        check_on = ~missing & ~type_bad
        if f.enum is not None:
            allowed = pa.array(list(f.enum), type=pa.string())
            found.append(
                (
                    "enum",
                    f"{f.name} is not one of the allowed codes",
                    check_on & ~_np(pc.is_in(typed, allowed)),
                )
            )
        if f.type is LogicalType.STRING:
            length = pc.utf8_length(typed)
            if f.max_length is not None:
                found.append(
                    (
                        "length",
                        f"{f.name} is longer than {f.max_length}",
                        _np(pc.greater(length, f.max_length)),
                    )
                )
            if f.min_length is not None:
                found.append(
                    (
                        "length",
                        f"{f.name} is shorter than {f.min_length}",
                        check_on & _np(pc.less(length, f.min_length)),
                    )
                )
            if f.pattern:
                ok = _np(pc.match_substring_regex(typed, f.pattern))
                found.append(("pattern", f"{f.name} does not match {f.pattern}", check_on & ~ok))
        for bound, op, word in ((f.minimum, pc.less, "below"), (f.maximum, pc.greater, "above")):
            if bound is None:
                continue
            scalar = dt.date.fromisoformat(bound) if f.type is LogicalType.DATE else bound
            found.append(("range", f"{f.name} is {word} {bound}", check_on & _np(op(typed, pa.scalar(scalar)))))
        for check in f.checks:
            if check is Check.ID_NUMBER:
                today = dt.datetime.now(ZoneInfo(self.timezone)).date()
                for kind, mask in idnumber.problems(typed, today).items():
                    msg = {
                        "format": "is not 17 digits and a check character",
                        "checksum": "check character does not match (GB 11643-1999)",
                        "birth_date": "has an impossible birth date",
                    }[kind]
                    found.append((f"id_number.{kind}", f"{f.name} {msg}", check_on & mask))
            elif check is Check.PHONE:
                found.append(
                    (
                        "phone",
                        f"{f.name} is not a phone number",
                        check_on & ~_np(pc.match_substring_regex(typed, PHONE)),
                    )
                )
            elif check is Check.DIVISION_CODE:
                ok = _np(pc.starts_with(typed, self.city_prefix))
                found.append(
                    (
                        "division_code",
                        f"{f.name} is not a division of the city ({self.city_prefix})",
                        check_on & ~ok,
                    )
                )
        return typed, found

    def validate(self, table: pa.Table) -> Validated:
        """Check a conformed chunk; return typed valid rows and the problems of the others."""
        n = table.num_rows
        bad = np.zeros(n, dtype=bool)
        typed_cols: dict[str, pa.Array] = {}
        all_found: list[tuple[str, str, str, np.ndarray]] = []
        for f in self.contract.fields:
            raw = table[f.name].combine_chunks()
            typed, found = self._field_checks(f, raw)
            typed_cols[f.name] = typed
            for code, message, mask in found:
                if mask.any():
                    bad |= mask
                    all_found.append((f.name, code, message, mask))
        problems: dict[int, list[Problem]] = {}
        bad_idx = np.flatnonzero(bad)
        for fname, code, message, mask in all_found:
            for i in np.flatnonzero(mask):
                problems.setdefault(int(i), []).append(Problem(fname, code, message))
        keep = pa.array(~bad)
        valid = pa.table(
            {name: pc.filter(col, keep) for name, col in typed_cols.items()}
            | {ROW: pc.filter(table[ROW].combine_chunks(), keep)}
            | ({LINE: pc.filter(table[LINE].combine_chunks(), keep)} if LINE in table.column_names else {})
        )
        return Validated(valid=valid, bad_rows=bad_idx, problems=problems)
