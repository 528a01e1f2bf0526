"""Airflow connections become what the SDK needs: a source URL, a department's channel.

`connection_url` translates a connection (odbc, sftp/ssh, postgres, sqlite, fs) into the SDK's source URL
form; the ODBC connection string and the PostgreSQL URL are built by the providers' own hooks (`OdbcHook`,
`PostgresHook`). Files a URL must point at (a known_hosts line, a login key) go to a `Scratch` folder.

Secrets: a connection's password reaches the SDK inside the URL and never a log line; the URL-quoted form of
the password is registered with Airflow's secret masker as well as the raw one.
"""

from __future__ import annotations

import base64
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from lidm.errors import ConfigError
from lidm.integrations.airflow.connections import PG_PARAMS

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from lidm.config import Settings

_HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


class Scratch:
    """A private folder (mode 700) made on first use, for files a URL must point at (known_hosts, keys)."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder

    def write(self, name: str, text: str) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="lidm-conn-"))
        path = self._folder / name
        path.touch(mode=0o600)
        path.write_text(text)
        return path


def connection_url(conn_id: str, scratch: Scratch | None = None) -> str:
    """Translate the Airflow connection `conn_id` into the SDK's source URL form.

    odbc -> `odbc:<connection string built by OdbcHook>`; sftp/ssh -> `sftp://user@host:port/<extra path>?...`
    with the login key from extra `key_file` (or `private_key`, the key itself) and the host key pinned by
    extra `known_hosts` (a file) or `host_key` (`<type> <base64>`), never skipped; postgres ->
    `postgresql+psycopg://...`; sqlite -> `sqlite:///<host>`; fs/file -> `file://<extra path>`.
    Files the URL needs (known_hosts from `host_key`, a key from `private_key`) go to `scratch`, by default a
    new private temporary folder. Anything else raises ConfigError naming the connection and its type.
    """
    if scratch is None:
        scratch = Scratch()
    conn = get_connection(conn_id)
    kind = (conn.conn_type or "").lower()
    extra = conn.extra_dejson
    if kind == "odbc":
        return _odbc_url(conn_id)
    if kind in ("sftp", "ssh"):
        return _sftp_url(conn_id, conn, extra, scratch)
    if kind in ("postgres", "postgresql"):
        return _postgres_url(conn_id, conn, extra)
    if kind == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise ConfigError(f"connection {conn_id} (conn_type sqlite): put the database file path in host")
        return f"sqlite:///{path}"
    if kind in ("fs", "file"):
        path = str(extra.get("path") or "")
        if not path.startswith("/"):
            raise ConfigError(f"connection {conn_id} (conn_type {kind}): extra 'path' must be an absolute folder")
        return "file://" + quote(path)
    raise ConfigError(
        f"connection {conn_id} has conn_type {conn.conn_type!r}, which lidm cannot read; "
        "use odbc, sftp, postgres, sqlite or fs"
    )


def get_connection(conn_id: str) -> Connection:
    """The Airflow connection `conn_id`; ConfigError (naming where to define it) when there is none."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        env = "AIRFLOW_CONN_" + conn_id.upper()
        raise ConfigError(
            f"no Airflow connection '{conn_id}' (define it in the UI, a secrets backend or {env})"
        ) from None


def channel_conn_id(department: str) -> str:
    """The Airflow connection that, when defined, is the department's channel (monitoring warnings)."""
    return f"lidm_channel_{department}"


def settings_with_channel(settings: Settings, department: str, scratch: Scratch) -> Settings:
    """Settings whose channel for ``department`` comes from its Airflow connection, when one is defined."""
    try:
        conn = get_connection(channel_conn_id(department))
    except ConfigError:
        return settings
    url = connection_url(channel_conn_id(department), scratch)
    extra = conn.extra_dejson or {}
    if (conn.conn_type or "").lower() not in ("sftp", "ssh", "fs", "file"):
        url = f"{url}#{extra.get('table', 'lidm_warning')}"
    elif extra.get("encoding"):  # the department's CSV encoding, when the platform must not tell it by itself
        url += ("&" if "?" in url else "?") + urlencode({"encoding": str(extra["encoding"])})
    return settings.model_copy(update={"channels": {**settings.channels, department: url}})


def _mask(*secrets: str | None) -> None:
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


