"""How values are written into files handed to people: ISO dates, plain decimals, no spreadsheet formulas.

Warning pushes (lidm.monitor.push) and consumer extracts (lidm.central.export) write the same way.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any


def text_value(value: Any) -> str:
    """A value as written in a channel file: ISO dates and times, plain decimals, empty for none."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A text that a spreadsheet would read as a formula gets a leading apostrophe (CSV injection)."""
    text = text_value(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text
