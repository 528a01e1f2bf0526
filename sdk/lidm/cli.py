"""The `lidm` command: parses, calls the SDK, renders. No logic lives only here."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lidm.config import Settings, get_settings
from lidm.errors import FeedBusy, LidmError
from lidm.redact import redact_url

app = typer.Typer(help="lidm: the low-income population data-sharing gateway.", no_args_is_help=True)
contracts_app = typer.Typer(
    help="Data contracts: list, show, grants, lint, diff, check, publish, export.", no_args_is_help=True
)
keys_app = typer.Typer(help="Keyring management.", no_args_is_help=True)
db_app = typer.Typer(help="Central database.", no_args_is_help=True)
adapter_app = typer.Typer(help="Adapters: list, scaffold a new one, verify one (the test kit).", no_args_is_help=True)
monitor_app = typer.Typer(
    help="The monitoring loop: rules, runs, warnings pushed to departments, dispositions taken in.",
    no_args_is_help=True,
)
app.add_typer(contracts_app, name="contracts")
app.add_typer(adapter_app, name="adapter")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(monitor_app, name="monitor")
drop_app = typer.Typer(help="Department side of a file drop: sign a drop file.", no_args_is_help=True)
app.add_typer(drop_app, name="drop")
grants_app = typer.Typer(
    help="Grants enforced by PostgreSQL: per consumer a role and a schema of views of what it may read.",
    no_args_is_help=True,
)
app.add_typer(grants_app, name="grants")
console = Console()


def _wide() -> Console:
    """Tables people read in full: when output is not a terminal (a pipe, a CI log), do not cut at 80."""
    return console if console.is_terminal else Console(width=max(console.width, 180))


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
    """Generate one synthetic city's department sources and run every feed into the embedded database."""
    from lidm.demo import run_demo

    settings = get_settings()
    try:
        sources, results = _run_with_progress(
            lambda tick: run_demo(home, size=size, seed=seed, bad=bad, central_url=settings.central_url, progress=tick)
        )
    except LidmError as exc:
        _fail(exc)
    kinds = sorted({w.kind.split("/")[0] for w in sources.written})
    console.print(
        f"Sources: {len(sources.written)} datasets ({', '.join(kinds)}), "
        f"{sum(w.rows for w in sources.written):,} rows, of which "
        f"{sum(sum(w.bad_kinds.values()) for w in sources.written):,} deliberately faulty"
    )
    _print_results(results)
    console.print(f"Central database: {redact_url(settings.central_url or str(home / 'central.db'))}")
    _demo_loop(home, settings.central_url, seed)


def _demo_loop(home: Path, central_url: str | None, seed: int) -> None:
    """The monitoring loop on the demo city, for the day the city was generated for."""
    from lidm.demo import demo_settings, run_loop
    from lidm.samples.people import REFERENCE_DATE

    try:
        loop = run_loop(demo_settings(home, central_url), as_of=REFERENCE_DATE, seed=seed)
    except LidmError as exc:
        _fail(exc)
    _print_monitor(loop.monitor)
    pushed = [p for p in loop.pushes if p.status == "pushed"]
    console.print(
        f"Pushed {sum(p.warnings for p in pushed):,} warnings to {len(pushed)} departments; they answered "
        f"{sum(r.acknowledged for r in loop.responses):,} acknowledgements and "
        f"{sum(sum(r.outcomes.values()) for r in loop.responses):,} dispositions"
    )
    totals = loop.collected.totals()
    console.print("Dispositions taken in: " + ", ".join(f"{k} {v:,}" for k, v in sorted(totals.items()) if v))
    console.print(f"Report (happiness list, needs, statistics): {loop.report}")


@app.command()
def run(
    feed: Annotated[str, typer.Argument(help="Feed name, e.g. health.population.")],
    since: Annotated[
        str | None,
        typer.Option(help="Incremental database feed: read again from this day or time (e.g. what reconcile found)."),
    ] = None,
) -> None:
    """Run one feed: every pending batch, each loaded whole or rejected whole."""
    from lidm.pipeline import run_feed

    try:
        results = _run_with_progress(lambda tick: run_feed(feed, get_settings(), progress=tick, since=since))
    except FeedBusy as exc:
        console.print(f"[yellow]already running:[/] {exc}", highlight=False)
        return
    except LidmError as exc:
        _fail(exc)
    if not results:
        console.print(f"{feed}: nothing pending")
        return
    _print_results(results)
    for r in results:
        if r.deferred:
            console.print(
                f"[yellow]{r.feed}[/]: {r.deferred:,} source row(s) are dated after the source's clock; held back, "
                "read once their time comes (a clock ahead, or a typing error in the update time?)",
                highlight=False,
            )
    if any(r.status == "rejected" for r in results):
        raise typer.Exit(code=1)


@app.command("reconcile")
def reconcile_command(
    feed: Annotated[str, typer.Argument(help="Feed name of a database source, e.g. health.medical_expenses.")],
) -> None:
    """Compare the feed's source with the central table (counts and keyed digests per day or key range, no values);
    name every day or key range with missing, extra or changed rows (exit 1 when any)."""
    from lidm.reconcile import reconcile

    try:
        r = reconcile(feed, get_settings())
    except LidmError as exc:
        _fail(exc)
    what = "day" if r.bucket_kind == "day" else "key range"
    console.print(
        f"{r.feed}: source {r.source_rows:,} rows, central {r.central_rows:,} live rows, {r.quarantined:,} held in "
        f"quarantine, {r.not_yet_read:,} after the watermark (not read yet): "
        + ("[green]everything accounted for[/]" if r.status == "ok" else f"[bold red]{r.status}[/]"),
        highlight=False,
    )
    if r.buckets:
        table = Table(title=f"Where they differ (by {what})")
        counts = ("source", "central", "quarantined", "missing", "extra", "changed")
        table.add_column("bucket")
        for col in counts:
            table.add_column(col, justify="right")
        for b in r.buckets:
            table.add_row(b.bucket, *(f"{getattr(b, c):,}" for c in counts))
        _wide().print(table)
        console.print(
            "missing: in the source, neither loaded nor quarantined; extra: loaded, gone from the source; changed: "
            "different content. Read the days again with `lidm run FEED --since DAY` (rows already loaded change "
            "nothing); a full snapshot is read whole by its next run."
        )
        raise typer.Exit(code=1)


