"""The pieces of the analyst's report page: escaping, numbers, tables, sections and the style sheet.

``monitor.report`` lays the page out from these; a section of its own (``monitor.quality``'s) uses them too.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


def e(value: Any) -> str:
    """A value as HTML text (None is empty)."""
    return html.escape("" if value is None else str(value))


def num(value: float | int) -> str:
    """A count with thousands separators, money with two decimals."""
    return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[int] = ()) -> str:
    """An HTML table (``numeric`` columns right-aligned), or a note that there is no data yet."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            text = num(v) if isinstance(v, int | float) and not isinstance(v, bool) else e(v)
            cells.append(f'<td class="num">{text}</td>' if i in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return '<p class="empty">暂无数据 / no data yet</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def household(key: str) -> str:
    """A household's key shortened for reading: kind (户 H / 人 P) and the first characters of its token."""
    kind, _, token = key.partition(":")
    return f"{kind}:{token[:10]}"


def section(anchor: str, title: str, why: str, *content: str) -> str:
    """A report section: its anchor, title, the one line saying why it matters, then its content."""
    return f'<section id="{anchor}"><h2>{e(title)}</h2><p class="why">{e(why)}</p>{"".join(content)}</section>'


CSS = """
body{font-family:PingFang SC,Microsoft YaHei,Noto Sans CJK SC,sans-serif;margin:0;color:#222;background:#fff}
header{padding:16px 24px;background:#f4f6f8;border-bottom:1px solid #dde}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:18px;margin:28px 0 4px;border-left:4px solid #4e79a7;padding-left:8px}
main{padding:0 24px 40px}
nav a{margin-right:4px;color:#2a5d9f;text-decoration:none;font-size:13px}
.meta,.why{color:#555;font-size:13px;margin:4px 0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:10px}
.card{border:1px solid #dde;border-radius:6px;padding:10px 14px;min-width:150px}
.card .v{font-size:22px;font-weight:600}
.card .k{font-size:12px;color:#666}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:12px}
.grid>*{min-width:0;overflow:hidden}
table{border-collapse:collapse;font-size:12px;margin:10px 0;width:100%}
th,td{border:1px solid #dde;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f6f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:#888;font-style:italic}
"""
