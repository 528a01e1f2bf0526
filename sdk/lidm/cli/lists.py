"""`lidm monitor quality` and `lidm monitor projects`: the data quality of sharing departments, the project list."""

from __future__ import annotations

from rich.table import Table

from lidm.cli.common import JsonOption, console, current_settings, fail, print_json_lines, wide
from lidm.errors import LidmError


def quality_command(as_json: JsonOption = False) -> None:
    """比对数据质量（容错）: per sharing department, answers to warnings its data raised, and how many said the data
    compared wrongly (data_error)."""
    from lidm.monitor.quality import deployment_quality

    try:
        figures = deployment_quality(current_settings())
    except LidmError as exc:
        fail(exc)
    if as_json:
        print_json_lines(q.as_row() for q in figures.values())
        return
    table = Table(title="比对数据质量（容错）/ Quality of the shared data, per sharing department")
    for col in ("department", "answers", "data errors", "rate", "rules"):
        table.add_column(col, justify="right" if col in ("answers", "data errors", "rate") else "left")
    for q in figures.values():
        table.add_row(q.department, f"{q.dispositions:,}", f"{q.data_errors:,}", f"{q.rate:.1%}", ", ".join(q.rules))
    wide().print(table)
    if not figures:
        console.print("no final disposition taken yet")
