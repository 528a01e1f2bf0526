"""What every `lidm` command shares: the one console, the settings, failing with exit 2, the catalogue, the keyring,
and --json."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Console

from lidm.config import Settings
from lidm.errors import LidmError

console = Console()

# Every listing command's --json: JSON Lines, one object per row of its table, the same keys on every row.
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="Print one JSON object per row (JSON Lines): stable keys, ISO 8601 times, numbers as numbers."
    ),
]


def print_json_lines(rows: Iterable[Mapping[str, Any]]) -> None:
    """Write rows as JSON Lines on stdout, for scripts: nothing else is printed, so `jq` reads every line."""
    for row in rows:
        typer.echo(json.dumps(row, ensure_ascii=False, default=_plain))


def _plain(value: Any) -> Any:
    """Machine values: a time as ISO 8601 with its zone (the gateway keeps naive times in UTC), a decimal as a
    number."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")


def current_settings() -> Settings:
    """The settings from `lidm.cli.get_settings`, looked up at each call: replacing that one name reaches every
    command (the tests do)."""
    from lidm import cli

    return cli.get_settings()


def wide() -> Console:
    """Tables people read in full: when output is not a terminal (a pipe, a CI log), do not cut at 80."""
    return console if console.is_terminal else Console(width=max(console.width, 180))


def fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


def read_catalog():  # type: ignore[no-untyped-def]
    from lidm.contracts import load_catalog

    try:
        return load_catalog(current_settings().contracts_dir)
    except LidmError as exc:
        fail(exc)


def keyring_or_none():  # type: ignore[no-untyped-def]
    """The keyring when configured: it seals audit entries; without one they are chained but unsealed."""
    from lidm.keys import load_keyring_or_none

    return load_keyring_or_none(current_settings())


def load_connections(value: str | None) -> dict[str, str] | None:
    """A JSON object or a JSON file of connections (as `lidm sample` writes them), for --connections."""
    import json
    from pathlib import Path

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
