"""A batch's stage shared with its worker processes: an UNLOGGED table of its own in the lidm_stage schema.

On PostgreSQL a batch of many chunks is protected in forked workers, and each worker COPYs the chunks it protects
into the stage over a session of its own: no row travels back through the loading process. The stage is created
and committed on a short session before the workers start (theirs must see it); the batch's transaction then
applies it to the dataset table and drops it, so the dataset changes all at once or not at all, and a reader of
the dataset never sees a staged row. A stage whose run died (kill -9, a lost connection) is dropped by the feed's
next run, under the feed's lock. The schema is the owner's; the loader may create tables in it (`lidm grants
apply`); no consumer may look into it.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from lidm.central.copyin import CopyInput
from lidm.central.refusal import sqlstate, transient
from lidm.errors import CentralUnavailable

log = logging.getLogger(__name__)

STAGE_SCHEMA = "lidm_stage"
WORKER_SESSION = "lidm stage worker"  # the application_name of a worker's sessions (pg_stat_activity)
_MARK = "lidm stage of feed "  # + the feed's name, ", batch " and the batch id: the table's comment


_STALE = sa.text(
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relkind = 'r' "
    "AND starts_with(coalesce(obj_description(c.oid, 'pg_class'), ''), :mark)"
)

_MAY_CREATE = sa.text(
    "SELECT CASE WHEN to_regnamespace(:schema) IS NULL THEN false "
    "ELSE has_schema_privilege(:schema, 'CREATE') AND has_schema_privilege(:schema, 'USAGE') END"
)


def stage_name(table: str, batch_id: str) -> str:
    """The stage of one batch of one dataset table, e.g. health_population_3f2a9c1b7d4e (at most 63 characters)."""
    return f"{table[:50]}_{batch_id.replace('-', '')[:12]}"


class SharedStage:
    """The stage of one batch, which its workers fill: created before they start, dropped by the batch or after."""

    def __init__(self, engine: sa.Engine, workers_engine: sa.Engine, feed: str, batch_id: str) -> None:
        self.engine = engine  # the loading process's: creates the stage, drops it when the batch did not
        self.workers_engine = workers_engine  # unpooled: a worker's session lives as long as one chunk's COPY
        self.feed, self.batch_id = feed, batch_id
        self.table: sa.Table | None = None

    def create(self, stage: sa.Table) -> sa.Table:
        """Create `stage` (a table without schema or prefixes) as this batch's UNLOGGED stage, committed."""
        columns = [sa.Column(c.name, c.type) for c in stage.columns]
        # UNLOGGED: nothing in it needs to survive a server crash (the batch's transaction would not either), so
        # its rows skip the write-ahead log. No autovacuum: the table lives for one batch, which reads it itself.
        self.table = sa.Table(
            stage.name,
            sa.MetaData(),
            *columns,
            schema=STAGE_SCHEMA,
            prefixes=["UNLOGGED"],
            postgresql_with={"autovacuum_enabled": "off"},
        )
        comment = f"{_MARK}{self.feed}, batch {self.batch_id}"
        with self.engine.begin() as conn:
            self.table.create(conn)
            # Composed by the driver: a feed's name is text to it, whatever characters it has.
            from psycopg import sql

            statement = sql.SQL("COMMENT ON TABLE {} IS {}")
            names = sql.Identifier(STAGE_SCHEMA, self.table.name)
            conn.connection.driver_connection.execute(statement.format(names, sql.Literal(comment)))
        return self.table

    def copier(self, copy_input: CopyInput) -> StageCopier:
        """What a worker calls with each chunk's COPY input."""
        assert self.table is not None, "create the stage first"
        return StageCopier(self.workers_engine, self.table, copy_input, self.feed, self.batch_id)

    def discard(self) -> None:
        """Drop the stage if the batch did not (rejected, unchanged, failed); the feed's next run would, anyway."""
        try:
            if self.table is not None:
                with self.engine.begin() as conn:
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_qualified(conn, self.table)}"))
        except sa.exc.DBAPIError as exc:
            log.warning(
                "feed %s: the stage of batch %s could not be dropped (%s); the feed's next run drops it",
                self.feed,
                self.batch_id,
                type(exc.orig).__name__,
            )
        finally:
            self.workers_engine.dispose()


