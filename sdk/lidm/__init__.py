"""lidm: the data-sharing gateway for low-income population monitoring.

The public API an adapter may use is what this module exports; everything else is internal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidm import lazy

# Where each public name lives. They are imported on first use (PEP 562), so declaring an adapter (what an
# Airflow DAG parse does for every feed) costs no pyarrow, no SSH and no database driver.
_WHERE = {
    "Adapter": "lidm.adapter",
    "Convert": "lidm.adapter",
    "codes": "lidm.adapter",
    "code_list": "lidm.adapter",
    "date": "lidm.adapter",
    "fen_to_yuan": "lidm.adapter",
    "labels": "lidm.adapter",
    "source_column": "lidm.adapter",
    "ConfigError": "lidm.errors",
    "ContractError": "lidm.errors",
    "HostKeyError": "lidm.errors",
    "KeyringError": "lidm.errors",
    "LidmError": "lidm.errors",
    "RejectedBatch": "lidm.errors",
    "SourceError": "lidm.errors",
    "DropSource": "lidm.sources.drops",
    "SqlSource": "lidm.sources.sql",
    "GB_DISABILITY_TYPE": "lidm.standard_codes",
    "GB_GENDER": "lidm.standard_codes",
    "LOW_INCOME_CATEGORY_SHORT": "lidm.standard_codes",
}

if TYPE_CHECKING:
    from lidm.adapter import Adapter, Convert, code_list, codes, date, fen_to_yuan, labels, source_column
    from lidm.errors import (
        ConfigError,
        ContractError,
        HostKeyError,
        KeyringError,
        LidmError,
        RejectedBatch,
        SourceError,
    )
    from lidm.sources.drops import DropSource
    from lidm.sources.sql import SqlSource
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
    "code_list",
    "codes",
    "date",
    "fen_to_yuan",
    "labels",
    "source_column",
]
__version__ = "0.1.0"

__getattr__, __dir__ = lazy.exports(__name__, _WHERE)
