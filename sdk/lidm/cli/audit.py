"""`lidm audit`: verify the tamper-evident audit log, checkpoint it, show its entries and the consumers' reads."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import typer
from rich.table import Table

from lidm.cli.common import JsonOption, console, current_settings, fail, keyring_or_none, print_json_lines, wide
from lidm.errors import LidmError

audit_app = typer.Typer(help="The tamper-evident audit log: verify the chain, show entries.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    strict: Annotated[bool, typer.Option(help="Also fail when entries follow the last seal (chain-only).")] = False,
    pin: Annotated[
        list[str] | None,
        typer.Option(help="SEQ:HASH of a checkpoint kept outside the database (repeatable); it must still hold."),
    ] = None,
) -> None:
    """Recompute the hash chain (seals with the keyring, checkpoints with their public keys); exit 1 at a break."""
    from lidm.central import audit, connect_existing
    from lidm.keys import load_audit_public_keys

    try:
        engine = connect_existing(current_settings())
    except LidmError as exc:
        fail(exc)
    keyring = keyring_or_none()
    try:
        public_keys = load_audit_public_keys(current_settings()) or None
        pinned = {}
        for p in pin or []:
            seq, _, digest = p.partition(":")
            if not seq.isdigit() or len(digest) != 64:
                raise LidmError(f"--pin {p!r}: give SEQ:HASH as `lidm audit checkpoint` prints them")
            pinned[int(seq)] = digest
        report = audit.verify(engine, keyring, public_keys, pinned=pinned)
    except LidmError as exc:
        fail(exc)
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

    settings = current_settings()
    engine = connect(settings, admin=True)  # the loader may read checkpoints, never write them
    try:
        mark = audit.checkpoint(
            engine,
            load_audit_key(settings),
            keyring=keyring_or_none(),
            public_keys=load_audit_public_keys(settings) or None,
        )
    except LidmError as exc:
        fail(exc)
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
    as_json: JsonOption = False,
) -> None:
    """The newest entries: who did what to which feed, batch, push or consumer (counts and ids only)."""
    from lidm.central import audit, connect_existing

    try:
        engine = connect_existing(current_settings())
        try:
            rows = audit.entries(engine, last=last, action=action)
        finally:
            engine.dispose()
    except LidmError as exc:
        fail(exc)
    if as_json:
        print_json_lines(e.as_row() for e in rows)
        return
    table = Table(title="Audit log")
    for col in ("seq", "at (UTC)", "actor", "action", "subject", "detail", "sealed"):
        table.add_column(col, overflow="fold", justify="right" if col == "seq" else "left")
    for e in rows:
        table.add_row(
            str(e.seq), f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.subject, e.detail, "yes" if e.seal else ""
        )
    wide().print(table)


@audit_app.command("reads")
def audit_reads(
    since: Annotated[str | None, typer.Option(help="Only reads from this date or time on (2026-12-01).")] = None,
) -> None:
    """Consumers' reads of their views, as pgaudit logged them (LIDM_PGAUDIT_LOG): per view and login, counts only."""
    from lidm.central import reads

    settings = current_settings()
    database = sa.engine.make_url(settings.central_url).database if settings.central_url else None
    try:
        rows = reads.summarise(reads.log_files(settings.pgaudit_log), database, since)
    except LidmError as exc:
        fail(exc)
    table = Table(title=f"Reads of consumer views in {database or 'every database'} (pgaudit)")
    for col in ("consumer", "view", "login", "reads", "first", "last"):
        table.add_column(col, overflow="fold", justify="right" if col == "reads" else "left")
    for r in rows:
        table.add_row(r.consumer, r.view, r.user, f"{r.reads:,}", r.first, r.last)
    wide().print(table)
    total = sum(r.reads for r in rows)
    console.print(f"audit reads: {total:,} reads by {len({r.user for r in rows})} logins", highlight=False)
