"""Grants enforced by PostgreSQL itself: per consumer a NOLOGIN role and a schema of views showing only its grant.

For each consumer of contracts/consumers.yaml (groups expanded) the database gets:

- a role ``lidm_c_<consumer>`` (NOLOGIN, no attributes, member of nothing; a dot in the id becomes ``__``).
  A deployment grants it to the LOGIN users of that department or county bureau;
- a schema ``lidm_<consumer>`` owned by the gateway, on which the role has USAGE and nothing else;
- per granted dataset a view named like the dataset's table (``lidm_education.platform_warning``) with
  ``security_barrier``, showing only the granted fields at the granted level (token -> ``<field>_token``,
  masked -> ``<field>_masked``, clear -> ``<field>``), only current rows (``_retired_batch IS NULL``) and only
  the grant's rows (``own_districts``: district field in the county's districts; ``own_department``:
  department field = the consumer's department). The role has SELECT on its views and on nothing else.

A field granted ``clear`` but stored only encrypted (``_enc``) is NOT in the view: its clear value comes only
from re-identification, which decrypts in the gateway and audits every decrypt; a view cannot audit who read
what. The plan says which fields are withheld this way. When several grants reach one consumer for one
dataset (its own and a group's), its own grant decides, as for pushes; differing group grants are refused.

Row-level security is not used. A consumer has no privilege at all on a base table, so a policy there would
never be evaluated for it: PostgreSQL refuses the read before rows are considered. The views read the base
tables with their owner's rights, and the owner bypasses RLS unless FORCE ROW LEVEL SECURITY, which would
also filter the loader and the monitor (they need every row). Policies keyed on the reader would need
``security_invoker`` views, which in turn need SELECT on the base tables for the consumer, the very exposure
the views avoid (``_enc`` columns, other districts). The layers are therefore: no base-table or ``lidm_*``
privilege; views with only granted columns and rows; ``security_barrier`` so a reader's own functions (a
temporary function is enough) are never evaluated before the view's row filter; and ``apply`` revoking
anything else found granted to a consumer role (tables, columns, schemas, role memberships).

``apply`` makes the database match the catalogue in one transaction, idempotently: missing roles, schemas and
views are created, changed views (recognised by a digest in their comment, their columns, their options) are
replaced, views no longer granted are dropped, schemas of consumers no longer declared are dropped with their
views. Only the gateway's owner (or a superuser) can change a view, so the digest records what `apply` made
rather than guarding against them. Roles are never dropped: a role is cluster-wide, may serve another
database of the cluster, and may still have members; a removed consumer's role keeps nothing in this
database, and the plan names it so a DBA can ``DROP ROLE`` it once no database uses it. Database-level
privileges (CONNECT, TEMP) are set only with a loader role, below. Run ``apply`` after ``lidm db upgrade``; a migration
that drops or retypes a granted column must drop the views using it first (``DROP SCHEMA lidm_<consumer>
CASCADE``), and ``apply`` recreates them.

Given a loader role (``loader=``, LIDM_LOADER_ROLE from the CLI), ``apply`` also lays out the three roles and the
database-level privileges:

- the role running ``apply`` is the OWNER (an administrator's role: it owns the tables and views and needs
  CREATEROLE to make consumer roles); it runs ``lidm db upgrade``, ``grants apply`` and ``audit checkpoint``;
- the LOADER (LOGIN, no attribute, member of nothing, owning nothing in the schema; created when missing, its
  password is the DBA's to set) gets SELECT, INSERT, UPDATE, DELETE on every table of the central schema except
  the audit tables: INSERT and SELECT on ``lidm_audit``, SELECT on ``lidm_audit_head``,
  ``lidm_audit_checkpoint`` and ``alembic_version``; USAGE on the schema and its sequences; CONNECT and TEMPORARY
  on the database (it stages batches in temporary tables); and nothing else: what it holds beyond that is
  revoked, tables it owns are given to the owner;
- PUBLIC loses what PostgreSQL gives it by default and a consumer does not need: CONNECT and TEMPORARY on the
  database (CONNECT is granted to the loader, each consumer role and the owner instead), CREATE on the central
  schema (if still granted); consumer roles hold no database privilege but CONNECT.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa

from lidm.central import release as release_mod
from lidm.central.sqltext import ident, literal
from lidm.contracts.consumers import Consumer
from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import Contract, Grant, GrantLevel, Protection, RowScope
from lidm.errors import ConfigError, ContractError, LidmError
from lidm.keys import Keyring

ROLE_PREFIX = "lidm_c_"
SCHEMA_PREFIX = "lidm_"
MARK = "lidm grants:"  # comments on the roles, schemas and views this module manages start with it
_SAFE_NAME = re.compile(r"^[a-z0-9_]{1,50}$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_ROLE_ATTRIBUTES = {  # pg_roles column -> what ALTER ROLE must say when it is set
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


def _grantee(name: str) -> str:
    return name if name == "PUBLIC" else ident(name)


def _literal(value: str, what: str) -> str:
    # Values come from consumers.yaml (district codes, department ids); anything unusual is refused, not quoted.
    if not _SAFE_VALUE.match(value):
        raise ContractError(f"consumers.yaml: {what} {value!r} has characters a row filter does not accept")
    return "'" + value + "'"


def _slug(consumer_id: str) -> str:
    slug = consumer_id.replace(".", "__")
    if not _SAFE_NAME.match(slug):
        raise ContractError(
            f"consumers.yaml: consumer id {consumer_id} cannot name a database role; use lower-case letters, "
            "digits, _ and . (at most 50 characters)"
        )
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


def _filter_column(contract: Contract, name: str | None, prop: str, grant: Grant) -> str:
    if name is None:
        raise ContractError(f"{contract.source_file}: grant to {grant.consumer} limits rows but {prop} is unset")
    if Protection.CLEAR not in contract.field(name).protection:
        raise ContractError(f"{contract.source_file}: {prop} {name} must be stored clear to filter rows on it")
    return name


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
        elif level is GrantLevel.CLEAR and Protection.ENCRYPT in stored:
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
    if grant.rows is RowScope.OWN_DISTRICTS:
        col = _filter_column(contract, contract.district_field, "lidmDistrictField", grant)
        if not consumer.districts:
            raise ContractError(f"consumers.yaml: {consumer.id} has no districts; {contract.id} grants own_districts")
        codes = ", ".join(_literal(d, f"district of {consumer.id}") for d in consumer.districts)
        conditions.append(f"{ident(col)} IN ({codes})")
        reads.append(col)
    elif grant.rows is RowScope.OWN_DEPARTMENT:
        col = _filter_column(contract, contract.department_field, "lidmDepartmentField", grant)
        department = consumer.department or consumer.id
        conditions.append(f"{ident(col)} = {_literal(department, f'department of {consumer.id}')}")
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


# --------------------------------------------------------------------------- what the database holds

_ROLES = sa.text(
    "SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, "
    "r.rolbypassrls, shobj_description(r.oid, 'pg_authid') AS comment, "
    "ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
    "      WHERE m.member = r.oid ORDER BY g.rolname) AS member_of "
    "FROM pg_roles r WHERE starts_with(r.rolname, :prefix)"
)
_SCHEMAS = sa.text(
    "SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner, obj_description(n.oid, 'pg_namespace') AS comment "
    "FROM pg_namespace n WHERE n.nspname = ANY(CAST(:wanted AS text[])) "
    "OR starts_with(coalesce(obj_description(n.oid, 'pg_namespace'), ''), :mark)"
)
_RELATIONS = sa.text(
    "SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner, "
    "coalesce(c.reloptions, '{}') AS options, obj_description(c.oid, 'pg_class') AS comment, "
    "ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 "
    "      AND NOT a.attisdropped ORDER BY a.attnum) AS columns "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = ANY(CAST(:schemas AS text[])) AND c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S')"
)
# Non-owner privileges on the managed schemas and on the relations in them.
_ACLS = sa.text(
    "SELECT n.nspname, NULL AS relname, CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, "
    "a.privilege_type, a.is_grantable FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a "
    "WHERE n.nspname = ANY(CAST(:schemas AS text[])) AND a.grantee <> n.nspowner "
    "UNION ALL "
    "SELECT n.nspname, c.relname, CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, "
    "a.privilege_type, a.is_grantable FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "CROSS JOIN LATERAL aclexplode(c.relacl) a "
    "WHERE n.nspname = ANY(CAST(:schemas AS text[])) AND a.grantee <> c.relowner"
)
# Anything granted to a consumer role outside the managed schemas: tables, their columns, schemas.
_STRAY = sa.text(
    "SELECT n.nspname, c.relname, r.rolname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee "
    "WHERE r.rolname = ANY(CAST(:roles AS text[])) AND NOT n.nspname = ANY(CAST(:schemas AS text[])) "
    "UNION "
    "SELECT n.nspname, c.relname, r.rolname FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(t.attacl) a "
    "JOIN pg_roles r ON r.oid = a.grantee WHERE t.attnum > 0 AND NOT t.attisdropped "
    "AND r.rolname = ANY(CAST(:roles AS text[])) AND NOT n.nspname = ANY(CAST(:schemas AS text[])) "
    "UNION "
    "SELECT n.nspname, NULL, r.rolname FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a "
    "JOIN pg_roles r ON r.oid = a.grantee "
    "WHERE r.rolname = ANY(CAST(:roles AS text[])) AND NOT n.nspname = ANY(CAST(:schemas AS text[])) "
    "ORDER BY 1, 2, 3"
)
_TABLE_COLUMNS = sa.text(
    "SELECT c.relname, a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :base AND c.relkind IN ('r', 'p') "
    "AND c.relname = ANY(CAST(:tables AS text[])) AND a.attnum > 0 AND NOT a.attisdropped"
)


def _require_postgres(engine: sa.Engine) -> None:
    if engine.dialect.name == "sqlite":
        raise ConfigError(
            "grants: SQLite has no roles, so the embedded database cannot enforce grants; there they are enforced "
            "only in the export and push paths. Point LIDM_CENTRAL_URL at PostgreSQL to enforce them in the database."
        )
    if engine.dialect.name != "postgresql":
        raise ConfigError(f"grants: database roles and views are made for PostgreSQL only, not {engine.dialect.name}")


def _check_tables(conn: sa.Connection, base: str, wanted: list[ConsumerGrants]) -> None:
    """Every view's base table and columns exist, or the database is behind the contracts: say so, change nothing."""
    views = [v for w in wanted for v in w.views]
    have: dict[str, set[str]] = defaultdict(set)
    for table, column in conn.execute(_TABLE_COLUMNS, {"base": base, "tables": sorted({v.table for v in views})}):
        have[table].add(column)
    for v in views:
        missing = [c for c in v.reads if c not in have[v.table]]
        if missing:
            what = f"table {base}.{v.table}" if not have[v.table] else f"column {missing[0]} of {base}.{v.table}"
            raise LidmError(f"grants: {what} ({v.contract}) is missing; run `lidm db upgrade` first, then apply")


