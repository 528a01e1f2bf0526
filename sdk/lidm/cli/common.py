"""What every `lidm` command shares: the one console, the settings, failing with exit 2, the catalogue, the keyring."""

from __future__ import annotations

import typer
from rich.console import Console

from lidm.config import Settings
from lidm.errors import LidmError

console = Console()


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