@app.command()
def status() -> None:
    """Feed health: last batch and counts, top quarantine reasons, freshness; warnings per department."""
    from lidm.status import feed_status, warning_status

    settings = get_settings()
    try:
        feeds_now, warnings = feed_status(settings), warning_status(settings)
    except LidmError as exc:
        _fail(exc)
    style = {"fresh": "green", "late": "bold red", "failing": "bold red", "never": "dim"}
    table = Table(title="Feeds")
    numeric = ("extracted", "loaded", "quarantined", "open q.")
    cols = ("feed", "state", "last data", *numeric, "top reasons", "reconciled", "contract")
    for col in cols:
        table.add_column(col, justify="right" if col in numeric else "left")
    recon_style = {"ok": "green", "mismatch": "bold red"}
    for f in feeds_now:
        table.add_row(
            f.feed,
            f"[{style[f.state]}]{f.state}[/]",
            f"{f.last_loaded:%Y-%m-%d %H:%M}" if f.last_loaded else "-",
            f"{f.extracted:,}",
            f"{f.loaded:,}",
            f"{f.quarantined:,}",
            f"{f.open_quarantine:,}",
            (f.reason or "")[:80] if f.state == "failing" else ", ".join(f"{r} {n}" for r, n in f.top_reasons),
            f"[{recon_style[f.reconciled]}]{f.reconciled}[/] {f.reconciled_at:%m-%d %H:%M}" if f.reconciled else "-",
            f.contract_version,
        )
    _wide().print(table)
    for f in feeds_now:
        for note in f.notes:
            console.print(f"[yellow]{f.feed}[/]: {note}", highlight=False)
    for w in warnings:
        console.print(f"warnings for {w.department}: {w.open} open, {w.overdue} overdue")
    if any(f.state in ("late", "failing") or f.reconciled == "mismatch" for f in feeds_now):
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
    _print_broken()


def _print_broken() -> None:
    from lidm.registry import broken

    for name, why in broken().items():
        console.print(f"[red]broken adapter {name}:[/] {why}")


def _load_connections(value: str | None) -> dict[str, str] | None:
    """A JSON object or a JSON file of connections (as written by `lidm sample`)."""
    import json

    if not value:
        return None
    try:
        text = value if value.lstrip().startswith("{") else Path(value).read_text("utf-8")
        loaded = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise LidmError(f"--connections: not a JSON object or a readable JSON file ({type(exc).__name__})") from None
    if not isinstance(loaded, dict):
        raise LidmError("--connections: expected a JSON object of name -> URL")
    return {str(k): str(v) for k, v in loaded.items()}


@app.command()
def sample(
    size: Annotated[int, typer.Option(help="People in the synthetic city.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed always writes the same sources.")] = 20261127,
    bad: Annotated[int, typer.Option(help="Faulty rows per source, spread over the source's fault kinds.")] = 5,
    out: Annotated[Path, typer.Option(help="Folder for file sources and connections.json.")] = Path(".lidm/sources"),
    dataset: Annotated[list[str] | None, typer.Option(help="Only these datasets (repeatable).")] = None,
    mariadb: Annotated[
        str | None, typer.Option(help="ODBC string of a MariaDB server for the sources declared there.")
    ] = None,
    postgres: Annotated[str | None, typer.Option(help="SQLAlchemy URL of a PostgreSQL server (any database).")] = None,
    sftp: Annotated[
        str | None, typer.Option(help="sftp://user@host:port/dir?key_file=…&known_hosts=… for drops.")
    ] = None,
) -> None:
    """Write deterministic synthetic sources for every dataset (files by default, or the real servers)."""
    from lidm.samples.catalog import save_connections, write_sources
    from lidm.samples.sources import Servers
    from lidm.samples.world import build_world

    try:
        world = build_world(size, seed)
        out.mkdir(parents=True, exist_ok=True)
        servers = Servers(out, mariadb_odbc=mariadb, postgres_url=postgres, sftp_url=sftp)
        report = write_sources(world, servers, bad=bad, datasets=dataset)
    except LidmError as exc:
        _fail(exc)
    save_connections(report, out / "connections.json")
    table = Table(title=f"Sample sources (size {size:,}, seed {seed})")
    for col in ("dataset", "kind", "where", "rows", "faulty rows"):
        table.add_column(col, justify="right" if col in ("rows", "faulty rows") else "left")
    for w in report.written:
        faults = ", ".join(f"{k} {n}" for k, n in w.bad_kinds.items()) or "-"
        table.add_row(w.dataset, w.kind, w.where, f"{w.rows:,}", faults)
    console.print(table)
    console.print(
        f"Connections written to {out / 'connections.json'}; run feeds with "
        f'LIDM_CONNECTIONS="$(cat {out / "connections.json"})" or `lidm adapter verify NAME --connections '
        f"{out / 'connections.json'}`."
    )


