"""Sample sources declared as data: one YAML file per dataset, found beside its adapter.

A department adds a dataset by adding files only: its contract, its adapter, and ``<dataset>.sample.yaml`` beside the
adapter module (``adapters/<department>/<dataset>.sample.yaml``, or beside the module a ``lidm.adapters`` entry point
names). The declaration says whom the rows are about, how each source column is made and which faults to plant;
``lidm_samples.generate`` checks it against the adapter and the contract and builds the source from it. The format is
described in docs/write-your-adapter.md ("Synthetic rows for a new dataset").
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from lidm.errors import ConfigError
from lidm.registry import GROUP, PACKAGE
from lidm.yamlfile import read_mapping

SUFFIX = ".sample.yaml"
# What a column may take from the person a row is about (lidm_samples.people.Person, plus a few derived).
PERSON_ATTRIBUTES = (
    "id_number",
    "name",
    "gender",
    "birth_date",
    "age",
    "phone",
    "household_id",
    "district_code",
    "district_name",
    "street_code",
    "street_name",
    "address",
    "residence_status",
    "updated_at",
)
# Whom rows may be about, besides the synthetic world's cohorts (lidm_samples.world.COHORTS and PLANTED).
GROUPS = ("everyone", "living", "roster")
# Faults a declaration may plant, each with the quarantine reason the gateway must give the row.
FAULT_REASONS = {
    "bad_check_char": "id_number.checksum",  # an ID number whose check character is wrong
    "missing_required": "required",  # a required field left empty
    "unknown_code": "enum",  # a code in no code table
    "bad_date": "type",  # 30 February, written in the column's own date format
    "below_minimum": "range",  # below the contract's minimum
    "above_maximum": "range",  # above the contract's maximum
    "bad_pattern": "pattern",  # a value the contract's pattern refuses
    "foreign_division": "division_code",  # a division code of another city
    "bad_phone": "phone",  # not a phone number
    "duplicate_key": "duplicate_key",  # a clean row twice: both copies are quarantined
}
COLUMN_TYPES = ("text", "integer", "big_integer", "money", "date", "timestamp", "boolean")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SourceSpec(_Model):
    """Where the source is written; what the adapter already says (connection, table, drop format) is taken from it."""

    connection: str | None = None
    table: str | None = None  # a SQL source's table; needed when the adapter reads a query
    server: Literal["mariadb", "postgres", "sqlite"] = "sqlite"  # where the table lives with real servers
    file: str | None = None  # a drop's file name; default: the adapter's pattern with * as the reference day
    encoding: str | None = None  # a CSV drop's encoding; default: the adapter's (gbk is written as gb18030)


class People(_Model):
    """One group the rows are about: ``{from: roster, share: 0.2}``."""

    from_: str = Field(alias="from")
    share: float = Field(default=1.0, gt=0, le=1)
    at_least: int = Field(default=1, ge=0)
    age: tuple[int, int] | None = None


class Column(_Model):
    """How one source column is made: from the person, from the contract field it maps to, from values, or a serial.

    A bare string is short for ``{from: ...}``: ``person.id_number``, ``contract`` or ``contract.<field>``.
    """

    from_: str | None = Field(default=None, alias="from")
    values: list[Any] | dict[Any, float] | None = None  # as the source writes them; a mapping gives weights
    codes: list[str] | dict[str, float] | None = None  # the contract codes to draw from (a mapping gives weights)
    serial: str | None = None  # a unique value per row: "YF{n:06d}" (n counts rows from 1)
    min: Any = None  # in the contract's terms (yuan, ISO dates), for dates, times and numbers
    max: Any = None
    empty: float = Field(default=0, ge=0, lt=1)  # share of rows where the column is left empty
    type: str | None = None  # the SQL column's type, when the values' own would not do (COLUMN_TYPES)

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        if data is None or isinstance(data, str | dict | Column):
            return {} if data is None else {"from": data} if isinstance(data, str) else data
        raise ValueError("a column is person.<attribute>, contract, contract.<field>, or a mapping (from, values, …)")

    @model_validator(mode="after")
    def _one_way(self) -> Column:
        ways = [w for w in ("from_", "values", "serial") if getattr(self, w) is not None]
        if len(ways) > 1:
            raise ValueError("give one of from, values or serial")
        origin = self.from_ or ("contract" if not ways else None)
        if self.from_ is not None and not (self.from_ == "contract" or self.from_.startswith(("contract.", "person."))):
            raise ValueError("from is person.<attribute>, contract or contract.<field>")
        if self.from_ and self.from_.startswith("person.") and self.from_[7:] not in PERSON_ATTRIBUTES:
            raise ValueError(f"a person's attributes are {', '.join(PERSON_ATTRIBUTES)}")
        if self.codes is not None and not (origin or "").startswith("contract"):
            raise ValueError("codes go with a column made from the contract")
        if self.type is not None and self.type not in COLUMN_TYPES:
            raise ValueError(f"type is one of {', '.join(COLUMN_TYPES)}")
        if self.serial is not None and "{n" not in self.serial:
            raise ValueError('a serial holds {n}, the row number: "YF{n:06d}"')
        return self

    @property
    def origin(self) -> str:
        """person.<attribute>, contract[.<field>], values or serial."""
        return self.from_ or ("values" if self.values is not None else "serial" if self.serial else "contract")


class Declaration(_Model):
    """One dataset's synthetic source: a file ``<dataset>.sample.yaml`` beside its adapter."""

    source: SourceSpec = SourceSpec()
    people: list[People] = Field(min_length=1)
    per_person: int | tuple[int, int] = 1  # rows per person: a number, or [least, most]
    columns: dict[str, Column] = Field(min_length=1)
    faults: dict[str, str | None] = Field(default_factory=dict)  # fault kind: the column it is planted in
    _path: Path = PrivateAttr(default=Path("?"))
    _feed: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _consistent(self) -> Declaration:
        least, most = (self.per_person, self.per_person) if isinstance(self.per_person, int) else self.per_person
        if not 1 <= least <= most:
            raise ValueError("per_person: a number of rows from 1, or [least, most] with 1 <= least <= most")
        for kind, column in self.faults.items():
            if kind not in FAULT_REASONS:
                raise ValueError(f"faults: {kind} is not a fault kind; use {', '.join(FAULT_REASONS)}")
            if kind == "duplicate_key":
                if column is not None:
                    raise ValueError("faults: duplicate_key copies a whole row; give it no column")
            elif column not in self.columns:
                raise ValueError(f"faults: {kind} names {column!r}, which is not one of the columns")
        return self

    @property
    def path(self) -> Path:
        return self._path

    @property
    def feed(self) -> str:
        """The feed (adapter name) it is for: the adapter module's path, as the registry names it."""
        return self._feed


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p).removesuffix("_") for p in loc)


