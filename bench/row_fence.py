"""What a row limit costs when no query plan can look through it (issue 15, item 2), against PostgreSQL.

A county consumer's view keeps only its districts. With a plain `security_barrier` view, PostgreSQL may use the
consumer's own condition on an indexed column (leakproof text operators) as an index condition *before* the
district filter, and EXPLAIN ANALYZE then counts the hidden rows it removed: a probe for another district's token
and a probe for a token that does not exist differ. A fence (the district filter inside a subquery the planner
cannot push conditions into, `OFFSET 0`) applies the district filter first, always.

A released table (the consumer's rows copied into a table of its own) has nothing hidden to look through, at
the cost of a refresh after every load.

This measures, at --rows rows spread over 9 districts, for the three shapes:
- the probe's latency (a token lookup, as the consumer), median of --repeat runs;
- whether EXPLAIN ANALYZE tells a hidden token from an absent one (the leak).

    .venv/bin/python bench/row_fence.py --rows 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import statistics
import time

import psycopg

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
REFRESH: dict[str, float] = {}  # seconds to build a released table (its refresh cost per load)
DISTRICTS = [f"4301{n:02d}" for n in (2, 3, 4, 5, 11, 12, 21, 81, 82)]


def token(i: int) -> str:
    return hashlib.sha256(f"person-{i}".encode()).hexdigest()


def setup(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE people (id_token text PRIMARY KEY, district_code text NOT NULL, payload text)")
        with c.cursor() as cur, cur.copy("COPY people FROM STDIN") as copy:
            for i in range(rows):
                copy.write_row((token(i), DISTRICTS[i % len(DISTRICTS)], "x" * 40))
        c.execute("CREATE INDEX ON people (district_code)")
        c.execute("ANALYZE people")
        c.execute("CREATE ROLE bench_county NOLOGIN")
        c.execute("CREATE SCHEMA county")
        c.execute(
            "CREATE VIEW county.barrier WITH (security_barrier) AS "
            "SELECT id_token, payload FROM people WHERE district_code = '430102'"
        )
        c.execute(
            "CREATE VIEW county.fenced WITH (security_barrier) AS SELECT id_token, payload FROM "
            "(SELECT id_token, payload FROM people WHERE district_code = '430102' OFFSET 0) own"
        )
        # The third shape: a table released to the consumer, holding its rows only (refreshed after every load).
        started = time.perf_counter()
        c.execute("CREATE TABLE county.released AS SELECT id_token, payload FROM people WHERE district_code = '430102'")
        c.execute("CREATE UNIQUE INDEX ON county.released (id_token)")
        c.execute("ANALYZE county.released")
        REFRESH["released"] = time.perf_counter() - started
        c.execute("GRANT USAGE ON SCHEMA county TO bench_county")
        c.execute("GRANT SELECT ON county.barrier, county.fenced, county.released TO bench_county")


def explain(cur: psycopg.Cursor, view: str, value: str) -> str:
    """The plan with its actual row counts, the probed value itself left out (it is the consumer's own input)."""
    sql = f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM county.{view} WHERE id_token = %s"
    cur.execute(sql, [value])
    return "\n".join(r[0] for r in cur.fetchall()).replace(value, "?")


def measure(dsn: str, rows: int, repeat: int) -> dict[str, dict[str, object]]:
    hidden = token(1)  # district 430103: not the consumer's
    absent = hashlib.sha256(b"nobody").hexdigest()
    own = token(0)
    out: dict[str, dict[str, object]] = {}
    with psycopg.connect(dsn, autocommit=True) as c, c.cursor() as cur:
        cur.execute("SET ROLE bench_county")
        for view in ("barrier", "fenced", "released"):
            leak = explain(cur, view, hidden) != explain(cur, view, absent)
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                cur.execute(f"SELECT * FROM county.{view} WHERE id_token = %s", [own])
                assert len(cur.fetchall()) == 1
                times.append(time.perf_counter() - started)
            out[view] = {"probe_ms": statistics.median(times) * 1000, "explain_tells_hidden_from_absent": leak}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    name = f"lidm_bench_fence_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={name}"
    try:
        setup(dsn, args.rows)
        result = measure(dsn, args.rows, args.repeat)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute("DROP ROLE IF EXISTS bench_county")
    print(f"{args.rows:,} rows, {len(DISTRICTS)} districts; a county consumer's token lookup, median of {args.repeat}:")
    for view, r in result.items():
        leak = r["explain_tells_hidden_from_absent"]
        print(f"  {view:8} {r['probe_ms']:8.2f} ms   EXPLAIN tells a hidden token from an absent one: {leak}")
    print(f"  released: building the consumer's table (its refresh after each load) took {REFRESH['released']:.2f} s")


if __name__ == "__main__":
    main()
