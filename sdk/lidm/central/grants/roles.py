"""The roles beside the consumers': the loader, the pgaudit auditor, and what PUBLIC keeps."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from lidm.central.grants.model import MARK, ROLE_ATTRIBUTES, ROLE_PREFIX, SAFE_NAME, Statement, grantee_sql
from lidm.central.sqltext import ident, literal
from lidm.central.stage import STAGE_SCHEMA
from lidm.errors import ConfigError

# --------------------------------------------------------------------------- consumers' reads, audited by pgaudit

AUDITOR = "lidm_auditor"
_AUDITOR_COMMENT = f"{MARK} pgaudit object-audit role: holds SELECT on every consumer view, never logs in"
_PGAUDIT = sa.text(
    "SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'pgaudit') AS created, "
    "(SELECT count(*) FROM pg_available_extensions WHERE name = 'pgaudit') AS available, "
    "current_setting('pgaudit.role', true) AS role, current_database() AS db"
)


def auditor_role(conn: sa.Connection) -> tuple[str | None, list[str]]:
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


def auditor_statements(auditor: str, row: sa.Row | None) -> list[Statement]:
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
ROLE_QUERY = sa.text(
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
    attrs = [word for col, word in ROLE_ATTRIBUTES.items() if (col != "rolcanlogin" or not login) and getattr(row, col)]
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
        sql = f"REVOKE {', '.join(extra)} ON {kind} {target} FROM {grantee_sql(grantee)}"
        out.append(Statement("revoke", shown, sql, None, f"not needed by {grantee}"))
    missing = [p for p in wanted if p not in held or p in extra]
    if missing:
        sql = f"GRANT {', '.join(missing)} ON {kind} {target} TO {grantee_sql(grantee)}"
        out.append(Statement("grant", shown, sql, None, f"what {grantee} needs"))
    return out


def loader_statements(conn: sa.Connection, base: str, loader: str) -> list[Statement]:
    """The loader role exists with exactly what loading, monitoring and housekeeping need in the central schema."""
    if not SAFE_NAME.match(loader) or loader.startswith(ROLE_PREFIX):
        raise ConfigError(f"LIDM_LOADER_ROLE {loader!r}: use lower-case letters, digits and _, not {ROLE_PREFIX}*")
    out = _loader_role_statements(loader, conn.execute(ROLE_QUERY, {"name": loader}).first())
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
    return out + _stage_statements(conn, loader)


def _stage_statements(conn: sa.Connection, loader: str) -> list[Statement]:
    """The loader creates and drops the stages of its batches in lidm_stage (workers write there); nobody else
    holds anything on that schema."""
    acl = conn.execute(_SCHEMA_ACL, {"base": STAGE_SCHEMA}).all()
    if not acl and conn.execute(sa.text("SELECT to_regnamespace(:s)"), {"s": STAGE_SCHEMA}).scalar() is None:
        return []  # a database before migration 0023: `lidm db upgrade` makes the schema
    held: dict[str, set[str]] = defaultdict(set)
    for who, p, grantable in acl:
        held[who].add(p + ("*" if grantable else ""))
    target = ident(STAGE_SCHEMA)
    out = _exactly("SCHEMA", target, STAGE_SCHEMA, loader, held.pop(loader, set()), ("USAGE", "CREATE"))
    for who, privileges in sorted(held.items()):
        out += _exactly("SCHEMA", target, STAGE_SCHEMA, who, privileges, ())
    return out


def database_statements(conn: sa.Connection, base: str, loader: str, consumers: list[str]) -> list[Statement]:
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
