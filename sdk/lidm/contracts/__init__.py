"""Contracts: ODCS v3 documents with the gateway's keys, loaded into typed objects."""

from lidm.contracts.load import ContractCatalog, load_catalog, load_contract, load_one
from lidm.contracts.model import Classification, Contract, Field, Protection, UpdateMode

__all__ = [
    "Classification",
    "Contract",
    "ContractCatalog",
    "Field",
    "Protection",
    "UpdateMode",
    "load_catalog",
    "load_contract",
    "load_one",
]
