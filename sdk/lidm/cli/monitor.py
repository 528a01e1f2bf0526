"""`lidm monitor` (rules, runs, pushes, dispositions) and `lidm report` (put on `app` by `lidm.cli`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lidm.cli.common import JsonOption, console, current_settings, fail, print_json_lines, wide
from lidm.errors import LidmError
from lidm.monitor.readable import URGENCY_COLOURS

monitor_app = typer.Typer(
    help="The monitoring loop: rules, runs, warnings pushed to departments, dispositions taken in.",
    no_args_is_help=True,
)


class ReportFormat(StrEnum):
    html = "html"
    xlsx = "xlsx"


def report_command(
    out: Annotated[
        Path | None,
        typer.Option(
            help="File to write; <home>/reports/lidm-report-<date>.html, or lidm-monthly-<YYYYMM>.xlsx, by default."
        ),
    ] = None,
    rebuild: Annotated[bool, typer.Option(help="Bring the happiness list up to date first.")] = True,
    format: Annotated[  # the option is --format
        ReportFormat,
        typer.Option(
            "--format", help="html: the analyst's report; xlsx: the monthly statistical tables (民政统计月报)."
        ),
    ] = ReportFormat.html,
    month: Annotated[
        str | None,
        typer.Option(help="Month of the xlsx tables (YYYY-MM); the current month in the city's time zone by default."),
    ] = None,
) -> None:
    """The analyst's HTML report (warnings, dispositions, the happiness and needs lists), or with --format xlsx the
    monthly statistical workbook in the civil-affairs bureau's own form."""
    try:
        if format is ReportFormat.xlsx:
            from lidm.monitor.monthly import Month
            from lidm.monitor.monthly_sheets import monthly_report

            path = monthly_report(current_settings(), Month.parse(month) if month else None, out, rebuild=rebuild)
        else:
            from lidm.monitor.report import report

            if month:
                raise LidmError("--month applies to --format xlsx; the HTML report covers everything loaded")
            path = report(current_settings(), out, rebuild=rebuild)
    except LidmError as exc:
        fail(exc)
    console.print(f"report written to {path}")


@monitor_app.command("rules")
def monitor_rules(as_json: JsonOption = False) -> None:
    """Every monitoring rule: what it looks for, who must act, how fast, which feeds it reads."""
    from lidm.contracts.load import load_catalog
    from lidm.monitor import load_rules
    from lidm.monitor.rules import default_rules_dir
    from lidm.monitor.scenarios import GROUPS, load_scenarios, per_scenario

    settings = current_settings()
    try:
        rules = load_rules(
            settings.rules_dir, catalog=load_catalog(settings.contracts_dir), params=settings.rule_params
        )
    except LidmError as exc:
        fail(exc)
    if as_json:
        print_json_lines(r.as_row() for r in rules)
        return
    table = Table(title="Monitoring rules")
    cols = ("rule", "scenario", "group", "hardship", "department", "urgency", "due in", "quiet", "feeds", "params")
    for col in cols:
        table.add_column(col)
    for r in rules:
        values = r.param_values
        params = "\n".join(f"{k}={values[k]} ({p.type} {p.min}..{p.max})" for k, p in r.params.items())
        table.add_row(
            r.id,
            r.scenario or "",
            r.group_of.value,
            r.hardship_type,
            r.department,
            f"{r.urgency.value} ({URGENCY_COLOURS[r.urgency.value]})",  # 红/橙/黄 as the pushed warnings say
            r.due_text,
            r.quiet_text,
            "\n".join(r.feeds),
            params,
        )
    wide().print(table)
    console.print('quiet: how long a "not eligible" answer holds back the same warning for the same person')
    _calendar_line(settings, rules)
    scenarios = load_scenarios(settings.rules_dir or default_rules_dir())
    summary = Table(title=f"Rules per section of the policy {scenarios.document.split(' ')[0]}".rstrip())
    for col in ("scenario", "title", "rules", "needs more help", "may qualify", "may leave"):
        summary.add_column(col, justify="right" if col not in ("scenario", "title") else "left")
    for row in per_scenario(rules, scenarios):
        summary.add_row(
            row["scenario"],
            row["title"],
            *(str(row[k]) for k in ("rules", "needs_more_help", "may_qualify", "may_leave")),
        )
    summary.add_row("", "total", str(len(rules)), *(str(sum(r.group_of.value == g for r in rules)) for g in GROUPS))
    wide().print(summary)


def _calendar_line(settings: Any, rules: list[Any]) -> None:
    """Which official calendar counts the working days, and whether it reaches today's deadlines: told here, where
    an operator looks, before a run is refused for it."""
    from rich.markup import escape

    from lidm import workdays
    from lidm.errors import ConfigError
    from lidm.monitor.lifecycle import city_now
    from lidm.monitor.rules import due_dates

    console.print(f"working days (个工作日) are counted on {workdays.coverage_text()}")
    calendar = workdays.Calendar(settings.workdays_assume_weekdays_through)
    try:
        due_dates(rules, city_now(settings.timezone).date(), calendar)
    except ConfigError as exc:
        console.print(f"[bold red]today's run would be refused:[/] {escape(str(exc))}")


