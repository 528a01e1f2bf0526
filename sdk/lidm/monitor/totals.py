"""The sums a monitoring run shares between rules: each `total` clause's people, made once per run.

Several rules ask the same sum (a person's policy-scope self-pay over a year past a threshold: high medical costs on
the roster, off it, of members who left, of the severely disabled), some with another threshold. A run compiles all
its rules first, each `total` clause asking ``table`` for the temporary table of the people whose rows sum past its
limit; ``make`` then reads each distinct set of rows once: summed per person into a table of those past the lowest
limit asked of them, from which each limit's table of tokens is made (analyzed on PostgreSQL, so the planner knows
how few they are and probes the subject by its key instead of scanning it). Every rule asking joins its table. The
tables go with the run's transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from lidm.monitor import scratch

_Key = tuple[str, tuple[tuple[str, str], ...]]


class Totals:
    """The run's sums, by the rows they sum (their SQL and values) and the limit the sum must pass."""

    def __init__(self, conn: sa.Connection, token_type: sa.types.TypeEngine[Any]) -> None:
        self._conn = conn
        self._type = token_type
        self._md = sa.MetaData()
        self._rows: dict[_Key, sa.Select[Any]] = {}
        self._asked: dict[tuple[_Key, Decimal | int], sa.Table] = {}
        self._made: list[sa.Table] = []

    def table(self, rows: sa.Select[Any], limit: Decimal | int) -> sa.Table:
        """The temporary table (one column, ``k``) of the people whose ``rows`` (columns ``k``, the person, and
        ``v``, what is summed) sum past ``limit`` (0 or more): named now, filled by ``make`` before a rule runs."""
        if limit < 0:
            raise ValueError("a shared sum needs a limit of 0 or more: a person without rows passes a negative one")
        compiled = rows.compile(dialect=self._conn.dialect)
        key = (str(compiled), tuple(sorted((name, repr(value)) for name, value in compiled.params.items())))
        self._rows.setdefault(key, rows)
        found = self._asked.get((key, limit))
        if found is None:
            found = self._temporary([sa.Column("k", self._type)])
            self._asked[(key, limit)] = found
        return found

    def make(self) -> None:
        """Fill every table asked for: each distinct set of rows is read and summed once."""
        made = {t.name for t in self._made}
        for key, rows in self._rows.items():
            limits = sorted((limit, t) for (k, limit), t in self._asked.items() if k == key and t.name not in made)
            if not limits:
                continue
            r = rows.subquery("r")
            total = sa.func.sum(r.c.v)
            past = sa.select(r.c.k, total.label("total")).where(r.c.k.is_not(None)).group_by(r.c.k)
            past = past.having(total > limits[0][0])
            with self._sorted():
                if len(limits) == 1:  # asked once: the tokens straight from the sum
                    self._fill(limits[0][1], sa.select(past.subquery().c.k))
                    continue
                sums = self._temporary([sa.Column("k", self._type), sa.Column("total", _sum_type(r.c.v.type))])
                self._fill(sums, past)
            for limit, table in limits:
                self._fill(table, sa.select(sums.c.k).where(sums.c.total > limit))

    def drop(self) -> None:
        """Drop the run's tables (PostgreSQL drops them at commit anyway; SQLite keeps them on the connection)."""
        for table in self._made:
            scratch.drop(self._conn, table)
        self._made.clear()

    @contextmanager
    def _sorted(self) -> Iterator[None]:
        """Sum by sorting, not hashing (PostgreSQL): a hash of exact sums takes far more memory than the planner
        counts (131 MB for 1.3M people, spilled in 21 batches: 3.3 s), where a parallel sort and merge took 1.8 s
        (bench/monitor_rules.py at 10M people). Restored for the rules after."""
        if self._conn.dialect.name != "postgresql":
            yield
            return
        before = self._conn.execute(sa.select(sa.func.current_setting("enable_hashagg"))).scalar_one()
        self._conn.execute(sa.select(sa.func.set_config("enable_hashagg", "off", True)))
        try:
            yield
        finally:
            self._conn.execute(sa.select(sa.func.set_config("enable_hashagg", before, True)))

    def _temporary(self, cols: list[sa.Column[Any]]) -> sa.Table:
        name = f"lidm_run_total_{len(self._md.tables) + 1}"
        return sa.Table(name, self._md, *cols)  # named now, made by _fill (CREATE TEMPORARY TABLE … AS)

    def _fill(self, table: sa.Table, select: sa.Select[Any]) -> None:
        # CREATE TABLE … AS (lidm.monitor.scratch), then the key index the rules probe: a sum over a city's medical
        # settlements may be planned in parallel there, never in an INSERT … SELECT.
        scratch.table_as(self._conn, table.name, [sa.Column(c.name, c.type) for c in table.c], select, key="k")
        self._made.append(table)
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(sa.text(f"ANALYZE {table.name}"))


def _sum_type(summed: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    """What a sum of the column is kept as: exact, and wide enough (an integer column sums past its type)."""
    if isinstance(summed, sa.Float):
        return summed
    return sa.Numeric() if isinstance(summed, sa.Integer | sa.Numeric) else summed
