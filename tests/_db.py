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
