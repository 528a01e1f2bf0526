"""Running feeds and watching them: run, reconcile, status, feeds (put on `app` by `lidm.cli`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lidm.cli.common import JsonOption, console, current_settings, fail, load_connections, print_json_lines, wide
from lidm.errors import FeedBusy, LidmError


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def print_results(results) -> None:  # type: ignore[no-untyped-def]
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


def run_with_progress(fn):  # type: ignore[no-untyped-def]
    with _progress() as progress:
        tasks: dict[str, int] = {}

        def tick(feed: str, rows: int) -> None:
            if feed not in tasks:
                tasks[feed] = progress.add_task(feed, total=None)
            progress.advance(tasks[feed], rows)

        return fn(tick)


def run(
    feed: Annotated[str, typer.Argument(help="Feed name, e.g. health.population.")],
    since: Annotated[
        str | None,
        typer.Option(help="Incremental database feed: read again from this day or time (e.g. what reconcile found)."),
    ] = None,
    connections: Annotated[
        str | None, typer.Option(help="JSON object or file of connections (default LIDM_CONNECTIONS).")
    ] = None,
) -> None:
    """Run one feed: every pending batch, each loaded whole or rejected whole."""
    from lidm.pipeline import run_feed

    try:
        urls = load_connections(connections)
        results = run_with_progress(
            lambda tick: run_feed(feed, current_settings(), connections=urls, progress=tick, since=since)
        )
    except FeedBusy as exc:
        console.print(f"[yellow]already running:[/] {exc}", highlight=False)
        return
    except LidmError as exc:
        fail(exc)
    if not results:
        console.print(f"{feed}: nothing pending")
        return
    print_results(results)
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


def status(as_json: JsonOption = False) -> None:
    """Feed health: last delivery and its counts, top quarantine or rejection reasons, freshness; warnings per
    department. Exit 1 when a feed is late, rejected or not reconciled."""
    from lidm.status import STATE_LABEL, feed_row, feed_status, warning_row, warning_status

    settings = current_settings()
    try:
        feeds_now, warnings = feed_status(settings), warning_status(settings)
    except LidmError as exc:
        fail(exc)
    if as_json:
        print_json_lines([*(feed_row(f) for f in feeds_now), *(warning_row(w) for w in warnings)])
    else:
        _print_status(feeds_now, warnings, STATE_LABEL)
    if any(f.state in ("late", "failing") or f.reconciled == "mismatch" for f in feeds_now):
        raise typer.Exit(code=1)


def _print_status(feeds_now, warnings, labels) -> None:  # type: ignore[no-untyped-def]
    style = {"fresh": "green", "late": "bold red", "failing": "bold red", "never": "dim"}
    table = Table(title="Feeds")
    numeric = ("extracted", "loaded", "quarantined", "open q.")
    cols = ("feed", "state", "loaded at", "newest record", *numeric, "top reasons", "reconciled", "contract")
    for col in cols:
        table.add_column(col, justify="right" if col in numeric else "left")
    recon_style = {"ok": "green", "mismatch": "bold red"}
    for f in feeds_now:
        table.add_row(
            f.feed,
            f"[{style[f.state]}]{labels[f.state]}[/]",
            f"{f.last_loaded:%Y-%m-%d %H:%M}" if f.last_loaded else "-",
            (f.newest_record or "-")[:16],
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
        if f.state == "failing" and f.last_good is not None:
            g = f.last_good
            console.print(
                f"[yellow]{f.feed}[/]: {f.rejected_since_load:,} delivery(ies) rejected since the last load "
                f"({g.source}, {g.at:%Y-%m-%d %H:%M}: {g.extracted:,} extracted, {g.loaded:,} loaded, "
                f"{g.quarantined:,} quarantined)",
                highlight=False,
            )
        for note in f.notes:
            console.print(f"[yellow]{f.feed}[/]: {note}", highlight=False)
    for w in warnings:
        console.print(f"warnings for {w.department}: {w.open} open, {w.overdue} overdue")


def feeds(as_json: JsonOption = False) -> None:
    """List registered adapters (feeds) and their sources, and any that fail to load."""
    from lidm.registry import adapters, broken

    if as_json:
        rows = [
            {"feed": name, "contract": a.contract, "source": a.source.describe(), "broken": None}
            for name, a in adapters().items()
        ]
        rows += [{"feed": name, "contract": None, "source": None, "broken": why} for name, why in broken().items()]
        print_json_lines(rows)
        return
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
