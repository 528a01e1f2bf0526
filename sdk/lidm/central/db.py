"""Connect to the central database and bring its schema to the newest migration."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lidm.config import Settings
from lidm.errors import CentralNotSetUp, CentralUnavailable, ConfigError
from lidm.redact import redact_url

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

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
    when no admin URL is set, as on the embedded default. A SQLite file that does not exist yet is made, readable
    by its owner only: for the commands that write (`lidm db upgrade`, `lidm demo`, loads, the monitoring loop).
    Commands that only read use :func:`connect_existing`, which makes nothing.
    """
    url = settings.effective_admin_url if admin else settings.effective_central_url
    path = sqlite_path(url)
    if path is not None:
        _make_private(path)
    return _engine(url, settings)


def _engine(url: str, settings: Settings) -> sa.Engine:
    """The engine, with SQLite's pragmas or PostgreSQL's session parameters; SQLite would make a missing file at the
    first connection, so the callers see to the file first."""
    if url.startswith("sqlite:///"):
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


def connect_existing(settings: Settings, *, admin: bool = False) -> sa.Engine:
    """An engine on a central database that `lidm db upgrade` (or a load, or `lidm demo`) has set up; for commands
    that only read. Never makes a file or a table and never migrates: a database nothing has set up is refused with
    what to set or run (:class:`CentralNotSetUp`), an unreachable one with :class:`CentralUnavailable`."""
    url = settings.effective_admin_url if admin else settings.effective_central_url
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise CentralNotSetUp(_not_set_up(settings, f"{path} does not exist"))
    engine = _engine(url, settings)
    try:
        with engine.connect() as conn:
            revision = current_revision(conn)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise unreachable(exc) from None
    if revision is None:
        engine.dispose()
        where = redact_url(engine.url.render_as_string(hide_password=True))
        raise CentralNotSetUp(_not_set_up(settings, f"{where} has no lidm tables"))
    return engine


def _not_set_up(settings: Settings, what: str) -> str:
    if settings.central_url:
        return (
            f"the central database is not set up: {what}. Check that LIDM_CENTRAL_URL names the gateway's central "
            "database; a new one is set up with `lidm db upgrade`"
        )
    return (
        f"no central database: LIDM_CENTRAL_URL is not set and the embedded default {what}. Set LIDM_CENTRAL_URL "
        "to the gateway's central database, or make an embedded one with `lidm db upgrade` (after `lidm demo`, "
        "set LIDM_HOME to the demo's folder, .lidm/demo unless --home said otherwise)"
    )


def unreachable(exc: sa.exc.DBAPIError) -> CentralUnavailable:
    """Say which kind of fault, never the URL (it may carry a password)."""
    return CentralUnavailable(
        f"the central database could not be read ({type(exc.orig).__name__}); check LIDM_CENTRAL_URL and that "
        "the database is up"
    )


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    if not url.startswith("sqlite:///"):
        return None
    database = sa.make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def _make_private(path: Path) -> None:
    """Make the SQLite file, mode 600, unless it exists: SQLite would make it world-readable (umask 022), and its
    journal and WAL files take the database file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def current_revision(conn: sa.Connection) -> str | None:
    """The migration the database is at; None when none was ever applied (a database nothing has set up)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


# Alembic says "setup plugin …" when first imported and "Context impl …", "Will assume transactional DDL" and
# "Running upgrade …" at INFO each time it looks at a database: noise in every task log.
ALEMBIC_LOGGERS = ("alembic.runtime.migration", "alembic.runtime.plugins")


@contextlib.contextmanager
def quiet_alembic() -> Iterator[None]:
    """Alembic's INFO lines kept out of the logs while lidm imports it, migrates or compares revisions, and only
    then: the logging configuration of the process (Airflow's, the CLI's) is left as it was."""
    loggers = [logging.getLogger(name) for name in ALEMBIC_LOGGERS]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, before, strict=True):
            logger.setLevel(level)


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


def _config(engine: sa.Engine | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


MIGRATION_WAIT_SECONDS = 300.0


def ensure_current(engine: sa.Engine) -> None:
    """Migrate to head when behind; two processes finding a new database at once migrate it once, not twice.

    For the commands that write (loads, the monitoring loop): a database nothing has set up yet is set up here, and
    said so in the log with the database's place, so a missing LIDM_CENTRAL_URL does not go unnoticed."""
    if is_current(engine):
        return
    from lidm.central.lock import feed_lock

    with feed_lock(engine, "(migrations)", MIGRATION_WAIT_SECONDS):
        with engine.connect() as conn:
            found = current_revision(conn)
        if found == head():
            return
        if found is None:
            log.warning(
                "setting up a new central database at %s (nothing was there); if the gateway should use another "
                "one, set LIDM_CENTRAL_URL",
                redact_url(engine.url.render_as_string(hide_password=True)),
            )
        migrate(engine)


def connect_current(settings: Settings) -> sa.Engine:
    """An engine on a central database at the newest migration (migrated first when behind)."""
    engine = connect(settings)
    ensure_current(engine)
    return engine


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent)."""
    try:
        with quiet_alembic():
            from alembic import command

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
    with quiet_alembic():
        from alembic import command
        from alembic.script import ScriptDirectory

    cfg = _config(engine)
    cfg.attributes["target_metadata"] = metadata
    script = ScriptDirectory.from_config(cfg)
    newest = script.get_current_head() or "0000"
    rev_id = f"{int(newest) + 1:04d}" if newest.isdigit() else None
    slug = "".join(ch if ch.isalnum() else "_" for ch in message.lower()).strip("_")[:40]
    cfg.set_main_option("file_template", f"%%(rev)s_{slug}")
    with quiet_alembic():
        result = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
    scripts = result if isinstance(result, list) else [result]
    return scripts[0].path if scripts and scripts[0] is not None else None


def head() -> str | None:
    """The newest migration this lidm has."""
    with quiet_alembic():
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(_config()).get_current_head()


def is_current(engine: sa.Engine) -> bool:
    """True when the database is at the newest migration."""
    with engine.connect() as conn:
        return current_revision(conn) == head()


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