@app.command("report")
def report_command(
    out: Annotated[
        Path | None,
        typer.Option(help="HTML file to write; <home>/reports/lidm-report-<date>.html by default."),
    ] = None,
    rebuild: Annotated[bool, typer.Option(help="Bring the happiness list up to date first.")] = True,
) -> None:
    """One self-contained HTML report for analysts: warnings, dispositions, the happiness and needs lists."""
    from lidm.monitor.report import report

    try:
        path = report(get_settings(), out, rebuild=rebuild)
    except LidmError as exc:
        _fail(exc)
    console.print(f"report written to {path}")


@adapter_app.command("list")
def adapter_list() -> None:
    """Adapters, their contracts and sources, and any that fail to load."""
    feeds()


@adapter_app.command("new")
def adapter_new(
    department: Annotated[str, typer.Argument(help="Department, e.g. housing.")],
    dataset: Annotated[str, typer.Argument(help="Dataset of a contract, e.g. public_rental_housing.")],
    source: Annotated[str, typer.Option(help="sql, csv or xlsx.")] = "sql",
    connection: Annotated[str | None, typer.Option(help="Connection name (default <department>_db or _drop).")] = None,
    into: Annotated[Path | None, typer.Option(help="Adapters folder (default: this checkout's adapters/).")] = None,
    tests: Annotated[Path | None, typer.Option(help="Also write a conformance test into this folder.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing adapter.")] = False,
    name: Annotated[
        str | None, typer.Option(help="Module name of a second adapter for the same (incremental) contract.")
    ] = None,
) -> None:
    """Scaffold an adapter for a contract: every field listed with its type and codes, to be mapped."""
    from lidm.testkit.scaffold import scaffold

    try:
        made = scaffold(
            department,
            dataset,
            kind=source,
            connection=connection,
            into=into,
            tests=tests,
            force=force,
            contracts_dir=get_settings().contracts_dir,
            name=name,
        )
    except LidmError as exc:
        _fail(exc)
    console.print(f"wrote {made.adapter}" + (f" and {made.test}" if made.test else ""))
    console.print(
        f"Next: replace every TODO_ with your column, then `lidm adapter verify {made.feed} "
        "--connections connections.json`."
    )


@adapter_app.command("verify")
def adapter_verify(
    name: Annotated[str, typer.Argument(help="Adapter (feed) name, e.g. health.population.")],
    connections: Annotated[
        str | None, typer.Option(help="JSON object or file of connections (default LIDM_CONNECTIONS).")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write NAME.md and NAME.json conformance reports here.")] = None,
    sample_rows: Annotated[int, typer.Option(help="Rows sampled for the validation check.")] = 1000,
) -> None:
    """Run the conformance checks in a sandbox (the source is only read; drops are copied)."""

    from lidm.testkit import FAIL, PASS, SKIP, WARN, verify

    try:
        result = verify(name, connections=_load_connections(connections), sample_rows=sample_rows)
    except LidmError as exc:
        _fail(exc)
    style = {PASS: "green", WARN: "yellow", FAIL: "red", SKIP: "dim"}
    table = Table(title=f"Conformance of {name} ({result.contract} {result.contract_version})")
    table.add_column("check", no_wrap=True)
    table.add_column("result")
    table.add_column("detail")
    for c in result.checks:
        table.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", c.detail)
    _wide().print(table)
    verdict = "[green]CONFORMS[/]" if result.passed else "[red]DOES NOT CONFORM[/]"
    console.print(f"{name}: {verdict}")
    if report:
        console.print(f"report: {result.write(report)}")
    if not result.passed:
        raise typer.Exit(code=1)


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
    """One contract's fields with classification, protection, codes and limits."""
    from lidm.contracts.model import Check

    try:
        c = _catalog()[contract_id]
    except LidmError as exc:
        _fail(exc)
    out = _wide()
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
            f"division_code: a division code of this city, starting with {get_settings().city_prefix} "
            "(LIDM_CITY_PREFIX); its length is under limits."
        )


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
    profile: Annotated[
        str | None, typer.Option(help="standard (HMAC-SHA256, AES-256-GCM) or sm (HMAC-SM3, SM4-GCM).")
    ] = None,
) -> None:
    """Make a new keyring (token, encryption and signing keys) readable by its owner only."""
    from lidm.keys import generate_keyring, write_keyring

    settings = get_settings()
    target = path or settings.effective_keyring
    try:
        keyring = generate_keyring(profile or settings.crypto_profile or "standard")
        write_keyring(keyring, target, overwrite=force)
    except LidmError as exc:
        _fail(exc)
    console.print(f"keyring written to {target} (mode 600): {keyring!r}")


@keys_app.command("rotate")
def keys_rotate(
    purpose: Annotated[str, typer.Option(help="encrypt or sign (the token key is never rotated in place).")],
    path: Annotated[Path | None, typer.Option(help="Keyring file to rotate (default: LIDM_KEYRING).")] = None,
) -> None:
    """Add a new active key for new data; older keys stay, so old ciphertexts and signatures still open."""
    from lidm.keys import Keyring, rotate, write_keyring

    target = path or get_settings().effective_keyring
    try:
        if path is None and get_settings().keyring_json:
            raise LidmError("the keyring comes from LIDM_KEYRING_JSON; rotate a copy with --path, store it back")
        if not target.exists():
            raise LidmError(f"no keyring at {target}; run `lidm keys init`")
        import json

        keyring = rotate(Keyring.from_dict(json.loads(target.read_text("utf-8")), str(target)), purpose)
        write_keyring(keyring, target, overwrite=True)
    except LidmError as exc:
        _fail(exc)
    console.print(f"{purpose} key rotated in {target}: new data uses {keyring.purpose(purpose).active}; {keyring!r}")


