"""The typed view of a contract that the pipeline works from."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

SEALED = "_sealed"  # the one column holding a row's encrypted fields (lidm.protect)


def sealed_field_id(name: str) -> bytes:
    """The 2 bytes that name a field inside a sealed row (lidm.protect): a hash of its name, so a row stays readable
    whatever fields a later contract version adds; two fields of one contract with the same id are refused when the
    contract loads (lidm.contracts.load)."""
    return hashlib.blake2b(name.encode("utf-8"), digest_size=2, person=b"lidm-field").digest()


class Protection(StrEnum):
    """How one field leaves the gateway: each kind yields its own column, except ENCRYPT (one ``_sealed`` per row)."""

    TOKEN = "token"  # keyed HMAC of the normalized value: joinable across feeds, not reversible
    ENCRYPT = "encrypt"  # sealed in the row's one AEAD message: reversible only through audited re-identification
    MASK = "mask"  # display form, e.g. 4301************** (lidm.protect.mask)
    DROP = "drop"  # never stored centrally
    CLEAR = "clear"  # stored as is


class Classification(StrEnum):
    DIRECT_IDENTIFIER = "direct_identifier"
    QUASI_IDENTIFIER = "quasi_identifier"
    SENSITIVE = "sensitive"
    PLAIN = "plain"


class UpdateMode(StrEnum):
    FULL = "full"  # every batch is the whole dataset
    INCREMENTAL = "incremental"  # every batch holds rows changed since the watermark


class LogicalType(StrEnum):
    STRING = "string"
    DATE = "date"
    TIMESTAMP = "timestamp"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"


# A mainland mobile number or a landline with area code: what Check.PHONE accepts (validation, JSON Schema).
PHONE = r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$"


class Check(StrEnum):
    """Domain checks beyond type, range and enum."""

    ID_NUMBER = "id_number"
    PHONE = "phone"
    DIVISION_CODE = "division_code"


class GrantLevel(StrEnum):
    """How much of a field a consumer sees; each level needs the matching protection in the contract."""

    TOKEN = "token"  # the keyed token only: joinable, never readable
    MASKED = "masked"  # the display mask
    CLEAR = "clear"  # the value: a clear column, or audited re-identification of the encrypted copy


class RowScope(StrEnum):
    ALL = "all"
    OWN_DISTRICTS = "own_districts"  # a county bureau sees only rows of its own districts
    OWN_DEPARTMENT = "own_department"  # a department sees only rows addressed to it (e.g. its warnings)
    # a county bureau of a department other than civil affairs: rows addressed to its department, in its districts
    OWN_DEPARTMENT_DISTRICTS = "own_department_districts"
    OWN_STREETS = "own_streets"  # a street (乡镇/街道) office sees only rows of its own streets


class Grant(BaseModel):
    """One consumer's (or group's) access to a dataset: fields at levels, for a declared purpose."""

    model_config = ConfigDict(frozen=True)

    consumer: str
    purpose: str | None = None
    fields: dict[str, GrantLevel]
    rows: RowScope = RowScope.ALL
    # Token fields the consumer may join across its datasets (those whose grants also list them), for the
    # purpose stated; every other token is pseudonymised for this consumer and this dataset alone.
    linkable: tuple[str, ...] = ()
    line: int | None = None


class Field(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    business_name: str | None = None
    description: str | None = None
    type: LogicalType
    required: bool = False
    primary_key: bool = False
    classification: Classification
    protection: tuple[Protection, ...]
    checks: tuple[Check, ...] = ()
    enum: tuple[str, ...] | None = None
    enum_labels: tuple[str | None, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    minimum: Any = None
    maximum: Any = None
    unit: str | None = None
    code_list: str | None = None  # shared code lists must mean the same everywhere

    @property
    def stored(self) -> bool:
        return Protection.DROP not in self.protection

    def output_columns(self) -> list[tuple[str, Protection]]:
        """Central columns of this field's own, one per protection kind; an encrypted field has none of its own:
        it is sealed with the row's other encrypted fields into the row's one ``_sealed`` column."""
        suffix = {Protection.TOKEN: "_token", Protection.MASK: "_masked", Protection.CLEAR: ""}
        return [(self.name + suffix[p], p) for p in self.protection if p in suffix]


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    version: str
    department: str
    dataset: str
    table: str
    title: str
    description: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    update_mode: UpdateMode
    watermark: str | None = None
    frequency: str | None = None
    freshness: str | None = None
    retention: str | None = None  # lidmRetention, ISO 8601 duration (P5Y); None: rows are never purged
    retention_field: str | None = None  # lidmRetentionField: a date field aging rows instead of their batch
    # lidmMaxRetireFraction: a full snapshot that would retire more than this share of the live rows is held
    # (rejected as suspicious_shrink) until an operator accepts it; 1 turns the guard off.
    max_retire_fraction: float = 0.5
    # lidmMinK: `grants apply` refuses to release this dataset to a consumer that sees no direct identifier when
    # fewer than this many live rows share one combination of the quasi-identifiers it sees (GB/T 37964).
    min_k: int | None = None
    district_field: str | None = None
    department_field: str | None = None
    street_field: str | None = None  # lidmStreetField: the 9-digit street code own_streets grants filter on
    grants: tuple[Grant, ...] = ()
    source_file: str | None = None

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def record_time(self) -> str | None:
        """The field that says when a record last changed at its source: the watermark, else the contract's one
        timestamp field. `lidm status` shows its newest value beside the load time; quarantine names rows by it."""
        if self.watermark is not None:
            return self.watermark
        stamps = [f.name for f in self.fields if f.type is LogicalType.TIMESTAMP]
        return stamps[0] if len(stamps) == 1 else None

    def output_columns(self) -> list[tuple[Field, str, Protection]]:
        return [(f, col, p) for f in self.fields for col, p in f.output_columns()]

    @property
    def sealed_fields(self) -> list[Field]:
        """The encrypted fields, in contract order: each row holds them sealed in one message (``_sealed``)."""
        return [f for f in self.fields if Protection.ENCRYPT in f.protection]

    def key_columns(self) -> list[str]:
        """Central columns that hold the key: the token where the key field is tokenized."""
        cols = []
        for name in self.key:
            f = self.field(name)
            cols.append(f.name + "_token" if Protection.TOKEN in f.protection else f.name)
        return cols
