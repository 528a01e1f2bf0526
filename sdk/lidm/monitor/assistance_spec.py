"""The happiness list's sources as data: one YAML declaration per feed mapping, checked against the catalogue.

A department's assistance reaches the list by a file in ``rules/assistance/`` (rules/README.md, "The happiness
list's sources"), never by code: the declaration names its feed, how a row's columns become a record's, and
when a row is live. Expressions are a closed vocabulary (below); `lidm.monitor.happiness` compiles them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from lidm.central.schema import core_metadata
from lidm.contracts.load import default_contracts_dir
from lidm.contracts.model import SEALED, Protection
from lidm.errors import RuleError
from lidm.monitor.rules import default_rules_dir
from lidm.yamlfile import read_mapping

RECORD_CONTRACT = "platform.assistance_record"
# The run's dates: the day of `now`, its month's first and last day, and the month as text (2026-11).
VARIABLES = ("$today", "$month_start", "$month_end", "$month")
MONTH_IN_PREFIX = "$yyyymm"  # a monthly record's id carries its month: LB202611-…
# Every record names its person and district; these columns of the feed are copied as they are.
PERSON_COLUMNS = ("id_number_token", SEALED, "id_number_masked", "district_code")
# The record columns whose values the catalogue constrains to its codes.
CODED = ("department", "assistance_kind", "disbursement_status", "service_kind")


def _literal(value: Any) -> Any:
    if isinstance(value, dict | list):
        raise ValueError(f"an expression is a literal or one of {{{', '.join(EXPRESSIONS)}}}")
    if isinstance(value, str) and value.startswith("$") and value not in VARIABLES:
        raise ValueError(f"unknown variable {value}; use one of {', '.join(VARIABLES)}")
    return value


Lit = Annotated[Any, AfterValidator(_literal)]


def _expr_tag(value: Any) -> str:
    if isinstance(value, dict):
        return next((k for k in value if k in EXPRESSIONS), "literal")
    return next((tag for tag, cls in EXPRESSIONS.items() if isinstance(value, cls)), "literal")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Column(_Model):
    """The feed's value: ``{column: amount}``."""

    column: str


class Coalesce(_Model):
    """The first value that is not null: ``{coalesce: [{column: payment_date}, {column: approval_date}]}``."""

    coalesce: list[Expr] = Field(min_length=2)


class LaterOf(_Model):
    """The later of two dates: ``{later_of: [{column: start_date}, $month_start]}``."""

    later_of: list[Expr] = Field(min_length=2, max_length=2)


class When(_Model):
    when: Cond
    then: Expr


class Case(_Model):
    """The first ``then`` whose ``when`` holds, else ``else`` (null if not given)."""

    case: list[When] = Field(min_length=1)
    else_: Expr = Field(default=None, alias="else")


class Map(_Model):
    """A column's codes translated: ``{map: category, values: {dibao: dibao_allowance}, else: other}``; codes
    not listed keep their own value unless ``else`` is given."""

    map: str
    values: dict[str, Expr] = Field(min_length=1)
    else_: Expr = Field(default=None, alias="else")


class AsDate(_Model):
    """A date from text 'YYYY-MM-DD' or from a timestamp."""

    date: Expr


class Text(_Model):
    """A value as text (a year 2026 as '2026')."""

    text: Expr


class Concat(_Model):
    """Text joined: ``{concat: [{text: {column: assistance_year}}, "-01-01"]}``."""

    concat: list[Expr] = Field(min_length=2)


class Substr(_Model):
    """Part of a text, ``length`` characters from ``start`` (1-based): the years of '2026-2027'."""

    substr: Expr
    start: int = Field(ge=1)
    length: int = Field(ge=1)


class Label(_Model):
    """The Chinese label of a coded column, from the contract (the code where a label is missing)."""

    label: str


EXPRESSIONS: dict[str, type[_Model]] = {
    "column": Column,
    "coalesce": Coalesce,
    "later_of": LaterOf,
    "case": Case,
    "map": Map,
    "date": AsDate,
    "text": Text,
    "concat": Concat,
    "substr": Substr,
    "label": Label,
}
Expr = Annotated[
    Annotated[Column, Tag("column")]
    | Annotated[Coalesce, Tag("coalesce")]
    | Annotated[LaterOf, Tag("later_of")]
    | Annotated[Case, Tag("case")]
    | Annotated[Map, Tag("map")]
    | Annotated[AsDate, Tag("date")]
    | Annotated[Text, Tag("text")]
    | Annotated[Concat, Tag("concat")]
    | Annotated[Substr, Tag("substr")]
    | Annotated[Label, Tag("label")]
    | Annotated[Lit, Tag("literal")],
    Discriminator(_expr_tag),
]


