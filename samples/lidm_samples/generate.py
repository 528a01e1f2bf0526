"""One generic generator for sample sources declared as data (lidm_samples.declared): rows from the synthetic world.

Each column's values are made in the contract's form (codes, ISO dates, yuan) and written the way the source keeps
them by the adapter's own conversion run backwards (``Convert.encode``: code tables, date formats, fen), so a
declaration never restates a code table the adapter already holds. Rows are about the world's people, so they join
with the roster; clean rows pass the adapter's checks, and the planted faults are quarantined with the reasons in
``FAULT_REASONS``. Everything is drawn from the world's seed and the feed's name: the same seed, the same rows.
"""

from __future__ import annotations

import fnmatch
import random
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from lidm import Adapter, Convert, SqlSource
from lidm.contracts import Contract, Field
from lidm.contracts.model import Check, LogicalType
from lidm.errors import ConfigError
from lidm_samples.declared import GROUPS, Column, Declaration
from lidm_samples.pattern import check_pattern, matching
from lidm_samples.people import DISTRICTS, REFERENCE_DATE, STREET_NAMES, Person
from lidm_samples.sources import (
    SampleSource,
    SampleTable,
    big_integer,
    day,
    inject,
    integer,
    moment,
    money,
    text,
    tie_at_boundary,
    timestamp,
    wrong_check_char,
)
from lidm_samples.world import COHORTS, PLANTED, World, age_on

