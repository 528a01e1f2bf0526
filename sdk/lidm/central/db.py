"""Connect to the central database and bring its schema to the newest migration.

The migrations live in two places. The SDK's own chain (0001 onward: the core tables and the tables of the datasets
lidm ships) is part of the package, in lidm/central/migrations/versions. A deployment's own migrations (the table of
a dataset the SDK does not ship) live in the deployment's folder, LIDM_MIGRATIONS_DIR (migrations/ next to the
contracts by default), on a branch of their own (lidm.central.revision writes them): a department adding a dataset
never touches the installed SDK, and reinstalling lidm loses nothing. Alembic reads both folders as one history
with two heads, and "newest" means both applied. Not the same as alembic_version listing both: the deployment's
branch depends on the SDK migration of its day, which leaves the table once the branch is applied over it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import site
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lidm.config import Settings, get_settings
from lidm.contracts.load import default_contracts_dir
from lidm.errors import CentralNotSetUp, CentralUnavailable, ConfigError
from lidm.redact import redact_url

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

# Alembic is imported by the functions that migrate or compare revisions: a DAG parse or a CLI start that never
# migrates does not pay for it.

MIGRATIONS = Path(__file__).parent / "migrations"
CORE_VERSIONS = MIGRATIONS / "versions"  # the SDK's own chain; a deployment's migrations are never written here
PACKAGE = Path(__file__).resolve().parents[1]  # the lidm package: replaced whole when lidm is reinstalled
# A link that carries nothing for 30 s is probed every 10 s; 3 unanswered probes (about a minute) end it. Set on
# both ends: libpq's side notices a vanished server, the server's side (tcp_keepalives_*) a vanished client host.
KEEPALIVE = {"idle": 30, "interval": 10, "count": 3}
LIBPQ_DRIVERS = ("psycopg", "psycopg2")  # the drivers that take libpq connection parameters


def connect(settings: Settings, *, admin: bool = False, pooled: bool = True, name: str | None = None) -> sa.Engine:
    """Engine for LIDM_CENTRAL_URL (the loader's), or the embedded SQLite file under LIDM_HOME.

    ``admin``: the owner's connection (LIDM_ADMIN_URL) for migrations, grants and audit checkpoints; the same URL
    when no admin URL is set, as on the embedded default. A SQLite file that does not exist yet is made, readable
    by its owner only: for the commands that write (`lidm db upgrade`, `lidm demo`, loads, the monitoring loop).
    Commands that only read use :func:`connect_existing`, which makes nothing. ``pooled=False``: every connection
    closes when released, for a forked worker's short sessions (and an engine safe to create before the fork).
    ``name``: the sessions' application_name on PostgreSQL, which pg_stat_activity shows.
    """
    url = settings.effective_admin_url if admin else settings.effective_central_url
    path = sqlite_path(url)
    if path is not None:
        _make_private(path)
    return _engine(url, settings, pooled=pooled, name=name)


def _engine(url: str, settings: Settings, *, pooled: bool = True, name: str | None = None) -> sa.Engine:
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
    args = _session_args(sa.make_url(url), settings)
    if name and args:  # a libpq driver
        args.setdefault("application_name", name)
    if not pooled:
        return sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=args)
    return sa.create_engine(url, pool_pre_ping=True, connect_args=args)


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
            applied = applied_revisions(conn)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise unreachable(exc) from None
    if not applied:
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


def applied_revisions(conn: sa.Connection) -> frozenset[str]:
    """The migrations the database is at, one per branch (the SDK's, the deployment's); empty when none was ever
    applied (a database nothing has set up). Read from alembic_version directly: no Alembic import."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return frozenset()
    return frozenset(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


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


def deployment_migrations(settings: Settings) -> Path | None:
    """The deployment's own migrations folder: LIDM_MIGRATIONS_DIR, else migrations/ next to the contracts folder.

    None when neither applies: the contracts are the copy installed with the package, which has no such folder.
    The folder may be missing or empty (the SDK's migrations alone are applied, as before any dataset of the
    deployment's own); a folder inside the installed lidm or another installed package is refused.
    """
    folder = settings.migrations_dir
    if folder is None:
        folder = (settings.contracts_dir or default_contracts_dir()).resolve().parent / "migrations"
        if installed(folder):
            return None
    folder = folder.expanduser().resolve()
    if installed(folder):
        raise ConfigError(
            f"LIDM_MIGRATIONS_DIR is {folder}, inside an installed package (reinstalling lidm would lose it, and the "
            "SDK's own migrations are not a deployment's): point it at a folder of the deployment, e.g. migrations/ "
            "next to its contracts"
        )
    return folder


def installed(path: Path) -> bool:
    """Whether a path lies in the lidm package (a checkout's too) or in site-packages: what an install replaces."""
    path = path.resolve()
    return path == PACKAGE or PACKAGE in path.parents or in_site_packages(path)


def in_site_packages(path: Path) -> bool:
    """Whether a path lies in an environment's site-packages (where pip puts what it installs)."""
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    with contextlib.suppress(AttributeError):  # some embedded interpreters' site module lacks them
        roots |= {*site.getsitepackages(), site.getusersitepackages()}
    path = path.resolve()
    return any(path == root or root in path.parents for root in {Path(r).resolve() for r in roots})


def alembic_config(settings: Settings, engine: sa.Engine | None = None) -> Config:
    """Alembic's configuration: the SDK's env.py and template, and both places of migrations (the SDK's, the
    deployment's when there is a folder)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    locations = [CORE_VERSIONS]
    deployment = deployment_migrations(settings)
    if deployment is not None:
        locations.append(deployment)  # Alembic skips a folder that does not exist
    cfg.set_main_option("version_locations", os.pathsep.join(str(p).replace("%", "%%") for p in locations))
    # Split on os.pathsep, never on spaces: path_separator since Alembic 1.16 (read first, so the older name below
    # draws no deprecation warning), version_path_separator before it.
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_path_separator", "os")
    if engine is not None:
        cfg.attributes["engine"] = engine
    cfg.attributes["settings"] = settings  # a migration that converts data may need the keyring (0021)
    return cfg


MIGRATION_WAIT_SECONDS = 300.0


def ensure_current(engine: sa.Engine, settings: Settings | None = None) -> None:
    """Migrate to every head when behind; two processes finding a new database at once migrate it once, not twice.

    For the commands that write (loads, the monitoring loop): a database nothing has set up yet is set up here, and
    said so in the log with the database's place, so a missing LIDM_CENTRAL_URL does not go unnoticed."""
    settings = settings or get_settings()
    if is_current(engine, settings):
        return
    from lidm.central.lock import feed_lock

    with feed_lock(engine, "(migrations)", MIGRATION_WAIT_SECONDS):
        if is_current(engine, settings):
            return  # another process migrated it while this one waited
        with engine.connect() as conn:
            found = applied_revisions(conn)
        if not found:
            log.warning(
                "setting up a new central database at %s (nothing was there); if the gateway should use another "
                "one, set LIDM_CENTRAL_URL",
                redact_url(engine.url.render_as_string(hide_password=True)),
            )
        migrate(engine, settings)


def connect_current(settings: Settings) -> sa.Engine:
    """An engine on a central database at the newest migration (migrated first when behind)."""
    engine = connect(settings)
    ensure_current(engine, settings)
    return engine


def migrate(engine: sa.Engine, settings: Settings | None = None, *, revision: str = "heads") -> None:
    """Apply the SDK's and the deployment's migrations up to `revision`, every head by default (idempotent)."""
    settings = settings or get_settings()
    cfg = alembic_config(settings, engine)
    with engine.connect() as conn:
        _refuse_unknown(applied_revisions(conn), known_revisions(settings), settings)
    try:
        with quiet_alembic():
            from alembic import command

            command.upgrade(cfg, revision)
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":
            raise
        # The loader role owns nothing and may create nothing: a schema change is the owner's.
        raise ConfigError(
            f"the central database needs a migration, which {engine.url.username or 'this user'} may not run: "
            "run `lidm db upgrade` as the owner (LIDM_ADMIN_URL), then `lidm grants apply`"
        ) from None


def _refuse_unknown(applied: frozenset[str], known: frozenset[str], settings: Settings) -> None:
    """A database migrated further than the migrations found here: Alembic would only say it cannot locate them."""
    unknown = sorted(applied - known)
    if unknown:
        folder = deployment_migrations(settings)
        raise ConfigError(
            f"the central database has migration(s) {', '.join(unknown)} that are neither lidm's own nor in the "
            f"deployment's migrations folder ({folder or 'none: LIDM_MIGRATIONS_DIR is not set'}); set "
            "LIDM_MIGRATIONS_DIR to the folder the deployment's migrations are kept in (every process that writes "
            "the central database needs it), or install the lidm that wrote them"
        )


def heads(settings: Settings | None = None) -> frozenset[str]:
    """The newest migration of each branch: the SDK's, and the deployment's when it has any."""
    return frozenset(_scripts(settings or get_settings()).get_heads())


def known_revisions(settings: Settings | None = None) -> frozenset[str]:
    """Every migration found, in both places."""
    return frozenset(s.revision for s in _scripts(settings or get_settings()).walk_revisions())


def is_current(engine: sa.Engine, settings: Settings | None = None) -> bool:
    """True when every head is applied: the SDK's newest migration and the deployment's.

    Not the same as alembic_version holding the heads: a migration another one depends on (the SDK's newest, which
    the deployment's branch depends on) leaves the table once that one is applied, as its ancestor."""
    with engine.connect() as conn:
        applied = applied_revisions(conn)
    if not applied:
        return False
    scripts = _scripts(settings or get_settings())
    with quiet_alembic():
        from alembic.util import CommandError

    done: set[str] = set()
    try:
        for rev in applied:  # every migration below an applied one, down its branch and its dependencies
            done.update(s.revision for s in scripts.walk_revisions(base="base", head=rev))
    except CommandError:
        return False  # a migration not found here: migrate() says which, and where it looked
    return set(scripts.get_heads()) <= done


def _scripts(settings: Settings) -> ScriptDirectory:
    with quiet_alembic():
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(alembic_config(settings))


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