class Ops(_Model):
    """Tests of one column, all of which must hold; ``or_null`` lets a null value pass them."""

    not_: Lit | list[Lit] = Field(default=None, alias="not")
    gt: Expr = None
    ge: Expr = None
    lt: Expr = None
    le: Expr = None
    null: bool | None = None
    or_null: bool = False

    @model_validator(mode="before")
    @classmethod
    def _yaml_null(cls, data: Any) -> Any:  # YAML reads a bare `null:` key as None
        return {"null" if k is None else k: v for k, v in data.items()} if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _some(self) -> Ops:
        if not self.model_fields_set - {"or_null"}:
            raise ValueError("a test needs one of not, gt, ge, lt, le, null")
        return self


def _test_tag(value: Any) -> str:
    return "ops" if isinstance(value, dict | Ops) else "in" if isinstance(value, list) else "eq"


Test = Annotated[
    Annotated[Ops, Tag("ops")] | Annotated[list[Lit], Tag("in")] | Annotated[Lit, Tag("eq")],
    Discriminator(_test_tag),
]


class Exists(_Model):
    """A row of another table (a feed id or a platform table) that ``match``es this row: its column: ours."""

    table: str
    match: dict[str, str] = Field(min_length=1)
    where: Cond | None = None


class Cond(BaseModel):
    """Column tests, all of which must hold (as a rule's ``where``): a value, a list (one of), or ``{not, gt, ge,
    lt, le, null, or_null}``; ``live: true|false`` asks the declaration's live condition, ``exists`` a related row."""

    model_config = ConfigDict(frozen=True, extra="allow")
    __pydantic_extra__: dict[str, Test] = Field(init=False)
    live: bool | None = None
    exists: Exists | None = None

    @model_validator(mode="after")
    def _some(self) -> Cond:
        if not self.tests and self.live is None and self.exists is None:
            raise ValueError("an empty condition")
        return self

    @property
    def tests(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class RecordId(_Model):
    """``prefix`` + the row's ``key`` column: LS-<case_id>; a monthly record's prefix has $yyyymm."""

    prefix: str
    key: str

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z][A-Z0-9]{0,7}(\$yyyymm)?-", value):
            raise ValueError("a prefix is 1-8 capital letters or digits, then $yyyymm for a monthly record, then -")
        return value


class Period(_Model):
    start: Expr = None
    end: Expr = None


class AssistanceSource(_Model):
    """How the rows of one feed become records of the happiness list (one file of rules/assistance/)."""

    feed: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    record_id: RecordId
    department: Expr
    assistance_kind: Expr
    amount: Expr
    granted_on: Expr
    disbursement_status: Expr
    in_kind_description: Expr = None
    # The service given (服务类社会救助, "物质+服务"): a code, or mapped from a column; else the project's.
    service_kind: Expr = None
    period: Literal["monthly"] | Period | None = None
    live: Cond | None = None
    where: Cond | None = None
    source: Literal["routine", "warning"] = "routine"
    warning_id: Expr = None
    on_roster: bool = True
    _path: Path = PrivateAttr(default=Path("?"))

    @property
    def path(self) -> Path:
        """The file it was declared in, for messages."""
        return self._path

    @property
    def monthly(self) -> bool:
        return self.period == "monthly"


for _cls in (*EXPRESSIONS.values(), When, Ops, Exists, Cond, Period, AssistanceSource):
    _cls.model_rebuild()


def assistance_dir(rules_dir: Path | None = None) -> Path:
    """rules/assistance/: the happiness list's sources, beside the monitoring rules (LIDM_RULES_DIR)."""
    return (rules_dir or default_rules_dir()) / "assistance"


def _where(loc: tuple[Any, ...]) -> str:
    """A field's path as the file spells it: pydantic adds union tags (amount.column.column, amount.literal)."""
    parts: list[str] = []
    for p in (str(p).removesuffix("_") for p in loc):
        if p not in ("literal", "ops", "eq", "in") and (not parts or p != parts[-1]):
            parts.append(p)
    return ".".join(parts) or "(file)"


def _message(error: Any) -> str:
    return "unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")


