"""Warnings as a person reads them: the contract's Chinese names and labels, due dates in words.

The machine file of a push keeps field names and codes, because systems read it. The files beside it for the
department's officers take their words from the contract: each header is the field's ``businessName`` and each
code its enum ``label``, so changing a word is a contract edit, not a code change. Urgency gets its colour
(红/橙/黄) beside 高/中/低, a due date says how many days are left or how late it is, and a pseudonym shows only
its first characters (it is the same pseudonym as in the machine file, which systems match on).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from lidm.cells import csv_cell, text_value
from lidm.contracts.model import Contract, Field, GrantLevel, LogicalType

# Colour of each urgency code, the way warning levels are named in government notices.
URGENCY_COLOURS = {"high": "红", "medium": "橙", "low": "黄"}
PSEUDONYM_SHOWN = 8  # characters of a pseudonym a person sees; enough to tell households apart in one file


def due_in_words(due: date, today: date) -> str:
    """'2026年12月11日（还剩5天）', '（今天到期）' or '（已逾期3天）': the date a person must act by, and how near."""
    days = (due - today).days
    when = f"{due.year}年{due.month}月{due.day}日"
    if days > 0:
        return f"{when}（还剩{days}天）"
    if days == 0:
        return f"{when}（今天到期）"
    return f"{when}（已逾期{-days}天）"


def as_date(value: Any) -> date | None:
    """A date from a database value or its ISO text; None for none."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


class Readable:
    """Chinese header and value of each field of one contract, for the files people read."""

    def __init__(self, contract: Contract, today: date, consumers: Any = None) -> None:
        self.contract = contract
        self.today = today
        self._fields = {f.name: f for f in contract.fields}
        self._consumers = consumers  # lidm.contracts.consumers.Consumers: office and place names, when known

    def header(self, name: str) -> str:
        """The field's businessName, else its name."""
        f = self._fields.get(name)
        return (f.business_name if f is not None else None) or name

    def label(self, name: str, code: Any) -> str:
        """The enum label of a code (urgency with its colour); a code the contract does not list stays as it is."""
        if code is None or code == "":
            return ""
        f = self._fields.get(name)
        labels = dict(zip(f.enum or (), f.enum_labels or (), strict=False)) if f is not None else {}
        text = labels.get(str(code)) or str(code)
        if name == "urgency" and str(code) in URGENCY_COLOURS:
            return f"{text}（{URGENCY_COLOURS[str(code)]}）"
        return text

    def value(self, f: Field, level: GrantLevel, value: Any) -> str:
        """One value as a person reads it: labels for codes, words for the due date, minutes for times."""
        if value is None or value == "":
            return ""
        if f.enum:
            return self.label(f.name, value)
        if f.name == "due_date":
            due = as_date(value)
            return due_in_words(due, self.today) if due else ""
        if self._consumers is not None and f.name == "target_consumer":
            member = self._consumers.members.get(str(value))
            return member.name.split(" / ")[0] if member else str(value)
        if self._consumers is not None and f.name in ("district_code", "street_code"):
            return self._consumers.place(str(value))
        if level is GrantLevel.TOKEN:
            return f"{str(value)[:PSEUDONYM_SHOWN]}…（化名）"
        if f.type is LogicalType.TIMESTAMP and isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M")
        return text_value(value)

    def table(
        self, fields: Sequence[tuple[Field, GrantLevel]], records: Sequence[dict[str, Any]]
    ) -> tuple[list[str], list[list[str]]]:
        """Headers and rows of the granted fields, in contract order, as people read them."""
        headers = [self.header(f.name) for f, _ in fields]
        rows = [[self.value(f, level, r.get(f.name)) for f, level in fields] for r in records]
        return headers, rows


def readable_csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A CSV for people: UTF-8 with BOM (a spreadsheet opens Chinese right), CRLF, no formula can start a cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