@keys_app.command("retokenize")
def keys_retokenize(
    out: Annotated[
        Path | None, typer.Option(help="Where the new keyring goes (default: over LIDM_KEYRING, after the commit).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it: every stored token is rewritten.")] = False,
) -> None:
    """Move every stored token to a new token key, in one transaction; loads wait, then use the new keyring."""
    from lidm.retokenize import retokenize

    if not yes:
        _fail(LidmError("re-tokenization rewrites every token in the central database; run again with --yes"))
    try:
        done = retokenize(get_settings(), out=out)
    except LidmError as exc:
        _fail(exc)
    console.print(
        f"token epoch {done.epoch} (chain {', '.join(done.chain)}): {sum(done.rows.values()):,} tokens rewritten "
        f"in {len(done.rows)} columns; keyring written to {done.keyring}"
    )


@keys_app.command("audit-init")
def keys_audit_init(
    path: Annotated[Path, typer.Option(help="Where to write the administrator's checkpoint key (never the loader's).")],
) -> None:
    """The administrator's Ed25519 key that signs audit checkpoints; kept apart from the keyring the loader holds."""
    import json

    from lidm.keys import generate_audit_key, write_audit_key

    key = generate_audit_key()
    try:
        write_audit_key(key, path)
    except (LidmError, OSError) as exc:
        _fail(LidmError(f"cannot write the audit checkpoint key: {exc}"))
    console.print(f"audit checkpoint key written to {path} (mode 600): set LIDM_AUDIT_KEY={path} for the administrator")
    console.print("set this as LIDM_AUDIT_PUBLIC_KEYS wherever the audit log is verified:")
    console.print_json(json.dumps({key.key_id: key.public_key}))


@keys_app.command("producer-new")
def keys_producer_new(
    producer: Annotated[str, typer.Option(help="Department (or feed) the key signs for, e.g. civil_affairs.")],
    out: Annotated[Path, typer.Option(help="Folder for the private key file (keep it at the department).")] = Path(),
) -> None:
    """A department's drop-signing key pair: the private key file stays there, the public entry goes to the gateway."""
    import json

    from lidm.producers import write_producer_key

    try:
        path, public = write_producer_key(producer, out)
    except (LidmError, OSError) as exc:
        _fail(LidmError(f"cannot write the producer key: {exc}"))
    console.print(f"private key written to {path} (mode 600); sign drops with `lidm drop sign FILE --key {path}`")
    console.print("add this to the gateway's LIDM_PRODUCER_KEYS (trusted producers):")
    console.print_json(json.dumps({producer: [public]}))


@drop_app.command("sign")
def drop_sign(
    file: Annotated[Path, typer.Argument(help="The drop file, e.g. roster_20261127.csv.")],
    key: Annotated[Path, typer.Option(help="Private key file from `lidm keys producer-new`.")],
    contract: Annotated[str, typer.Option(help="Contract id, e.g. civil_affairs.low_income_roster.")],
    version: Annotated[str | None, typer.Option(help="Contract version (default: from the catalogue).")] = None,
) -> None:
    """Write FILE.manifest.json and its Ed25519 signature FILE.manifest.sig; write the .ok marker after this."""
    from lidm.producers import sign_drop

    if version is None:
        try:
            from lidm.contracts import load_catalog

            version = load_catalog()[contract].version
        except (LidmError, KeyError):
            version = None
    try:
        manifest_path, sig_path = sign_drop(file, key, contract, version)
    except LidmError as exc:
        _fail(exc)
    console.print(f"signed: {manifest_path.name} and {sig_path.name}; now write the completeness marker")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the central database to the newest migration (as the owner: LIDM_ADMIN_URL when set)."""
    from lidm.central import connect, migrate

    settings: Settings = get_settings()
    engine = connect(settings, admin=True)
    migrate(engine)
    console.print(f"central database at head: {redact_url(engine.url.render_as_string(hide_password=False))}")


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


@monitor_app.command("rules")
def monitor_rules() -> None:
    """Every monitoring rule: what it looks for, who must act, how fast, which feeds it reads."""
    from lidm.contracts.load import load_catalog
    from lidm.monitor import load_rules

    settings = get_settings()
    try:
        rules = load_rules(
            settings.rules_dir, catalog=load_catalog(settings.contracts_dir), params=settings.rule_params
        )
    except LidmError as exc:
        _fail(exc)
    table = Table(title="Monitoring rules")
    for col in ("rule", "hardship", "department", "urgency", "days", "feeds", "params"):
        table.add_column(col)
    for r in rules:
        params = ", ".join(f"{k}={v}" for k, v in r.params.items())
        table.add_row(r.id, r.hardship_type, r.department, r.urgency.value, str(r.due_days), "\n".join(r.feeds), params)
    _wide().print(table)


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
        _fail(LidmError(f"--as-of {as_of!r} is not a date like 2026-11-27"))
    try:
        result = monitor(get_settings(), as_of=day, rule_ids=rule)
    except LidmError as exc:
        _fail(exc)
    _print_monitor(result)


def _print_monitor(result) -> None:  # type: ignore[no-untyped-def]
    table = Table(title=f"Monitoring run {result.run_id[:8]} for {result.as_of}")
    for col in ("rule", "matched", "raised", "closed", "open"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for rule_id, c in result.counts.items():
        table.add_row(rule_id, f"{c.matched:,}", f"{c.raised:,}", f"{c.closed:,}", f"{c.open:,}")
    _wide().print(table)
    if result.overdue:
        console.print(f"{result.overdue:,} warnings became overdue")


@monitor_app.command("push")
def monitor_push(
    department: Annotated[list[str] | None, typer.Option(help="Only this department (repeatable).")] = None,
) -> None:
    """Push each department its new warnings through its channel, only the fields its grant allows."""
    from lidm.monitor.push import PushFailed, push_warnings

    failed = None
    try:
        results = push_warnings(get_settings(), departments=department)
    except PushFailed as exc:
        results, failed = exc.results, exc
    except LidmError as exc:
        _fail(exc)
    table = Table(title="Warnings pushed")
    for col in ("department", "status", "channel", "warnings", "push"):
        table.add_column(col, justify="right" if col == "warnings" else "left")
    for r in results:
        style = {"pushed": "green", "failed": "red", "no_grant": "red"}.get(r.status, "dim")
        table.add_row(
            r.department, f"[{style}]{r.status}[/]", r.channel or "", f"{r.warnings:,}", (r.push_id or "")[:8]
        )
    _wide().print(table)
    for r in results:
        if r.reason:
            console.print(f"[red]{r.department}[/]: {r.reason}")
    if failed is not None:
        raise typer.Exit(code=2)


@monitor_app.command("collect")
def monitor_collect(
    department: Annotated[list[str] | None, typer.Option(help="Only this department (repeatable).")] = None,
) -> None:
    """Take in the departments' acknowledgements and dispositions; refused rows are kept with their reason."""
    from lidm.monitor.feedback import CollectFailed, collect_dispositions

    failed = None
    try:
        result = collect_dispositions(get_settings(), departments=department)
    except CollectFailed as exc:
        result, failed = exc.result, exc
    except LidmError as exc:
        _fail(exc)
    cols = ("files", "rejected_files", "acknowledged", "applied", "refused", "unchanged")
    table = Table(title="Acknowledgements and dispositions taken in")
    table.add_column("department")
    for col in cols:
        table.add_column(col.replace("_", " "), justify="right")
    for dept in result.departments():
        counts = result.totals(dept)
        table.add_row(dept, *(f"{counts[c]:,}" for c in cols))
    _wide().print(table)
    if result.refusals:
        console.print("refused: " + ", ".join(f"{code} {n:,}" for code, n in result.refusals.most_common()))
    for dept, why in result.failed.items():
        console.print(f"[red]{dept}[/]: {why}")
    if failed is not None:
        raise typer.Exit(code=2)


