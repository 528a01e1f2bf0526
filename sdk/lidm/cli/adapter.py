"""`lidm adapter`: list adapters, scaffold a new one, verify one with the test kit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lidm.cli.common import console, current_settings, fail, load_connections, wide
from lidm.cli.feeds import feeds
from lidm.errors import LidmError

adapter_app = typer.Typer(help="Adapters: list, scaffold a new one, verify one (the test kit).", no_args_is_help=True)


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
    into: Annotated[
        Path | None,
        typer.Option(
            help="Your own adapter package's folder; its pyproject.toml is written if missing "
            "(default: this checkout's adapters/)."
        ),
    ] = None,
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
            contracts_dir=current_settings().contracts_dir,
            name=name,
        )
    except LidmError as exc:
        fail(exc)
    console.print(f"wrote {made.adapter}" + (f" and {made.test}" if made.test else ""))
    if made.project is not None:
        console.print(f"wrote {made.project}: it registers {made.feed}; install it with `pip install -e {into}`")
    if made.register is not None:
        console.print(f"[yellow]{made.register}[/]", highlight=False)
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
        result = verify(name, connections=load_connections(connections), sample_rows=sample_rows)
    except LidmError as exc:
        fail(exc)
    style = {PASS: "green", WARN: "yellow", FAIL: "red", SKIP: "dim"}
    table = Table(title=f"Conformance of {name} ({result.contract} {result.contract_version})")
    table.add_column("check", no_wrap=True)
    table.add_column("result")
    table.add_column("detail")
    for c in result.checks:
        table.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", c.detail)
    wide().print(table)
    verdict = "[green]CONFORMS[/]" if result.passed else "[red]DOES NOT CONFORM[/]"
    console.print(f"{name}: {verdict}")
    if report:
        console.print(f"report: {result.write(report)}")
    if not result.passed:
        raise typer.Exit(code=1)