def load_declaration(path: Path, feed: str) -> Declaration:
    """One declaration, its structure checked (not yet against the adapter and the contract)."""
    data = read_mapping(path, "sample declaration", ConfigError, "source, people, columns, faults")
    try:
        declaration = Declaration.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where(e['loc']) or '(file)'}: "
            + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    declaration._path, declaration._feed = path, feed
    return declaration


def find_declarations() -> dict[str, Path]:
    """Every sample declaration by feed, found where the registry finds adapters: ``<name>.sample.yaml`` beside each
    module of the ``lidm_adapters`` package (feed ``<department>.<name>``) and beside each ``lidm.adapters`` entry
    point's module (the entry point's feed)."""
    found: dict[str, Path] = {}

    def add(feed: str, path: Path) -> None:
        if feed in found and found[feed] != path:
            raise ConfigError(f"two sample declarations for {feed}: {found[feed]} and {path}; keep one")
        found[feed] = path

    try:
        roots = [Path(p) for p in importlib.import_module(PACKAGE).__path__]
    except ImportError:
        roots = []
    for root in roots:
        for path in sorted(root.rglob(f"*{SUFFIX}")):
            parts = path.relative_to(root).parts
            add(".".join([*parts[:-1], path.name.removesuffix(SUFFIX)]), path.resolve())
    for ep in entry_points(group=GROUP):
        try:
            spec = importlib.util.find_spec(ep.module)
        except (ImportError, ValueError):
            continue  # the registry reports the adapter as broken
        if spec is not None and spec.origin:
            path = Path(spec.origin).with_name(ep.module.rsplit(".", 1)[-1] + SUFFIX)
            if path.is_file():
                add(ep.name, path.resolve())
    return dict(sorted(found.items()))
