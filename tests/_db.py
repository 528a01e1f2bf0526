"""Reading a central database from a test, as an analyst would, with a throwaway engine."""

from __future__ import annotations

import sqlalchemy as sa


def query(url: str, sql: str) -> list[sa.Row]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).all()
    finally:
        engine.dispose()


def kill_central_on_batch_insert(conn: sa.Connection) -> None:
    """Fault injection (PostgreSQL): the session writing a batch row terminates itself, inside its transaction."""
    conn.execute(
        sa.text(
            "CREATE FUNCTION lidm_test_kill() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$"
        )
    )
    conn.execute(
        sa.text(
            "CREATE TRIGGER lidm_test_kill BEFORE INSERT ON lidm_batch FOR EACH ROW EXECUTE FUNCTION lidm_test_kill()"
        )
    )