def _qualified(schema: str, name: str | None) -> tuple[str, str]:
    """An object as SQL names it and as people read it."""
    if name is None:
        return ident(schema), schema
    return f"{ident(schema)}.{ident(name)}", f"{schema}.{name}"


def _acl_statements(
    kind: str,
    schema: str,
    name: str | None,
    present: set[tuple[str, str, bool]],
    wanted: dict[str, tuple[str, ...]],
    who: str,
) -> list[Statement]:
    """Revoke what others hold on a managed object; leave each wanted role with exactly its privileges."""
    sql_name, shown = _qualified(schema, name)
    out = [
        Statement("revoke", shown, f"REVOKE ALL ON {kind} {sql_name} FROM {_grantee(g)}", who, f"not granted to {g}")
        for g in sorted({g for g, _, _ in present if g not in wanted})
    ]
    for role, privileges in wanted.items():
        mine = {(p, grantable) for g, p, grantable in present if g == role}
        if mine == {(p, False) for p in privileges}:
            continue
        if mine:
            out.append(Statement("revoke", shown, f"REVOKE ALL ON {kind} {sql_name} FROM {ident(role)}", who))
        sql = f"GRANT {', '.join(privileges)} ON {kind} {sql_name} TO {ident(role)}"
        out.append(Statement("grant", shown, sql, who))
    return out


