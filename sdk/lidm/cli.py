"""The `lidm` command: parses, calls the SDK, renders. No logic lives only here."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lidm.config import Settings, get_settings
from lidm.errors import LidmError

app = typer.Typer(help="lidm: the low-income population data-sharing gateway.", no_args_is_help=True)
contracts_app = typer.Typer(
    help="Data contracts: list, show, grants, lint, diff, check, publish, export.", no_args_is_help=True
)
keys_app = typer.Typer(help="Keyring management.", no_args_is_help=True)
db_app = typer.Typer(help="Central database.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
console = Console()


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _print_results(results) -> None:  # type: ignore[no-untyped-def]
    """One row per batch with the invariant's three counts, then the quarantine reasons per batch."""
    table = Table(title="Batches")
    table.add_column("feed / source", no_wrap=True)
    table.add_column("status")
    for col in ("extracted", "loaded", "quarantined"):
        table.add_column(col, justify="right")
    for r in results:
        style = {"loaded": "green", "rejected": "red", "unchanged": "yellow"}.get(r.status, "")
        table.add_row(
            f"{r.feed}\n[dim]{r.source}[/]",
            f"[{style}]{r.status}[/]",
            f"{r.extracted:,}",
            f"{r.loaded:,}",
            f"{r.quarantined:,}",
        )
    console.print(table)
    for r in results:
        if r.status == "rejected":
            console.print(f"[red]{r.feed}[/] {r.source} rejected: {r.reason}")
        elif r.top_reasons:
            reasons = ", ".join(f"{code} {n}" for code, n in r.top_reasons)
            console.print(f"[bold]{r.feed}[/] quarantine reasons: {reasons}")


def _run_with_progress(fn):  # type: ignore[no-untyped-def]
    with _progress() as progress:
        tasks: dict[str, int] = {}

        def tick(feed: str, rows: int) -> None:
            if feed not in tasks:
                tasks[feed] = progress.add_task(feed, total=None)
            progress.advance(tasks[feed], rows)

        return fn(tick)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each batch does.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def demo(
    size: Annotated[int, typer.Option(help="People in the synthetic population.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic sources.")] = 20261127,
    bad: Annotated[int, typer.Option(help="Deliberately bad rows per source.")] = 5,
    home: Annotated[Path, typer.Option(help="Folder for demo sources, keys and the embedded database.")] = Path(
        ".lidm/demo"
    ),
) -> None:
    """Generate synthetic department sources and run both foundation feeds into the embedded database."""
    from lidm.demo import run_demo

    settings = get_settings()
    try:
        sources, results = _run_with_progress(
            lambda tick: run_demo(home, size=size, seed=seed, bad=bad, central_url=settings.central_url, progress=tick)
        )
    except LidmError as exc:
        _fail(exc)
    console.print(
        f"Sources: {sources.people:,} population rows (health DB), {sources.roster:,} roster rows (GBK drop); "
        f"bad rows injected: {sum(sum(v.values()) for v in sources.bad.values())}"
    )
    _print_results(results)
    console.print(f"Central database: {settings.central_url or (home / 'central.db')}")


@app.command()
def run(feed: Annotated[str, typer.Argument(help="Feed name, e.g. health.population.")]) -> None:
    """Run one feed: every pending batch, each loaded whole or rejected whole."""
    from lidm.pipeline import run_feed

    try:
        results = _run_with_progress(lambda tick: run_feed(feed, get_settings(), progress=tick))
    except LidmError as exc:
        _fail(exc)
    if not results:
        console.print(f"{feed}: nothing pending")
        return
    _print_results(results)
    if any(r.status == "rejected" for r in results):
        raise typer.Exit(code=1)


@app.command()
def feeds() -> None:
    """List registered adapters (feeds) and their sources."""
    from lidm.registry import adapters

    table = Table(title="Feeds")
    table.add_column("feed", no_wrap=True)
    for col in ("contract", "source"):
        table.add_column(col)
    for name, adapter in adapters().items():
        table.add_row(name, adapter.contract, adapter.source.describe())
    console.print(table)


@contracts_app.command("list")
def contracts_list() -> None:
    """Every contract in the catalogue."""
    catalog = _catalog()
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
    """One contract's fields with classification and protection."""
    try:
        c = _catalog()[contract_id]
    except LidmError as exc:
        _fail(exc)
    console.print(
        f"[bold]{c.id}[/] {c.version} — {c.title}\n{c.description}\n"
        f"key: {', '.join(c.key)}; mode: {c.update_mode.value}; freshness: {c.freshness}; table: {c.table}"
    )
    table = Table()
    table.add_column("field", no_wrap=True)
    for col in ("名称", "type", "required", "classification", "protection", "checks / values"):
        table.add_column(col)
    for f in c.fields:
        extra = ", ".join([*(ch.value for ch in f.checks), *(f.enum or ())])
        table.add_row(
            f.name,
            f.business_name or "",
            f.type.value,
            "yes" if f.required else "",
            f.classification.value,
            ", ".join(p.value for p in f.protection),
            extra,
        )
    console.print(table)


