"""The other direction of `hooks`: the SDK's source URLs as Airflow connections, and the pools the DAGs use.

An operator has its sources as a `LIDM_CONNECTIONS` map (or `lidm sample`'s `connections.json`) while the DAGs
read Airflow connections; `lidm airflow connections` writes them in the form `airflow connections import`
reads. Each translation is the exact inverse of `hooks.connection_url` (tested by a round trip through Airflow),
so what a task reads is what the operator had. Nothing here imports Airflow.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from lidm.errors import ConfigError

# libpq parameters `hooks` passes through from a postgres connection's extra (and takes back from a URL here).
PG_PARAMS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options")
# ODBC keys OdbcHook fills from the connection's own fields; any other key goes to the extra, as it came.
_ODBC_FIELDS = {"SERVER": "host", "PORT": "port", "DATABASE": "schema", "UID": "login", "PWD": "password"}


def airflow_connection(name: str, url: str) -> dict[str, Any]:
    """A source URL as an Airflow connection (the JSON `airflow connections import` reads); ConfigError names
    the connection when its kind has no Airflow form lidm reads."""
    if url.startswith("odbc:"):
        return _odbc(url.removeprefix("odbc:"))
    if url.startswith("sftp://"):
        return _sftp(name, url)
    if url.startswith("file://") or url.startswith("/"):
        path = unquote(urlsplit(url).path) if url.startswith("file://") else url
        return {"conn_type": "fs", "extra": {"path": path}}
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        return {"conn_type": "sqlite", "host": url.split(":///", 1)[1] if ":///" in url else ""}
    if scheme in ("postgresql", "postgres"):
        return _postgres(url)
    raise ConfigError(
        f"connection {name}: {scheme}:// has no Airflow connection lidm reads; use an odbc: string "
        "(MariaDB/MySQL, SQL Server, 达梦), postgresql://, sqlite://, sftp:// or file://"
    )


def _odbc(conn_str: str) -> dict[str, Any]:
    conn: dict[str, Any] = {"conn_type": "odbc"}
    extra: dict[str, Any] = {}
    for item in conn_str.split(";"):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            continue
        key, value = key.strip(), value.strip()
        upper = key.upper()
        if upper == "DRIVER":
            extra["driver"] = value.strip("{}")  # OdbcHook puts the braces back
        elif upper == "DSN":
            extra["dsn"] = value
        elif upper in _ODBC_FIELDS:
            conn[_ODBC_FIELDS[upper]] = int(value) if upper == "PORT" and value.isdigit() else value
        else:
            extra[key] = value
    return conn | ({"extra": extra} if extra else {})


def _sftp(name: str, url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if not parts.hostname or not parts.username:
        raise ConfigError(f"connection {name}: an sftp:// URL names its user and host")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    extra: dict[str, Any] = {}
    if parts.path not in ("", "/"):
        extra["path"] = unquote(parts.path[1:])  # relative to the login folder; '//abs' keeps its leading '/'
    for key in ("key_file", "known_hosts"):
        if query.get(key):
            extra[key] = query[key]
    conn: dict[str, Any] = {
        "conn_type": "sftp",
        "host": parts.hostname,
        "port": parts.port or 22,
        "login": unquote(parts.username),
    }
    if parts.password:
        conn["password"] = unquote(parts.password)
    return conn | ({"extra": extra} if extra else {})


def _postgres(url: str) -> dict[str, Any]:
    import sqlalchemy as sa

    u = sa.engine.make_url(url)
    conn: dict[str, Any] = {"conn_type": "postgres", "host": u.host or "", "schema": u.database or ""}
    if u.port:
        conn["port"] = u.port
    if u.username:
        conn["login"] = u.username
    if u.password:
        conn["password"] = u.password
    extra = {k: (v if isinstance(v, str) else v[-1]) for k, v in u.query.items() if k in PG_PARAMS}
    return conn | ({"extra": extra} if extra else {})


def pools(adapter_pools: set[str], departments: list[str], slots: int = 1) -> dict[str, dict[str, Any]]:
    """Every pool a lidm DAG puts a task in, as `airflow pools import` reads them: a task in a missing pool is
    never scheduled. One slot each: a department's database or channel sees one lidm task at a time."""
    return {
        name: {"slots": slots, "description": f"lidm: feeds and warning channel of {name}", "include_deferred": False}
        for name in sorted(adapter_pools | set(departments))
    }
