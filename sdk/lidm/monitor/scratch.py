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


def table_as(conn: sa.Connection, name: str, columns: list[sa.Column[Any]], select: sa.Select[Any]) -> sa.Table:
    """A temporary table ``name`` of ``select``'s rows; ``columns`` (the select's labels, in its order, with the types
    later statements bind against) describe it. Gone with the transaction on PostgreSQL; ``drop`` it on SQLite."""
    if [c.name for c in columns] != [c.name for c in select.selected_columns]:
        raise ValueError(f"{name}: the columns and the SELECT's labels differ")
    if conn.dialect.name == "sqlite":  # SQLite keeps a temporary table past a rolled-back run on the connection
        conn.execute(sa.text(f"DROP TABLE IF EXISTS temp.{name}"))
    conn.execute(_CreateAs(name, select))
    return sa.Table(name, sa.MetaData(), *columns)


def count(conn: sa.Connection, table: sa.Table) -> int:
    """Rows in a run's table: counted, not read from the driver (what a CREATE TABLE … AS reports varies by one)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def drop(conn: sa.Connection, table: sa.Table) -> None:
    conn.execute(sa.text(f"DROP TABLE {table.name}"))
