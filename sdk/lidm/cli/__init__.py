"""The `lidm` command: parses, calls the SDK, renders. No logic lives only here.

`app` is assembled here from one module per group of commands; they all print through `console` and read the
settings through `get_settings`, looked up on this package at each call (`common.current_settings`)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Annotated

import typer

from lidm.cli import adapter, airflow, audit, central, contracts, feeds, grants, keys, lists, monitor
from lidm.cli.common import console
from lidm.config import get_settings

__all__ = ["app", "console", "get_settings", "main"]

app = typer.Typer(help="lidm: the low-income population data-sharing gateway.", no_args_is_help=True)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each batch does.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


# The order here is the order `lidm --help` lists them in: the commands (those of installed plugins first: the
# demo and sample commands of lidm-samples), then the groups.
for entry in entry_points(group="lidm.commands"):
    entry.load()(app)
app.command()(feeds.run)
app.command("reconcile")(feeds.reconcile_command)
app.command()(feeds.status)
app.command()(feeds.feeds)
app.command("report")(monitor.report_command)
app.command("reidentify")(central.reidentify_command)
app.command("purge")(central.purge_command)
app.command("export")(central.export)
app.add_typer(contracts.contracts_app, name="contracts")
app.add_typer(adapter.adapter_app, name="adapter")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(central.db_app, name="db")
monitor.monitor_app.command("quality")(lists.quality_command)
monitor.monitor_app.command("projects")(lists.projects_command)
app.add_typer(monitor.monitor_app, name="monitor")
app.add_typer(keys.drop_app, name="drop")
app.add_typer(grants.grants_app, name="grants")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(central.batch_app, name="batch")
app.add_typer(central.quarantine_app, name="quarantine")
app.add_typer(airflow.airflow_app, name="airflow")
