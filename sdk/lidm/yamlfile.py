"""Reading a declaration file (a rule, a happiness-list source, a sample declaration): one YAML mapping.

Each kind validates the mapping with its own model; what they share is reading it, with an error that names the
file and never a Python traceback: unreadable, not YAML, or not one mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lidm.errors import LidmError


def read_mapping(path: Path, what: str, error: type[LidmError], keys: str = "") -> dict[Any, Any]:
    """The file's one mapping; ``error`` naming the file (and ``keys``, what the mapping holds) otherwise."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read the {what}: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: a {what} holds one mapping{f' ({keys})' if keys else ''}")
    return data
