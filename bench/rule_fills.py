"""What monitor_rules.py fills from the contracts and the rules, so that a new rule or feed needs no bench edit.

A feed with a hand-written profile in monitor_rules.City (sizes and distributions modelled on the city) gets from here
only the columns its profile leaves out that a rule reads or the table requires; a feed no profile names (added with a
new rule) gets every column from here, its rows drawn from roster members and other people. Values follow what the
rules ask of each field: the codes they compare with (and the contract's enum), dates spread over twice the longest
window they look back, amounts spread around their thresholds, code lists holding the codes they test; so every rule
finds someone. Token columns are 64 hex digits as text, decoded to bytes where the table stores tokens as bytea.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from lidm.contracts.model import Contract, LogicalType, Protection
from lidm.monitor.rules import Rule

if TYPE_CHECKING:  # monitor_rules.py imports this module; the City is only a type here
    from monitor_rules import City


@dataclass
class Fill:
    """One central table: its column expressions over a source aliased g (g.i, g.q, g.hh, g.tok, g.htok...)."""

    feed: str
    source: str
    cols: dict[str, str]
    where: str = ""


@dataclass
class Hint:
    """What the rules ask of one field of one feed."""

    values: set[Any] = field(default_factory=set)  # compared for equality, one of, or not one of
    thresholds: set[float] = field(default_factory=set)  # gt/ge/lt/le and total greater_than
    windows: set[int] = field(default_factory=set)  # within_days, in days
    codes: set[str] = field(default_factory=set)  # holds / holds_none
    totalled: bool = False  # summed over a person's rows


def hints(rules: Iterable[Rule], as_of: date) -> dict[tuple[str, str], Hint]:
    """(feed, field) -> what the rules ask of it, their params at their defaults."""
    out: dict[tuple[str, str], Hint] = {}

    def hint(feed: str, name: str) -> Hint:
        return out.setdefault((feed, name), Hint())

    for rule in rules:
        wheres = [(rule.subject.feed, rule.subject.where)]
        if rule.subject.category:
            hint(rule.subject.feed, rule.subject.category)
        for clause in (*rule.match, *rule.match_any, *rule.absent):
            wheres.append((clause.feed, clause.where))
            if clause.total is not None:
                t = clause.total
                h = hint(clause.feed, t.field)
                h.thresholds.add(float(rule.value(t.greater_than, as_of)))
                h.totalled = True
                if t.date_field:
                    h = hint(clause.feed, t.date_field)
                    if t.within_days is not None:
                        h.windows.add(int(rule.value(t.within_days, as_of)))
        for feed, where in wheres:
            for name, cond in where.items():
                h = hint(feed, name)
                if not isinstance(cond, dict):
                    value = rule.value(cond, as_of)
                    h.values |= set(value) if isinstance(value, list) else {value}
                    continue
                for op, raw in cond.items():
                    if op in ("differs_from_subject", "same_as_subject"):
                        hint(rule.subject.feed, raw)
                        continue
                    value = rule.value(raw, as_of)
                    if op == "not":
                        h.values |= set(value) if isinstance(value, list) else {value}
                    elif op in ("holds", "holds_none"):
                        h.codes |= set(value) if isinstance(value, list) else {value}
                    elif op == "within_days":
                        h.windows.add(int(value))
                    elif op in ("gt", "ge", "lt", "le"):
                        h.thresholds.add(float(value))
    return out


def column(city: City, contract: Contract, name: str, hint: Hint | None) -> str | None:
    """A SQL expression over the fill's source g for one column of the contract's table; None if no field has it."""
    found = [(f, kind) for f, col, kind in contract.output_columns() if col == name]
    if not found:
        return None
    f, kind = found[0]
    salt = f"{contract.table}.{name}"
    if kind is Protection.TOKEN:
        return {"id_number": "g.tok", "household_id": "g.htok"}.get(f.name, f"b_tok('{f.name}', g.i)")
    if kind is Protection.ENCRYPT:
        return city.enc(52)
    if kind is Protection.MASK:
        masks = {"id_number": "b_idmask(g.q)", "name": "b_namemask(g.q)"}
        return masks.get(f.name, "b_phonemask(g.q)" if "phone" in f.name else "'***' || (g.i % 1000)")
    if name.endswith("district_code"):
        return "b_dist(g.hh)"
    if name.endswith("street_code"):
        return "b_street(g.hh)"
    h = hint or Hint()
    if f.type is LogicalType.BOOLEAN:
        return f"({city.pct(salt)} < 50)"
    if f.type is LogicalType.DATE:
        window = 2 * max(h.windows) if h.windows else 1825
        return city.day(f"b_rnd('{salt}', g.i, {window})")
    if f.type is LogicalType.TIMESTAMP:
        return city.ts(salt)
    if f.type is LogicalType.INTEGER:
        ints = sorted({int(v) for v in h.values if str(v).lstrip("-").isdigit()})
        if ints:  # the compared values and the one before each (e.g. this year and last)
            choices = sorted({*ints, *(v - 1 for v in ints)})
            return f"(ARRAY[{', '.join(map(str, choices))}])[1 + b_rnd('{salt}', g.i, {len(choices)})]"
        lo = int(f.minimum) if f.minimum is not None else 0
        hi = int(f.maximum) if f.maximum is not None else lo + 20
        return f"({lo} + b_rnd('{salt}', g.i, {max(hi - lo, 1)}))"
    if f.type is LogicalType.NUMBER:
        lo = int(f.minimum) if f.minimum is not None else 0
        top = max(h.thresholds) if h.thresholds else 1000.0
        hi = int(min(float(f.maximum), 2 * top)) if f.maximum is not None else int(2 * top)
        hi = max(hi, lo + 1)
        if h.totalled:  # summed per person: mostly small, a tenth up to twice the threshold
            small = max(lo + 1, int(top / 20))
            low, high = city.money(salt, lo, small), city.money(salt, lo, hi)
            return f"(CASE WHEN {city.pct(salt)} < 90 THEN {low} ELSE {high} END)"
        return city.money(salt, lo, hi)
    codes = _listed(f.pattern) if h.codes else []
    if codes:  # a comma-separated code list: one code, a second for a fifth
        first = city.pick(salt, [(c, 100 // len(codes)) for c in codes])
        second = city.pick(salt + "2", [(c, 100 // len(codes)) for c in codes])
        return f"({first} || CASE WHEN {city.pct(salt + 'n')} < 20 THEN ',' || {second} ELSE '' END)"
    values = list(f.enum) if f.enum else sorted(str(v) for v in h.values) + (["other"] if h.values else [])
    if values:
        return city.pick(salt, [(v, 100 // len(values)) for v in values])
    width = f.max_length or 20
    return f"left('{f.name[:6]}' || g.i, {width})"


def _listed(pattern: str | None) -> list[str]:
    """The codes of a comma-separated code list's pattern, ``^(a|b)(,(a|b))*$``."""
    m = re.match(r"^\^\(([\w|]+)\)", pattern or "")
    return m.group(1).split("|") if m else []


