"""Plan and apply: the difference between the catalogue and the database, applied in one transaction."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

import sqlalchemy as sa

from lidm.central import release as release_mod
from lidm.central.grants.model import (
    MARK,
    ROLE_PREFIX,
    ApplyResult,
    ConsumerGrants,
    GrantsPlan,
    Statement,
    View,
    Withheld,
    desired,
    grantee_sql,
)
from lidm.central.grants.objects import (
    ACLS,
    RELATIONS,
    ROLES,
    SCHEMAS,
    STRAY,
    acl_statements,
    check_tables,
    qualified,
    registry_statements,
    require_postgres,
    role_statements,
    trigger_statements,
    view_statements,
)
from lidm.central.grants.roles import (
    ROLE_QUERY,
    auditor_role,
    auditor_statements,
    database_statements,
    loader_statements,
)
from lidm.central.sqltext import ident, literal
from lidm.contracts.load import ContractCatalog
from lidm.errors import ContractError, LidmError
from lidm.keys import Keyring


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
    check_tables(conn, base, wanted)
    roles = {r.rolname: r for r in conn.execute(ROLES, {"prefix": ROLE_PREFIX})}
    schemas = {s.nspname: s for s in conn.execute(SCHEMAS, {"wanted": [w.schema for w in wanted], "mark": MARK})}
    managed = sorted(schemas)
    rels = {(r.nspname, r.relname): r for r in conn.execute(RELATIONS, {"schemas": managed})}
    acls: dict[tuple[str, str | None], set[tuple[str, str, bool]]] = defaultdict(set)
    for schema, rel, grantee, privilege, grantable in conn.execute(ACLS, {"schemas": managed}):
        acls[(schema, rel)].add((grantee, privilege, grantable))
    wanted_roles = {w.role for w in wanted}
    consumer_of = {w.role: w.consumer.id for w in wanted}
    ours = sorted(r for r, row in roles.items() if r in wanted_roles or (row.comment or "").startswith(MARK))
    # The loader first: the consumers' schemas and released tables grant it what a sync needs.
    out: list[Statement] = loader_statements(conn, base, loader) if loader is not None else []
    auditor, audit_notes = auditor_role(conn)
    if auditor:
        out += auditor_statements(auditor, conn.execute(ROLE_QUERY, {"name": auditor}).first())
    for w in wanted:
        out += role_statements(w, roles.get(w.role))
        s, cid = ident(w.schema), w.consumer.id
        have = schemas.get(w.schema)
        if have is None:
            out.append(Statement("create schema", w.schema, f"CREATE SCHEMA {s}", cid))
        elif have.owner in ours:  # a consumer owning its schema could create and grant anything in it
            out.append(Statement("alter schema", w.schema, f"ALTER SCHEMA {s} OWNER TO CURRENT_USER", cid))
        if have is None or have.comment != w.schema_comment:
            out.append(Statement("comment", w.schema, f"COMMENT ON SCHEMA {s} IS {literal(w.schema_comment)}", cid))
        usage = {w.role: ("USAGE",)} | ({loader: ("USAGE",)} if loader else {})
        out += acl_statements("SCHEMA", w.schema, None, acls.get((w.schema, None), set()), usage, cid)
        for v in w.views:
            out += view_statements(v, w.role, loader, base, rels, acls, set(ours), auditor)
    views = [v for w in wanted for v in w.views]
    out += registry_statements(conn, base, views)
    out += trigger_statements(conn, base, views)
    wanted_views = {(v.schema, n) for v in views for n in (v.name, v.release)}
    wanted_schemas = {w.schema for w in wanted}
    notes = []
    for (schema, name), rel in sorted(rels.items()):
        if schema not in wanted_schemas or (schema, name) in wanted_views:
            continue
        target, shown = qualified(schema, name)
        if rel.relkind == "v":
            out.append(Statement("drop view", shown, f"DROP VIEW {target} CASCADE", None, "no longer granted"))
        elif rel.relkind == "r" and (rel.comment or "").startswith(f"{MARK} release of "):
            out.append(Statement("drop table", shown, f"DROP TABLE {target} CASCADE", None, "no longer granted"))
        else:  # not ours to drop; but no consumer keeps a privilege on it
            notes.append(f"{schema}.{name} is a table-like object not made by lidm grants; move it out of the schema")
            for grantee in sorted({g for g, _, _ in acls.get((schema, name), set())}):
                sql = f"REVOKE ALL ON TABLE {target} FROM {grantee_sql(grantee)}"
                out.append(Statement("revoke", shown, sql, consumer_of.get(grantee, grantee), "not granted"))
    for schema in managed:
        if schema not in wanted_schemas:
            sql = f"DROP SCHEMA {ident(schema)} CASCADE"
            out.append(Statement("drop schema", schema, sql, None, "consumer no longer declared: its views go too"))
    for schema, rel, role in conn.execute(STRAY, {"roles": ours, "schemas": managed}):
        target, shown = qualified(schema, rel)
        sql = f"REVOKE ALL ON {'SCHEMA' if rel is None else 'TABLE'} {target} FROM {ident(role)}"
        out.append(Statement("revoke", shown, sql, consumer_of.get(role, role), "not granted by any contract"))
    left = [r for r in ours if r not in wanted_roles]
    if loader is not None:
        out += database_statements(conn, base, loader, sorted(wanted_roles))
    return GrantsPlan(out, _withheld(catalog, wanted), notes + _notes(wanted, left) + audit_notes)


# --------------------------------------------------------------------------- entry points


def review(catalog: ContractCatalog, engine: sa.Engine, *, loader: str | None = None) -> GrantsPlan:
    """What `apply` would change, with notes on withheld fields and roles left behind; changes nothing."""
    require_postgres(engine)
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
    require_postgres(engine)
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
