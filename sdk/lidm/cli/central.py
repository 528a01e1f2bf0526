"""The central database: `lidm db`, `lidm batch`, `lidm quarantine`; reidentify, purge and export (put on `app` by
`lidm.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lidm.cli.common import JsonOption, console, current_settings, fail, print_json_lines, read_catalog, wide
from lidm.config import Settings
from lidm.errors import LidmError
from lidm.redact import redact_url

db_app = typer.Typer(help="Central database.", no_args_is_help=True)
batch_app = typer.Typer(help="Loaded batches: list them, recall one.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Rows held back by validation: list them, export them for the department.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the central database to the newest migrations, lidm's and the deployment's (LIDM_MIGRATIONS_DIR), as
    the owner (LIDM_ADMIN_URL when set)."""
    from lidm.central import connect, migrate
    from lidm.central.db import heads

    settings: Settings = current_settings()
    try:
        engine = connect(settings, admin=True)
        migrate(engine, settings)
        at = ", ".join(sorted(heads(settings)))
    except LidmError as exc:
        fail(exc)
    where = redact_url(engine.url.render_as_string(hide_password=False))
    console.print(f"central database at head ({at}): {where}", highlight=False, soft_wrap=True)


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the migration does, e.g. the dataset.")],
    core: Annotated[
        bool,
        typer.Option(
            "--core", help="For lidm's own maintainers: a migration of the SDK itself (a source checkout only)."
        ),
    ] = False,
) -> None:
    """Write a migration for the tables the contracts need and the migrations lack (a new dataset's), into the
    deployment's migrations folder (LIDM_MIGRATIONS_DIR), never into the installed lidm; review it, then
    `lidm db upgrade`."""
    from lidm.central import full_metadata
    from lidm.central.revision import write_revision

    try:
        path = write_revision(current_settings(), message, full_metadata(read_catalog()), core=core)
    except LidmError as exc:
        fail(exc)
    if path is None:
        console.print("nothing to migrate: the migrations already make every table the contracts describe")
        return
    console.print(
        f"wrote {path}: review it, keep it with the contracts, then run `lidm db upgrade`",
        highlight=False,
        soft_wrap=True,
    )


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
        values = reidentify(
            current_settings(), consumer=consumer, purpose=purpose, dataset=dataset, field=field, keys=keys
        )
    except LidmError as exc:
        fail(exc)
    table = Table(title=f"{dataset}.{field} for {consumer} (audited)")
    table.add_column("key", overflow="fold")
    table.add_column(field, overflow="fold")
    for v in values:
        table.add_row(v.key, "" if v.value is None else v.value)
    wide().print(table)


