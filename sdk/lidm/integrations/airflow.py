"""Airflow 3 glue: Airflow connections become SDK source URLs, one task runs a feed, one DAG per adapter.

Airflow is imported inside the functions only, so this module (and the whole SDK) imports where Airflow is
not installed. The DAG file `dags/lidm_feeds.py` only calls `build_feed_dags()`.

Choices worth knowing:

- Assets: each feed's task publishes `Asset(name=<contract id>, uri="lidm://central/<contract id>")`
  (`contract_asset`). Airflow 3 accepts any URI scheme except the reserved `airflow`; a scheme without a
  normalizer registered by a provider is stored as written, so `lidm://` needs no plugin. Downstream DAGs
  (monitoring) schedule on `contract_asset(id)` so both sides build the identical Asset.
- Retries: 3, starting at 1 minute and doubling. In Airflow 3.3 `retry_exponential_backoff` is a
  multiplier (`True` would mean 1.0, a constant delay), so it is set to 2.0. A rejected batch, a
  configuration error or an unknown/changed SFTP host key raises AirflowFailException (no retry: trying
  again cannot fix it); an unreachable source raises SourceError and is retried.
- Pools: each task runs in its adapter's pool (`Adapter.pool`, e.g. `health`) when it names one, so a
  department's database never sees more parallel extracts than the pool has slots. `dag.test()` ignores
  pools, but the scheduler leaves a task in a non-existent pool unscheduled (and the DAG processor shows a
  "non-existent pool" DAG warning), so a deployment creates the pools before starting the scheduler
  (`airflow pools set ...`, see docker-compose.yml).
- Secrets: a connection's password reaches the SDK inside the URL and never a log line; the URL-quoted
  form of the password is registered with Airflow's secret masker as well as the raw one.
"""

from __future__ import annotations

import base64
import json
import logging
import struct
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from lidm.errors import ConfigError, ContractError, HostKeyError, KeyringError, RejectedBatch

if TYPE_CHECKING:
    from airflow.sdk import DAG, Asset, Connection

    from lidm.adapter import Adapter
    from lidm.contracts import Contract

log = logging.getLogger("lidm.airflow")

DAG_PREFIX = "lidm_feed__"
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
SCHEDULES = {"hourly": "@hourly", "daily": "@daily", "weekly": "@weekly", "monthly": "@monthly"}
DEFAULT_ARGS: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}
# Errors that another attempt cannot fix: fail the task at once.
NOT_RETRYABLE = (RejectedBatch, ConfigError, HostKeyError, ContractError, KeyringError)
# libpq parameters passed through from a postgres connection's extra.
_PG_PARAMS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options")
_HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


def dag_id(feed: str) -> str:
    """`health.population` -> `lidm_feed__health__population`."""
    return DAG_PREFIX + feed.replace(".", "__")


def contract_asset(contract_id: str) -> Asset:
    """The Asset of a contract's dataset in the central database; its feed's task updates it on every success."""
    from airflow.sdk import Asset

    return Asset(name=contract_id, uri=f"lidm://central/{contract_id}")


# --------------------------------------------------------------------------- connections


class _Scratch:
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


def connection_url(conn_id: str) -> str:
    """Translate the Airflow connection `conn_id` into the SDK's source URL form.

    odbc -> `odbc:<connection string built by OdbcHook>`; sftp/ssh -> `sftp://user@host:port/<extra path>?...`
    with the login key from extra `key_file` (or `private_key`, the key itself) and the host key pinned by
    extra `known_hosts` (a file) or `host_key` (`<type> <base64>`), never skipped; postgres ->
    `postgresql+psycopg://...`; sqlite -> `sqlite:///<host>`; fs/file -> `file://<extra path>`.
    Files the URL needs (known_hosts from `host_key`, a key from `private_key`) go to a new private
    temporary folder. Anything else raises ConfigError naming the connection and its type.
    """
    return _connection_url(conn_id, _Scratch())


def _get_connection(conn_id: str) -> Connection:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        env = "AIRFLOW_CONN_" + conn_id.upper()
        raise ConfigError(
            f"no Airflow connection '{conn_id}' (define it in the UI, a secrets backend or {env})"
        ) from None


def _mask(*secrets: str | None) -> None:
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


def _connection_url(conn_id: str, scratch: _Scratch) -> str:
    conn = _get_connection(conn_id)
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


def _sftp_url(conn_id: str, conn: Connection, extra: dict[str, Any], scratch: _Scratch) -> str:
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
    query = dict(url.query) | {k: str(extra[k]) for k in _PG_PARAMS if extra.get(k) is not None}
    url = url.set(drivername="postgresql+psycopg", query=query)
    if url.password:
        _mask(url.password, quote(url.password, safe=""), quote(url.password, safe="+"))
    return url.render_as_string(hide_password=False)


# --------------------------------------------------------------------------- the feed task


def _with_source(feed: str, action: Any) -> Any:
    """Call `action(adapter, settings, connections=...)` with the feed's source from its Airflow connection; a
    fault another attempt cannot fix fails the task at once."""
    from airflow.sdk.exceptions import AirflowFailException

    from lidm.config import get_settings
    from lidm.registry import get_adapter

    try:
        adapter = get_adapter(feed)
        name = adapter.source.connection
        with tempfile.TemporaryDirectory(prefix="lidm-conn-") as folder:
            url = _connection_url(name, _Scratch(Path(folder)))
            return action(adapter, get_settings(), connections={name: url})
    except NOT_RETRYABLE as exc:
        raise AirflowFailException(f"feed {feed}: {type(exc).__name__}: {exc}") from None


