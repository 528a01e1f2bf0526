"""A first throughput probe (issue 8 grows it into the benchmark): health.population end to end.

    .venv/bin/python bench/feed_throughput.py --rows 100000 [--central-url postgresql+psycopg://postgres@127.0.0.1/postgres]

Generates N synthetic people into a SQLite department database, runs the feed into a fresh central database
(a throwaway PostgreSQL database when --central-url names a server, else SQLite), and prints rows/s for the
first load and for an unchanged re-run. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from lidm.config import Settings
from lidm.keys import generate_keyring, write_keyring
from lidm.pipeline import run_feed
from lidm.samples import generate_people, population_rows, write_population_table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--central-url", default=None, help="a PostgreSQL server URL; a scratch database is made on it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        src = f"sqlite:///{home / 'health.db'}"
        engine = sa.create_engine(src)
        write_population_table(engine, population_rows(generate_people(args.rows, 1)).rows)
        engine.dispose()
        write_keyring(generate_keyring(), home / "keyring.json")
        central, scratch = None, None
        if args.central_url:
            scratch = f"lidm_bench_{secrets.token_hex(4)}"
            admin = sa.create_engine(args.central_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{scratch}"'))
            central = sa.make_url(args.central_url).set(database=scratch).render_as_string(hide_password=False)
        settings = Settings(home=home, central_url=central, keyring=home / "keyring.json")
        try:
            for label in ("first load", "unchanged re-run"):
                start = time.perf_counter()
                (r,) = run_feed("health.population", settings, connections={"health_db": src})
                seconds = time.perf_counter() - start
                rate = r.extracted / seconds
                print(f"{label:17} {r.status:9} {r.extracted:>9,} rows {seconds:6.1f} s {rate:>10,.0f} rows/s")
        finally:
            if scratch:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE "{scratch}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    main()
