"""`lidm airflow`: what an Airflow deployment needs from lidm before its scheduler starts (connections, pools)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from lidm.cli.common import console, current_settings, fail
from lidm.config import json_setting
from lidm.errors import ConfigError, LidmError

airflow_app = typer.Typer(help="Airflow connections and pools for the lidm DAGs.", no_args_is_help=True)


def _emit(value: dict[str, Any], out: Path | None, what: str) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)  # plain stdout: `> file` and pipes get exactly the JSON
        return
    # Connections carry passwords: the file is the operator's alone, as LIDM_CONNECTIONS's would be.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    console.print(f"{len(value)} {what} written to {out}; load them with `airflow {what} import {out}`", soft_wrap=True)


@airflow_app.command("connections")
def connections(
    source: Annotated[
        str | None,
        typer.Option(
            "--connections",
            help="A LIDM_CONNECTIONS map: inline JSON or a JSON file such as `lidm sample`'s connections.json "
            "(default: LIDM_CONNECTIONS).",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write here (mode 600) instead of printing.")] = None,
) -> None:
    """The sources' connections as Airflow connections, for `airflow connections import FILE`.

    Each feed's DAG reads the Airflow connection named like its adapter's connection; this writes them from the
    URLs the SDK reads, so a deployment runs on what `lidm run` ran on.
    """
    from lidm.integrations.airflow.connections import airflow_connection

    try:
        if source is None:
            urls: Any = current_settings().connections
        else:
            parsed = json_setting(source, "--connections")
            urls = parsed[0] if parsed else {}
        if not isinstance(urls, dict) or not all(isinstance(v, str) for v in urls.values()):
            raise ConfigError("--connections: a JSON object of connection name -> URL")
        result = {name: airflow_connection(name, url) for name, url in sorted(urls.items())}
    except (OSError, ValueError) as exc:
        fail(ConfigError(f"--connections: cannot read it ({type(exc).__name__})"))
    except LidmError as exc:
        fail(exc)
    if not result:
        fail(ConfigError("no connections: set LIDM_CONNECTIONS or give --connections FILE"))
    _emit(result, out, "connections")


@airflow_app.command("pools")
def pools(
    slots: Annotated[int, typer.Option(min=1, help="Slots of each pool: how many lidm tasks may use it at once.")] = 1,
    out: Annotated[Path | None, typer.Option(help="Write here instead of printing.")] = None,
) -> None:
    """Every pool a lidm DAG puts a task in (adapters' pools, one per department), for `airflow pools import FILE`.

    A task in a missing pool is never scheduled: create them before the scheduler starts.
    """
    from lidm.integrations.airflow.connections import pools as pool_table
    from lidm.integrations.airflow.monitor_dags import departments
    from lidm.registry import adapters

    try:
        table = pool_table({a.pool for a in adapters().values() if a.pool}, departments(), slots)
    except LidmError as exc:
        fail(exc)
    _emit(table, out, "pools")
