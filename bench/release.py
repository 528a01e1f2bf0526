"""What released tables and per-consumer pseudonyms cost (issue 15, items 2 and 3), against PostgreSQL's own COPY.

The roster (civil_affairs.low_income_roster) gets --rows synthetic live rows over the city's 9 districts, by COPY
into its central table: that COPY is the yardstick. Then, with the shipped catalogue and a fresh keyring:

- ``grants apply`` creates every consumer's released tables and fills them: for the roster, 11 consumers (the 9
  county bureaus each with their ninth, platform, civil affairs, 6 departments with all rows), each token column
  as a pseudonym computed by PostgreSQL (HMAC-SHA256, two sha256 calls per value);
- the same fill for one whole-table consumer with and without the pseudonyms: what HMAC adds;
- an UPDATE of --changed rows with and without the triggers noting their keys, then the sync re-releasing them:
  what an incremental batch pays;
- storage: the released tables' size against the base table's.

    .venv/bin/python bench/release.py --rows 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import time
from datetime import date

import psycopg
import sqlalchemy as sa

from lidm.central import db, release
from lidm.central.grants import apply, desired
from lidm.central.schema import Digest, dataset_table
from lidm.config import Settings
from lidm.contracts import load_catalog
from lidm.contracts.model import LogicalType, Protection
from lidm.keys import generate_keyring

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
DISTRICTS = [f"4301{n:02d}" for n in (2, 3, 4, 5, 11, 12, 21, 81, 82)]
ROSTER = "civil_affairs.low_income_roster"


def _values(contract):  # type: ignore[no-untyped-def]
    """A row maker for the contract's central table: plausible values of each column's type."""
    kinds = {col: (f, kind) for f, col, kind in contract.output_columns()}

    def row(i: int) -> list[object]:
        out: list[object] = []
        for col in table.columns:
            name = col.name
            if name == "_batch_id":
                out.append("bec00000-0000-4000-8000-000000000000")  # a uuid, as lidm names a batch
            elif name == "_row_digest":  # its 32 bytes in a department's table (migration 0024)
                digest = hashlib.sha256(f"d{i}".encode())
                out.append(digest.digest() if isinstance(col.type, Digest) else digest.hexdigest())
            elif name == "_retired_batch":
                out.append(None)
            elif name == "_sealed":  # the row's one sealed message: 1 + 4 + 12 + ~40 + 16 bytes
                out.append(b"\x01" + b"x" * 72)
            else:
                f, kind = kinds[name]
                if kind is Protection.TOKEN:  # stored as its 32 bytes (bytea) since migration 0021
                    out.append(hashlib.sha256(f"{name}{i}".encode()).digest())
                elif kind is Protection.MASK:
                    out.append("4301**************")
                elif name == "district_code":
                    out.append(DISTRICTS[i % len(DISTRICTS)])
                elif f.enum:
                    out.append(f.enum[i % len(f.enum)])
                elif f.type is LogicalType.DATE:
                    out.append(date(2026, 1, 1 + i % 28))
                elif f.type in (LogicalType.NUMBER, LogicalType.INTEGER):
                    out.append(i % 1000)
                elif f.type is LogicalType.BOOLEAN:
                    out.append(False)
                elif f.type is LogicalType.TIMESTAMP:
                    out.append("2026-01-01 00:00:00")
                else:
                    out.append(f"{name}-{i % 97}")
        return out

    table = dataset_table(contract, sa.MetaData())
    return table, row


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--changed", type=int, default=10_000)
    args = ap.parse_args()
    name = f"lidm_bench_release_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={name}"
    engine = db.connect(Settings(central_url=url))
    catalog = load_catalog()
    contract = catalog[ROSTER]
    keyring = generate_keyring()
    try:
        db.migrate(engine)
        table, row = _values(contract)
        cols = ", ".join(f'"{c.name}"' for c in table.columns)
        data = [row(i) for i in range(args.rows)]
        with psycopg.connect(dsn, autocommit=True) as c:
            with c.cursor() as cur:

                def copy(rows: list[list[object]] = data) -> None:
                    with cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN') as cp:
                        for r in rows:
                            cp.write_row(r)

                t_copy = _timed(copy)
            c.execute(f'VACUUM ANALYZE "{table.name}"')
            base_bytes = c.execute("SELECT pg_total_relation_size(%s)", [table.name]).fetchone()[0]
        data.clear()
        t_apply = _timed(lambda: apply(engine, catalog, keyring=keyring))
        views = [v for w in desired(catalog) for v in w.views if v.contract == ROSTER]
        with psycopg.connect(dsn, autocommit=True) as c:
            sizes = {
                v.consumer: c.execute(
                    "SELECT pg_total_relation_size(%s), (SELECT count(*) FROM " + f'"{v.schema}"."{v.release}")',
                    [f'"{v.schema}"."{v.release}"'],
                ).fetchone()
                for v in views
            }
        released_rows = sum(n for _, n in sizes.values())
        released_bytes = sum(b for b, _ in sizes.values())
        # One whole-table consumer's fill, with and without pseudonyms.
        whole = next(v for v in views if v.consumer == "hr_social_security")
        base = "public"
        reg = release.Registered(
            whole.schema,
            whole.release,
            whole.table,
            whole.select_sql(base),
            release.key_sql(whole.key_columns),
            whole.scope_list(),
        )
        plain = release.Registered(
            reg.schema,
            reg.name,
            reg.base_table,
            reg.select_sql.replace(release.pseudonym_sql("id_number_token", 0), '"id_number_token"'),
            reg.key_expr,
            [],
        )
        with engine.begin() as conn:
            t_fill = _timed(lambda: release.fill(conn, keyring, reg))
        with engine.begin() as conn:
            t_plain = _timed(lambda: release.fill(conn, keyring, plain))
            conn.rollback()
        # An incremental batch: --changed rows updated, keys noted by the triggers, then re-released.
        step = max(1, args.rows // args.changed)
        digest = "encode(_row_digest, 'hex')"  # a department table stores the digest's bytes (migration 0024)
        where = f"WHERE ('x' || substr({digest}, 1, 8))::bit(32)::int % {step} = 0"
        with engine.begin() as conn:
            conn.execute(sa.text(f'ALTER TABLE "{table.name}" DISABLE TRIGGER USER'))
            t_update_plain = _timed(lambda: conn.execute(sa.text(f'UPDATE "{table.name}" SET status = status {where}')))
            conn.rollback()
        with engine.begin() as conn:
            t_update = _timed(lambda: conn.execute(sa.text(f'UPDATE "{table.name}" SET status = status {where}')))
            noted = conn.execute(sa.text("SELECT count(DISTINCT row_key) FROM lidm_release_pending")).scalar_one()
            synced: list[release.Synced] = []
            t_sync = _timed(lambda: synced.extend(release.sync(conn, keyring)))
    finally:
        engine.dispose()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    rate = args.rows / t_copy
    print(f"{args.rows:,} roster rows; COPY into the central table {t_copy:.2f} s ({rate:,.0f} rows/s) = 1.00")
    print(
        f"grants apply, every consumer's releases ({len(views)} for the roster, {released_rows:,} rows): "
        f"{t_apply:.2f} s = {t_apply / t_copy:.2f}x COPY"
    )
    print(
        f"one whole-table release: {t_fill:.2f} s with pseudonyms, {t_plain:.2f} s without "
        f"(pseudonyms add {t_fill - t_plain:.2f} s = {(t_fill - t_plain) / t_copy:.2f}x COPY)"
    )
    print(
        f"an incremental batch of {noted:,} changed rows: UPDATE {t_update_plain:.3f} s without triggers, "
        f"{t_update:.3f} s noting keys; sync {t_sync:.3f} s ({synced[0].rows:,} rows re-released, whole="
        f"{synced[0].whole}) = {(t_update - t_update_plain + t_sync) / t_copy:.3f}x COPY of all rows"
    )
    print(
        f"storage: base table {base_bytes / 2**20:,.0f} MiB; released tables {released_bytes / 2**20:,.0f} MiB "
        f"({released_bytes / base_bytes:.2f}x)"
    )


if __name__ == "__main__":
    main()