def load_source(path: Path) -> AssistanceSource:
    """One declaration, its structure checked (not yet against a catalogue)."""
    data = read_mapping(path, "declaration", RuleError)
    try:
        source = AssistanceSource.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'])}: {_message(e)}" for e in exc.errors())
        raise RuleError(f"{path}: {problems}") from None
    source._path = path
    return source


def load_sources(directory: Path | None = None, catalog: Any = None) -> list[AssistanceSource]:
    """Every declaration of a folder, by file name; with a catalogue, checked against it and those whose feed
    this city does not have (a reference feed missing from its catalogue) left out."""
    directory = directory or assistance_dir()
    if not directory.is_dir():
        raise RuleError(f"{directory}: no such folder; the happiness list's sources are declared there")
    sources = [load_source(p) for p in sorted(directory.glob("*.yaml"))]
    seen: dict[str, Path] = {}
    for s in sources:
        if s.record_id.prefix in seen:
            raise RuleError(
                f"{s.path}: record_id.prefix: {s.record_id.prefix} is also {seen[s.record_id.prefix].name}'s; "
                "two sources would overwrite each other's records"
            )
        seen[s.record_id.prefix] = s.path
    if catalog is None:
        return sources
    kept = []
    for s in sources:
        if s.feed not in catalog:
            if s.feed in _reference_feeds():
                continue  # a city without this feed
            raise RuleError(f"{s.path}: feed: no contract {s.feed} in the catalogue nor among the reference ones")
        check_source(s, catalog)
        kept.append(s)
    return kept


def _reference_feeds() -> set[str]:
    """The contract ids the gateway ships (contracts/<department>/<dataset>.yaml), read from the file names."""
    return {f"{p.parent.name}.{p.stem}" for p in default_contracts_dir().glob("*/*.yaml")}


class _Columns:
    """The columns of a table a declaration may read: clear and token ones, with their codes where coded."""

    def __init__(self, name: str, catalog: Any) -> None:
        self.name = name
        self.codes: dict[str, tuple[str, ...] | None] = {}
        self.labelled: set[str] = set()
        self.hidden: set[str] = set()
        if name in catalog:
            for f, col, kind in catalog[name].output_columns():
                if kind in (Protection.CLEAR, Protection.TOKEN):
                    self.codes[col] = tuple(f.enum) if f.enum and kind is Protection.CLEAR else None
                    if f.enum_labels:
                        self.labelled.add(col)
                else:
                    self.hidden.add(col)
            if catalog[name].sealed_fields:
                self.hidden.add(SEALED)
        else:
            self.codes = {c.name: None for c in core_metadata.tables[name].c}

    def __call__(self, column: str, at: str) -> tuple[str, ...] | None:
        if column in self.hidden:
            raise RuleError(f"{at}: {self.name}.{column} is not kept in clear, so the list cannot read it")
        if column not in self.codes:
            raise RuleError(f"{at}: {self.name} has no column {column}")
        return self.codes[column]


