"""`lidm contracts`: the catalogue of data contracts, its grants, its checks and its publication."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lidm.cli.common import console, current_settings, fail, read_catalog, wide
from lidm.errors import LidmError

contracts_app = typer.Typer(
    help="Data contracts: list, show, grants, lint, diff, check, publish, export.", no_args_is_help=True
)


@contracts_app.command("list")
def contracts_list() -> None:
    """Every contract in the catalogue."""
    catalog = read_catalog()
    table = Table(title=f"Contracts ({len(catalog)})")
    table.add_column("id", no_wrap=True)
    for col in ("version", "title", "fields", "key", "mode", "freshness"):
        table.add_column(col)
    for c in catalog:
        table.add_row(
            c.id, c.version, c.title, str(len(c.fields)), ", ".join(c.key), c.update_mode.value, c.freshness or "-"
        )
    console.print(table)


@contracts_app.command("show")
def contracts_show(contract_id: Annotated[str, typer.Argument(help="e.g. health.population")]) -> None:
    """One contract's fields with classification, protection, codes and limits."""
    from lidm.contracts.model import Check

    try:
        c = read_catalog()[contract_id]
    except LidmError as exc:
        fail(exc)
    out = wide()
    watermark = f"; watermark field: {c.watermark}" if c.watermark else ""
    out.print(
        f"[bold]{c.id}[/] {c.version} — {c.title}\n{c.description}\n"
        f"key: {', '.join(c.key)}; mode: {c.update_mode.value}{watermark}; freshness: {c.freshness}; table: {c.table}"
    )
    table = Table()
    table.add_column("field", no_wrap=True)
    for col in ("名称", "type", "required", "classification", "protection", "checks / codes 标签", "limits"):
        table.add_column(col, overflow="fold")
    for f in c.fields:
        enum = [f"{v} {label}" if label else v for v, label in zip(f.enum or (), f.enum_labels or (), strict=False)]
        extra = ", ".join([*(ch.value for ch in f.checks), *(enum or f.enum or ())])
        limits = [
            f"length {f.min_length or 0}..{f.max_length}" if f.max_length else "",
            f"min {f.minimum}" if f.minimum is not None else "",
            f"max {f.maximum}" if f.maximum is not None else "",
            f"pattern {f.pattern}" if f.pattern else "",
            f"unit {f.unit}" if f.unit else "",
        ]
        table.add_row(
            f.name,
            f.business_name or "",
            f.type.value,
            "yes" if f.required else "",
            f.classification.value,
            ", ".join(p.value for p in f.protection),
            extra,
            "; ".join(x for x in limits if x),
        )
    out.print(table)
    if any(Check.DIVISION_CODE in f.checks for f in c.fields):
        out.print(
            f"division_code: a division code of this city, starting with {current_settings().city_prefix} "
            "(LIDM_CITY_PREFIX); its length is under limits."
        )


@contracts_app.command("grants")
def contracts_grants(consumer: Annotated[str, typer.Argument(help="Consumer id, e.g. medical_insurance.")]) -> None:
    """What one consumer may read: per dataset the fields, their level, the rows and the purpose. Where a grant of
    its own and a group's both reach it, its own applies; the group's is shown, marked not applied."""
    catalog = read_catalog()
    try:
        grants = catalog.grants_for(consumer)
    except LidmError as exc:
        fail(exc)
    member = catalog.consumers.members[consumer]
    scope = f" (districts {', '.join(member.districts)})" if member.districts else ""
    table = Table(title=f"{consumer}: {member.name}{scope} — {len(grants)} datasets")
    table.add_column("dataset", no_wrap=True)
    table.add_column("fields (level)")
    table.add_column("rows")
    table.add_column("purpose")
    own = {c.id for c, g in grants if g.consumer == consumer}
    for c, g in grants:
        levels = ", ".join(f"{name}={lvl.value}" for name, lvl in g.fields.items())
        via = f"\n[dim]via {g.consumer}[/]" if g.consumer != consumer else ""
        if c.id in own and g.consumer != consumer:
            via += "\n[yellow]not applied: its own grant applies[/]"
        table.add_row(c.id + via, levels, g.rows.value, g.purpose or "[red]none[/]")
    console.print(table)


@contracts_app.command("lint")
def contracts_lint(strict: Annotated[bool, typer.Option(help="Fail on warnings too.")] = False) -> None:
    """Catalogue-wide checks: grants against protections, purposes, code lists, the city's divisions."""
    from lidm.contracts.lint import lint

    catalog = read_catalog()
    findings = lint(catalog, current_settings().city_prefix)
    for f in findings:
        console.print(f"[{'red' if f.severity == 'error' else 'yellow'}]{f}[/]", highlight=False)
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    fields = sum(len(c.fields) for c in catalog)
    grants = sum(len(c.grants) for c in catalog)
    console.print(f"{len(catalog)} contracts, {fields} fields, {grants} grants: {errors} errors, {warnings} warnings")
    if errors or (strict and warnings):
        raise typer.Exit(code=1)


