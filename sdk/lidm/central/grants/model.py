"""What the catalogue asks of the database: per consumer a role, a schema, views over released tables."""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from lidm.central import release as release_mod
from lidm.central.sqltext import ident
from lidm.central.stage import STAGE_SCHEMA
from lidm.contracts import scope
from lidm.contracts.consumers import Consumer
from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import Contract, Grant, GrantLevel, Protection
from lidm.errors import ContractError

ROLE_PREFIX = "lidm_c_"
SCHEMA_PREFIX = "lidm_"
MARK = "lidm grants:"  # comments on the roles, schemas and views this module manages start with it
SAFE_NAME = re.compile(r"^[a-z0-9_]{1,50}$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.\-]+$")
ROLE_ATTRIBUTES = {  # pg_roles column -> what ALTER ROLE must say when it is set
    "rolcanlogin": "NOLOGIN",
    "rolsuper": "NOSUPERUSER",
    "rolcreatedb": "NOCREATEDB",
    "rolcreaterole": "NOCREATEROLE",
    "rolreplication": "NOREPLICATION",
    "rolbypassrls": "NOBYPASSRLS",
}
_LEVEL_PROTECTION = {GrantLevel.TOKEN: Protection.TOKEN, GrantLevel.MASKED: Protection.MASK}


@dataclass(frozen=True)
class Statement:
    """One change to the database: what it does, to which object, for whom, and its SQL (never a secret)."""

    action: str  # create role | alter role | revoke membership | comment | create schema | alter schema |
    # drop schema | create view | drop view | grant | revoke
    target: str
    sql: str
    consumer: str | None = None
    why: str | None = None
    view: View | None = field(default=None, compare=False, repr=False)  # fill release: what to fill


@dataclass(frozen=True)
class View:
    """One consumer's view of one dataset: the columns it shows and the rows it lets through.

    The rows live in the consumer's released table (lidm.central.release): the view selects from it, so no
    plan ever meets another consumer's row; token columns are released as the consumer's pseudonyms."""

    consumer: str
    contract: str
    schema: str
    name: str
    table: str
    columns: tuple[str, ...]
    conditions: tuple[str, ...]  # SQL, ANDed
    reads: tuple[str, ...]  # every base column the view uses, checked against the table before apply
    withheld: tuple[str, ...]  # granted clear, stored only encrypted: re-identification only
    key_columns: tuple[str, ...] = ()  # the base table's key: a release re-releases a changed row by it
    scopes: tuple[tuple[str, str], ...] = ()  # (token column, pseudonym scope: a dataset id or release.LINKABLE)
    row_filter: scope.RowFilter = ()  # (column, values) pairs: the grant's rows, as conditions says

    @property
    def release(self) -> str:
        return self.name + release_mod.SUFFIX

    def scope_list(self) -> list[list[str]]:
        """The pseudonym keys the release binds, in order: [consumer, scope] each."""
        return [[self.consumer, s] for s in dict.fromkeys(scope for _, scope in self.scopes)]

    def select_sql(self, base_schema: str) -> str:
        """What the release holds: the granted columns (tokens as pseudonyms) of the granted rows, and the key."""
        index = {scope: n for n, (_, scope) in enumerate(self.scope_list())}
        scoped = dict(self.scopes)
        exprs = [
            f"{release_mod.pseudonym_sql(c, index[scoped[c]])} AS {ident(c)}" if c in scoped else ident(c)
            for c in self.columns
        ]
        exprs.append(f'{release_mod.key_sql(self.key_columns)} AS "_key"')
        return (
            f"SELECT {', '.join(exprs)} FROM {ident(base_schema)}.{ident(self.table)} "
            f"WHERE {' AND '.join(self.conditions)}"
        )

    def release_sql(self, base_schema: str) -> str:
        # The keys are bound only when filling; the table's shape is the same with empty ones.
        shape = re.sub(r":k[io]_\d+", "decode('', 'hex')", self.select_sql(base_schema))
        return f"CREATE TABLE {ident(self.schema)}.{ident(self.release)} AS {shape} WITH NO DATA"

    def release_comment(self, base_schema: str) -> str:
        text = self.select_sql(base_schema) + repr(self.scope_list())
        return f"{MARK} release of {self.contract} for {self.consumer}; sha256 {_digest(text)}"

    def sql(self, base_schema: str) -> str:
        cols = ", ".join(ident(c) for c in self.columns)
        return (
            f"CREATE VIEW {ident(self.schema)}.{ident(self.name)} WITH (security_barrier = true) AS "
            f"SELECT {cols} FROM {ident(self.schema)}.{ident(self.release)}"
        )

    def comment(self, base_schema: str) -> str:
        return f"{MARK} {self.contract} for {self.consumer}; sha256 {_digest(self.sql(base_schema))}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ConsumerGrants:
    """What the database must hold for one consumer: its role, its schema and its views."""

    consumer: Consumer
    role: str
    schema: str
    views: tuple[View, ...]
    unexposed: tuple[View, ...] = ()  # grants whose every field is withheld: no view is made

    @property
    def role_comment(self) -> str:
        return f"{MARK} consumer {self.consumer.id}"

    @property
    def schema_comment(self) -> str:
        return f"{MARK} views of consumer {self.consumer.id}"


@dataclass(frozen=True)
class Withheld:
    """Fields of a dataset granted clear but stored only encrypted: in no view, clear only by re-identification."""

    contract: str
    fields: tuple[str, ...]
    consumers: tuple[str, ...]  # a whole group is named by the group


