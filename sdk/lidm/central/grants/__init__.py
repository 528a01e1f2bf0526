"""Grants enforced by PostgreSQL itself: per consumer a NOLOGIN role and a schema of views showing only its grant.

For each consumer of contracts/consumers.yaml (groups expanded) the database gets:

- a role ``lidm_c_<consumer>`` (NOLOGIN, no attributes, member of nothing; a dot in the id becomes ``__``).
  A deployment grants it to the LOGIN users of that department or county bureau;
- a schema ``lidm_<consumer>`` owned by the gateway, on which the role has USAGE and nothing else;
- per granted dataset a view named like the dataset's table (``lidm_education.platform_warning``) with
  ``security_barrier``, showing only the granted fields at the granted level (token -> ``<field>_token``, as
  the consumer's pseudonym: 64 hex characters of text, though the token is stored as 32 bytes;
  masked -> ``<field>_masked``, clear -> ``<field>``), only current rows (``_retired_batch IS NULL``) and only
  the grant's rows (``own_districts``: district field in the county's districts; ``own_department``:
  department field = the consumer's department). The role has SELECT on its views and on nothing else.

A field granted ``clear`` but stored only encrypted (in the row's ``_sealed``) is NOT in the view: its clear value
comes only from re-identification, which decrypts in the gateway and audits every decrypt; a view cannot audit
who read what. The plan says which fields are withheld this way. When several grants reach one consumer for one
dataset (its own and a group's), its own grant decides, as for pushes; differing group grants are refused.

Row-level security is not used. A consumer has no privilege at all on a base table, so a policy there would
never be evaluated for it: PostgreSQL refuses the read before rows are considered. The views read the base
tables with their owner's rights, and the owner bypasses RLS unless FORCE ROW LEVEL SECURITY, which would
also filter the loader and the monitor (they need every row). Policies keyed on the reader would need
``security_invoker`` views, which in turn need SELECT on the base tables for the consumer, the very exposure
the views avoid (``_sealed`` rows, other districts). The layers are therefore: no base-table or ``lidm_*``
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

from lidm.central.grants.model import (
    MARK,
    ROLE_PREFIX,
    SCHEMA_PREFIX,
    ApplyResult,
    ConsumerGrants,
    GrantsPlan,
    Statement,
    View,
    Withheld,
    deciding_grant,
    desired,
    role_name,
    schema_name,
)
from lidm.central.grants.objects import LOADER_RELEASE
from lidm.central.grants.roles import AUDITOR, LOADER_DATABASE, LOADER_DML, LOADER_TABLES
from lidm.central.grants.run import apply, plan, refuse_below_k, refuse_rebuildable, review

__all__ = [
    "AUDITOR",
    "LOADER_DATABASE",
    "LOADER_DML",
    "LOADER_RELEASE",
    "LOADER_TABLES",
    "MARK",
    "ROLE_PREFIX",
    "SCHEMA_PREFIX",
    "ApplyResult",
    "ConsumerGrants",
    "GrantsPlan",
    "Statement",
    "View",
    "Withheld",
    "apply",
    "deciding_grant",
    "desired",
    "plan",
    "refuse_below_k",
    "refuse_rebuildable",
    "review",
    "role_name",
    "schema_name",
]