@batch_app.command("list")
def batch_list(
    feed: Annotated[str | None, typer.Option(help="Only this feed, e.g. health.population.")] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest batches.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The newest batches: status (loaded, rejected, recalled), counts, watermark, recall reason."""
    from lidm.central.recall import list_batches

    try:
        rows = list_batches(current_settings(), feed=feed, limit=limit)
    except LidmError as exc:
        fail(exc)
    if as_json:
        print_json_lines(rows)
        return
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
    wide().print(table)


@batch_app.command("accept")
def batch_accept(
    batch_id: Annotated[str, typer.Argument(help="The held batch (see `lidm batch list`).")],
    reason: Annotated[str, typer.Option(help="Why this content is right after all (kept in the audit log).")],
) -> None:
    """Accept a held batch (a full snapshot that shrank past lidmMaxRetireFraction): the feed's next run loads
    that exact content; a drop is put back from rejected/ into the drop folder. Audited."""
    from lidm.pipeline import accept_held

    try:
        a, moved = accept_held(batch_id, reason, current_settings())
    except LidmError as exc:
        fail(exc)
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
        r = recall_batch(current_settings(), batch_id, reason=reason, force=force)
    except LidmError as exc:
        fail(exc)
    console.print(
        f"batch {r.batch_id} ({r.feed}) recalled: {r.removed:,} rows removed ({r.overwritten:,} had replaced an "
        f"earlier version, now lost), {r.unretired:,} un-retired, {r.quarantine_removed:,} quarantine rows removed; "
        f"watermark {r.watermark}{f' to {r.watermark_value}' if r.watermark_value else ''}",
        highlight=False,
    )
    readers = ", ".join(f"{c['consumer']} ({c['rows']})" for c in r.consumers) or "none"
    console.print(f"consumers that could read {r.contract}: {readers}", highlight=False)


@quarantine_app.command("list")
def quarantine_list(
    feed: Annotated[str | None, typer.Argument(help="Only this feed.")] = None,
    resolved: Annotated[bool, typer.Option("--resolved", help="Also rows a corrected re-delivery resolved.")] = False,
    limit: Annotated[int, typer.Option(help="How many rows at most.")] = 200,
) -> None:
    """Quarantined rows: source, row and line, the row's key (masked) and record time, field and reason; open ones
    unless --resolved."""
    from lidm.central.holds import list_quarantine

    try:
        rows = list_quarantine(current_settings(), feed, include_resolved=resolved, limit=limit)
    except LidmError as exc:
        fail(exc)
    table = Table(title="Quarantine" + (f" of {feed}" if feed else ""))
    for col in ("feed", "source", "row", "line", "key and record time", "field", "reason", "message", "resolved by"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["feed"],
            r["source"],
            str(r["row_number"] or ""),
            str(r["line_number"] or ""),
            r["locator"] or "",
            r["field"] or "",
            r["reason"],
            r["message"],
            r["resolved_batch"] or "",
        )
    wide().print(table)


@quarantine_app.command("export")
def quarantine_export(
    feed: Annotated[str, typer.Argument(help="The feed, e.g. civil_affairs.low_income_roster.")],
    out: Annotated[Path, typer.Option(help="CSV file to write (UTF-8 with BOM).")],
    resolved: Annotated[bool, typer.Option("--resolved", help="Also resolved rows.")] = False,
) -> None:
    """Write a feed's quarantined rows (row, line, key masked and record time, field, reason) as CSV to send to the
    department."""
    from lidm.central.holds import list_quarantine, quarantine_csv

    try:
        rows = list_quarantine(current_settings(), feed, include_resolved=resolved, limit=None)
    except LidmError as exc:
        fail(exc)
    out.write_text(quarantine_csv(rows), "utf-8")
    console.print(f"{len(rows):,} quarantined row(s) of {feed} written to {out}", highlight=False)


def purge_command(
    dry_run: Annotated[bool, typer.Option(help="Count what would be deleted; change nothing.")] = False,
) -> None:
    """Delete rows past their contract's retention (lidmRetention) and quarantine past LIDM_QUARANTINE_RETENTION."""
    from lidm.central.retention import purge_expired

    try:
        r = purge_expired(current_settings(), dry_run=dry_run)
    except LidmError as exc:
        fail(exc)
    table = Table(title="Purge (dry run: nothing deleted)" if dry_run else "Purge")
    for col in ("dataset", "rows", "cutoff", "aged by"):
        table.add_column(col, overflow="fold")
    for cid, d in r.datasets.items():
        table.add_row(cid, f"{d['rows']:,}", d["cutoff"], d["by"])
    table.add_row("quarantine", f"{r.quarantine:,}", r.quarantine_cutoff or "", "batch finished_at")
    wide().print(table)


def export(
    dataset: Annotated[str, typer.Argument(help="Contract id, e.g. civil_affairs.low_income_roster.")],
    consumer: Annotated[str, typer.Option(help="The consumer the extract is for (contracts/consumers.yaml).")],
    out: Annotated[Path, typer.Option(help="CSV file to write.")],
) -> None:
    """A consumer's extract of a dataset: only its granted columns and rows (how grants hold on SQLite)."""
    from lidm.central.export import export_dataset

    try:
        result = export_dataset(current_settings(), consumer, dataset, out)
    except LidmError as exc:
        fail(exc)
    console.print(f"{result.rows:,} rows, {len(result.columns)} columns for {consumer} -> {result.path}")
    if result.withheld:
        console.print(f"withheld (clear only through `lidm reidentify`): {', '.join(result.withheld)}")