@dataclass
class GrantsPlan:
    """What `apply` would run (or ran); the fields no view shows; notes (roles left behind, foreign objects)."""

    statements: list[Statement] = field(default_factory=list)
    withheld: list[Withheld] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(Counter(s.action for s in self.statements))


@dataclass
class ApplyResult(GrantsPlan):
    """The statements `apply` ran in its one transaction; empty when the database already matched."""

    @property
    def changed(self) -> bool:
        return bool(self.statements)


def grantee_sql(name: str) -> str:
    return name if name == "PUBLIC" else ident(name)


def _literal(value: str, what: str) -> str:
    # Values come from consumers.yaml (district codes, department ids); anything unusual is refused, not quoted.
    if not _SAFE_VALUE.match(value):
        raise ContractError(f"consumers.yaml: {what} {value!r} has characters a row filter does not accept")
    return "'" + value + "'"


def _slug(consumer_id: str) -> str:
    slug = consumer_id.replace(".", "__")
    if not SAFE_NAME.match(slug):
        raise ContractError(
            f"consumers.yaml: consumer id {consumer_id} cannot name a database role; use lower-case letters, "
            "digits, _ and . (at most 50 characters)"
        )
    if SCHEMA_PREFIX + slug == STAGE_SCHEMA:
        raise ContractError(f"consumers.yaml: consumer id {consumer_id} is taken: schema {STAGE_SCHEMA} stages loads")
    return slug


def role_name(consumer_id: str) -> str:
    """The PostgreSQL role of a consumer, e.g. lidm_c_civil_affairs__furong."""
    return ROLE_PREFIX + _slug(consumer_id)


def schema_name(consumer_id: str) -> str:
    """The schema holding a consumer's views, e.g. lidm_civil_affairs__furong."""
    return SCHEMA_PREFIX + _slug(consumer_id)


def deciding_grant(consumer: str, contract: Contract, grants: list[Grant]) -> Grant:
    """The one grant that decides: a consumer's own grant over a group's; differing group grants are refused."""
    if len(grants) == 1:
        return grants[0]
    direct = [g for g in grants if g.consumer == consumer]
    if len(direct) == 1:
        return direct[0]
    if all((g.fields, g.rows) == (grants[0].fields, grants[0].rows) for g in grants):
        return grants[0]
    raise ContractError(
        f"{contract.source_file}: {consumer} is granted {contract.id} by several differing grants "
        f"({', '.join(g.consumer for g in grants)}); give it one grant of its own"
    )


def _view(contract: Contract, grant: Grant, consumer: Consumer, schema: str) -> View:
    columns, withheld = [], []
    for f in contract.fields:  # contract order, whatever order the grant lists them in
        level = grant.fields.get(f.name)
        if level is None:
            continue
        stored = {p: col for col, p in f.output_columns()}
        want = _LEVEL_PROTECTION.get(level, Protection.CLEAR)
        if want in stored:
            columns.append(stored[want])
        elif level is GrantLevel.CLEAR and Protection.ENCRYPT in f.protection:
            # Clear from the encrypted copy is re-identification: decrypted by the gateway, every decrypt
            # audited. A view cannot do either, so the field is not exposed here at all.
            withheld.append(f.name)
        else:
            raise ContractError(
                f"{contract.source_file}:{grant.line}: grant to {grant.consumer} gives {f.name} {level.value}, but "
                f"the field is stored as {', '.join(p.value for p in f.protection)}; run `lidm contracts lint`"
            )
    conditions = ['"_retired_batch" IS NULL']
    reads = [*columns, "_retired_batch"]
    row_filter = scope.row_filter(contract, grant, consumer)
    for col, values in row_filter:
        literals = ", ".join(_literal(v, f"{col} of {consumer.id}") for v in values)
        conditions.append(f"{ident(col)} IN ({literals})")
        reads.append(col)
    scopes = tuple(
        (f.name + "_token", release_mod.LINKABLE if f.name in grant.linkable else contract.id)
        for f in contract.fields
        if grant.fields.get(f.name) is GrantLevel.TOKEN and f.name + "_token" in columns
    )
    keys = tuple(contract.key_columns())
    reads += keys
    return View(
        consumer=consumer.id,
        contract=contract.id,
        schema=schema,
        name=contract.table,
        table=contract.table,
        columns=tuple(columns),
        conditions=tuple(conditions),
        reads=tuple(dict.fromkeys(reads)),
        withheld=tuple(withheld),
        key_columns=keys,
        scopes=scopes,
        row_filter=row_filter,
    )


def desired(catalog: ContractCatalog) -> list[ConsumerGrants]:
    """Per declared consumer, the role, schema and views its grants call for (no database needed)."""
    if catalog.consumers is None:
        raise ContractError("no contracts/consumers.yaml: grants name consumers declared there")
    out, seen = [], {}
    for consumer in catalog.consumers.members.values():
        slug = _slug(consumer.id)
        if slug in seen:
            raise ContractError(f"consumers.yaml: {seen[slug]} and {consumer.id} would share role {ROLE_PREFIX}{slug}")
        seen[slug] = consumer.id
        by_contract: dict[str, list[Grant]] = defaultdict(list)
        for contract, grant in catalog.grants_for(consumer.id):
            by_contract[contract.id].append(grant)
        views, unexposed = [], []
        for cid, grants in by_contract.items():
            contract = catalog[cid]
            view = _view(contract, deciding_grant(consumer.id, contract, grants), consumer, SCHEMA_PREFIX + slug)
            (views if view.columns else unexposed).append(view)
        out.append(ConsumerGrants(consumer, ROLE_PREFIX + slug, SCHEMA_PREFIX + slug, tuple(views), tuple(unexposed)))
    return out