def complete(
    city: City,
    fill: Fill,
    contract: Contract,
    types: dict[str, tuple[str, bool]],
    read: dict[tuple[str, str], Hint],
    *,
    all_: bool,
) -> dict[str, str]:
    """The fill's columns for the table as it is (``types``: column -> (PostgreSQL data type, NOT NULL)): the
    profile's (its ciphertext columns are sealed into one ``_sealed`` per row by ``_insert_sql``), plus what it leaves
    out that the table requires or a rule reads (with ``all_``, every column); a token given as hex text is decoded
    where it is bytea."""
    cols = dict(fill.cols)
    fields = {col: f.name for f, col, _ in contract.output_columns()}
    for name, (kind, required) in types.items():
        if name in cols or name in ("_batch_id", "_row_digest", "_retired_batch", "updated_at"):
            continue
        hint = read.get((fill.feed, fields.get(name, "")))
        sealed = name not in fields and kind == "bytea"  # a column no field names: one sealed ciphertext per row
        if all_ or hint is not None or required or sealed:
            expr = column(city, contract, name, hint)
            if expr is None and sealed:  # what a warning copies from its subject: filled even where it may be null
                expr = "decode(md5(g.i::text) || md5(g.tok) || md5(g.i::text || 'n'), 'hex')"
            if expr is not None:
                cols[name] = expr
    for name, expr in list(cols.items()):
        if types.get(name, ("",))[0] == "bytea" and name.endswith("_token"):
            cols[name] = f"decode({expr}, 'hex')"
    return cols


def key_kind(contract: Contract) -> str:
    """How a feed no profile names draws its rows: one per person, one per household, or records (several each)."""
    keys = contract.key_columns()
    if "id_number_token" in keys:
        return "person"
    if "household_id_token" in keys:
        return "household"
    return "record"


def generic(city: City, feed: str, contract: Contract, n_roster: float = 0.1, n_other: float = 0.01) -> Fill:
    """A fill for a feed no profile names: a tenth of the roster and a hundredth of everyone else, the columns
    all from ``complete``; clear key columns numbered per row."""
    kind = key_kind(contract)
    nr, no = city.nr(n_roster), city.no(n_other)
    salt = contract.table[-12:]
    one_each = kind == "person"
    source = city.heads(salt, nr, no) if kind == "household" else city.people(salt, nr, no, unique=one_each)
    cols = {
        k: f"'{k[:3].upper()}' || lpad(g.i::text, 10, '0')" for k in contract.key_columns() if k != "id_number_token"
    }
    return Fill(feed, source, {k: v for k, v in cols.items() if not k.endswith("_token")})