def _grants(run, sql: bool, withheld: bool) -> None:  # type: ignore[no-untyped-def]
    """Run a grants step against the central database and render its statements, counts and notes."""
    from lidm.central import connect

    catalog = _catalog()
    engine = connect(get_settings(), admin=True)  # the owner's: it owns the views and makes the roles
    try:
        title, result = run(catalog, engine)
    except LidmError as exc:
        _fail(exc)
    finally:
        engine.dispose()
    if result.statements:
        table = Table(title=f"{title} on {redact_url(engine.url.render_as_string(hide_password=False))}")
        for col in ("action", "object", "consumer", "SQL" if sql else "why"):
            table.add_column(col, overflow="fold")
        for st in result.statements:
            table.add_row(st.action, st.target, st.consumer or "", st.sql if sql else st.why or "")
        _wide().print(table)
    counts = ", ".join(f"{action} {n:,}" for action, n in sorted(result.counts().items()))
    console.print(f"{title}: {counts or 'nothing to change, the database matches the grants'}", highlight=False)
    if withheld and result.withheld:
        table = Table(title="Granted clear but stored only encrypted: in no view, clear only by re-identification")
        for col in ("dataset", "fields", "consumers"):
            table.add_column(col, overflow="fold")
        for w in result.withheld:
            table.add_row(w.contract, ", ".join(w.fields), ", ".join(w.consumers))
        _wide().print(table)
    elif result.withheld:
        console.print(f"{len(result.withheld)} grants give clear fields stored only encrypted: in no view (see plan)")
    for note in result.notes:
        console.print(f"[dim]note:[/] {note}", highlight=False)


@grants_app.command("plan")
def grants_plan(sql: Annotated[bool, typer.Option(help="Show each statement's SQL.")] = False) -> None:
    """What `grants apply` would change: roles, schemas and views per consumer, and what it would revoke."""
    from lidm.central.grants import review

    loader = _loader_role()
    _grants(lambda catalog, engine: ("grants plan", review(catalog, engine, loader=loader)), sql, withheld=True)
    _print_k_anonymity()


def _print_k_anonymity() -> None:
    """k per consumer and dataset (GB/T 37964): the fewest live rows sharing the quasi-identifiers it sees."""
    from lidm.central import connect
    from lidm.contracts.disclosure import MIN_K, k_report

    engine = connect(get_settings(), admin=True)
    try:
        with engine.connect() as conn:
            rows = k_report(_catalog(), conn)
    except sa.exc.DBAPIError as exc:
        console.print(f"[dim]k-anonymity not measured ({type(exc.orig).__name__})[/]")
        return
    finally:
        engine.dispose()
    below = [r for r in rows if r.below]
    table = Table(
        title=f"k-anonymity of what each consumer reads (fewest live rows sharing its quasi-identifiers; "
        f"below {MIN_K}: people can be singled out)"
    )
    for col in ("consumer", "dataset", "quasi-identifiers", "k"):
        table.add_column(col, overflow="fold", justify="right" if col == "k" else "left")
    for r in sorted(rows, key=lambda r: (not r.below, r.consumer, r.contract)):
        k = f"[bold red]{r.k}[/]" if r.below else (str(r.k) if r.k else "-")
        table.add_row(r.consumer, r.contract, ", ".join(r.columns), k)
    _wide().print(table)
    console.print(f"k-anonymity: {len(below)} of {len(rows)} consumer datasets below k={MIN_K}", highlight=False)


