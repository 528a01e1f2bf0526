"""Running feeds and watching them: demo, run, reconcile, status, feeds, sample (put on `app` by `lidm.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lidm.cli.common import console, current_settings, fail, wide
from lidm.cli.monitor import print_monitor
from lidm.errors import FeedBusy, LidmError
from lidm.redact import redact_url


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

    settings = current_settings()
    try:
        sources, results = _run_with_progress(
            lambda tick: run_demo(home, size=size, seed=seed, bad=bad, central_url=settings.central_url, progress=tick)
        )
    except LidmError as exc:
        fail(exc)
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
        fail(exc)
    print_monitor(loop.monitor)
    pushed = [p for p in loop.pushes if p.status == "pushed"]
    console.print(
        f"Pushed {sum(p.warnings for p in pushed):,} warnings to {len(pushed)} departments; they answered "
        f"{sum(r.acknowledged for r in loop.responses):,} acknowledgements and "
        f"{sum(sum(r.outcomes.values()) for r in loop.responses):,} dispositions"
    )
    totals = loop.collected.totals()
    console.print("Dispositions taken in: " + ", ".join(f"{k} {v:,}" for k, v in sorted(totals.items()) if v))
    console.print(f"Report (happiness list, needs, statistics): {loop.report}")


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
        results = _run_with_progress(lambda tick: run_feed(feed, current_settings(), progress=tick, since=since))
    except FeedBusy as exc:
        console.print(f"[yellow]already running:[/] {exc}", highlight=False)
        return
    except LidmError as exc:
        fail(exc)
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


def reconcile_command(
    feed: Annotated[str, typer.Argument(help="Feed name of a database source, e.g. health.medical_expenses.")],
) -> None:
    """Compare the feed's source with the central table (counts and keyed digests per day or key range, no values);
    name every day or key range with missing, extra or changed rows (exit 1 when any)."""
    from lidm.reconcile import reconcile

    try:
        r = reconcile(feed, current_settings())
    except LidmError as exc:
        fail(exc)
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
        wide().print(table)
        console.print(
            "missing: in the source, neither loaded nor quarantined; extra: loaded, gone from the source; changed: "
            "different content. Read the days again with `lidm run FEED --since DAY` (rows already loaded change "
            "nothing); a full snapshot is read whole by its next run."
        )
        raise typer.Exit(code=1)


def status() -> None:
    """Feed health: last batch and counts, top quarantine reasons, freshness; warnings per department."""
    from lidm.status import feed_status, warning_status

    settings = current_settings()
    try:
        feeds_now, warnings = feed_status(settings), warning_status(settings)
    except LidmError as exc:
        fail(exc)
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
    wide().print(table)
    for f in feeds_now:
        for note in f.notes:
            console.print(f"[yellow]{f.feed}[/]: {note}", highlight=False)
    for w in warnings:
        console.print(f"warnings for {w.department}: {w.open} open, {w.overdue} overdue")
    if any(f.state in ("late", "failing") or f.reconciled == "mismatch" for f in feeds_now):
        raise typer.Exit(code=1)


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
        fail(exc)
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
