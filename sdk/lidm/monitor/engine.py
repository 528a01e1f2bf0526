"""Compile a rule into one set-based SELECT over the central database (SQLAlchemy Core, any dialect)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lidm.central.schema import bytes_min, dataset_table
from lidm.contracts.model import SEALED, Contract, LogicalType
from lidm.errors import RuleError

if TYPE_CHECKING:  # the rule model is above: rules.py compiles every rule it loads with this module
    from lidm.monitor.rules import Clause, Rule

# Columns a warning copies from its subject row when the subject's contract has them. ``_sealed`` is the subject
# row's sealed message, bound to the subject's contract (warning_state.sealed_by): the push opens the fields granted.
SUBJECT_COLUMNS = (
    SEALED,
    "id_number_masked",
    "name_masked",
    "household_id_token",
    "district_code",
    "street_code",
)
BINARY_COLUMNS = (SEALED, "household_id_token")  # PostgreSQL has no min(bytea): lidm.central.schema.bytes_min


@dataclass(frozen=True)
class Part:
    """One condition of a rule, named so a closed warning can say which one stopped holding."""

    kind: str  # subject | match | match_any | absent
    feed: str
    condition: sa.ColumnElement[bool]

    def describe(self, holds: bool) -> str:
        if self.kind == "subject":
            return f"no longer selected in {self.feed} (left the roster, status changed or row retired)"
        if self.kind == "absent":
            return f"now found in {self.feed}"
        return f"no longer found in {self.feed}"


class Compiled:
    """A rule compiled against the catalogue for one run day: its subject table and its conditions."""

    def __init__(
        self,
        rule: Rule,
        catalog: Any,
        as_of: date,
        levels: Sequence[str] = ("city", "county", "street"),
        totals: Any = None,
    ) -> None:
        """``totals`` (lidm.monitor.totals.Totals, in a monitoring run) makes each `total` clause's sum once per run
        and hands back its table (filled by Totals.make before the rule runs); without it the sum is part of the
        rule's own query."""
        self.rule = rule
        self._totals = totals
        self.as_of = as_of
        self.levels = tuple(levels)  # where warnings may be routed (LIDM_ROUTING_LEVELS)
        self._catalog = catalog
        self._md = sa.MetaData()
        self._n = 0
        contract = catalog[rule.subject.feed]
        self.subject_contract = contract
        self.subject = self._table(contract).alias("s")
        s = self.subject
        self.parts: list[Part] = [
            Part(
                "subject",
                rule.subject.feed,
                sa.and_(
                    s.c._retired_batch.is_(None),
                    s.c.id_number_token.is_not(None),
                    *self._where(contract, s, rule.subject.where),
                ),
            )
        ]
        for clause in rule.match:
            self.parts.append(Part("match", clause.feed, self._exists(clause)))
        if rule.match_any:
            self.parts.append(
                Part(
                    "match_any", " or ".join(c.feed for c in rule.match_any), sa.or_(*map(self._exists, rule.match_any))
                )
            )
        for clause in rule.absent:
            self.parts.append(Part("absent", clause.feed, ~self._exists(clause)))

    @property
    def condition(self) -> sa.ColumnElement[bool]:
        return sa.and_(*(p.condition for p in self.parts))

    @property
    def one_row_a_person(self) -> bool:
        """The subject is keyed by the person's token: a match is one row, with nothing to group or deduplicate.
        Grouping anyway made PostgreSQL read the roster in key order through its index, one random page a row
        (bench/monitor_rules.py at 10M people: 0.4-0.5 s a rule instead of a parallel scan)."""
        return self.subject_contract.key_columns() == ["id_number_token"]

    def matches(self) -> sa.Select[Any]:
        """One row per matching person: token, category and what a warning copies from the subject."""
        s = self.subject
        one = self.one_row_a_person
        cols: list[sa.ColumnElement[Any]] = [s.c.id_number_token.label("subject_token")]
        category = s.c[self.rule.subject.category] if self.rule.subject.category else sa.null()
        cols.append((category if one else sa.func.min(category)).label("low_income_category"))
        for name in SUBJECT_COLUMNS:
            binary = name in BINARY_COLUMNS
            if name not in s.c:
                value = sa.cast(sa.null(), sa.LargeBinary) if binary else sa.cast(sa.null(), sa.String)
            elif one:
                value = s.c[name]
            else:
                value = bytes_min(s.c[name]) if binary else sa.func.min(s.c[name])
            cols.append(value.label(name))
        select = sa.select(*cols).where(self.condition)
        return select if one else select.group_by(s.c.id_number_token)

    def tokens(self) -> sa.Select[Any]:
        s = self.subject
        select = sa.select(s.c.id_number_token).where(self.condition)
        return select if self.one_row_a_person else select.distinct()

    def holding(self, part: Part, tokens: sa.Select[Any] | sa.ScalarSelect[Any] | Any) -> sa.Select[Any]:
        """Tokens among ``tokens`` for which one part (with the subject row still there) holds."""
        s = self.subject
        base = self.parts[0].condition if part is not self.parts[0] else sa.true()
        return sa.select(s.c.id_number_token).where(s.c.id_number_token.in_(tokens), base, part.condition).distinct()

    def evidence(self, tokens: sa.Select[Any] | Any) -> list[sa.Select[Any]]:
        """What the rule reads of each person among ``tokens``: per feed it reads (subject, then each clause, in
        order), the person's live rows (the household's, for a clause joined on it) on the columns the rule reads
        there, whatever their values. Parameter-free and window-free, so a threshold or the passing days never
        change it, only the person's data; the first column is the person's token."""
        rule = self.rule
        contract = self.subject_contract
        s = self._table(contract).alias("e0")
        token = s.c.id_number_token.label("subject_token")
        person = [s.c.id_number_token.in_(tokens), s.c._retired_batch.is_(None)]
        read = {*rule.subject.where, *([rule.subject.category] if rule.subject.category else [])}
        for clause in (*rule.match, *rule.match_any, *rule.absent):
            for cond in clause.where.values():
                if isinstance(cond, dict):
                    read |= {v for op, v in cond.items() if op in ("differs_from_subject", "same_as_subject")}
        out = [sa.select(token, *(s.c[c] for c in sorted(read))).where(*person)]
        for i, clause in enumerate((*rule.match, *rule.match_any, *rule.absent), 1):
            t = self._table(self._catalog[clause.feed]).alias(f"e{i}")
            cols = set(clause.where) | (
                {clause.total.field, clause.total.date_field} - {None} if clause.total else set()
            )
            picked = [t.c[c] for c in sorted(cols)]
            if clause.on == "person":
                own = [t.c.id_number_token.in_(tokens), t.c._retired_batch.is_(None)]
                out.append(sa.select(t.c.id_number_token.label("subject_token"), *picked).where(*own))
            else:  # the household's rows, through the person's live subject rows
                joined = s.join(t, t.c.household_id_token == s.c.household_id_token)
                out.append(sa.select(token, *picked).select_from(joined).where(*person, t.c._retired_batch.is_(None)))
        return out

    # -- compiling clauses -------------------------------------------------------------------------
    def _table(self, contract: Contract) -> sa.Table:
        table = self._md.tables.get(contract.table)
        return table if table is not None else dataset_table(contract, self._md)

    def _exists(self, clause: Clause) -> sa.ColumnElement[bool]:
        self._n += 1
        contract: Contract = self._catalog[clause.feed]
        key = "id_number_token" if clause.on == "person" else "household_id_token"
        shared = clause.total is not None and self._totals is not None and not _reads_subject(clause)
        t = self._table(contract).alias("tot" if shared else f"c{self._n}")  # one name: one statement per total
        joined = t.c[key] == self.subject.c[key]
        conds = [t.c._retired_batch.is_(None), *self._where(contract, t, clause.where)]
        if clause.total is None:
            return sa.exists().where(joined, *conds)
        total = clause.total
        if total.date_field and total.within_days is not None:
            days = _days(self.rule.value(total.within_days, self.as_of), self.rule)
            conds.append(t.c[total.date_field] >= self._since(contract, total.date_field, days))
        limit = _coerce(contract, total.field, self.rule.value(total.greater_than, self.as_of), self.rule)
        if limit < 0:  # a person without rows sums to 0 and passes: only the per-person sum says so
            summed = sa.select(sa.func.coalesce(sa.func.sum(t.c[total.field]), 0)).where(joined, *conds)
            return summed.scalar_subquery() > limit
        # The people whose rows sum past the limit, summed once for everyone: joined (semi or anti) where the
        # clause is ANDed, else a hashed subplan or a per-person probe, as the planner costs them. A sum per
        # subject row instead (a correlated SUM) costs an index probe and an aggregate for every person of the
        # population (bench/monitor_rules.py: high_self_pay_not_on_roster). In a monitoring run the same sum is
        # made once for every rule that asks it (``totals``, lidm.monitor.totals).
        if shared:
            rows = sa.select(t.c[key].label("k"), t.c[total.field].label("v")).where(t.c[key].is_not(None), *conds)
            found = self._totals.table(rows, limit)
        else:
            over = (
                sa.select(t.c[key].label("k"))
                .where(t.c[key].is_not(None), *conds)
                .group_by(t.c[key])
                .having(sa.func.sum(t.c[total.field]) > limit)
            )
            found = over.subquery(f"sum{self._n}")
        return sa.exists().where(found.c.k == self.subject.c[key])

    def _where(self, contract: Contract, t: sa.FromClause, where: dict[str, Any]) -> list[sa.ColumnElement[bool]]:
        out: list[sa.ColumnElement[bool]] = []
        for name, cond in where.items():
            col = t.c[name]
            if not isinstance(cond, dict):
                value = self.rule.value(cond, self.as_of)
                if isinstance(value, list):
                    out.append(col.in_([_coerce(contract, name, v, self.rule) for v in value]))
                else:
                    out.append(col == _coerce(contract, name, value, self.rule))
                continue
            for op, raw in cond.items():
                if op == "differs_from_subject":
                    out.append(col != self.subject.c[raw])
                    continue
                if op == "same_as_subject":
                    out.append(col == self.subject.c[raw])
                    continue
                value = self.rule.value(raw, self.as_of)
                if op == "not":
                    values = value if isinstance(value, list) else [value]
                    out.append(
                        sa.or_(col.is_(None), col.not_in([_coerce(contract, name, v, self.rule) for v in values]))
                    )
                elif op in ("holds", "holds_none"):  # a comma-separated code list holds one of these codes
                    values = value if isinstance(value, list) else [value]
                    cell = sa.literal(",") + sa.func.coalesce(col, "") + sa.literal(",")
                    held = sa.or_(*(cell.contains(f",{v},", autoescape=True) for v in values))
                    out.append(held if op == "holds" else ~held)
                elif op == "null":
                    out.append(col.is_(None) if value else col.is_not(None))
                elif op == "within_days":
                    out.append(col >= self._since(contract, name, _days(value, self.rule)))
                else:
                    v = _coerce(contract, name, value, self.rule)
                    out.append({"gt": col > v, "ge": col >= v, "lt": col < v, "le": col <= v}[op])
        return out

    def _since(self, contract: Contract, name: str, days: int) -> date | datetime:
        day = self.as_of - timedelta(days=days)
        return datetime.combine(day, time()) if contract.field(name).type is LogicalType.TIMESTAMP else day