@grants_app.command("apply")
def grants_apply(sql: Annotated[bool, typer.Option(help="Show each statement's SQL.")] = False) -> None:
    """Make the database's roles, schemas and views, the loader role and PUBLIC's privileges match, in one transaction.

    Run as the owner (LIDM_ADMIN_URL): an administrator's role with CREATEROLE, never the service's."""
    from lidm.central.grants import apply

    keyring = _keyring_or_none()
    loader = _loader_role()
    _grants(
        lambda catalog, engine: ("grants applied", apply(engine, catalog, keyring=keyring, loader=loader)),
        sql,
        withheld=False,
    )


@grants_app.command("refresh")
def grants_refresh() -> None:
    """Re-release rows changed since the last sync into the consumers' released tables (loads do this themselves).

    For rows changed by a writer that held no keyring; runs as the loader, with the keyring."""
    from lidm.central import connect, release
    from lidm.keys import load_keyring

    settings = get_settings()
    engine = connect(settings)
    try:
        keyring = load_keyring(settings)
        with engine.begin() as conn:
            done = release.sync(conn, keyring)
    except (LidmError, sa.exc.DBAPIError) as exc:
        _fail(exc if isinstance(exc, LidmError) else LidmError(f"grants refresh: {type(exc.orig).__name__}"))
    finally:
        engine.dispose()
    for s in done:
        how = "rebuilt whole" if s.whole else f"{s.noted:,} changed keys"
        console.print(f"{s.table}: {how}, {s.releases} release(s), {s.rows:,} rows written", highlight=False)
    console.print(f"grants refresh: {len(done)} table(s) synced" if done else "grants refresh: nothing noted")


def _loader_role() -> str | None:
    """The loader role grants manage: only in a three-role deployment (LIDM_ADMIN_URL set), as the README sets out."""
    settings = get_settings()
    if settings.admin_url and settings.loader_role:
        return settings.loader_role
    console.print(
        "[dim]note:[/] LIDM_ADMIN_URL is unset, so one role does everything: no loader role is managed and PUBLIC "
        "keeps its database privileges (README: Deployment: three roles)",
        highlight=False,
    )
    return None


def _keyring_or_none():  # type: ignore[no-untyped-def]
    """The keyring when configured: it seals audit entries; without one they are chained but unsealed."""
    from lidm.keys import load_keyring_or_none

    return load_keyring_or_none(get_settings())