def _catalog():  # type: ignore[no-untyped-def]
    from lidm.contracts import load_catalog

    try:
        return load_catalog(get_settings().contracts_dir)
    except LidmError as exc:
        _fail(exc)


@contracts_app.command("grants")
def contracts_grants(consumer: Annotated[str, typer.Argument(help="Consumer id, e.g. medical_insurance.")]) -> None:
    """What one consumer may read: per dataset the fields, their level, the rows and the purpose."""
    catalog = _catalog()
    try:
        grants = catalog.grants_for(consumer)
    except LidmError as exc:
        _fail(exc)
    member = catalog.consumers.members[consumer]
    scope = f" (districts {', '.join(member.districts)})" if member.districts else ""
    table = Table(title=f"{consumer}: {member.name}{scope} — {len(grants)} datasets")
    table.add_column("dataset", no_wrap=True)
    table.add_column("fields (level)")
    table.add_column("rows")
    table.add_column("purpose")
    for c, g in grants:
        levels = ", ".join(f"{name}={lvl.value}" for name, lvl in g.fields.items())
        via = f"\n[dim]via {g.consumer}[/]" if g.consumer != consumer else ""
        table.add_row(c.id + via, levels, g.rows.value, g.purpose or "[red]none[/]")
    console.print(table)


@contracts_app.command("lint")
def contracts_lint(strict: Annotated[bool, typer.Option(help="Fail on warnings too.")] = False) -> None:
    """Catalogue-wide checks: grants against protections, purposes, code lists, the city's divisions."""
    from lidm.contracts.lint import lint

    catalog = _catalog()
    findings = lint(catalog, get_settings().city_prefix)
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
        _fail(exc)
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

    directory = get_settings().contracts_dir or default_contracts_dir()
    problems = check_against_lock(_catalog(), directory)
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

    directory = get_settings().contracts_dir or default_contracts_dir()
    catalog = _catalog()
    if check_against_lock(catalog, directory):
        _fail(LidmError("the gate fails; run `lidm contracts check` and bump versions first"))
    console.print(f"published {len(catalog)} contracts to {write_lock(catalog, directory)}")


@contracts_app.command("export")
def contracts_export(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("build/catalogue"),
    fmt: Annotated[str, typer.Option("--format", help="jsonschema or html.")] = "html",
) -> None:
    """Export the catalogue: one JSON Schema per contract, or a static HTML catalogue."""
    from lidm.contracts.export import html, jsonschema

    catalog = _catalog()
    if fmt == "jsonschema":
        paths = jsonschema.write(catalog, out, get_settings().city_prefix)
    elif fmt == "html":
        paths = html.write(catalog, out)
    else:
        _fail(LidmError(f"unknown format {fmt}; use jsonschema or html"))
    console.print(f"wrote {len(paths)} file(s) to {out}")


@keys_app.command("init")
def keys_init(
    path: Annotated[Path | None, typer.Option(help="Where to write the keyring (default: LIDM_KEYRING).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing keyring (data protected by it is lost).")] = False,
) -> None:
    """Make a new keyring (token, encryption and signing keys) readable by its owner only."""
    from lidm.keys import generate_keyring, write_keyring

    target = path or get_settings().effective_keyring
    try:
        keyring = generate_keyring()
        write_keyring(keyring, target, overwrite=force)
    except LidmError as exc:
        _fail(exc)
    console.print(f"keyring written to {target} (mode 600): {keyring!r}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the central database to the newest migration."""
    from lidm.central import connect, migrate

    settings: Settings = get_settings()
    engine = connect(settings)
    migrate(engine)
    console.print(f"central database at head: {engine.url.render_as_string(hide_password=True)}")


@db_app.command("revision")
def db_revision(message: Annotated[str, typer.Option("-m", "--message", help="What the migration does.")]) -> None:
    """Autogenerate a migration from the contracts against a scratch database at head (for maintainers)."""
    import tempfile

    from lidm.central import connect, full_metadata, migrate
    from lidm.central.db import revision

    with tempfile.TemporaryDirectory() as tmp:
        engine = connect(Settings(home=Path(tmp)))
        migrate(engine)
        path = revision(engine, message, full_metadata(_catalog()))
        engine.dispose()
    console.print(f"wrote {path}: review it, then commit" if path else "nothing to migrate")
