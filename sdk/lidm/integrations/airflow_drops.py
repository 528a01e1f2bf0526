"""Waiting for a complete drop: a deferrable sensor and its trigger.

A drop is complete when its marker is there (`roster_20261127.csv` + `.ok`), never when a file name merely
matches: the check is `DropSource.pending`, the same one the feed's load uses, over the same store (SFTP
with pinned host keys, or a local folder) resolved from the same Airflow connection. While it waits, the
sensor holds no worker slot: it defers to `DropTrigger`, which polls in the triggerer. An unreachable SFTP
server is polled again (a drop-out is not a verdict); a configuration or host-key fault ends the wait.

Airflow is imported only when one of the two classes is first asked for (`DropSensor`, `DropTrigger` are
built by the module's `__getattr__`), so the SDK still imports where Airflow is not installed, and the
triggerer still finds the trigger by its class path.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from lidm.errors import LidmError, SourceError


def pending_drops(feed: str) -> int:
    """How many complete drops wait for `feed` (files with their marker), read through its Airflow connection."""
    from lidm.config import get_settings
    from lidm.integrations.airflow import _connection_url, _Scratch
    from lidm.registry import get_adapter
    from lidm.sources import DropSource
    from lidm.sources.drops import open_store

    adapter = get_adapter(feed)
    source = adapter.source
    if not isinstance(source, DropSource):
        raise LidmError(f"feed {feed} reads {source.describe()}, not a drop: it has nothing to wait for")
    with tempfile.TemporaryDirectory(prefix="lidm-conn-") as folder:
        store = open_store(_connection_url(source.connection, _Scratch(Path(folder))), get_settings())
        try:
            return len(source.pending(store))
        finally:
            store.close()


@cache
def _classes() -> dict[str, type]:
    from airflow.sdk import BaseSensorOperator
    from airflow.sdk.exceptions import AirflowFailException
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

    class DropSensor(BaseSensorOperator):
        """Succeeds once a complete drop of the feed is waiting; defers (no worker slot) until then."""

        template_fields = ("feed",)

        def __init__(self, *, feed: str, deferrable: bool = True, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.feed = feed
            self.deferrable = deferrable

        def poke(self, context: Any) -> bool:
            try:
                return pending_drops(self.feed) > 0
            except SourceError as exc:
                self.log.warning("feed %s: drop folder unreachable, trying again: %s", self.feed, exc)
                return False
            except LidmError as exc:
                raise AirflowFailException(f"feed {self.feed}: {type(exc).__name__}: {exc}") from None

        def execute(self, context: Any) -> Any:
            if not self.deferrable:
                return super().execute(context)
            if self.poke(context):
                self.log.info("feed %s: a complete drop is waiting", self.feed)
                return None
            self.defer(
                trigger=DropTrigger(self.feed, float(self.poke_interval)),
                method_name="execute_complete",
                timeout=timedelta(seconds=float(self.timeout)),
            )
            return None

        def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> int:
            if not event or "error" in event:
                raise AirflowFailException(f"feed {self.feed}: {(event or {}).get('error', 'no event')}")
            self.log.info("feed %s: %d complete drop(s) arrived", self.feed, event["drops"])
            return int(event["drops"])

    DropTrigger.__module__ = DropSensor.__module__ = __name__
    return {"DropTrigger": DropTrigger, "DropSensor": DropSensor}


def __getattr__(name: str) -> type:
    if name in ("DropTrigger", "DropSensor"):
        return _classes()[name]
    raise AttributeError(name)
