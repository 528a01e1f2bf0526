"""SQL text for the statements lidm builds itself (grants, releases, extracts): quoted names and literals.

Only values lidm decides (role, schema, table and column names, comments) go through here; a consumer's or a
department's value never becomes SQL text, it is always a bound parameter.
"""

from __future__ import annotations


def ident(name: str) -> str:
    """A quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A string literal (standard_conforming_strings, on since PostgreSQL 9.1)."""
    return "'" + value.replace("'", "''") + "'"