def _role_statements(w: ConsumerGrants, row: sa.Row | None) -> list[Statement]:
    role, cid = w.role, w.consumer.id
    out = []
    if row is None:
        # Roles are cluster-wide: another database's apply may create the same role at the same moment.
        sql = (
            f"DO $$ BEGIN CREATE ROLE {ident(role)} NOLOGIN; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        out.append(Statement("create role", role, sql, cid, "NOLOGIN; granted to login users by the deployment"))
    else:
        attrs = [word for col, word in _ROLE_ATTRIBUTES.items() if getattr(row, col)]
        if attrs:
            out.append(Statement("alter role", role, f"ALTER ROLE {ident(role)} {' '.join(attrs)}", cid))
        out += [
            Statement("revoke membership", role, f"REVOKE {ident(g)} FROM {ident(role)}", cid, "not granted")
            for g in row.member_of
        ]
    if row is None or row.comment != w.role_comment:
        sql = f"COMMENT ON ROLE {ident(role)} IS {literal(w.role_comment)}"
        out.append(Statement("comment", role, sql, cid))
    return out


LOADER_RELEASE = ("DELETE", "INSERT", "SELECT")  # a sync re-releases rows as the loader


def _view_statements(
    v: View,
    role: str,
    loader: str | None,
    base: str,
    rels: dict[tuple[str, str], sa.Row],
    acls: dict[tuple[str, str | None], set[tuple[str, str, bool]]],
    consumer_roles: set[str],
    auditor: str | None = None,
) -> list[Statement]:
    """The consumer's released table and its view over it: made, re-made when their definition changed, filled.

    With pgaudit in the database, the auditor role also holds SELECT on the view: pgaudit's object audit then logs
    every statement that reads it, whoever runs it."""
    target, shown = _qualified(v.schema, v.name)
    rtarget, rshown = _qualified(v.schema, v.release)
    view, table = rels.get((v.schema, v.name)), rels.get((v.schema, v.release))
    if view is not None and view.relkind != "v":
        raise LidmError(f"grants: {shown} exists and is not a view; move it away, then apply again")
    if table is not None and table.relkind != "r":
        raise LidmError(f"grants: {rshown} exists and is not a table; move it away, then apply again")
    same_table = (
        table is not None
        and table.comment == v.release_comment(base)
        and tuple(table.columns) == (*v.columns, "_key")
        and table.owner not in consumer_roles
    )
    same_view = (
        same_table
        and view is not None
        and view.comment == v.comment(base)
        and tuple(view.columns) == v.columns
        and "security_barrier=true" in view.options
        and view.owner not in consumer_roles
    )
    release_acl = {loader: LOADER_RELEASE} if loader else {}
    out = []
    if not same_table:
        if table is not None:
            out.append(Statement("drop table", rshown, f"DROP TABLE {rtarget} CASCADE", v.consumer, "changed"))
        elif view is not None:
            out.append(Statement("drop view", shown, f"DROP VIEW {target} CASCADE", v.consumer, "definition changed"))
        why = f"{v.contract}: {len(v.columns)} columns, {len(v.scopes)} pseudonymised"
        out += [
            Statement("create table", rshown, v.release_sql(base), v.consumer, why),
            Statement(
                "comment", rshown, f"COMMENT ON TABLE {rtarget} IS {literal(v.release_comment(base))}", v.consumer
            ),
            Statement("create index", rshown, f'CREATE UNIQUE INDEX ON {rtarget} ("_key")', v.consumer),
        ]
        if "id_number_token" in v.columns:
            sql = f'CREATE INDEX ON {rtarget} ("id_number_token")'
            out.append(Statement("create index", rshown, sql, v.consumer, "the person pseudonym every join uses"))
        sql = f"INSERT INTO {rtarget} {v.select_sql(base)}"
        out.append(Statement("fill release", rshown, sql, v.consumer, "pseudonyms keyed for this consumer", v))
        out += _acl_statements("TABLE", v.schema, v.release, set(), release_acl, v.consumer)
    else:
        present = acls.get((v.schema, v.release), set())
        out += _acl_statements("TABLE", v.schema, v.release, present, release_acl, v.consumer)
    if not same_view:
        if same_table and view is not None:
            out.append(Statement("drop view", shown, f"DROP VIEW {target} CASCADE", v.consumer, "definition changed"))
        out += [
            Statement("create view", shown, v.sql(base), v.consumer, f"{v.contract}, {len(v.columns)} columns"),
            Statement("comment", shown, f"COMMENT ON VIEW {target} IS {literal(v.comment(base))}", v.consumer),
            Statement("grant", shown, f"GRANT SELECT ON TABLE {target} TO {ident(role)}", v.consumer),
        ]
        if auditor:
            sql = f"GRANT SELECT ON TABLE {target} TO {ident(auditor)}"
            out.append(Statement("grant", shown, sql, v.consumer, "pgaudit logs every read of the view"))
    else:
        present = acls.get((v.schema, v.name), set())
        readers = {role: ("SELECT",)} | ({auditor: ("SELECT",)} if auditor else {})
        out += _acl_statements("TABLE", v.schema, v.name, present, readers, v.consumer)
    return out


_REGISTERED = sa.text("SELECT schema_name, release_name, digest FROM lidm_release")


def _registry_statements(conn: sa.Connection, base: str, views: list[View]) -> list[Statement]:
    """lidm_release lists exactly the wanted releases, each with the statement that fills it."""
    have = {(r.schema_name, r.release_name): r.digest for r in conn.execute(_REGISTERED)}
    registry = f"{ident(base)}.lidm_release"
    out = []
    wanted = set()
    for v in views:
        wanted.add((v.schema, v.release))
        digest = v.release_comment(base).rsplit(" ", 1)[1]
        if have.get((v.schema, v.release)) == digest:
            continue
        where = f"schema_name = {literal(v.schema)} AND release_name = {literal(v.release)}"
        values = ", ".join(
            literal(x)
            for x in (
                v.schema,
                v.release,
                v.contract,
                v.consumer,
                v.table,
                v.select_sql(base),
                release_mod.key_sql(v.key_columns),
                json.dumps(v.scope_list()),
                digest,
            )
        )
        sql = (
            f"DELETE FROM {registry} WHERE {where}; INSERT INTO {registry} (schema_name, release_name, contract_id, "
            f"consumer, base_table, select_sql, key_expr, scopes, digest) VALUES ({values})"
        )
        out.append(Statement("register release", f"{v.schema}.{v.release}", sql, v.consumer))
    for schema, name in sorted(set(have) - wanted):
        sql = f"DELETE FROM {registry} WHERE schema_name = {literal(schema)} AND release_name = {literal(name)}"
        out.append(Statement("unregister release", f"{schema}.{name}", sql, None, "no longer granted"))
    return out


_TRIGGER_EVENTS = {  # trigger name -> its event and the transition tables lidm_release_note reads
    "lidm_release_ins": "AFTER INSERT ON {t} REFERENCING NEW TABLE AS lidm_new",
    "lidm_release_upd": "AFTER UPDATE ON {t} REFERENCING OLD TABLE AS lidm_old NEW TABLE AS lidm_new",
    "lidm_release_del": "AFTER DELETE ON {t} REFERENCING OLD TABLE AS lidm_old",
    "lidm_release_trunc": "AFTER TRUNCATE ON {t}",
}
_TRIGGERS = sa.text(
    "SELECT c.relname, t.tgname, encode(t.tgargs, 'escape') AS args FROM pg_trigger t "
    "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :base AND NOT t.tgisinternal AND starts_with(t.tgname, 'lidm_release_')"
)


def _trigger_statements(conn: sa.Connection, base: str, views: list[View]) -> list[Statement]:
    """Every dataset table with a release notes its changed rows (lidm.central.release); no other table does."""
    have: dict[str, dict[str, str]] = defaultdict(dict)
    for table, name, args in conn.execute(_TRIGGERS, {"base": base}):
        have[table][name] = args
    keys = {v.table: release_mod.key_sql(v.key_columns) for v in views}
    out = []
    for table in sorted(set(have) | set(keys)):
        t = f"{ident(base)}.{ident(table)}"
        key = keys.get(table)
        want = {name: (key + "\\000" if name != "lidm_release_trunc" else "") for name in _TRIGGER_EVENTS}
        if key is not None and have.get(table) == want:
            continue
        for name in sorted(have.get(table, {})):
            out.append(Statement("drop trigger", f"{base}.{table}", f"DROP TRIGGER {ident(name)} ON {t}", None))
        if key is None:
            continue
        for name, event in _TRIGGER_EVENTS.items():
            arg = literal(key) if name != "lidm_release_trunc" else ""
            sql = (
                f"CREATE TRIGGER {ident(name)} {event.format(t=t)} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION {ident(base)}.lidm_release_note({arg})"
            )
            out.append(Statement("create trigger", f"{base}.{table}", sql, None, "notes changed rows for releases"))
    return out


def _withheld(catalog: ContractCatalog, wanted: list[ConsumerGrants]) -> list[Withheld]:
    by: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
    for w in wanted:
        for v in (*w.views, *w.unexposed):
            if v.withheld:
                by[(v.contract, v.withheld)].append(v.consumer)
    groups = catalog.consumers.groups if catalog.consumers else {}
    out = []
    for (contract, fields), consumers in sorted(by.items()):
        for group, members in groups.items():
            if len(members) > 1 and set(members) <= set(consumers):
                consumers = [c for c in consumers if c not in members] + [group]
        out.append(Withheld(contract, fields, tuple(consumers)))
    return out


def _notes(wanted: list[ConsumerGrants], left: list[str]) -> list[str]:
    notes = [
        f"{w.consumer.id}: no view of {v.contract}, each granted field is withheld" for w in wanted for v in w.unexposed
    ]
    notes += [
        f"role {r}: its consumer is not declared here; it holds nothing in this database, and is kept because roles "
        "are cluster-wide (DROP ROLE it once no database uses it)"
        for r in left
    ]
    return notes


def _diff(conn: sa.Connection, catalog: ContractCatalog, loader: str | None = None) -> GrantsPlan:
    wanted = desired(catalog)
    base = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    _check_tables(conn, base, wanted)
    roles = {r.rolname: r for r in conn.execute(_ROLES, {"prefix": ROLE_PREFIX})}
    schemas = {s.nspname: s for s in conn.execute(_SCHEMAS, {"wanted": [w.schema for w in wanted], "mark": MARK})}
    managed = sorted(schemas)
    rels = {(r.nspname, r.relname): r for r in conn.execute(_RELATIONS, {"schemas": managed})}
    acls: dict[tuple[str, str | None], set[tuple[str, str, bool]]] = defaultdict(set)
    for schema, rel, grantee, privilege, grantable in conn.execute(_ACLS, {"schemas": managed}):
        acls[(schema, rel)].add((grantee, privilege, grantable))
    wanted_roles = {w.role for w in wanted}
    consumer_of = {w.role: w.consumer.id for w in wanted}
    ours = sorted(r for r, row in roles.items() if r in wanted_roles or (row.comment or "").startswith(MARK))
    # The loader first: the consumers' schemas and released tables grant it what a sync needs.
    out: list[Statement] = _loader_statements(conn, base, loader) if loader is not None else []
    auditor, audit_notes = _auditor(conn)
    if auditor:
        out += _auditor_statements(auditor, conn.execute(_LOADER, {"name": auditor}).first())
    for w in wanted:
        out += _role_statements(w, roles.get(w.role))
        s, cid = ident(w.schema), w.consumer.id
        have = schemas.get(w.schema)
        if have is None:
            out.append(Statement("create schema", w.schema, f"CREATE SCHEMA {s}", cid))
        elif have.owner in ours:  # a consumer owning its schema could create and grant anything in it
            out.append(Statement("alter schema", w.schema, f"ALTER SCHEMA {s} OWNER TO CURRENT_USER", cid))
        if have is None or have.comment != w.schema_comment:
            out.append(Statement("comment", w.schema, f"COMMENT ON SCHEMA {s} IS {literal(w.schema_comment)}", cid))
        usage = {w.role: ("USAGE",)} | ({loader: ("USAGE",)} if loader else {})
        out += _acl_statements("SCHEMA", w.schema, None, acls.get((w.schema, None), set()), usage, cid)
        for v in w.views:
            out += _view_statements(v, w.role, loader, base, rels, acls, set(ours), auditor)
    views = [v for w in wanted for v in w.views]
    out += _registry_statements(conn, base, views)
    out += _trigger_statements(conn, base, views)
    wanted_views = {(v.schema, n) for v in views for n in (v.name, v.release)}
    wanted_schemas = {w.schema for w in wanted}
    notes = []
    for (schema, name), rel in sorted(rels.items()):
        if schema not in wanted_schemas or (schema, name) in wanted_views:
            continue
        target, shown = _qualified(schema, name)
        if rel.relkind == "v":
            out.append(Statement("drop view", shown, f"DROP VIEW {target} CASCADE", None, "no longer granted"))
        elif rel.relkind == "r" and (rel.comment or "").startswith(f"{MARK} release of "):
            out.append(Statement("drop table", shown, f"DROP TABLE {target} CASCADE", None, "no longer granted"))
        else:  # not ours to drop; but no consumer keeps a privilege on it
            notes.append(f"{schema}.{name} is a table-like object not made by lidm grants; move it out of the schema")
            for grantee in sorted({g for g, _, _ in acls.get((schema, name), set())}):
                sql = f"REVOKE ALL ON TABLE {target} FROM {_grantee(grantee)}"
                out.append(Statement("revoke", shown, sql, consumer_of.get(grantee, grantee), "not granted"))
    for schema in managed:
        if schema not in wanted_schemas:
            sql = f"DROP SCHEMA {ident(schema)} CASCADE"
            out.append(Statement("drop schema", schema, sql, None, "consumer no longer declared: its views go too"))
    for schema, rel, role in conn.execute(_STRAY, {"roles": ours, "schemas": managed}):
        target, shown = _qualified(schema, rel)
        sql = f"REVOKE ALL ON {'SCHEMA' if rel is None else 'TABLE'} {target} FROM {ident(role)}"
        out.append(Statement("revoke", shown, sql, consumer_of.get(role, role), "not granted by any contract"))
    left = [r for r in ours if r not in wanted_roles]
    if loader is not None:
        out += _database_statements(conn, base, loader, sorted(wanted_roles))
    return GrantsPlan(out, _withheld(catalog, wanted), notes + _notes(wanted, left) + audit_notes)


# --------------------------------------------------------------------------- consumers' reads, audited by pgaudit

AUDITOR = "lidm_auditor"
_AUDITOR_COMMENT = f"{MARK} pgaudit object-audit role: holds SELECT on every consumer view, never logs in"
_PGAUDIT = sa.text(
    "SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'pgaudit') AS created, "
    "(SELECT count(*) FROM pg_available_extensions WHERE name = 'pgaudit') AS available, "
    "current_setting('pgaudit.role', true) AS role, current_database() AS db"
)


def _auditor(conn: sa.Connection) -> tuple[str | None, list[str]]:
    """The auditor role when pgaudit is created in this database, and what a superuser still has to do."""
    row = conn.execute(_PGAUDIT).one()
    if not row.created:
        if row.available:
            return None, [
                "consumers' reads are not audited: pgaudit is installed but not in this database; as a superuser, "
                f"with shared_preload_libraries = 'pgaudit': CREATE EXTENSION pgaudit; ALTER DATABASE "
                f"{ident(row.db)} SET pgaudit.role = '{AUDITOR}'; then apply again"
            ]
        return None, []
    if row.role != AUDITOR:
        return AUDITOR, [
            f"pgaudit is in this database but pgaudit.role is {row.role or 'unset'}: as a superuser, ALTER DATABASE "
            f"{ident(row.db)} SET pgaudit.role = '{AUDITOR}' (new sessions log consumers' reads)"
        ]
    return AUDITOR, []


def _auditor_statements(auditor: str, row: sa.Row | None) -> list[Statement]:
    return _plain_role_statements(auditor, row, _AUDITOR_COMMENT, login=False, why="pgaudit's object-audit role")


# --------------------------------------------------------------------------- the loader role and PUBLIC

LOADER_DML = ("DELETE", "INSERT", "SELECT", "UPDATE")
# Tables the loader may not change: it appends to the audit log, reads the rest (alembic_version: to see the
# schema is at head). Everything else in the central schema is the gateway's data and bookkeeping.
LOADER_TABLES = {
    "lidm_audit": ("INSERT", "SELECT"),
    "lidm_audit_head": ("SELECT",),
    "lidm_audit_checkpoint": ("SELECT",),
    "alembic_version": ("SELECT",),
    "lidm_release": ("SELECT",),  # what each release holds is the owner's to say (grants apply)
}
LOADER_DATABASE = ("CONNECT", "TEMPORARY")  # TEMPORARY: batches are staged in temporary tables
_LOADER = sa.text(
    "SELECT r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls, "
    "shobj_description(r.oid, 'pg_authid') AS comment, "
    "ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
    "      WHERE m.member = r.oid ORDER BY g.rolname) AS member_of "
    "FROM pg_roles r WHERE r.rolname = :name"
)
# Tables and sequences of the central schema, who owns them, and what the loader holds on each ('*': grantable).
_BASE_RELATIONS = sa.text(
    "SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner, "
    "ARRAY(SELECT a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END "
    "      FROM aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee WHERE r.rolname = :loader "
    "      ORDER BY 1) AS held "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :base AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') ORDER BY c.relname"
)
# Privileges on the central schema and on this database by grantee (PUBLIC as 'PUBLIC'); a NULL acl is the
# built-in default, which gives PUBLIC CONNECT and TEMPORARY on a database.
_SCHEMA_ACL = sa.text(
    "SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee, "
    "a.privilege_type, a.is_grantable FROM pg_namespace n "
    "CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a "
    "WHERE n.nspname = :base AND a.grantee <> n.nspowner"
)
_DATABASE_ACL = sa.text(
    "SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee, "
    "a.privilege_type, a.is_grantable FROM pg_database d "
    "CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
    "WHERE d.datname = current_database() AND a.grantee <> d.datdba"
)
_ME = sa.text(
    "SELECT current_user AS name, r.rolsuper, pg_get_userbyid(d.datdba) AS dba, current_database() AS db "
    "FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()"
)
_LOADER_COMMENT = f"{MARK} loader: writes data, appends to the audit log, nothing else"


def _loader_role_statements(loader: str, row: sa.Row | None) -> list[Statement]:
    return _plain_role_statements(loader, row, _LOADER_COMMENT, login=True, why="the DBA sets its password")


def _plain_role_statements(name: str, row: sa.Row | None, note: str, *, login: bool, why: str) -> list[Statement]:
    """A role with no attribute (LOGIN or not, as given) and member of nothing, commented as ours."""
    comment = Statement("comment", name, f"COMMENT ON ROLE {ident(name)} IS {literal(note)}")
    if row is None:
        # Roles are cluster-wide: another database's apply may create the same role at the same moment.
        sql = (
            f"DO $$ BEGIN CREATE ROLE {ident(name)} {'LOGIN' if login else 'NOLOGIN'}; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        return [
            Statement("create role", name, sql, None, f"{'LOGIN' if login else 'NOLOGIN'}, no attribute; {why}"),
            comment,
        ]
    out = []
    attrs = [
        word for col, word in _ROLE_ATTRIBUTES.items() if (col != "rolcanlogin" or not login) and getattr(row, col)
    ]
    if attrs:
        why = "it needs none: with CREATEROLE it could make itself a superuser"
        out.append(Statement("alter role", name, f"ALTER ROLE {ident(name)} {' '.join(attrs)}", None, why))
    out += [
        Statement("revoke membership", name, f"REVOKE {ident(g)} FROM {ident(name)}", None, "holds no role")
        for g in row.member_of
    ]
    if row.comment != note:
        out.append(comment)
    return out


def _exactly(
    kind: str, target: str, shown: str, grantee: str, held: set[str], wanted: tuple[str, ...]
) -> list[Statement]:
    """Statements leaving `grantee` with exactly `wanted` (without grant option) on one object."""
    out = []
    extra = sorted({p.rstrip("*") for p in held if p.rstrip("*") not in wanted or p.endswith("*")})
    if extra:
        sql = f"REVOKE {', '.join(extra)} ON {kind} {target} FROM {_grantee(grantee)}"
        out.append(Statement("revoke", shown, sql, None, f"not needed by {grantee}"))
    missing = [p for p in wanted if p not in held or p in extra]
    if missing:
        sql = f"GRANT {', '.join(missing)} ON {kind} {target} TO {_grantee(grantee)}"
        out.append(Statement("grant", shown, sql, None, f"what {grantee} needs"))
    return out


def _loader_statements(conn: sa.Connection, base: str, loader: str) -> list[Statement]:
    """The loader role exists with exactly what loading, monitoring and housekeeping need in the central schema."""
    if not _SAFE_NAME.match(loader) or loader.startswith(ROLE_PREFIX):
        raise ConfigError(f"LIDM_LOADER_ROLE {loader!r}: use lower-case letters, digits and _, not {ROLE_PREFIX}*")
    out = _loader_role_statements(loader, conn.execute(_LOADER, {"name": loader}).first())
    schema = ident(base)
    for rel in conn.execute(_BASE_RELATIONS, {"base": base, "loader": loader}):
        target, shown = f"{schema}.{ident(rel.relname)}", f"{base}.{rel.relname}"
        kind = "SEQUENCE" if rel.relkind == "S" else "TABLE"
        if rel.owner == loader and kind == "TABLE":  # e.g. a deployment that loaded as the owner; sequences follow
            sql = f"ALTER TABLE {target} OWNER TO CURRENT_USER"
            out.append(Statement("alter owner", shown, sql, None, "the loader owns nothing: the owner role does"))
        if rel.relkind == "S":
            wanted: tuple[str, ...] = ("USAGE",)
        elif rel.relkind in ("r", "p"):
            wanted = LOADER_TABLES.get(rel.relname, LOADER_DML)
        else:  # views and the like in the central schema are not the loader's business
            wanted = ()
        out += _exactly(kind, target, shown, loader, set(rel.held), wanted)
    held = {p + ("*" if g else "") for who, p, g in conn.execute(_SCHEMA_ACL, {"base": base}) if who == loader}
    out += _exactly("SCHEMA", schema, base, loader, held, ("USAGE",))
    return out


def _database_statements(conn: sa.Connection, base: str, loader: str, consumers: list[str]) -> list[Statement]:
    """PUBLIC keeps nothing a consumer does not need; the loader, the consumers and the owner CONNECT."""
    me = conn.execute(_ME).one()
    database = ident(me.db)
    out = []
    if any(who == "PUBLIC" and p == "CREATE" for who, p, _ in conn.execute(_SCHEMA_ACL, {"base": base})):
        sql = f"REVOKE CREATE ON SCHEMA {ident(base)} FROM PUBLIC"
        out.append(Statement("revoke", base, sql, None, "only the owner creates objects in the central schema"))
    held: dict[str, set[str]] = defaultdict(set)
    for who, p, grantable in conn.execute(_DATABASE_ACL):
        held[who].add(p + ("*" if grantable else ""))
    out += _exactly("DATABASE", database, me.db, "PUBLIC", held["PUBLIC"], ())
    out += _exactly("DATABASE", database, me.db, loader, held[loader], LOADER_DATABASE)
    if not me.rolsuper and me.name != me.dba:  # the owner must still get in once PUBLIC cannot
        out += _exactly("DATABASE", database, me.db, me.name, held[me.name], ("CONNECT",))
    for role in consumers:
        out += _exactly("DATABASE", database, me.db, role, held[role], ("CONNECT",))
    return out


# --------------------------------------------------------------------------- entry points


def review(catalog: ContractCatalog, engine: sa.Engine, *, loader: str | None = None) -> GrantsPlan:
    """What `apply` would change, with notes on withheld fields and roles left behind; changes nothing."""
    _require_postgres(engine)
    with engine.connect() as conn:
        return _diff(conn, catalog, loader)


def plan(catalog: ContractCatalog, engine: sa.Engine, *, loader: str | None = None) -> list[Statement]:
    """The statements that would make the database's roles, schemas and views match the catalogue's grants."""
    return review(catalog, engine, loader=loader).statements


def _registration(v: View, base: str) -> release_mod.Registered:
    return release_mod.Registered(
        v.schema, v.release, v.table, v.select_sql(base), release_mod.key_sql(v.key_columns), v.scope_list()
    )


def refuse_rebuildable(catalog: ContractCatalog) -> None:
    """Raise when a consumer could rebuild a masked value from everything granted to it together."""
    from lidm.contracts.disclosure import rebuildable

    found = rebuildable(catalog)
    if found:
        lines = "\n".join(f"  - {r}" for r in found[:20])
        more = f"\n  … and {len(found) - 20} more" if len(found) > 20 else ""
        raise ContractError(
            f"grants: refused, nothing was changed: {len(found)} grant(s) let a consumer rebuild a value it may only "
            f"see masked (`lidm contracts lint` lists them):\n{lines}{more}"
        )


def refuse_below_k(catalog: ContractCatalog, conn: sa.Connection) -> None:
    """Raise when a release would let a consumer single people out below its contract's lidmMinK."""
    from lidm.contracts.disclosure import below_min_k

    found = below_min_k(catalog, conn)
    if found:
        lines = "\n".join(
            f"  - {r.contract} to {r.consumer}: k={r.k} < {catalog[r.contract].min_k} over {', '.join(r.columns)}"
            for r in found[:20]
        )
        raise ContractError(
            f"grants: refused, nothing was changed: {len(found)} release(s) under the contract's minimum k (people "
            f"could be singled out from the quasi-identifiers granted; grant fewer or coarser ones):\n{lines}"
        )


def apply(
    engine: sa.Engine, catalog: ContractCatalog, *, keyring: Keyring | None = None, loader: str | None = None
) -> ApplyResult:
    """Make the database match the grants, in one transaction; a second run changes nothing.

    A change is audited (lidm.central.audit) in the same transaction: counts per action, the consumers touched and a
    digest of the SQL run; sealed when the keyring is given. Grants that let a consumer rebuild a value it may
    only see masked are refused before anything is changed (lidm.contracts.disclosure)."""
    _require_postgres(engine)
    refuse_rebuildable(catalog)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('lidm grants apply'))"))
        refuse_below_k(catalog, conn)
        todo = _diff(conn, catalog, loader)
        base = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        for st in todo.statements:
            try:
                if st.view is not None:
                    release_mod.fill(conn, keyring, _registration(st.view, base))
                else:
                    conn.exec_driver_sql(st.sql)
            except sa.exc.DBAPIError as exc:
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
                hint = (
                    " The applying user needs CREATEROLE and ownership of the central tables and lidm_* schemas."
                    if getattr(exc.orig, "sqlstate", None) == "42501"
                    else ""
                )
                raise LidmError(
                    f"grants: {st.action} {st.target} failed ({reason}); nothing was changed.{hint}"
                ) from None
        # Rows changed since the last sync, for the releases apply kept; keys of tables with none are dropped.
        release_mod.sync(conn, keyring)
        if todo.statements:
            from lidm.central import audit

            sql = "\n".join(st.sql for st in todo.statements)
            audit.append(
                conn,
                actor="grants",
                action="grants.apply",
                subject=str(conn.execute(sa.text("SELECT current_database()")).scalar_one()),
                detail={
                    "statements": len(todo.statements),
                    "actions": dict(Counter(st.action for st in todo.statements)),
                    "consumers": sorted({st.consumer for st in todo.statements if st.consumer}),
                    "sql_sha256": hashlib.sha256(sql.encode("utf-8")).hexdigest(),
                    "operator": audit.operator(),
                },
                keyring=keyring,
            )
    return ApplyResult(todo.statements, todo.withheld, todo.notes)