def run_feed_task(feed: str) -> list[dict[str, Any]]:
    """Run every pending batch of `feed` with its source from the Airflow connection of the same id.

    Returns the batches' counts (safe for XCom). Fails without retry on a rejected batch or a configuration
    fault; lets SourceError (an unreachable source) propagate so Airflow retries.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from lidm.pipeline import run_feed

    results = _with_source(feed, run_feed)
    # Plain JSON for XCom: tuples (top_reasons) would otherwise be stored as serde-wrapped objects.
    counts = [json.loads(json.dumps(r.as_dict())) for r in results]
    for c in counts:
        log.info(
            "feed %s %s: %s (extracted %d, loaded %d, quarantined %d)",
            feed,
            c["source"],
            c["status"],
            c["extracted"],
            c["loaded"],
            c["quarantined"],
        )
    if not counts:
        log.info("feed %s: nothing pending", feed)
    rejected = [r for r in results if r.status == "rejected"]
    if rejected:
        reasons = "; ".join(f"{r.source}: {r.reason}" for r in rejected)
        raise AirflowFailException(f"feed {feed}: {len(rejected)} of {len(results)} batch(es) rejected: {reasons}")
    return counts


def run_reconcile_task(feed: str) -> dict[str, Any]:
    """Reconcile a database feed after its load; a mismatch fails the task without retry, naming the days or key
    ranges (the result is kept for the Feeds page and `lidm status` either way)."""
    from airflow.sdk.exceptions import AirflowFailException

    from lidm.reconcile import reconcile

    result = _with_source(feed, reconcile)
    summary = json.loads(json.dumps(result.as_dict(), default=str))
    if result.status != "ok":
        where = ", ".join(
            f"{b.bucket} ({b.missing} missing, {b.extra} extra, {b.changed} changed)" for b in result.buckets[:5]
        )
        raise AirflowFailException(
            f"feed {feed}: the central table does not match the source: {result.missing} missing, {result.extra} "
            f"extra, {result.changed} changed rows; where: {where}. Re-run the feed, or recall and reload"
        )
    log.info("feed %s: reconciled, %d source rows accounted for", feed, result.source_rows)
    return summary


# --------------------------------------------------------------------------- DAGs


def build_feed_dags() -> dict[str, DAG]:
    """One DAG per registered adapter, keyed by dag_id, for a DAG file's `globals()`."""
    from lidm.config import get_settings
    from lidm.contracts import load_catalog
    from lidm.registry import adapters

    catalog = load_catalog(get_settings().contracts_dir)
    dags: dict[str, DAG] = {}
    for feed, adapter in adapters().items():
        contract = catalog[adapter.contract]  # ContractError names the missing id
        dag = _feed_dag(feed, adapter, contract)
        dags[dag.dag_id] = dag
    return dags


def _doc_md(feed: str, adapter: Adapter, contract: Contract) -> str:
    return "\n".join(
        [
            f"# {contract.title}",
            "",
            f"Loads feed `{feed}` into the central database: every pending batch is validated, protected and "
            "loaded in one transaction (rows extracted = loaded + quarantined).",
            "",
            "| | |",
            "|---|---|",
            f"| contract | `{contract.id}` version {contract.version} |",
            f"| department | {contract.department} |",
            f"| source | {adapter.source.describe()} (Airflow connection `{adapter.source.connection}`) |",
            f"| update | {contract.update_mode.value}, {contract.frequency or 'unscheduled'} |",
            f"| freshness | {contract.freshness or 'not set'} |",
            f"| publishes | Asset `{contract.id}` (`lidm://central/{contract.id}`) |",
            "",
            "A rejected batch fails the run without retry (the drop is moved to `rejected/` with its reason); "
            "an unreachable source is retried.",
        ]
    )


def _feed_dag(feed: str, adapter: Adapter, contract: Contract) -> DAG:
    from airflow.sdk import DAG

    from lidm.sources import DropSource, SqlSource

    with DAG(
        dag_id=dag_id(feed),
        description=f"{contract.title} ({contract.id} v{contract.version})",
        schedule=SCHEDULES.get((contract.frequency or "").lower()),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[contract.department, "lidm"],
        default_args=dict(DEFAULT_ARGS),
        doc_md=_doc_md(feed, adapter, contract),
    ) as dag:
        from lidm.integrations.airflow_operators import LidmFeedOperator

        options: dict[str, Any] = {"task_id": "load", "outlets": [contract_asset(contract.id)]}
        if adapter.pool:
            options["pool"] = adapter.pool
        loaded = LidmFeedOperator(feed=feed, **options)
        if isinstance(adapter.source, SqlSource):
            from lidm.integrations.airflow_operators import LidmReconcileOperator

            # After every load, even a failed one: "nothing lost" is checked, not assumed.
            check = {"pool": adapter.pool} if adapter.pool else {}
            loaded >> LidmReconcileOperator(task_id="reconcile", feed=feed, trigger_rule="all_done", retries=0, **check)
        if isinstance(adapter.source, DropSource):
            from lidm.config import get_settings
            from lidm.integrations.airflow_drops import DropSensor
            from lidm.status import freshness_limit

            # Wait (deferred, holding no worker slot) for a complete drop; give up once the feed is late.
            wait = DropSensor(
                task_id="wait_for_drop",
                feed=feed,
                poke_interval=get_settings().drop_poll_seconds,
                timeout=(freshness_limit(contract) or timedelta(days=1)).total_seconds(),
                pool=adapter.pool or "default_pool",
            )
            wait >> loaded
    return dag