@monitor_app.command("run")
def monitor_run(
    as_of: Annotated[
        str | None, typer.Option(help="Day the rules are evaluated for (YYYY-MM-DD); today by default.")
    ] = None,
    rule: Annotated[list[str] | None, typer.Option(help="Only this rule (repeatable).")] = None,
) -> None:
    """Evaluate the rules: raise new warnings, close those whose condition went away, mark overdue ones."""
    from datetime import date as _date

    from lidm.monitor import monitor

    try:
        day = _date.fromisoformat(as_of) if as_of else None
    except ValueError:
        fail(LidmError(f"--as-of {as_of!r} is not a date like 2026-11-27"))
    try:
        result = monitor(current_settings(), as_of=day, rule_ids=rule)
    except LidmError as exc:
        fail(exc)
    print_monitor(result)


def print_monitor(result) -> None:  # type: ignore[no-untyped-def]
    table = Table(title=f"Monitoring run {result.run_id[:8]} for {result.as_of}")
    for col in ("rule", "matched", "raised", "suppressed", "closed", "open"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for rule_id, c in result.counts.items():
        table.add_row(rule_id, f"{c.matched:,}", f"{c.raised:,}", f"{c.suppressed:,}", f"{c.closed:,}", f"{c.open:,}")
    wide().print(table)
    if held := sum(c.suppressed for c in result.counts.values()):
        console.print(
            f"{held:,} warnings held back: flagged again within a rule's quiet period after a not_eligible answer, "
            "their data unchanged (quiet_after_not_eligible)"
        )
    if result.overdue:
        console.print(f"{result.overdue:,} warnings became overdue")


@monitor_app.command("push")
def monitor_push(
    department: Annotated[
        list[str] | None,
        typer.Option(help="Only this department (all its offices) or office (education.yuelu); repeatable."),
    ] = None,
) -> None:
    """Push each office its new warnings through its channel, only the fields its grant allows.

    A warning goes to the office of its rule's level where the person lives: the city bureau, the county bureau or
    the street office (contracts/consumers.yaml); offices below the city bureau with nothing new are not listed."""
    from lidm.monitor.push import PushFailed, push_warnings

    failed = None
    try:
        results = push_warnings(current_settings(), departments=department)
    except PushFailed as exc:
        results, failed = exc.results, exc
    except LidmError as exc:
        fail(exc)
    table = Table(title="Warnings pushed")
    for col in ("office", "status", "channel", "warnings", "notices", "push"):
        table.add_column(col, justify="right" if col in ("warnings", "notices") else "left")
    for r in results:
        style = {"pushed": "green", "failed": "red", "no_grant": "red"}.get(r.status, "dim")
        table.add_row(
            r.consumer or r.department,
            f"[{style}]{r.status}[/]",
            r.channel or "",
            f"{r.warnings:,}",
            f"{r.notices:,}",  # closures and overdue warnings told
            (r.push_id or "")[:8],
        )
    wide().print(table)
    for r in results:
        if r.reason:
            console.print(f"[red]{r.consumer or r.department}[/]: {r.reason}")
    if failed is not None:
        raise typer.Exit(code=2)


@monitor_app.command("collect")
def monitor_collect(
    department: Annotated[
        list[str] | None,
        typer.Option(help="Only this department (all its offices) or office (education.yuelu); repeatable."),
    ] = None,
) -> None:
    """Take in the offices' acknowledgements and dispositions; refused rows are kept with their reason.

    Exits 1 when a file was refused whole (the department must send it again; its outbox has the result), 2 when
    a channel could not be read."""
    from lidm.monitor.feedback import CollectFailed, collect_dispositions

    failed = None
    try:
        result = collect_dispositions(current_settings(), departments=department)
    except CollectFailed as exc:
        result, failed = exc.result, exc
    except LidmError as exc:
        fail(exc)
    cols = ("files", "rejected_files", "acknowledged", "applied", "refused", "unchanged")
    table = Table(title="Acknowledgements and dispositions taken in")
    table.add_column("office")
    for col in cols:
        table.add_column(col.replace("_", " "), justify="right")
    for dept in result.departments():
        counts = result.totals(dept)
        table.add_row(dept, *(f"{counts[c]:,}" for c in cols))
    wide().print(table)
    if result.refusals:
        console.print("refused: " + ", ".join(f"{code} {n:,}" for code, n in result.refusals.most_common()))
    for dept, why in result.failed.items():
        console.print(f"[red]{dept}[/]: {why}")
    refused = result.refused_files()
    for s in refused:
        console.print(f"[red]{s.department}[/]: {s.source.rsplit('/', 1)[-1]} refused whole: {s.reason}")
    if failed is not None:
        raise typer.Exit(code=2)
    if refused:
        console.print(
            f"[red]{len(refused)} file(s) refused whole[/]: each department finds why in its outbox "
            "(result_<file>.csv) and sends the file again"
        )
        raise typer.Exit(code=1)


@monitor_app.command("needs")
def monitor_needs(as_json: JsonOption = False) -> None:
    """Rebuild the needs list (需求清单) from the open warnings and the home visits, and its summary for charity
    (per street and kind of need, small counts withheld)."""
    from lidm.monitor.needs import needs

    try:
        counts = needs(current_settings())
    except LidmError as exc:
        fail(exc)
    if as_json:
        print_json_lines([counts])
        return
    table = Table(title="Needs list (需求清单) and its summary")
    for col in ("table", "live", "inserted", "updated", "retired"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for name, prefix in (("platform.needs", "needs"), ("platform.needs_summary", "summary")):
        table.add_row(name, *(f"{counts[f'{prefix}_{k}']:,}" for k in ("live", "inserted", "updated", "retired")))
    wide().print(table)
    console.print(f"{counts['summary_withheld']:,} summary cells withheld (fewer households than the threshold)")
