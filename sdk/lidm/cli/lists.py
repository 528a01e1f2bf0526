"""`lidm monitor quality` and `lidm monitor projects`: the data quality of sharing departments, the project list."""

from __future__ import annotations

import typer
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


def projects_command(as_json: JsonOption = False) -> None:
    """项目清单: the city's assistance programmes (cash, in kind, services) and the rule outcomes and
    happiness-list sources that lead to each; warnings for helping rules that lead to none."""
    from lidm.monitor.projects import project_table

    try:
        projects, warnings = project_table(current_settings())
    except LidmError as exc:
        fail(exc)
    if as_json:
        print_json_lines(p.as_row() for p in projects)
        for w in warnings:
            typer.echo(f"warning: {w}", err=True)
        return
    table = Table(title="项目清单 / The project list")
    for col in ("project", "name", "department", "kind", "assistance kind", "section", "leads from", "sources"):
        table.add_column(col)
    for p in projects:
        kind = f"{p.kind} ({p.service_kind})" if p.service_kind else p.kind
        leads = "\n".join(f"{lead.rule} → {lead.outcome}" for lead in p.outcomes)
        table.add_row(p.id, p.name, p.department, kind, p.assistance_kind, p.section, leads, "\n".join(p.sources))
    wide().print(table)
    for w in warnings:
        console.print(f"warning: {w}", style="yellow", highlight=False)
