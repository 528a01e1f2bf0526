"""Waiting for a complete drop: `DropSensor`, deferrable.

The sensor succeeds once a complete drop of its feed is waiting (`triggers.pending_drops`, the check the
feed's load makes). While it waits it holds no worker slot: it defers to `triggers.DropTrigger`, which polls
in the triggerer. An unreachable SFTP server is tried again; a configuration or host-key fault fails the task.

Airflow is imported only when `DropSensor` is first asked for (the class is built by the module's
`__getattr__`), so the SDK still imports where Airflow is not installed.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from lidm.errors import LidmError, SourceError
from lidm.integrations.airflow import triggers
from lidm.integrations.airflow.triggers import pending_drops


@cache
def _classes() -> dict[str, type]:
    from airflow.sdk import BaseSensorOperator
    from airflow.sdk.exceptions import AirflowFailException

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
                trigger=triggers.DropTrigger(self.feed, float(self.poke_interval)),
                method_name="execute_complete",
                timeout=timedelta(seconds=float(self.timeout)),
            )
            return None

        def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> int:
            if not event or "error" in event:
                raise AirflowFailException(f"feed {self.feed}: {(event or {}).get('error', 'no event')}")
            self.log.info("feed %s: %d complete drop(s) arrived", self.feed, event["drops"])
            return int(event["drops"])

    DropSensor.__module__ = __name__
    return {"DropSensor": DropSensor}


def __getattr__(name: str) -> type:
    if name == "DropSensor":
        return _classes()[name]
    raise AttributeError(name)
