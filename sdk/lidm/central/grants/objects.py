"""The statements that make one consumer's objects match: role, schema, released tables, views, triggers."""

from __future__ import annotations

import json
from collections import defaultdict

import sqlalchemy as sa

from lidm.central import release as release_mod
from lidm.central.grants.model import ROLE_ATTRIBUTES, ConsumerGrants, Statement, View, grantee_sql
from lidm.central.sqltext import ident, literal
from lidm.errors import ConfigError, LidmError

# --------------------------------------------------------------------------- what the database holds

ROLES = sa.text(
    "SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, "
    "r.rolbypassrls, shobj_description(r.oid, 'pg_authid') AS comment, "
    "ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
    "      WHERE m.member = r.oid ORDER BY g.rolname) AS member_of "
    "FROM pg_roles r WHERE starts_with(r.rolname, :prefix)"
)
SCHEMAS = sa.text(
    "SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner, obj_description(n.oid, 'pg_namespace') AS comment "
    "FROM pg_namespace n WHERE n.nspname = ANY(CAST(:wanted AS text[])) "
    "OR starts_with(coalesce(obj_description(n.oid, 'pg_namespace'), ''), :mark)"
)
RELATIONS = sa.text(
    "SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner, "
    "coalesce(c.reloptions, '{}') AS options, obj_description(c.oid, 'pg_class') AS comment, "
    "ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 "
    "      AND NOT a.attisdropped ORDER BY a.attnum) AS columns "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = ANY(CAST(:schemas AS text[])) AND c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S')"
)
# Non-owner privileges on the managed schemas and on the relations in them.
ACLS = sa.text(
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
STRAY = sa.text(
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


def require_postgres(engine: sa.Engine) -> None:
    if engine.dialect.name == "sqlite":
        raise ConfigError(
            "grants: SQLite has no roles, so the embedded database cannot enforce grants; there they are enforced "
            "only in the export and push paths. Point LIDM_CENTRAL_URL at PostgreSQL to enforce them in the database."
        )
    if engine.dialect.name != "postgresql":
        raise ConfigError(f"grants: database roles and views are made for PostgreSQL only, not {engine.dialect.name}")


def check_tables(conn: sa.Connection, base: str, wanted: list[ConsumerGrants]) -> None:
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


def qualified(schema: str, name: str | None) -> tuple[str, str]:
    """An object as SQL names it and as people read it."""
    if name is None:
        return ident(schema), schema
    return f"{ident(schema)}.{ident(name)}", f"{schema}.{name}"


def acl_statements(
    kind: str,
    schema: str,
    name: str | None,
    present: set[tuple[str, str, bool]],
    wanted: dict[str, tuple[str, ...]],
    who: str,
) -> list[Statement]:
    """Revoke what others hold on a managed object; leave each wanted role with exactly its privileges."""
    sql_name, shown = qualified(schema, name)
    out = [
        Statement("revoke", shown, f"REVOKE ALL ON {kind} {sql_name} FROM {grantee_sql(g)}", who, f"not granted to {g}")
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


def role_statements(w: ConsumerGrants, row: sa.Row | None) -> list[Statement]:
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
        attrs = [word for col, word in ROLE_ATTRIBUTES.items() if getattr(row, col)]
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


def view_statements(
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
    target, shown = qualified(v.schema, v.name)
    rtarget, rshown = qualified(v.schema, v.release)
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
        out += acl_statements("TABLE", v.schema, v.release, set(), release_acl, v.consumer)
    else:
        present = acls.get((v.schema, v.release), set())
        out += acl_statements("TABLE", v.schema, v.release, present, release_acl, v.consumer)
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
        out += acl_statements("TABLE", v.schema, v.name, present, readers, v.consumer)
    return out


_REGISTERED = sa.text("SELECT schema_name, release_name, digest FROM lidm_release")


def registry_statements(conn: sa.Connection, base: str, views: list[View]) -> list[Statement]:
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


def trigger_statements(conn: sa.Connection, base: str, views: list[View]) -> list[Statement]:
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
