"""Source connections given to the test kit on the command line (`--lidm-connections`)."""

from __future__ import annotations

import json
from pathlib import Path


def load_connections(value: str | None) -> dict[str, str] | None:
    """--lidm-connections: a JSON object, or a JSON file such as the connections.json of `lidm sample`."""
    if not value:
        return None
    text = Path(value).read_text("utf-8") if not value.lstrip().startswith("{") else value
    return json.loads(text)
