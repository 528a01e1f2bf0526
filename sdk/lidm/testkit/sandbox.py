"""A throwaway gateway for one verification, and the log capture the leak scan reads."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lidm.config import Settings
from lidm.keys import generate_keyring, write_keyring


class _Capture(logging.Handler):
    """Every log record the gateway emits while it runs, formatted, for the PII scan."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a broken log call must not hide the check results
            self.lines.append(f"<unformattable log record from {record.name}>")


@contextmanager
def captured_logs() -> Iterator[_Capture]:
    handler = _Capture()
    root = logging.getLogger()
    previous = root.level
    # Everything reaches the scan; the console keeps showing only what it showed before.
    quieted = [(h, h.level) for h in root.handlers]
    for h, level in quieted:
        h.setLevel(max(level, previous))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        for h, level in quieted:
            h.setLevel(level)


@dataclass
class Sandbox:
    """A throwaway gateway for one verification."""

    home: Path
    settings: Settings
    connections: dict[str, str]

    @classmethod
    def create(cls, home: Path, connections: Mapping[str, str], central_url: str | None = None) -> Sandbox:
        home.mkdir(parents=True, exist_ok=True)
        settings = Settings(home=home, central_url=central_url, keyring=home / "keyring.json")
        if not settings.effective_keyring.exists():
            write_keyring(generate_keyring(), settings.effective_keyring)
        return cls(home, settings, dict(connections))