Value = Callable[[random.Random, Person, int], Any]  # (rng, the row's person, row number from 1) -> source value
Alter = Callable[[random.Random, dict[str, Any]], None]
_SQL_TYPES: dict[str, Callable[[], sa.types.TypeEngine]] = {
    "text": text,
    "integer": integer,
    "big_integer": big_integer,
    "money": money,
    "date": day,
    "timestamp": timestamp,
    "boolean": sa.Boolean,
}
_ENCODINGS = {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030"}  # write the superset the reader decodes
_EARLIEST = date(2015, 1, 1)  # dates without a minimum fall between this day and the reference date
_RANGED = (LogicalType.DATE, LogicalType.INTEGER, LogicalType.NUMBER)
_CENT = Decimal("0.01")
_OPTIONAL_ATTRIBUTES = ("phone",)  # the people's attributes that may be missing


class _Plan:
    """A declaration checked against its adapter and contract: how to make each column, and each fault."""

    def __init__(self, declaration: Declaration, adapter: Adapter, contract: Contract) -> None:
        self.d, self.adapter, self.contract = declaration, adapter, contract
        self.where = f"{declaration.path}"
        self.sql = isinstance(adapter.source, SqlSource)
        self.fields: dict[str, Field | None] = {}  # column -> the contract field it fills (None: ignored column)
        self.encoders: dict[str, Callable[[Any], Any]] = {}
        self._check_columns()
        self.values: dict[str, Value] = {c: self._value(c, spec) for c, spec in declaration.columns.items()}
        self.key = [self._column_of(f) for f in contract.key]
        for kind, column in declaration.faults.items():
            self._check_fault(kind, column)
        for i, group in enumerate(declaration.people):
            if group.from_ not in GROUPS + COHORTS + PLANTED:
                raise self.refuse(
                    f"people.{i}.from: {group.from_} is none of {', '.join(GROUPS)} nor a cohort of the synthetic "
                    f"world ({', '.join(COHORTS + PLANTED)})"
                )

    def refuse(self, what: str) -> ConfigError:
        return ConfigError(f"{self.where}: {what}")

    # --- columns ------------------------------------------------------------------------------------------

    def _column_of(self, field: str) -> str:
        conv = self.adapter.converters()[field]
        return next(c for c in self.d.columns if c.lower() == conv.column.lower())

    def _check_columns(self) -> None:
        mapped: dict[str, list[tuple[str, Convert]]] = {}
        for name, conv in self.adapter.converters().items():
            mapped.setdefault(conv.column.lower(), []).append((name, conv))
        ignored = {c.lower() for c in self.adapter.ignore}
        declared = {c.lower(): c for c in self.d.columns}
        missing = sorted(set(mapped) - set(declared))
        if missing:
            raise self.refuse(f"columns: the adapter reads {', '.join(missing)}; declare how each is made")
        extra = sorted(set(declared) - set(mapped) - ignored)
        if extra:
            raise self.refuse(
                f"columns: {', '.join(extra)} neither mapped nor ignored by adapter {self.adapter.name}; "
                "the gateway would refuse the delivery (unexpected_column)"
            )
        for column, spec in self.d.columns.items():
            candidates = mapped.get(column.lower(), [])
            wanted = spec.origin.removeprefix("contract.") if spec.origin.startswith("contract.") else None
            if wanted is not None:
                candidates = [(n, c) for n, c in candidates if n == wanted]
                if not candidates:
                    raise self.refuse(f"columns.{column}: adapter {self.adapter.name} maps no field {wanted} from it")
            if not candidates:
                self.fields[column], self.encoders[column] = None, lambda v: v
                if spec.origin.startswith("contract"):
                    raise self.refuse(f"columns.{column}: ignored by the adapter, so no contract field says its values")
                continue
            name, conv = candidates[0]
            field = self.contract.field(name)
            self.fields[column], self.encoders[column] = field, conv.bind(field).encode
            if spec.empty and field.required:
                raise self.refuse(f"columns.{column}: fills required field {field.name}, so it cannot be left empty")

    def _value(self, column: str, spec: Column) -> Value:
        field, encode = self.fields[column], self.encoders[column]
        if spec.serial is not None:
            serial = spec.serial
            return lambda _rng, _p, n: serial.format(n=n)
        if spec.values is not None:
            options = list(spec.values)
            weights = list(spec.values.values()) if isinstance(spec.values, dict) else None
            return lambda rng, _p, _n: rng.choices(options, weights)[0]
        if spec.origin.startswith("person."):
            attribute = spec.origin.removeprefix("person.")
            fallback = None  # a required field the person lacks (a phone) is made from the contract instead
            if field is not None and field.required and attribute in _OPTIONAL_ATTRIBUTES:
                fallback = self._contract_value(column, spec, field)

            def from_person(rng: random.Random, p: Person, n: int) -> Any:
                value = _attribute(p, attribute)
                if value is None and fallback is not None:
                    return fallback(rng, p, n)
                return encode(value)

            return from_person
        assert field is not None
        return self._contract_value(column, spec, field)

    def _contract_value(self, column: str, spec: Column, f: Field) -> Value:
        """A valid value of field ``f`` in the contract's form, then encoded as the source writes it."""
        encode, at = self.encoders[column], f"columns.{column} ({f.name})"
        if spec.codes is not None and not f.enum:
            raise self.refuse(f"{at}: codes, but the field has none")
        if f.enum:
            codes = spec.codes if spec.codes is not None else list(f.enum)
            unknown = sorted(set(codes) - set(f.enum))
            if unknown:
                raise self.refuse(f"{at}: codes {', '.join(unknown)} are not the contract's ({', '.join(f.enum)})")
            options = list(codes)
            weights = list(codes.values()) if isinstance(codes, dict) else None
            return lambda rng, _p, _n: encode(rng.choices(options, weights)[0])
        make = self._maker(at, spec, f)
        return lambda rng, p, _n: encode(make(rng, p))

    def _maker(self, at: str, spec: Column, f: Field) -> Callable[[random.Random, Person], Any]:
        if (spec.min is not None or spec.max is not None) and f.type not in _RANGED:
            raise self.refuse(f"{at}: min and max are for dates, integers and numbers")
        if Check.ID_NUMBER in f.checks:
            return lambda _rng, p: p.id_number  # the row's person: rows join on it
        if Check.PHONE in f.checks:
            return lambda rng, p: p.phone or f"1{rng.choice('35789')}{rng.randrange(10**9):09d}"
        if Check.DIVISION_CODE in f.checks:
            street = f.min_length == 9 or "{9}" in (f.pattern or "")  # a street's 9 digits, else a district's 6
            return lambda _rng, p: p.street_code if street else p.district_code
        if f.pattern:
            pattern = f.pattern
            check_pattern(pattern)
            return lambda rng, _p: matching(pattern, rng)
        if f.type is LogicalType.DATE:
            low = _day(spec.min, f.minimum, _EARLIEST)
            high = min(_day(spec.max, f.maximum, REFERENCE_DATE), REFERENCE_DATE)
            if high < low:
                raise self.refuse(f"{at}: no day between {low} and {high}")
            return lambda rng, _p: low + timedelta(days=rng.randrange((high - low).days + 1))
        if f.type is LogicalType.TIMESTAMP:
            return lambda rng, _p: moment(rng)
        if f.type in (LogicalType.INTEGER, LogicalType.NUMBER):
            low = Decimal(str(_first(spec.min, f.minimum, 0)))
            high = Decimal(str(_first(spec.max, f.maximum, low + 1000)))
            if high < low:
                raise self.refuse(f"{at}: max {high} is below min {low}")
            if f.type is LogicalType.INTEGER:
                return lambda rng, _p: rng.randint(int(low), int(high))
            return lambda rng, _p: (Decimal(rng.randint(int(low * 100), int(high * 100))) / 100).quantize(_CENT)
        if f.type is LogicalType.BOOLEAN:
            return lambda rng, _p: rng.random() < 0.5
        raise self.refuse(
            f"{at}: free text, with no codes, pattern or check to draw from; give values, a serial or a person.*"
        )

    # --- faults -------------------------------------------------------------------------------------------

    def faults(self, clean: list[dict[str, Any]]) -> dict[str, Alter | None]:
        """Each declared fault as a change to one row (duplicate_key: None, a copy), checked against the field."""
        return {kind: self._fault(kind, column, clean) for kind, column in self.d.faults.items()}

    def _check_fault(self, kind: str, column: str | None) -> None:
        if kind == "duplicate_key" or column is None:
            return
        f, at = self.fields[column], f"faults.{kind}: column {column}"
        if f is None:
            raise self.refuse(f"{at} is ignored by the adapter, so nothing checks it")
        breaks = {
            "bad_check_char": Check.ID_NUMBER in f.checks,
            "missing_required": f.required,
            "unknown_code": bool(f.enum),
            "bad_date": f.type in (LogicalType.DATE, LogicalType.TIMESTAMP),
            "below_minimum": f.minimum is not None,
            "above_maximum": f.maximum is not None,
            "bad_pattern": bool(f.pattern) and not f.enum,
            "foreign_division": Check.DIVISION_CODE in f.checks,
            "bad_phone": Check.PHONE in f.checks,
        }
        if not breaks[kind]:
            raise self.refuse(f"{at}: field {f.name} has nothing this fault would break")
        if kind == "bad_date" and self.sql and not isinstance(self.encoders[column](date(2026, 2, 28)), str):
            raise self.refuse(f"{at}: a date column of a table cannot hold 30 February; plant it in a text column")

    def _fault(self, kind: str, column: str | None, clean: list[dict[str, Any]]) -> Alter | None:
        """One declared fault as a change to a row (checked in _check_fault when the plan was made)."""
        if kind == "duplicate_key" or column is None:
            return None
        f, encode = self.fields[column], self.encoders[column]
        assert f is not None
        sample = next((r[column] for r in clean if r[column] is not None), None)
        if kind == "bad_check_char":
            return wrong_check_char(column)
        if kind == "missing_required":
            return _set(column, None)
        if kind == "unknown_code":
            known = {str(encode(c)) for c in f.enum or ()} | set(f.enum or ())
            width = len(str(sample)) if sample is not None else 2
            candidates = [d * width for d in "9876543210"] + ["X" * width, "未知代码"]
            candidate = next(c for c in candidates if c not in known)
            return _set(column, int(candidate) if isinstance(sample, int) and candidate.isdigit() else candidate)
        if kind == "bad_date":
            written = encode(datetime(2026, 2, 28, 8, 30) if f.type is LogicalType.TIMESTAMP else date(2026, 2, 28))
            shown = written if isinstance(written, str) else str(written)  # a drop's text: 2026-02-28[ 08:30:00]
            return _set(column, shown.replace("28", "30", 1))
        if kind in ("below_minimum", "above_maximum"):
            bound = f.minimum if kind == "below_minimum" else f.maximum
            sign = -1 if kind == "below_minimum" else 1
            if f.type is LogicalType.DATE:
                value: Any = date.fromisoformat(str(bound)) + timedelta(days=sign)
            else:
                value = Decimal(str(bound)) + sign
                value = int(value) if f.type is LogicalType.INTEGER else value.quantize(Decimal("0.01"))
            return _set(column, encode(value))
        if kind == "bad_pattern":
            pattern = f.pattern or ""
            return lambda _rng, row: row.update({column: _unmatched(str(row[column]), pattern)})
        if kind == "foreign_division":
            return lambda _rng, row: row.update({column: "110101000"[: len(str(row[column]))]})
        return _set(column, "12345")  # bad_phone

    # --- the source ---------------------------------------------------------------------------------------

    def source(self, build: Callable[[World, int], SampleTable]) -> SampleSource:
        spec, src = self.d.source, self.adapter.source
        if spec.connection and spec.connection != src.connection:
            raise self.refuse(f"source.connection: {spec.connection}, but the adapter reads {src.connection}")
        if isinstance(src, SqlSource):
            if spec.file or spec.encoding:
                raise self.refuse("source: the adapter reads a table; file and encoding are for drops")
            table = spec.table or src.table
            if not table:
                raise self.refuse("source.table: the adapter reads a query; name the table it selects from")
            if src.table and table != src.table:
                raise self.refuse(f"source.table: {table}, but the adapter reads {src.table}")
            return SampleSource(self.d.feed, src.connection, build, table=table, server=spec.server)
        if spec.table or "server" in spec.model_fields_set:
            raise self.refuse("source: the adapter reads dropped files; table and server are for SQL sources")
        name = spec.file or src.pattern.replace("*", f"{REFERENCE_DATE:%Y%m%d}").replace("?", "0")
        if not fnmatch.fnmatch(name, src.pattern) or name.endswith(".xlsx") != (src.format == "xlsx"):
            raise self.refuse(f"source.file: {name} is not what the adapter picks up ({src.pattern}, {src.format})")
        encoding = spec.encoding or _ENCODINGS.get(src.encoding.lower(), src.encoding)
        return SampleSource(self.d.feed, src.connection, build, file=name, encoding=encoding)


def _set(column: str, value: Any) -> Alter:
    def alter(_rng: random.Random, row: dict[str, Any]) -> None:
        row[column] = value

    return alter


def _unmatched(value: str, pattern: str) -> str:
    """The value with its first character replaced so the pattern no longer matches (the length kept)."""
    for ch in "#~_?":
        changed = ch + value[1:]
        if not re.search(pattern, changed):
            return changed
    return "#" * len(value)


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def _day(*values: Any) -> date:
    chosen = _first(*values)
    return chosen if isinstance(chosen, date) else date.fromisoformat(str(chosen))


def _attribute(p: Person, name: str) -> Any:
    if name == "age":
        return age_on(p)
    if name == "district_name":
        return DISTRICTS[p.district_code][0]
    if name == "street_name":
        return STREET_NAMES[p.street_code]
    return getattr(p, name)


def _people(world: World, declaration: Declaration) -> list[Person]:
    """Whom the rows are about: each group's share (at least ``at_least``), once each, in ID order."""
    rng = world.rng(f"{declaration.feed}:people")
    chosen: dict[str, Person] = {}
    for group in declaration.people:
        pool = _group(world, group.from_)
        if group.age:
            pool = [p for p in pool if group.age[0] <= age_on(p) <= group.age[1]]
        pool = sorted(pool, key=lambda p: p.id_number)
        wanted = min(len(pool), max(group.at_least, round(group.share * len(pool))))
        for person in rng.sample(pool, wanted):
            chosen.setdefault(person.id_number, person)
    return sorted(chosen.values(), key=lambda p: p.id_number)


def _group(world: World, name: str) -> list[Person]:
    """The people of a group (checked to be one of GROUPS or a world cohort when the plan was made)."""
    if name == "everyone":
        return list(world.people)
    if name == "living":
        return world.living()
    if name == "roster":
        return [m.person for m in world.roster if m.status == "active"]
    return world.cohort(name)


def _sql_type(values: list[Any]) -> sa.types.TypeEngine:
    """The narrowest column type holding every value written (faults included)."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if kinds == {bool}:
        return sa.Boolean()
    if kinds == {int}:
        return big_integer() if any(abs(v) >= 2**31 for v in present) else integer()
    if kinds and kinds <= {int, Decimal}:
        return money()
    if kinds == {datetime}:
        return timestamp()
    if kinds == {date}:
        return day()
    return text(max([len(str(v)) for v in present] + [10]))


def declared_source(declaration: Declaration, adapter: Adapter, contract: Contract) -> SampleSource:
    """The sample source a declaration describes, checked against the adapter and the contract now, not at writing."""
    plan = _Plan(declaration, adapter, contract)
    watermark = getattr(adapter.source, "watermark", None)
    feed = declaration.feed

    def build(world: World, bad: int) -> SampleTable:
        rng = world.rng(feed)
        rows: list[dict[str, Any]] = []
        least, most = (
            (declaration.per_person, declaration.per_person)
            if isinstance(declaration.per_person, int)
            else declaration.per_person
        )
        for person in _people(world, declaration):
            for _ in range(rng.randint(least, most)):
                row = {}
                for column, spec in declaration.columns.items():
                    value = plan.values[column](rng, person, len(rows) + 1)
                    row[column] = None if spec.empty and rng.random() < spec.empty else value
                rows.append(row)
        seen: set[tuple[Any, ...]] = set()
        for row in rows:
            key = tuple(row[c] for c in plan.key)
            if key in seen:
                raise plan.refuse(
                    f"the key ({', '.join(plan.key)}) repeats in clean rows; make it from person.id_number, a serial, "
                    "or one row per person"
                )
            seen.add(key)
        if watermark:
            column = next((c for c in declaration.columns if c.lower() == watermark.lower()), None)
            if column:
                tie_at_boundary(rows, column)
        kinds = inject(rows, bad, f"{world.seed}:{feed}", plan.faults(rows))
        columns = {
            c: (_SQL_TYPES[spec.type]() if spec.type else _sql_type([r[c] for r in rows]))
            for c, spec in declaration.columns.items()
        }
        return SampleTable(columns, rows, kinds)

    return plan.source(build)
