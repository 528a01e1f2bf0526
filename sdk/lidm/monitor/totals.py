"""The sums a monitoring run shares between rules: each `total` clause's people, made once per run.

Several rules ask the same sum (a person's policy-scope self-pay over a year past a threshold: high medical costs on
the roster, off it, of members who left, of the severely disabled). In a run each distinct sum is made once into a
temporary table of the tokens it holds for (analyzed on PostgreSQL, so the planner knows how few they are and probes
the subject by its key instead of scanning it), and every rule asking it joins that table. The tables go with the
run's transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


class Totals:
    """The run's sums, by the statement that makes them (its SQL and its values)."""

    def __init__(self, conn: sa.Connection, token_type: sa.types.TypeEngine[Any]) -> None:
        self._conn = conn
        self._type = token_type
        self._md = sa.MetaData()
        self._made: dict[tuple[str, tuple[tuple[str, str], ...]], sa.Table] = {}

    def table(self, over: sa.Select[Any]) -> sa.Table:
        """The temporary table of the tokens ``over`` selects (one column, ``k``): made on first use, then shared."""
        compiled = over.compile(dialect=self._conn.dialect)
        key = (str(compiled), tuple(sorted((name, repr(value)) for name, value in compiled.params.items())))
        found = self._made.get(key)
        if found is None:
            found = sa.Table(
                f"lidm_run_total_{len(self._made) + 1}",
                self._md,
                sa.Column("k", self._type, primary_key=True),
                prefixes=["TEMPORARY"],
                postgresql_on_commit="DROP",
            )
            found.drop(self._conn, checkfirst=True)  # SQLite keeps one past a rolled-back run on the connection
            found.create(self._conn)
            self._conn.execute(sa.insert(found).from_select(["k"], over))
            if self._conn.dialect.name == "postgresql":
                self._conn.execute(sa.text(f"ANALYZE {found.name}"))
            self._made[key] = found
        return found

    def drop(self) -> None:
        """Drop the run's tables (PostgreSQL drops them at commit anyway; SQLite keeps them on the connection)."""
        for table in self._made.values():
            table.drop(self._conn)
        self._made.clear()