def _reads_subject(clause: Clause) -> bool:
    """The clause compares a field with the subject row's (differs_from_subject, same_as_subject)."""
    ops = {"differs_from_subject", "same_as_subject"}
    return any(isinstance(cond, dict) and ops & set(cond) for cond in clause.where.values())


def _coerce(contract: Contract, name: str, value: Any, rule: Rule) -> Any:
    """A rule literal in the type of the column it is compared with."""
    kind = contract.field(name).type
    try:
        if kind is LogicalType.BOOLEAN:
            if isinstance(value, bool):
                return value
            raise ValueError("expected true or false")
        if kind is LogicalType.INTEGER:
            return int(value)
        if kind is LogicalType.NUMBER:
            return Decimal(str(value))
        if kind is LogicalType.DATE:
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if kind is LogicalType.TIMESTAMP:
            return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return str(value)
    except (TypeError, ValueError, ArithmeticError) as exc:  # decimal.InvalidOperation is an ArithmeticError
        raise RuleError(f"rule {rule.id}: {contract.id}.{name}: {value!r} is not a {kind.value}: {exc}") from None


def _days(value: Any, rule: Rule) -> int:
    """A window in days; params are checked when they load, this catches a literal written in the rule file."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise RuleError(f"rule {rule.id}: within_days {value!r} is not a whole number of days")
    days = int(value)
    if days > 36500:
        raise RuleError(f"rule {rule.id}: within_days {days} is more than a century")
    return days


# How the rules' queries run on PostgreSQL, for the rest of the caller's transaction. No JIT: compiling a rule's
# plan (jit_above_cost is passed by any rule over a city's tables) took most of the rules' time at 1M people
# (bench/monitor_rules.py: 14.8 s with it, 5.4 s without). A larger work_mem keeps the sums of `total` clauses and
# the hashed subplans of `match_any` in memory instead of sorting on disk (external merge at 4MB) or probing per
# person. The cost of a random page stays the server's: costed near a sequential one (1.1), the planner summed a
# year of 2.85M medical settlements through their token index in token order (10.1 s instead of 2.8 s by a scan,
# bench/monitor_rules.py at 10M people) and probed per person where a parallel scan was 2-4× faster.
RULE_SESSION = {"jit": "off", "work_mem": "64MB"}


def tune(conn: sa.Connection) -> None:
    """Set RULE_SESSION for the rest of the connection's transaction (PostgreSQL; nothing elsewhere)."""
    if conn.dialect.name == "postgresql":
        for name, value in RULE_SESSION.items():
            conn.execute(sa.select(sa.func.set_config(name, value, True)))


def evaluate(conn: sa.Connection, rules: list[Rule], as_of: date, catalog: Any = None) -> dict[str, set[str]]:
    """Per rule, the tokens of the people it flags today (no warning written): for tests and dry runs."""
    if catalog is None:
        from lidm.contracts.load import load_catalog

        catalog = load_catalog()
    tune(conn)
    return {rule.id: set(conn.execute(Compiled(rule, catalog, as_of).tokens()).scalars()) for rule in rules}
