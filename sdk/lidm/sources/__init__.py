"""Where rows come from: SQL sources (SQLAlchemy URL or ODBC) and drops (SFTP or local folder).

The names are imported on first use (as in ``lidm``): declaring a source must not load its readers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidm import lazy

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

__getattr__, __dir__ = lazy.exports(__name__, _WHERE)