def _odbc_url(conn_id: str) -> str:
    try:
        from airflow.providers.odbc.hooks.odbc import OdbcHook
    except ImportError:
        raise ConfigError(
            f"connection {conn_id} (conn_type odbc) needs apache-airflow-providers-odbc on the worker"
        ) from None
    conn_str = OdbcHook(odbc_conn_id=conn_id).odbc_connection_string
    if "DRIVER=" not in conn_str.upper() and "DSN=" not in conn_str.upper():
        raise ConfigError(
            f"connection {conn_id} (conn_type odbc) names no DRIVER or DSN: put the driver in extra 'driver' and "
            "set [providers.odbc] allow_driver_in_extra = True, or name a DSN in extra 'dsn'"
        )
    _mask(conn_str)
    return "odbc:" + conn_str


def _sftp_url(conn_id: str, conn: Connection, extra: dict[str, Any], scratch: Scratch) -> str:
    where = f"connection {conn_id} (conn_type {conn.conn_type})"
    if str(extra.get("no_host_key_check", "false")).lower() == "true":
        raise ConfigError(f"{where}: no_host_key_check is refused; lidm always verifies the SFTP host key")
    if not conn.host or not conn.login:
        raise ConfigError(f"{where}: host and login are required")
    port = int(conn.port or 22)
    query: dict[str, str] = {}
    if extra.get("key_file"):
        query["key_file"] = str(extra["key_file"])
    elif extra.get("private_key"):
        if extra.get("private_key_passphrase"):
            raise ConfigError(f"{where}: encrypted private keys are not supported; use key_file or an unencrypted key")
        key = str(extra["private_key"])
        query["key_file"] = str(scratch.write("id_key", key if key.endswith("\n") else key + "\n"))
    if extra.get("known_hosts"):
        query["known_hosts"] = str(extra["known_hosts"])
    elif extra.get("host_key"):
        line = _known_hosts_line(where, conn.host, port, str(extra["host_key"]))
        query["known_hosts"] = str(scratch.write("known_hosts", line + "\n"))
    # Neither: the SDK falls back to LIDM_KNOWN_HOSTS and refuses the connection without one.
    userinfo = quote(conn.login, safe="")
    if conn.password:
        password = quote(conn.password, safe="")
        _mask(conn.password, password)
        userinfo += ":" + password
    folder = str(extra.get("path") or "").strip()
    # The SDK reads the URL path relative to the login folder; `//abs` is an absolute path.
    path = "/" + quote(folder) if folder else ""
    return f"sftp://{userinfo}@{conn.host}:{port}{path}" + ("?" + urlencode(query) if query else "")


def _known_hosts_line(where: str, host: str, port: int, host_key: str) -> str:
    """`[host]:port <type> <base64>` (plain `host` on port 22, as OpenSSH and paramiko look it up)."""
    parts = host_key.split()  # `<type> <base64> [comment]` or, as SSHHook also takes it, `<base64>` alone
    blob = parts[1] if len(parts) >= 2 else "".join(parts)
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        blob_type = raw[4 : 4 + length].decode("ascii")
    except (ValueError, struct.error, UnicodeDecodeError):
        raise ConfigError(f"{where}: extra host_key is not an OpenSSH public key ('<type> <base64>')") from None
    key_type = parts[0] if len(parts) >= 2 else blob_type
    if key_type != blob_type or key_type not in _HOST_KEY_TYPES:
        raise ConfigError(
            f"{where}: extra host_key has type {key_type!r}; expected one of {', '.join(_HOST_KEY_TYPES)}"
        )
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key_type} {blob}"


def _postgres_url(conn_id: str, conn: Connection, extra: dict[str, Any]) -> str:
    """The URL PostgresHook builds for the connection (IAM tokens, sqlalchemy_query and all), driven by psycopg 3
    and carrying the libpq parameters of the connection's extra."""
    try:
        from airflow.providers.postgres.hooks.postgres import PostgresHook
    except ImportError:
        raise ConfigError(
            f"connection {conn_id} (conn_type postgres) needs apache-airflow-providers-postgres on the worker"
        ) from None
    if not conn.host:
        raise ConfigError(f"connection {conn_id} (conn_type {conn.conn_type}): host is required")
    url = PostgresHook(postgres_conn_id=conn_id).sqlalchemy_url
    query = dict(url.query) | {k: str(extra[k]) for k in PG_PARAMS if extra.get(k) is not None}
    url = url.set(drivername="postgresql+psycopg", query=query)
    if url.password:
        _mask(url.password, quote(url.password, safe=""), quote(url.password, safe="+"))
    return url.render_as_string(hide_password=False)
