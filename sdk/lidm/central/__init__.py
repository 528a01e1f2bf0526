"""The central database: schema (from contracts), migrations (Alembic) and the batch loader."""

from lidm.central.db import connect, connect_existing, migrate
from lidm.central.schema import core_metadata, dataset_table, full_metadata

__all__ = ["connect", "connect_existing", "core_metadata", "dataset_table", "full_metadata", "migrate"]
