"""A monitoring run's temporary tables, each made from its SELECT by one CREATE TEMPORARY TABLE … AS.

PostgreSQL may plan the SELECT of a CREATE TABLE … AS in parallel (a rule probing the population for 300,000 roster
members, split between two workers and the leader), never the SELECT of an INSERT … SELECT. At 10M people the 30
rules' matches took 16.0 s as INSERT … SELECT and 11.6 s made this way (bench/monitor_rules.py; issue 21).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable


class _CreateAs(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, name: str, select: sa.Select[Any]) -> None:
        self.name = name
        self.select = select


@compiles(_CreateAs)
def _create_as(element: _CreateAs, compiler: Any, **kw: Any) -> str:
    on_commit = " ON COMMIT DROP" if compiler.dialect.name == "postgresql" else ""
    return f"CREATE TEMPORARY TABLE {element.name}{on_commit} AS {compiler.process(element.select, **kw)}"


def table(conn: sa.Connection, name: str, columns: list[sa.Column[Any]]) -> sa.Table:
    """An empty temporary table ``name`` of ``columns``, filled by the run (an evidence digest per person)."""
    _forget_stale(conn, name)
    made = sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
    made.create(conn)
    return made


def table_as(
    conn: sa.Connection, name: str, columns: list[sa.Column[Any]], select: sa.Select[Any], *, key: str
) -> sa.Table:
    """A temporary table ``name`` of ``select``'s rows; ``columns`` (the select's labels, in its order, with the types
    later statements bind against) describe it. Gone with the transaction on PostgreSQL; ``drop`` it on SQLite.

    ``key`` gets a unique index: a row per person is what the run counts on (a second one fails here, loudly), and
    the index is what a nested loop probes when the planner misjudges the other side. On a new deployment's warning
    tables, never analyzed, PostgreSQL took a rule's 35,784 fresh state rows for 1 and scanned the index-less matches
    once for each of them: 85 s for one rule (bench/monitor_rules.py at 10M people)."""
    if [c.name for c in columns] != [c.name for c in select.selected_columns]:
        raise ValueError(f"{name}: the columns and the SELECT's labels differ")
    _forget_stale(conn, name)
    conn.execute(_CreateAs(name, select))
    table = sa.Table(name, sa.MetaData(), *columns)
    sa.Index(f"{name}_key", table.c[key], unique=True).create(conn)
    return table


def count(conn: sa.Connection, table: sa.Table) -> int:
    """Rows in a run's table: counted, not read from the driver (what a CREATE TABLE … AS reports varies by one)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def empty(conn: sa.Connection, table: sa.Table) -> None:
    """Empty a run's table for the next rule (TRUNCATE on PostgreSQL: no dead rows to skip later)."""
    conn.execute(sa.text(f"TRUNCATE {table.name}") if conn.dialect.name == "postgresql" else sa.delete(table))


def drop(conn: sa.Connection, table: sa.Table) -> None:
    conn.execute(sa.text(f"DROP TABLE {table.name}"))


def _forget_stale(conn: sa.Connection, name: str) -> None:
    """SQLite keeps a temporary table past a rolled-back run on the same connection; PostgreSQL drops it with the
    transaction (and a bare DROP there could find a permanent table of the same name)."""
    if conn.dialect.name == "sqlite":
        conn.execute(sa.text(f"DROP TABLE IF EXISTS temp.{name}"))
