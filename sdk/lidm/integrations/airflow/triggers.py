"""Waiting for a complete drop, in the triggerer: `DropTrigger`, and `pending_drops`, the check it polls.

A drop is complete when its marker is there (`roster_20261127.csv` + `.ok`), never when a file name merely
matches: the check is `DropSource.pending`, the same one the feed's load uses, over the same store (SFTP
with pinned host keys, or a local folder) resolved from the same Airflow connection. An unreachable SFTP
server is polled again (a drop-out is not a verdict); a configuration or host-key fault ends the wait.

Airflow is imported only when `DropTrigger` is first asked for (the class is built by the module's
`__getattr__`), so the SDK still imports where Airflow is not installed, and the triggerer still finds the
trigger by its class path.
"""

from __future__ import annotations

import asyncio
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from lidm.errors import LidmError, SourceError
from lidm.integrations.airflow.hooks import Scratch, connection_url


def pending_drops(feed: str) -> int:
    """How many complete drops wait for `feed` (files with their marker), read through its Airflow connection."""
    from lidm.config import get_settings
    from lidm.registry import get_adapter
    from lidm.sources.stores import open_store

    adapter = get_adapter(feed)
    source = adapter.source
    if not source.delivers_files:
        raise LidmError(f"feed {feed} reads {source.describe()}, not a drop: it has nothing to wait for")
    with tempfile.TemporaryDirectory(prefix="lidm-conn-") as folder:
        store = open_store(connection_url(source.connection, Scratch(Path(folder))), get_settings())
        try:
            return len(source.pending(store))
        finally:
            store.close()


@cache
def _classes() -> dict[str, type]:
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    class DropTrigger(BaseTrigger):
        """Polls the drop folder from the triggerer until a complete drop is there."""

        def __init__(self, feed: str, poll_interval: float = 60.0) -> None:
            super().__init__()
            self.feed = feed
            self.poll_interval = poll_interval

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return f"{__name__}.DropTrigger", {"feed": self.feed, "poll_interval": self.poll_interval}

        async def run(self):  # type: ignore[no-untyped-def, override]
            while True:
                try:
                    count = await asyncio.to_thread(pending_drops, self.feed)
                except SourceError as exc:  # the server dropped out: try again at the next poll
                    self.log.warning("feed %s: drop folder unreachable, polling again: %s", self.feed, exc)
                    count = 0
                except LidmError as exc:
                    yield TriggerEvent({"feed": self.feed, "error": f"{type(exc).__name__}: {exc}"})
                    return
                if count:
                    yield TriggerEvent({"feed": self.feed, "drops": count})
                    return
                await asyncio.sleep(self.poll_interval)

    DropTrigger.__module__ = __name__
    return {"DropTrigger": DropTrigger}


def __getattr__(name: str) -> type:
    if name == "DropTrigger":
        return _classes()[name]
    raise AttributeError(name)
