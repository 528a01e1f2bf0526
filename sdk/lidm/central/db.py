"""Connect to the central database and bring its schema to the newest migration."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lidm.config import Settings
from lidm.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported by the functions that migrate or compare revisions: a DAG parse or a CLI start that never
# migrates does not pay for it.

MIGRATIONS = Path(__file__).parent / "migrations"
# A link that carries nothing for 30 s is probed every 10 s; 3 unanswered probes (about a minute) end it. Set on
# both ends: libpq's side notices a vanished server, the server's side (tcp_keepalives_*) a vanished client host.
KEEPALIVE = {"idle": 30, "interval": 10, "count": 3}
LIBPQ_DRIVERS = ("psycopg", "psycopg2")  # the drivers that take libpq connection parameters


def connect(settings: Settings, *, admin: bool = False) -> sa.Engine:
    """Engine for LIDM_CENTRAL_URL (the loader's), or the embedded SQLite file under LIDM_HOME.

    ``admin``: the owner's connection (LIDM_ADMIN_URL) for migrations, grants and audit checkpoints; the same URL
    when no admin URL is set, as on the embedded default.
    """
    url = settings.effective_admin_url if admin else settings.effective_central_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args=_session_args(sa.make_url(url), settings))


def _session_args(url: sa.URL, settings: Settings) -> dict[str, Any]:
    """PostgreSQL sessions that end with the process that opened them, even when it vanishes without a word.

    A process killed on this machine has its sockets closed by the kernel, so the server sees the end at once.
    The keepalives cover a host that is gone (power, network); the idle-in-transaction timeout covers a client
    that hangs with a batch's transaction open (stopped, deadlocked), which keepalives cannot see. Parameters
    the URL sets itself win; its `options` are kept, after ours.
    """
    if url.get_backend_name() != "postgresql" or url.get_driver_name() not in LIBPQ_DRIVERS:
        return {}
    args: dict[str, Any] = {"keepalives": 1} | {f"keepalives_{k}": v for k, v in KEEPALIVE.items()}
    options = [f"-c tcp_keepalives_{k}={v}" for k, v in KEEPALIVE.items()]
    timeout_ms = round(settings.central_idle_timeout_seconds * 1000)
    options.append(f"-c idle_in_transaction_session_timeout={timeout_ms}")
    own = url.query.get("options")
    if isinstance(own, str) and own:
        options.append(own)
    return {k: v for k, v in args.items() if k not in url.query} | {"options": " ".join(options)}


def _config(engine: sa.Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


MIGRATION_WAIT_SECONDS = 300.0


def ensure_current(engine: sa.Engine) -> None:
    """Migrate to head when behind; two processes finding a new database at once migrate it once, not twice."""
    if is_current(engine):
        return
    from lidm.central.lock import feed_lock

    with feed_lock(engine, "(migrations)", MIGRATION_WAIT_SECONDS):
        if not is_current(engine):
            migrate(engine)


def connect_current(settings: Settings) -> sa.Engine:
    """An engine on a central database at the newest migration (migrated first when behind)."""
    engine = connect(settings)
    ensure_current(engine)
    return engine


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent)."""
    from alembic import command

    try:
        command.upgrade(_config(engine), revision)
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":
            raise
        # The loader role owns nothing and may create nothing: a schema change is the owner's.
        raise ConfigError(
            f"the central database needs a migration, which {engine.url.username or 'this user'} may not run: "
            "run `lidm db upgrade` as the owner (LIDM_ADMIN_URL), then `lidm grants apply`"
        ) from None


def revision(engine: sa.Engine, message: str, metadata: sa.MetaData) -> str | None:
    """Write a new migration with what the contracts need and the database (at head) lacks; review it."""
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _config(engine)
    cfg.attributes["target_metadata"] = metadata
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head() or "0000"
    rev_id = f"{int(head) + 1:04d}" if head.isdigit() else None
    slug = "".join(ch if ch.isalnum() else "_" for ch in message.lower()).strip("_")[:40]
    cfg.set_main_option("file_template", f"%%(rev)s_{slug}")
    result = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
    scripts = result if isinstance(result, list) else [result]
    return scripts[0].path if scripts and scripts[0] is not None else None


def is_current(engine: sa.Engine) -> bool:
    """True when the database is at the newest migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config(engine)).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


def by_key(
    conn: sa.Connection, query: sa.Select[Any], key: sa.ColumnElement[Any], values: Any, size: int = 500
) -> dict[Any, dict[str, Any]]:
    """Rows of ``query`` whose ``key`` is one of ``values``, by key; asked in parts, as IN lists have limits."""
    unique = sorted(set(values))
    out: dict[Any, dict[str, Any]] = {}
    for start in range(0, len(unique), size):
        for row in conn.execute(query.where(key.in_(unique[start : start + size]))):
            out[row._mapping[key.name]] = dict(row._mapping)
    return out