class StageCopier:
    """A worker's writer into the batch's stage: one session and one transaction per chunk.

    A session per chunk rather than per worker: a worker holds no session while it waits for its next chunk, so a
    worker that outlives its loading process leaves no session open either. Connecting costs a few milliseconds
    against the second or so a worker spends protecting a chunk. A chunk's COPY commits on its own: the stage is
    read by nobody but the batch's transaction, which applies every chunk or none.
    """

    def __init__(self, engine: sa.Engine, stage: sa.Table, copy_input: CopyInput, feed: str, batch_id: str) -> None:
        self.engine, self.feed, self.batch_id = engine, feed, batch_id
        self.statement = copy_input.statement(_qualified(engine, stage))

    def __call__(self, data: bytes) -> None:
        """COPY one chunk into the stage; a failure says what failed, never what the rows held."""
        if not data:
            return
        try:
            with self.engine.begin() as conn:
                # No wait for the commit's flush: an unlogged stage is emptied by a server crash anyway, and the
                # batch's own transaction, which applies it, commits as every other does.
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                raw = conn.connection.driver_connection
                with raw.cursor() as cur, cur.copy(self.statement) as copy:
                    copy.write(data)
        except sa.exc.DBAPIError as exc:
            raise self._cleaned(exc.orig, exc.connection_invalidated) from None
        except Exception as exc:
            import psycopg  # the driver COPY runs on (a raw cursor: SQLAlchemy does not wrap its errors)

            if not isinstance(exc, psycopg.Error):
                raise
            raise self._cleaned(exc, False) from None

    def _cleaned(self, exc: BaseException, lost: bool) -> Exception:
        """The driver's error without its message (a COPY error quotes the row), as the loading process judges it."""
        code = sqlstate(exc)
        name = type(exc).__name__
        if lost or transient(exc, code):
            return CentralUnavailable(
                f"feed {self.feed}: a worker's connection to the central database was lost or refused while it "
                f"staged batch {self.batch_id} ({name}, SQLSTATE {code or '-'}); nothing was written, the run can "
                "be retried"
            )
        try:  # the same class (so the same SQLSTATE) for the loading process's verdict, with a message of ours
            return type(exc)(f"staging a chunk of batch {self.batch_id} failed (SQLSTATE {code or '-'})")
        except TypeError:
            return RuntimeError(f"staging a chunk of batch {self.batch_id} failed ({name}, SQLSTATE {code or '-'})")


def prepare(engine: sa.Engine, feed: str, *, wanted: bool) -> bool:
    """Drop the stages a feed's earlier runs left (killed, disconnected), holding the feed's lock; and, if `wanted`,
    say whether this session may create shared stages (else workers hand their rows back, as on SQLite)."""
    if engine.dialect.name != "postgresql":
        return False
    drop_stale(engine, feed)
    if not wanted:
        return False
    with engine.connect() as conn:
        allowed = conn.execute(_MAY_CREATE, {"schema": STAGE_SCHEMA}).scalar()
    if not allowed:
        log.warning(
            "feed %s: this session may not create tables in schema %s, so its workers hand their rows back to the "
            "loading process (slower); the owner should run `lidm db upgrade` and `lidm grants apply`",
            feed,
            STAGE_SCHEMA,
        )
    return bool(allowed)


def drop_stale(engine: sa.Engine, feed: str) -> int:
    """Drop the stages a feed's earlier runs left (killed, disconnected); call it holding the feed's lock."""
    if engine.dialect.name != "postgresql":
        return 0
    dropped = 0
    with engine.begin() as conn:
        names = conn.scalars(_STALE, {"schema": STAGE_SCHEMA, "mark": f"{_MARK}{feed}, batch "}).all()
        for name in names:
            table = sa.Table(name, sa.MetaData(), schema=STAGE_SCHEMA)
            try:
                with conn.begin_nested():
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_qualified(conn, table)}"))
                dropped += 1
            except sa.exc.DBAPIError as exc:  # e.g. made by another role before the loader had its own grants
                log.warning("feed %s: stage %s.%s is left (%s)", feed, STAGE_SCHEMA, name, type(exc.orig).__name__)
    if dropped:
        log.info("feed %s: dropped %d stage(s) left by an earlier run that did not finish", feed, dropped)
    return dropped


def _qualified(bind: sa.Connection | sa.Engine, table: sa.Table) -> str:
    return bind.dialect.identifier_preparer.format_table(table)
