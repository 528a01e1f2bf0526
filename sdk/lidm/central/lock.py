"""One run of a feed at a time: a lock held for the whole run, in the central database or beside it.

Two runs of one feed (two `lidm run`, or the CLI beside a DAG) would read the same deliveries and race to
settle them. PostgreSQL: a session-level advisory lock on a connection of its own, so it is released
whatever happens to the run's transactions, and by the server when the process dies. SQLite (the embedded
default): an OS file lock next to the database file, released by the OS when the process dies.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from lidm.errors import FeedBusy

POLL_SECONDS = 0.2


def lock_key(feed: str) -> int:
    """A stable signed 64-bit advisory-lock key per feed (the same in every process and version)."""
    return int.from_bytes(hashlib.blake2b(f"lidm.feed:{feed}".encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.contextmanager
def feed_lock(engine: sa.Engine, feed: str, wait_seconds: float) -> Iterator[None]:
    """Hold the feed's lock for the block; wait up to `wait_seconds` for it, then raise FeedBusy."""
    if engine.dialect.name == "postgresql":
        with _pg_lock(engine, feed, wait_seconds):
            yield
        return
    if engine.dialect.name == "sqlite" and engine.url.database:
        with _file_lock(Path(engine.url.database), feed, wait_seconds):
            yield
        return
    yield  # another database: no lock of ours (the loader's key constraint still refuses a double insert)


@contextlib.contextmanager
def _pg_lock(engine: sa.Engine, feed: str, wait_seconds: float) -> Iterator[None]:
    key = lock_key(feed)
    with engine.connect() as conn:
        deadline = time.monotonic() + wait_seconds
        while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
            conn.rollback()  # no transaction left open on the lock's connection while waiting
            if time.monotonic() >= deadline:
                holder = conn.execute(
                    sa.text(
                        "SELECT a.pid, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted "
                        "AND ((l.classid::bigint << 32) | l.objid::bigint) = (:k)::bigint LIMIT 1"
                    ),
                    {"k": key},
                ).first()
                conn.rollback()
                since = f", connected since {holder.backend_start:%Y-%m-%d %H:%M:%S}" if holder else ""
                who = f" (central database session {holder.pid}{since})" if holder else ""
                raise FeedBusy(feed, f"another run of feed {feed} is in progress{who}; this run did nothing")
            time.sleep(POLL_SECONDS)
        conn.commit()
        try:
            yield
        finally:
            with contextlib.suppress(sa.exc.DBAPIError):
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


@contextlib.contextmanager
def _file_lock(database: Path, feed: str, wait_seconds: float) -> Iterator[None]:
    import filelock

    # filelock's debug lines carry a lock object's id(), 15 digits that a leak scan cannot tell from an ID number.
    logging.getLogger("filelock").setLevel(logging.INFO)
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in feed)
    path = database.parent / "locks" / f"{safe}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=wait_seconds, poll_interval=POLL_SECONDS)
    except filelock.Timeout:
        raise FeedBusy(feed, f"another run of feed {feed} is in progress (lock {path}); this run did nothing") from None
    try:
        yield
    finally:
        lock.release()
