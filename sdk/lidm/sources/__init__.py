"""Where rows come from: SQL sources (SQLAlchemy URL or ODBC) and drops (SFTP or local folder)."""

from lidm.sources.base import ReadOptions, Source, SourceBatch
from lidm.sources.drops import DropSource
from lidm.sources.sql import SqlSource

__all__ = ["DropSource", "ReadOptions", "Source", "SourceBatch", "SqlSource"]
