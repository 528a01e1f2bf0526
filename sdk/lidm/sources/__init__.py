"""Where rows come from: SQL sources (SQLAlchemy URL or ODBC) and drops (SFTP or local folder).

The names are imported on first use (as in ``lidm``): declaring a source must not load its readers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "DropSource": "lidm.sources.drops",
    "ReadOptions": "lidm.sources.base",
    "Source": "lidm.sources.base",
    "SourceBatch": "lidm.sources.base",
    "SqlSource": "lidm.sources.sql",
}

if TYPE_CHECKING:
    from lidm.sources.base import ReadOptions, Source, SourceBatch
    from lidm.sources.drops import DropSource
    from lidm.sources.sql import SqlSource

__all__ = ["DropSource", "ReadOptions", "Source", "SourceBatch", "SqlSource"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'lidm.sources' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
