"""lidm: the data-sharing gateway for low-income population monitoring.

The public API an adapter may use is what this module exports; everything else is internal.
"""

from lidm.adapter import Adapter, Convert, codes, date, fen_to_yuan, labels, source_column
from lidm.errors import (
    ConfigError,
    ContractError,
    HostKeyError,
    KeyringError,
    LidmError,
    RejectedBatch,
    SourceError,
)
from lidm.sources import DropSource, SqlSource
from lidm.standard_codes import GB_DISABILITY_TYPE, GB_GENDER, LOW_INCOME_CATEGORY_SHORT

__all__ = [
    "GB_DISABILITY_TYPE",
    "GB_GENDER",
    "LOW_INCOME_CATEGORY_SHORT",
    "Adapter",
    "ConfigError",
    "ContractError",
    "Convert",
    "DropSource",
    "HostKeyError",
    "KeyringError",
    "LidmError",
    "RejectedBatch",
    "SourceError",
    "SqlSource",
    "codes",
    "date",
    "fen_to_yuan",
    "labels",
    "source_column",
]
__version__ = "0.1.0"
