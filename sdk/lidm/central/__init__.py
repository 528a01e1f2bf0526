"""The central database: schema (from contracts), migrations (Alembic) and the batch loader."""

from lidm.central.db import connect, migrate
from lidm.central.schema import core_metadata, dataset_table, full_metadata

__all__ = ["connect", "core_metadata", "dataset_table", "full_metadata", "migrate"]