@contracts_app.command("diff")
def contracts_diff(
    old: Annotated[Path, typer.Argument(help="Old contract file.")],
    new: Annotated[Path, typer.Argument(help="New contract file.")],
) -> None:
    """Classify every change between two versions of a contract; exit 1 if the version does not fit them."""
    from lidm.contracts import load_contract
    from lidm.contracts.diff import diff
    from lidm.registry import adapters

    try:
        d = diff(load_contract(old), load_contract(new))
    except LidmError as exc:
        fail(exc)
    hit = [name for name, a in adapters().items() if a.contract == d.new.id]
    for change in d.changes:
        console.print(f"[{'red' if change.breaking else 'green'}]{change}[/]", highlight=False)
    console.print(
        f"{d.old.id} {d.old.version} -> {d.new.version}: {len(d.changes)} changes, "
        f"{sum(c.breaking for c in d.changes)} breaking; adapters hit: {', '.join(hit) or 'none'}"
    )
    problem = d.version_problem()
    if problem:
        console.print(f"[bold red]version:[/] {problem}")
        raise typer.Exit(code=1)


@contracts_app.command("check")
def contracts_check() -> None:
    """The breaking-change gate: compare the catalogue with the published snapshot (catalog.lock.json)."""
    from lidm.contracts.load import default_contracts_dir
    from lidm.contracts.lock import check_against_lock

    directory = current_settings().contracts_dir or default_contracts_dir()
    problems = check_against_lock(read_catalog(), directory)
    for d, reason in problems:
        console.print(f"[red]{d.new.id}[/] {d.old.version} -> {d.new.version}: {reason}")
        for change in d.changes:
            console.print(f"  {change}", highlight=False)
    if problems:
        raise typer.Exit(code=1)
    console.print("every contract's version fits its changes since publication")


@contracts_app.command("publish")
def contracts_publish() -> None:
    """Record the catalogue as published (after the gate passes), so later changes are judged against it."""
    from lidm.contracts.load import default_contracts_dir
    from lidm.contracts.lock import check_against_lock, write_lock

    directory = current_settings().contracts_dir or default_contracts_dir()
    catalog = read_catalog()
    if check_against_lock(catalog, directory):
        fail(LidmError("the gate fails; run `lidm contracts check` and bump versions first"))
    console.print(f"published {len(catalog)} contracts to {write_lock(catalog, directory)}")


@contracts_app.command("export")
def contracts_export(
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default build/catalogue; with odcs build/odcs/<consumer>).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonschema, html or odcs.")] = "html",
    consumer: Annotated[
        str | None, typer.Option(help="With --format odcs: the consumer whose views to describe, e.g. education.")
    ] = None,
) -> None:
    """Export the catalogue (one JSON Schema per contract, or a static HTML catalogue), or, with --format odcs and
    --consumer, one ODCS contract per view that consumer reads, to test with `datacontract test`."""
    from lidm.contracts.export import html, jsonschema

    catalog = read_catalog()
    settings = current_settings()
    if fmt == "odcs":
        if consumer is None:
            fail(LidmError("--format odcs describes one consumer's views; add --consumer <id from consumers.yaml>"))
        from lidm.central.grants.delivered import deliveries
        from lidm.contracts.export import odcs

        out = out or Path("build/odcs") / consumer
        try:
            got = deliveries(catalog, consumer)
            paths = odcs.write(got, odcs.Server.from_url(settings.effective_central_url), out, settings.city_prefix)
        except LidmError as exc:
            fail(exc)
        for d in got:
            if not d.columns:
                console.print(
                    f"[yellow]{d.contract.id}[/]: no view (every granted field is stored only encrypted: clear only "
                    "by re-identification), no contract",
                    highlight=False,
                )
    elif consumer is not None:
        fail(LidmError("--consumer goes with --format odcs; the other formats describe the whole catalogue"))
    elif fmt == "jsonschema":
        paths = jsonschema.write(catalog, out or Path("build/catalogue"), settings.city_prefix)
    elif fmt == "html":
        paths = html.write(catalog, out or Path("build/catalogue"))
    else:
        fail(LidmError(f"unknown format {fmt}; use jsonschema, html or odcs"))
    console.print(f"wrote {len(paths)} file(s) to {out or Path('build/catalogue')}")
