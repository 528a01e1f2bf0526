"""Adapters declare; the SDK runs. An adapter names its contract, its source and its column mapping.

pyarrow is imported where a conversion runs, not where it is declared: an Airflow DAG parse declares every
adapter and converts nothing, and must stay quick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lidm.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from lidm.contracts.model import Field
    from lidm.sources import DropSource, SqlSource


class Convert:
    """A small value conversion from one source column; subclasses implement `apply`."""

    def __init__(self, column: str) -> None:
        self.column = column

    def apply(self, values: pa.Array) -> pa.Array:
        return values

    def bind(self, field: Field) -> Convert:
        """The conversion for one contract field; most need nothing from the field."""
        return self

    def encode(self, value: Any) -> Any:
        """The inverse: the source value this conversion reads as the contract's ``value``. Synthetic sources
        (lidm-samples' declared ones) write through it; a department's own conversion may override it."""
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.column!r})"


class _Codes(Convert):
    def __init__(self, column: str, table: Mapping[str | int, str]) -> None:
        super().__init__(column)
        # Keys are matched against the source value's text, so {1: ...} and {"1": ...} mean the same.
        self.table = {str(k): str(v) for k, v in table.items()}

    def apply(self, values: pa.Array) -> pa.Array:
        import pyarrow as pa
        import pyarrow.compute as pc

        text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
        keys = pa.array(list(self.table), type=pa.string())
        idx = pc.index_in(text, value_set=keys)
        mapped = pc.take(pa.array(list(self.table.values()), type=pa.string()), idx)
        # An unknown code is kept as it came, so validation quarantines it with an 'enum' reason.
        return pc.coalesce(mapped, text)

    def encode(self, value: Any) -> Any:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return next((k for k, v in self.table.items() if v == text), value)


class _Labels(Convert):
    def __init__(self, column: str, extra: Mapping[str | int, str]) -> None:
        super().__init__(column)
        self.extra = {str(k): str(v) for k, v in extra.items()}

    def bind(self, field: Field) -> Convert:
        if not field.enum or not field.enum_labels or not any(field.enum_labels):
            raise ConfigError(f"labels({self.column!r}) maps field {field.name}, whose contract lists no labels")
        table = {label: value for value, label in zip(field.enum, field.enum_labels, strict=True) if label}
        return _Codes(self.column, table | self.extra)


class _CodeList(_Codes):
    """Several codes in one cell (低保、防返贫监测): each translated, joined with commas in the order written; an
    unknown one is kept as it came, so validation quarantines the row."""

    def __init__(self, column: str, table: Mapping[str | int, str], separators: str) -> None:
        super().__init__(column, table)
        self.separators = separators

    def apply(self, values: pa.Array) -> pa.Array:
        import re

        import pyarrow as pa

        split = re.compile(f"[{re.escape(self.separators)}]")
        out = []
        for cell in pa.array(values).cast(pa.string()).to_pylist():
            parts = [p.strip() for p in split.split(cell)] if cell is not None else []
            codes = [self.table.get(p, p) for p in parts if p]
            out.append(",".join(dict.fromkeys(codes)) or None)
        return pa.array(out, type=pa.string())

    def encode(self, value: Any) -> Any:
        if value is None:
            return None
        back = {v: k for k, v in reversed(list(self.table.items()))}
        return self.separators[0].join(back.get(code, code) for code in str(value).split(","))


class _Date(Convert):
    def __init__(self, column: str, formats: tuple[str, ...], excel_serial: bool = False) -> None:
        super().__init__(column)
        self.formats = formats
        self.excel_serial = excel_serial

    def apply(self, values: pa.Array) -> pa.Array:
        import pyarrow as pa
        import pyarrow.compute as pc

        from lidm import dates

        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            return values
        text = pc.utf8_trim_whitespace(values)
        iso = dates.to_iso(text, self.formats)
        return pc.coalesce(dates.from_excel_serial(text), iso) if self.excel_serial else iso

    def encode(self, value: Any) -> Any:
        return value.strftime(self.formats[0]) if hasattr(value, "strftime") else value


class _FenToYuan(Convert):
    def apply(self, values: pa.Array) -> pa.Array:
        # Exact: move the decimal point in the text (1890 fen -> "18.90"), never through a float.
        import pyarrow as pa
        import pyarrow.compute as pc

        text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
        ok = pc.fill_null(pc.match_substring_regex(text, r"^-?\d+$"), False)
        negative = pc.fill_null(pc.starts_with(text, "-"), False)
        digits = pc.utf8_lpad(pc.utf8_ltrim(text, "-"), 3, "0")
        yuan = pc.binary_join_element_wise(
            pc.if_else(negative, "-", ""),
            pc.utf8_slice_codeunits(digits, 0, -2),
            ".",
            pc.utf8_slice_codeunits(digits, -2),
            "",
        )
        return pc.if_else(ok, yuan, text)

    def encode(self, value: Any) -> Any:
        from decimal import Decimal

        return value if value is None else int((Decimal(str(value)) * 100).to_integral_value())


def source_column(column: str) -> Convert:
    """Take a source column as it is."""
    return Convert(column)


def codes(column: str, table: Mapping[str | int, str]) -> Convert:
    """Translate a department's code table (e.g. {'1': 'male', '2': 'female'}) to contract codes.

    Values are compared as text: a numeric column's 10 matches the key "10" (or 10); a code with
    leading zeros ("01") only matches a text column that keeps them.
    """
    return _Codes(column, table)


def labels(column: str, extra: Mapping[str | int, str] | None = None) -> Convert:
    """The contract's own labels (男 → male, 低保 → dibao, as `lidm contracts show` lists them) to codes;
    `extra` adds the department's other spellings of the same codes."""
    return _Labels(column, extra or {})


def code_list(column: str, table: Mapping[str | int, str], separators: str = "、,，;；") -> Convert:
    """A cell holding several codes or labels (低保、防返贫监测) to the contract's comma-separated codes
    (dibao,return_risk): for a person who holds several categories at once."""
    return _CodeList(column, table, separators)


def date(column: str, *formats: str, excel_serial: bool = False) -> Convert:
    """Parse dates written in the department's formats (strptime) into ISO dates.

    excel_serial: also accept Excel serial day numbers (a date cell formatted as a number), which a
    spreadsheet drop otherwise delivers as digits such as 45321.
    """
    return _Date(column, formats or ("%Y-%m-%d",), excel_serial)


def fen_to_yuan(column: str) -> Convert:
    """Amounts kept in fen (分) become yuan."""
    return _FenToYuan(column)


@dataclass(frozen=True)
class Adapter:
    """A department dataset's declaration: contract it fills, where rows come from, how columns map.

    mapping: contract field -> source column name or Convert; a field mapped to None is explicitly
    absent from this source. ignore: source columns deliberately not shared (anything else unmapped is
    refused as schema drift, so nothing arrives unseen).
    """

    contract: str
    source: SqlSource | DropSource
    mapping: Mapping[str, str | Convert | None]
    ignore: tuple[str, ...] = ()
    pool: str | None = None
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.contract)

    def converters(self) -> dict[str, Convert]:
        """Mapped fields as conversions (plain column names become identity conversions)."""
        return {f: (source_column(m) if isinstance(m, str) else m) for f, m in self.mapping.items() if m is not None}

    def source_columns(self) -> set[str]:
        return {c.column.lower() for c in self.converters().values()}
