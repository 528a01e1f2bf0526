"""`lidm grants`: the roles, schemas and views PostgreSQL enforces grants with."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import typer
from rich.table import Table

from lidm.cli.common import console, current_settings, fail, keyring_or_none, read_catalog, wide
from lidm.errors import LidmError
from lidm.redact import redact_url

grants_app = typer.Typer(
    help="Grants enforced by PostgreSQL: per consumer a role and a schema of views of what it may read.",
    no_args_is_help=True,
)


def _grants(run, sql: bool, withheld: bool) -> None:  # type: ignore[no-untyped-def]
    """Run a grants step against the central database and render its statements, counts and notes."""
    from lidm.central import connect

    catalog = read_catalog()
    engine = connect(current_settings(), admin=True)  # the owner's: it owns the views and makes the roles
    try:
        title, result = run(catalog, engine)
    except LidmError as exc:
        fail(exc)
    finally:
        engine.dispose()
    if result.statements:
        table = Table(title=f"{title} on {redact_url(engine.url.render_as_string(hide_password=False))}")
        for col in ("action", "object", "consumer", "SQL" if sql else "why"):
            table.add_column(col, overflow="fold")
        for st in result.statements:
            table.add_row(st.action, st.target, st.consumer or "", st.sql if sql else st.why or "")
        wide().print(table)
    counts = ", ".join(f"{action} {n:,}" for action, n in sorted(result.counts().items()))
    console.print(f"{title}: {counts or 'nothing to change, the database matches the grants'}", highlight=False)
    if withheld and result.withheld:
        table = Table(title="Granted clear but stored only encrypted: in no view, clear only by re-identification")
        for col in ("dataset", "fields", "consumers"):
            table.add_column(col, overflow="fold")
        for w in result.withheld:
            table.add_row(w.contract, ", ".join(w.fields), ", ".join(w.consumers))
        wide().print(table)
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

    engine = connect(current_settings(), admin=True)
    try:
        with engine.connect() as conn:
            rows = k_report(read_catalog(), conn)
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
    wide().print(table)
    console.print(f"k-anonymity: {len(below)} of {len(rows)} consumer datasets below k={MIN_K}", highlight=False)


@grants_app.command("apply")
def grants_apply(sql: Annotated[bool, typer.Option(help="Show each statement's SQL.")] = False) -> None:
    """Make the database's roles, schemas and views, the loader role and PUBLIC's privileges match, in one transaction.

    Run as the owner (LIDM_ADMIN_URL): an administrator's role with CREATEROLE, never the service's."""
    from lidm.central.grants import apply

    keyring = keyring_or_none()
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

    settings = current_settings()
    engine = connect(settings)
    try:
        keyring = load_keyring(settings)
        with engine.begin() as conn:
            done = release.sync(conn, keyring)
    except (LidmError, sa.exc.DBAPIError) as exc:
        fail(exc if isinstance(exc, LidmError) else LidmError(f"grants refresh: {type(exc.orig).__name__}"))
    finally:
        engine.dispose()
    for s in done:
        how = "rebuilt whole" if s.whole else f"{s.noted:,} changed keys"
        console.print(f"{s.table}: {how}, {s.releases} release(s), {s.rows:,} rows written", highlight=False)
    console.print(f"grants refresh: {len(done)} table(s) synced" if done else "grants refresh: nothing noted")


def _loader_role() -> str | None:
    """The loader role grants manage: only in a three-role deployment (LIDM_ADMIN_URL set), as the README sets out."""
    settings = current_settings()
    if settings.admin_url and settings.loader_role:
        return settings.loader_role
    console.print(
        "[dim]note:[/] LIDM_ADMIN_URL is unset, so one role does everything: no loader role is managed and PUBLIC "
        "keeps its database privileges (README: Deployment: three roles)",
        highlight=False,
    )
    return None