class _Check:
    """Walks one declaration: every column known, every code among the column's, ``live`` only if declared."""

    def __init__(self, source: AssistanceSource, catalog: Any, table: str | None = None) -> None:
        self.source, self.catalog = source, catalog
        self.cols = _Columns(table or source.feed, catalog)

    def expr(self, e: Any, at: str) -> set[str] | None:
        """The codes the expression can yield (None: any value)."""
        if isinstance(e, Column):
            codes = self.cols(e.column, at)
            return set(codes) if codes else None
        if isinstance(e, Coalesce):
            return _union(self.expr(p, f"{at}.coalesce.{i}") for i, p in enumerate(e.coalesce))
        if isinstance(e, Case):
            for i, w in enumerate(e.case):
                self.cond(w.when, f"{at}.case.{i}.when")
            thens = [self.expr(w.then, f"{at}.case.{i}.then") for i, w in enumerate(e.case)]
            return _union([*thens, self.expr(e.else_, f"{at}.else")])
        if isinstance(e, Map):
            codes = self.cols(e.map, f"{at}.map")
            self._codes(e.map, list(e.values), codes, f"{at}.values")
            out = [self.expr(v, f"{at}.values.{k}") for k, v in e.values.items()]
            if "else_" in e.model_fields_set:
                out.append(self.expr(e.else_, f"{at}.else"))
            else:  # unlisted codes keep their own value
                out.append(set(codes) - set(e.values) if codes else None)
            return _union(out)
        if isinstance(e, Label):
            self.cols(e.label, f"{at}.label")
            if e.label not in self.cols.labelled:
                raise RuleError(f"{at}.label: {self.cols.name}.{e.label} has no labelled codes")
            return None
        for name, inner in _parts(e):
            self.expr(inner, f"{at}.{name}")
        if isinstance(e, _Model):
            return None
        if e is None:
            return set()
        return None if isinstance(e, str) and e.startswith("$") else {str(e)}

    def cond(self, c: Cond | None, at: str) -> None:
        if c is None:
            return
        for column, test in c.tests.items():
            codes = self.cols(column, f"{at}.{column}")
            if isinstance(test, Ops):
                for op in ("gt", "ge", "lt", "le"):
                    self.expr(getattr(test, op), f"{at}.{column}.{op}")
                if "not_" in test.model_fields_set:
                    self._codes(column, test.not_, codes, f"{at}.{column}.not")
            else:
                self._codes(column, test, codes, f"{at}.{column}")
        if c.live is not None and self.source.live is None:
            raise RuleError(f"{at}.live: the declaration has no live condition to ask")
        if c.exists is not None:
            self._exists(c.exists, f"{at}.exists")

    def _exists(self, x: Exists, at: str) -> None:
        if x.table not in self.catalog and x.table not in core_metadata.tables:
            raise RuleError(f"{at}.table: no contract nor platform table {x.table}")
        other = _Check(self.source, self.catalog, x.table)
        for theirs, ours in x.match.items():
            other.cols(theirs, f"{at}.match")
            self.cols(ours, f"{at}.match.{theirs}")
        if x.where is not None and x.where.live is not None:
            raise RuleError(f"{at}.where.live: live is this feed's condition, not {x.table}'s")
        other.cond(x.where, f"{at}.where")

    def _codes(self, column: str, values: Any, codes: tuple[str, ...] | None, at: str) -> None:
        given = values if isinstance(values, list) else [values]
        bad = [str(v) for v in given if codes and v is not None and str(v) not in codes]
        if bad:
            raise RuleError(f"{at}: {', '.join(bad)} not among the codes of {column} ({', '.join(codes or ())})")


def check_source(source: AssistanceSource, catalog: Any) -> None:
    """Refuse a declaration naming a column, code or table the catalogue lacks, or yielding a code the list lacks."""
    where = str(source.path)
    check = _Check(source, catalog)
    for column in PERSON_COLUMNS:
        if column not in check.cols.codes and column not in check.cols.hidden:
            raise RuleError(f"{where}: feed: {source.feed} has no {column}; a record needs its person and district")
    check.cols(source.record_id.key, f"{where}: record_id.key")
    check.cond(source.live, f"{where}: live")
    check.cond(source.where, f"{where}: where")
    record = catalog[RECORD_CONTRACT]
    for name in ("department", "assistance_kind", "amount", "granted_on", "disbursement_status", "service_kind"):
        codes = check.expr(getattr(source, name), f"{where}: {name}")
        allowed = record.field(name).enum if name in CODED else None
        if allowed and codes is not None and (bad := sorted(codes - set(allowed))):
            raise RuleError(f"{where}: {name}: {', '.join(bad)} not among the list's codes ({', '.join(allowed)})")
    for name in ("in_kind_description", "warning_id"):
        check.expr(getattr(source, name), f"{where}: {name}")
    if isinstance(source.period, Period):
        check.expr(source.period.start, f"{where}: period.start")
        check.expr(source.period.end, f"{where}: period.end")


def key_is_token(source: AssistanceSource, catalog: Any) -> bool:
    """Whether the record id's key is a token (cut, being a keyed hash already) rather than a department key."""
    return any(
        col == source.record_id.key and kind is Protection.TOKEN
        for _, col, kind in catalog[source.feed].output_columns()
    )


def _union(parts: Any) -> set[str] | None:
    parts = list(parts)
    return None if any(p is None for p in parts) else set().union(*parts)


def _parts(e: Any) -> list[tuple[str, Any]]:
    """The sub-expressions of an expression that yields no codes of its own."""
    if not isinstance(e, LaterOf | Concat | AsDate | Text | Substr):
        return []
    tag = _expr_tag(e)
    head = getattr(e, tag)
    return [(f"{tag}.{i}", p) for i, p in enumerate(head)] if isinstance(head, list) else [(tag, head)]