audit_app = typer.Typer(help="The tamper-evident audit log: verify the chain, show entries.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    strict: Annotated[bool, typer.Option(help="Also fail when entries follow the last seal (chain-only).")] = False,
    pin: Annotated[
        list[str] | None,
        typer.Option(help="SEQ:HASH of a checkpoint kept outside the database (repeatable); it must still hold."),
    ] = None,
) -> None:
    """Recompute the hash chain (seals with the keyring, checkpoints with their public keys); exit 1 at a break."""
    from lidm.central import audit, connect
    from lidm.keys import load_audit_public_keys

    engine = connect(get_settings())
    keyring = _keyring_or_none()
    try:
        public_keys = load_audit_public_keys(get_settings()) or None
        pinned = {}
        for p in pin or []:
            seq, _, digest = p.partition(":")
            if not seq.isdigit() or len(digest) != 64:
                raise LidmError(f"--pin {p!r}: give SEQ:HASH as `lidm audit checkpoint` prints them")
            pinned[int(seq)] = digest
        report = audit.verify(engine, keyring, public_keys, pinned=pinned)
    except LidmError as exc:
        _fail(exc)
    finally:
        engine.dispose()
    if not report.ok:
        console.print(f"[bold red]audit log broken at entry {report.broken_seq}[/] ({report.kind}): {report.problem}")
        raise typer.Exit(code=1)
    console.print(
        f"audit log intact: {report.entries:,} entries, head {report.head_seq} {report.head_hash}", highlight=False
    )
    if keyring is None:
        console.print("[yellow]no keyring: seals not checked[/]")
    else:
        console.print(
            f"seals valid on {report.sealed:,} entries, through entry {report.sealed_through or '-'}; "
            f"{report.unsealed_tail:,} entries after the last seal are vouched for by the chain only",
            highlight=False,
        )
    if report.checkpoints:
        signed = "signatures checked" if report.checkpoints_signed else "[yellow]signatures NOT checked[/] (no keys)"
        console.print(
            f"{report.checkpoints:,} checkpoints agree with the chain ({signed}); the newest covers entry "
            f"{report.checkpoint_seq}, {report.after_checkpoint:,} entries follow it",
            highlight=False,
        )
    else:
        console.print("[yellow]no checkpoint:[/] a rewrite by a holder of the keyring is not detectable")
    if strict and (keyring is None or report.unsealed_tail):
        console.print("[bold red]--strict:[/] entries after the last seal, or no keyring to check seals")
        raise typer.Exit(code=1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Verify the chain and record its head signed with the administrator's key (LIDM_AUDIT_KEY), as the owner."""
    from lidm.central import audit, connect
    from lidm.keys import load_audit_key, load_audit_public_keys

    settings = get_settings()
    engine = connect(settings, admin=True)  # the loader may read checkpoints, never write them
    try:
        mark = audit.checkpoint(
            engine,
            load_audit_key(settings),
            keyring=_keyring_or_none(),
            public_keys=load_audit_public_keys(settings) or None,
        )
    except LidmError as exc:
        _fail(exc)
    finally:
        engine.dispose()
    console.print(
        f"checkpoint {mark.id}: entries 1-{mark.seq} ({mark.entries:,}), head {mark.head_hash}, key {mark.key_id}",
        highlight=False,
    )
    console.print(f"keep outside the database, check with `lidm audit verify --pin {mark.seq}:{mark.head_hash}`")


@audit_app.command("show")
def audit_show(
    last: Annotated[int, typer.Option(help="How many of the newest entries.")] = 20,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. reidentify.")] = None,
) -> None:
    """The newest entries: who did what to which feed, batch, push or consumer (counts and ids only)."""
    from lidm.central import audit, connect

    engine = connect(get_settings())
    try:
        rows = audit.entries(engine, last=last, action=action)
    except LidmError as exc:
        _fail(exc)
    finally:
        engine.dispose()
    table = Table(title="Audit log")
    for col in ("seq", "at (UTC)", "actor", "action", "subject", "detail", "sealed"):
        table.add_column(col, overflow="fold", justify="right" if col == "seq" else "left")
    for e in rows:
        table.add_row(
            str(e.seq), f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.subject, e.detail, "yes" if e.seal else ""
        )
    _wide().print(table)


@audit_app.command("reads")
def audit_reads(
    since: Annotated[str | None, typer.Option(help="Only reads from this date or time on (2026-12-01).")] = None,
) -> None:
    """Consumers' reads of their views, as pgaudit logged them (LIDM_PGAUDIT_LOG): per view and login, counts only."""
    from lidm.central import reads

    settings = get_settings()
    database = sa.engine.make_url(settings.central_url).database if settings.central_url else None
    try:
        rows = reads.summarise(reads.log_files(settings.pgaudit_log), database, since)
    except LidmError as exc:
        _fail(exc)
    table = Table(title=f"Reads of consumer views in {database or 'every database'} (pgaudit)")
    for col in ("consumer", "view", "login", "reads", "first", "last"):
        table.add_column(col, overflow="fold", justify="right" if col == "reads" else "left")
    for r in rows:
        table.add_row(r.consumer, r.view, r.user, f"{r.reads:,}", r.first, r.last)
    _wide().print(table)
    total = sum(r.reads for r in rows)
    console.print(f"audit reads: {total:,} reads by {len({r.user for r in rows})} logins", highlight=False)


@app.command("reidentify")
def reidentify_command(
    dataset: Annotated[str, typer.Argument(help="Dataset, e.g. civil_affairs.low_income_roster.")],
    field: Annotated[str, typer.Argument(help="An encrypted field the consumer is granted clear, e.g. name.")],
    keys: Annotated[list[str], typer.Argument(help="Key values of the rows: record ids, warning ids or key tokens.")],
    consumer: Annotated[str, typer.Option(help="The consumer asking, e.g. civil_affairs.")],
    purpose: Annotated[str, typer.Option(help="Why: the case or payment this is for (recorded in the audit log).")],
) -> None:
    """Decrypt a field for named rows: the ONLY command that prints clear personal values; every use is audited.

    Refused unless the consumer's grant gives the field clear and it is stored encrypted; the audit entry
    (consumer, purpose, keys, count: never the values) is committed before anything is printed.
    """
    from lidm.reidentify import reidentify

    try:
        values = reidentify(get_settings(), consumer=consumer, purpose=purpose, dataset=dataset, field=field, keys=keys)
    except LidmError as exc:
        _fail(exc)
    table = Table(title=f"{dataset}.{field} for {consumer} (audited)")
    table.add_column("key", overflow="fold")
    table.add_column(field, overflow="fold")
    for v in values:
        table.add_row(v.key, "" if v.value is None else v.value)
    _wide().print(table)


batch_app = typer.Typer(help="Loaded batches: list them, recall one.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")


@batch_app.command("list")
def batch_list(
    feed: Annotated[str | None, typer.Option(help="Only this feed, e.g. health.population.")] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest batches.")] = 50,
) -> None:
    """The newest batches: status (loaded, rejected, recalled), counts, watermark, recall reason."""
    from lidm.central.recall import list_batches

    try:
        rows = list_batches(get_settings(), feed=feed, limit=limit)
    except LidmError as exc:
        _fail(exc)
    table = Table(title="Batches")
    for col in ("batch", "feed", "status", "finished", "loaded", "quarantined", "ins/upd/ret", "watermark", "recall"):
        table.add_column(col, overflow="fold")
    for r in rows:
        when = f"{r['finished_at']:%Y-%m-%d %H:%M}" if r["finished_at"] else ""
        recall = f"{r['recalled_at']:%Y-%m-%d %H:%M} {r['recall_reason']}" if r["recalled_at"] else ""
        table.add_row(
            r["batch_id"],
            r["feed"],
            r["status"],
            when,
            f"{r['loaded']:,}",
            f"{r['quarantined']:,}",
            f"{r['inserted']}/{r['updated']}/{r['retired']}",
            r["watermark_to"] or "",
            recall,
        )
    _wide().print(table)


@batch_app.command("accept")
def batch_accept(
    batch_id: Annotated[str, typer.Argument(help="The held batch (see `lidm batch list`).")],
    reason: Annotated[str, typer.Option(help="Why this content is right after all (kept in the audit log).")],
) -> None:
    """Accept a held batch (a full snapshot that shrank past lidmMaxRetireFraction): the feed's next run loads
    that exact content; a drop is put back from rejected/ into the drop folder. Audited."""
    from lidm.pipeline import accept_held

    try:
        a, moved = accept_held(batch_id, reason, get_settings())
    except LidmError as exc:
        _fail(exc)
    back = f"; {a.source} is back in the drop folder" if moved else ""
    console.print(
        f"accepted batch {a.batch_id} of {a.feed} ({a.reason_code}){back}: the feed's next run loads that content. "
        "Audited as batch.accept.",
        highlight=False,
    )


@batch_app.command("recall")
def batch_recall(
    batch_id: Annotated[str, typer.Argument(help="The batch id (see `lidm batch list`).")],
    reason: Annotated[str, typer.Option(help="Why the batch is withdrawn (kept with it and in the audit log).")],
    force: Annotated[
        bool, typer.Option(help="Also when the batch overwrote earlier rows, whose earlier versions are lost.")
    ] = False,
) -> None:
    """Take a loaded batch back out: its rows, its quarantine, its retirements and watermark; audited."""
    from lidm.central.recall import recall_batch

    try:
        r = recall_batch(get_settings(), batch_id, reason=reason, force=force)
    except LidmError as exc:
        _fail(exc)
    console.print(
        f"batch {r.batch_id} ({r.feed}) recalled: {r.removed:,} rows removed ({r.overwritten:,} had replaced an "
        f"earlier version, now lost), {r.unretired:,} un-retired, {r.quarantine_removed:,} quarantine rows removed; "
        f"watermark {r.watermark}{f' to {r.watermark_value}' if r.watermark_value else ''}",
        highlight=False,
    )
    readers = ", ".join(f"{c['consumer']} ({c['rows']})" for c in r.consumers) or "none"
    console.print(f"consumers that could read {r.contract}: {readers}", highlight=False)


quarantine_app = typer.Typer(help="Rows held back by validation: list them, export them for the department.")
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def quarantine_list(
    feed: Annotated[str | None, typer.Argument(help="Only this feed.")] = None,
    resolved: Annotated[bool, typer.Option("--resolved", help="Also rows a corrected re-delivery resolved.")] = False,
    limit: Annotated[int, typer.Option(help="How many rows at most.")] = 200,
) -> None:
    """Quarantined rows: source, row and line, field and reason (never a value); open ones unless --resolved."""
    from lidm.central.holds import list_quarantine

    try:
        rows = list_quarantine(get_settings(), feed, include_resolved=resolved, limit=limit)
    except LidmError as exc:
        _fail(exc)
    table = Table(title="Quarantine" + (f" of {feed}" if feed else ""))
    for col in ("feed", "source", "row", "line", "field", "reason", "message", "resolved by"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["feed"],
            r["source"],
            str(r["row_number"] or ""),
            str(r["line_number"] or ""),
            r["field"] or "",
            r["reason"],
            r["message"],
            r["resolved_batch"] or "",
        )
    _wide().print(table)


@quarantine_app.command("export")
def quarantine_export(
    feed: Annotated[str, typer.Argument(help="The feed, e.g. civil_affairs.low_income_roster.")],
    out: Annotated[Path, typer.Option(help="CSV file to write (UTF-8 with BOM).")],
    resolved: Annotated[bool, typer.Option("--resolved", help="Also resolved rows.")] = False,
) -> None:
    """Write a feed's quarantined rows (row, line, field, reason; no values) as CSV to send to the department."""
    from lidm.central.holds import list_quarantine, quarantine_csv

    try:
        rows = list_quarantine(get_settings(), feed, include_resolved=resolved, limit=None)
    except LidmError as exc:
        _fail(exc)
    out.write_text(quarantine_csv(rows), "utf-8")
    console.print(f"{len(rows):,} quarantined row(s) of {feed} written to {out}", highlight=False)


@app.command("purge")
def purge_command(
    dry_run: Annotated[bool, typer.Option(help="Count what would be deleted; change nothing.")] = False,
) -> None:
    """Delete rows past their contract's retention (lidmRetention) and quarantine past LIDM_QUARANTINE_RETENTION."""
    from lidm.central.retention import purge_expired

    try:
        r = purge_expired(get_settings(), dry_run=dry_run)
    except LidmError as exc:
        _fail(exc)
    table = Table(title="Purge (dry run: nothing deleted)" if dry_run else "Purge")
    for col in ("dataset", "rows", "cutoff", "aged by"):
        table.add_column(col, overflow="fold")
    for cid, d in r.datasets.items():
        table.add_row(cid, f"{d['rows']:,}", d["cutoff"], d["by"])
    table.add_row("quarantine", f"{r.quarantine:,}", r.quarantine_cutoff or "", "batch finished_at")
    _wide().print(table)


@app.command("export")
def export(
    dataset: Annotated[str, typer.Argument(help="Contract id, e.g. civil_affairs.low_income_roster.")],
    consumer: Annotated[str, typer.Option(help="The consumer the extract is for (contracts/consumers.yaml).")],
    out: Annotated[Path, typer.Option(help="CSV file to write.")],
) -> None:
    """A consumer's extract of a dataset: only its granted columns and rows (how grants hold on SQLite)."""
    from lidm.central.export import export_dataset

    try:
        result = export_dataset(get_settings(), consumer, dataset, out)
    except LidmError as exc:
        _fail(exc)
    console.print(f"{result.rows:,} rows, {len(result.columns)} columns for {consumer} -> {result.path}")
    if result.withheld:
        console.print(f"withheld (clear only through `lidm reidentify`): {', '.join(result.withheld)}")
