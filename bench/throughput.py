"""The throughput and memory benchmark: lidm's full path against PostgreSQL's own COPY, in one run, as ratios.

    .venv/bin/python bench/throughput.py                                   # 1M rows, every path
    .venv/bin/python bench/throughput.py --rows 10000000 --paths copy,drop  # the 10M memory check
    .venv/bin/python bench/throughput.py --rules                           # + the monitoring rules at the same scale

Generates the health commission's whole-population register (bench/population.py: valid ID numbers, Chinese
names and addresses, 0.1% faulty rows) as a GBK CSV drop and as a table in MariaDB, then runs each path in its
own process (so its peak RSS is its own) against a fresh PostgreSQL database:

  copy      the limit: COPY of the already-protected rows, in delivery order, into the same empty target table
            (primary key and indexes in place); `copy sorted` is the same rows in key order, COPY's best case
  drop      lidm's full path from the GBK drop: decode, conform, validate, token, encrypt, mask, digest,
            load with batch record and quarantine, signed manifest
  db        the same from MariaDB over ODBC (the columnar arrow-odbc reader, keyset-paged by the key), then the
            same snapshot again: the daily re-run, which must change nothing
  naive     the floor: csv module + a pydantic model per row + HMAC + AES-GCM + masks + COPY
  dlt       dlt loading the same rows with the same protection in a row add_map (the `bench` extra)

naive and dlt run on the first --slow-rows rows (their rows/s are what matters; a million rows through dlt takes
over a minute). Results: a table, --out/throughput.json and --out/throughput.html (a bar chart).
Not a test: the figures depend on the machine, so every figure is also given as a ratio to COPY in the same run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import population  # the generator next to this file

PATHS = ("copy", "drop", "db", "naive", "dlt")
TABLE = "health_population"
MARIADB = "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;UID=root;PWD=;CHARSET=utf8mb4"
MAPPING_COLUMNS = {  # contract field -> source column, as adapters/health/population.py maps them
    "id_number": "sfzh",
    "name": "xm",
    "gender": "xb",
    "birth_date": "csrq",
    "household_id": "hh",
    "phone": "lxdh",
    "district_code": "qxdm",
    "street_code": "jddm",
    "address": "jzdz",
    "residence_status": "rkzt",
    "updated_at": "gxsj",
}
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # GB 11643-1999
RESIDENCE = {"10": "registered", "20": "resident", "30": "moved_out", "90": "deceased"}


class MemoryPeak:
    """Peak memory of this process and of the process tree, sampled every 0.1 s.

    ru_maxrss survives exec (a child would report its parent's peak), so the process's own high-water mark
    comes from VmHWM; the tree's footprint is the sum of PSS over this process and its workers, which counts
    pages a forked worker shares with its parent once, not twice.
    """

    def __init__(self) -> None:
        import threading

        self.tree_mb = 0.0
        self.workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _field(pid: int, file: str, name: str) -> float:
        try:
            with open(f"/proc/{pid}/{file}") as fh:
                return next((int(line.split()[1]) for line in fh if line.startswith(name)), 0) / 1024
        except OSError:
            return 0.0

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                kids = [int(x) for x in fh.read().split()]
        except OSError:
            return []
        return kids + [g for k in kids for g in MemoryPeak._children(k)]

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._run_once()

    def _run_once(self) -> None:
        me = os.getpid()
        kids = self._children(me)
        self.workers = max(self.workers, len(kids))
        total = sum(self._field(p, "smaps_rollup", "Pss:") for p in [me, *kids])
        self.tree_mb = max(self.tree_mb, total)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._run_once()
        return {
            "peak_rss_mb": round(self._field(os.getpid(), "status", "VmHWM:")),
            "peak_pss_tree_mb": round(self.tree_mb),
            "processes": 1 + self.workers,
        }


# ----------------------------------------------------------------------------------------------- the data


def generate(work: Path, rows: int) -> dict[str, Any]:
    """The GBK drop and a UTF-8 copy for the MariaDB load; reused when a run with the same rows made them."""
    gbk, utf8 = work / f"population_{rows}.csv", work / f"population_{rows}.utf8.csv"
    if gbk.exists() and utf8.exists():
        return {"gbk_bytes": gbk.stat().st_size, "generated_seconds": 0.0}
    started = time.perf_counter()
    with open(gbk.with_suffix(".tmp"), "wb") as out_gbk, open(utf8.with_suffix(".tmp"), "wb") as out_utf8:
        for i, chunk in enumerate(population.chunks(rows)):
            buf = pa.BufferOutputStream()
            pacsv.write_csv(chunk, buf, pacsv.WriteOptions(include_header=i == 0, quoting_style="needed"))
            text = buf.getvalue().to_pybytes()
            out_utf8.write(text)
            out_gbk.write(text.decode("utf-8").encode("gb18030"))
    gbk.with_suffix(".tmp").rename(gbk)
    utf8.with_suffix(".tmp").rename(utf8)
    return {"gbk_bytes": gbk.stat().st_size, "generated_seconds": time.perf_counter() - started}


def load_mariadb(work: Path, rows: int) -> str:
    """t_population in a MariaDB database (LOAD DATA through the mysql client); returns the ODBC string."""
    name = f"lidm_bench_{rows}"
    marker = work / f"{name}.v2.loaded"
    odbc = f"{MARIADB};DATABASE={name}"
    if marker.exists():
        return odbc
    cols = ", ".join(f"{c} VARCHAR({200 if c == 'jzdz' else 50})" for c in population.COLUMNS)
    sql = (
        f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} CHARACTER SET utf8mb4; USE {name}; "
        f"CREATE TABLE t_population ({cols}); "
        f"LOAD DATA LOCAL INFILE '{work / f'population_{rows}.utf8.csv'}' INTO TABLE t_population "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' IGNORE 1 LINES "
        f"({', '.join('@' + c for c in population.COLUMNS)}) SET "
        + ", ".join(f"{c} = NULLIF(@{c}, '')" for c in population.COLUMNS)
        # The department's key, what a paged read orders by: added after the load, so InnoDB sorts the rows once
        # instead of inserting 10M random keys into its clustered index (hours with the default buffer pool).
        + "; ALTER TABLE t_population ADD PRIMARY KEY (sfzh)"
    )
    subprocess.run(["mysql", "--local-infile=1", "-h127.0.0.1", "-uroot", "-e", sql], check=True)
    marker.write_text("")
    return odbc


# ----------------------------------------------------------------------------------------------- helpers


@contextmanager
def scratch_database(server: str):  # type: ignore[no-untyped-def]
    """A fresh, migrated central database, dropped afterwards."""
    from lidm.central import db

    name = f"lidm_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        engine = sa.create_engine(url)
        db.migrate(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def adapter(source: Any):  # type: ignore[no-untyped-def]
    from lidm import GB_GENDER, Adapter, codes, date

    m: dict[str, Any] = dict(MAPPING_COLUMNS)
    m["gender"] = codes("xb", GB_GENDER)
    m["birth_date"] = date("csrq", "%Y%m%d")
    m["residence_status"] = codes("rkzt", RESIDENCE)
    return Adapter(contract="health.population", source=source, mapping=m, name="bench_population")


def keyring_path(work: Path) -> Path:
    from lidm.keys import generate_keyring, write_keyring

    path = work / "keyring.json"
    if not path.exists():
        write_keyring(generate_keyring(), path)
    return path


def psycopg_dsn(url: str) -> str:
    u = sa.make_url(url)
    return f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}" + (
        f" password={u.password}" if u.password else ""
    )


def copy_file(dsn: str, table: str, columns: list[str], path: Path, fmt: str = "csv") -> float:
    """Seconds for one COPY FROM STDIN of a CSV (or binary) file in 1 MiB writes, committed."""
    import psycopg

    cols = ", ".join(f'"{c}"' for c in columns)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT {fmt})") as copy, open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                copy.write(block)
        conn.commit()
        return time.perf_counter() - started


class StatementClock:
    """Where the central database spends a batch: statements over 0.2 s, by their first words."""

    def __init__(self) -> None:
        from sqlalchemy import event

        self.slow: list[tuple[str, float]] = []
        event.listen(sa.engine.Engine, "before_cursor_execute", self._before)
        event.listen(sa.engine.Engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        conn.info["lidm_bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seconds = time.perf_counter() - conn.info.pop("lidm_bench_t0", time.perf_counter())
        if seconds > 0.2:
            self.slow.append((" ".join(statement.split()[:4])[:60], round(seconds, 2)))


# ----------------------------------------------------------------------------------------------- the paths


def run_copy(args: argparse.Namespace) -> dict[str, Any]:
    """Protect every row first (not timed), then COPY them into the empty target: the limit."""
    from lidm.central.copyin import BINARY_HEADER, BINARY_TRAILER, CopyInput, to_csv
    from lidm.central.schema import Token, dataset_table
    from lidm.contracts import load_one
    from lidm.keys import load_keyring
    from lidm.sources.csvfile import read_csv_chunks
    from lidm.transform import ChunkTransform

    work = args.workdir
    contract = load_one("health.population")
    from lidm.config import Settings

    keyring = load_keyring(Settings(home=work, keyring=keyring_path(work)))
    with scratch_database(args.central_url) as url:
        engine = sa.create_engine(url)
        columns = [c.name for c in sa.Table(TABLE, sa.MetaData(), autoload_with=engine).columns]
        target = dataset_table(contract, sa.MetaData())
        binary = CopyInput(target, engine.dialect)
        engine.dispose()
        fn = ChunkTransform(
            adapter(None), contract, keyring, feed="bench", batch_id=str(uuid.UUID(int=0)), city_prefix="4301",
            timezone="Asia/Shanghai",
        )  # fmt: skip
        hex_columns = [c.name for c in target.columns if isinstance(c.type, Token)]
        protected, protected_bin = work / "protected.csv", work / "protected.bin"
        rows = 0
        with (
            open(work / f"population_{args.rows}.csv", "rb") as raw,
            open(protected, "wb") as out,
            open(protected_bin, "wb") as out_bin,
        ):
            _, chunks, _, _ = read_csv_chunks(raw, file="bench", encoding="gbk")
            out_bin.write(BINARY_HEADER)
            for chunk in chunks:
                part = fn(chunk)
                rows += part.rows - len(part.quarantine)
                out.write(to_csv(part.protected.select(columns), hex_columns))
                out_bin.write(binary.render(part.protected)[len(BINARY_HEADER) : -len(BINARY_TRAILER)])  # one header
            out_bin.write(BINARY_TRAILER)
        dsn = psycopg_dsn(url)
        seconds = copy_file(dsn, TABLE, columns, protected)
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(f"TRUNCATE {TABLE}")
            cur.execute("CHECKPOINT")
        binary_seconds = copy_file(dsn, TABLE, binary.columns, protected_bin, fmt="binary")
        protected_bin.unlink()

        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
            stored = stored_sizes(cur, rows)
            sorted_file = work / "protected.sorted.csv"
            with (
                open(sorted_file, "wb") as out,
                cur.copy(f"COPY (SELECT * FROM {TABLE} ORDER BY id_number_token) TO STDOUT (FORMAT csv)") as copy,
            ):
                for block in copy:
                    out.write(block)
            cur.execute(f"TRUNCATE {TABLE}")
            cur.execute("CHECKPOINT")
        sorted_seconds = copy_file(dsn, TABLE, columns, sorted_file)
        size = protected.stat().st_size
        protected.unlink()
        sorted_file.unlink()
    return {
        "rows": rows,
        "seconds": seconds,
        "sorted_seconds": sorted_seconds,
        "binary_seconds": binary_seconds,  # the same rows in COPY's binary format, as lidm stages them
        "protected_bytes_per_row": round(size / max(rows, 1)),
    } | stored


def stored_sizes(cur: Any, rows: int) -> dict[str, int]:
    """What the loaded table costs per row (after VACUUM ANALYZE): all of it, its heap, its key index, a tuple."""
    cur.execute(f"VACUUM ANALYZE {TABLE}")
    cur.execute(
        f"SELECT pg_total_relation_size('{TABLE}'), pg_relation_size('{TABLE}'), "
        f"pg_relation_size('{TABLE}_pkey'), (SELECT avg(pg_column_size(t.*)) FROM {TABLE} t) "
    )
    total, heap, key_index, row_size = cur.fetchone()
    return {
        "stored_bytes_per_row": round(total / max(rows, 1)),  # table + indexes + TOAST
        "heap_bytes_per_row": round(heap / max(rows, 1)),
        "key_index_bytes_per_row": round(key_index / max(rows, 1)),
        "avg_row_bytes": round(float(row_size or 0)),  # avg(pg_column_size(t.*)): the tuple alone
    }


def transform_profile(work: Path, rows: int) -> dict[str, float]:
    """Microseconds per row of each step a worker runs, on one 50,000-row chunk of the drop (after a warm-up)."""
    from sqlalchemy.dialects import postgresql

    from lidm.central.copyin import CopyInput
    from lidm.central.loader import SOURCE_LINE, SOURCE_ROW
    from lidm.central.schema import dataset_table
    from lidm.config import Settings
    from lidm.conform import conform
    from lidm.contracts import Protection, load_one
    from lidm.keys import load_keyring
    from lidm.protect import mask
    from lidm.sources.csvfile import read_csv_chunks
    from lidm.transform import ChunkTransform

    contract = load_one("health.population")
    keyring = load_keyring(Settings(home=work, keyring=keyring_path(work)))
    batch = str(uuid.UUID(int=0))
    fn = ChunkTransform(
        adapter(None), contract, keyring, feed="bench", batch_id=batch, city_prefix="4301", timezone="Asia/Shanghai"
    )
    with open(work / f"population_{rows}.csv", "rb") as raw:
        _, chunks, _, _ = read_csv_chunks(raw, file="bench", encoding="gbk", chunk_bytes=9 << 20)
        chunk = next(chunks)
    times: dict[str, float] = {}

    def clock(step: str, f, *a):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        out = f(*a)
        times[step] = times.get(step, 0.0) + time.perf_counter() - started
        return out

    target = dataset_table(contract, sa.MetaData())
    stage = sa.Table(
        "stage", sa.MetaData(), *(sa.Column(c.name, c.type) for c in target.columns),
        sa.Column(SOURCE_ROW, sa.BigInteger), sa.Column(SOURCE_LINE, sa.BigInteger),
    )  # fmt: skip
    copy_input = CopyInput(stage, postgresql.dialect())
    staged = fn(chunk).protected  # and the warm-up: regexes compiled, pools allocated
    rows_ = clock("conform + normalize", lambda: fn.validator.normalize(conform(chunk, fn.adapter, contract)))
    clock("row digests (keyed BLAKE2b)", fn._digests, rows_)
    checked = clock("validate", fn.validator.validate, rows_)
    valid = checked.valid
    for f, _col, kind in contract.output_columns():
        values = pc.cast(valid[f.name].combine_chunks(), pa.string())
        if kind is Protection.TOKEN:
            clock("token (HMAC-SHA256)", fn.protector.token, values)
        elif kind is Protection.MASK:
            clock("mask", mask, f, values)
    clock("encrypt (one AES-256-GCM per row)", fn.protector.seal, valid)
    clock(f"COPY input ({copy_input.format})", copy_input.render, staged)
    return {k: round(v / chunk.num_rows * 1e6, 2) for k, v in times.items()}


def run_lidm(args: argparse.Namespace, source: str) -> dict[str, Any]:
    """lidm's own run_feed, as the CLI and the DAGs call it, on a fresh central database."""
    from lidm import DropSource, SqlSource
    from lidm.config import Settings
    from lidm.pipeline import run_feed

    work = args.workdir
    clock = StatementClock()
    with scratch_database(args.central_url) as url:
        home = work / f"home_{source}"
        shutil.rmtree(home, ignore_errors=True)
        drop = home / "drop"
        drop.mkdir(parents=True)
        if source == "drop":
            data = work / f"population_{args.rows}.csv"
            os.link(data, drop / data.name)  # the run archives the file; the original stays
            (drop / f"{data.name}.ok").write_text("")
            ad = adapter(DropSource(connection="bench", pattern=data.name, encoding="gbk"))
            connection = str(drop)
        else:
            # Paged by the key: MariaDB's ODBC driver holds a whole result set in memory (200k rows ~ 40 MB).
            ad = adapter(SqlSource(connection="bench", table="t_population", page_by="sfzh"))
            connection = "odbc:" + load_mariadb(work, args.rows)
        settings = Settings(home=home, central_url=url, keyring=keyring_path(work), workers=args.workers)
        marks: list[float] = []
        baseline = MemoryPeak._field(os.getpid(), "status", "VmRSS:")
        started = time.perf_counter()
        (result,) = run_feed(
            ad, settings, connections={"bench": connection}, progress=lambda f, n: marks.append(time.perf_counter())
        )
        seconds = time.perf_counter() - started
        memory = args.memory.stop()  # before the profile below, which reads a bigger chunk
        rerun = None
        if source == "db":  # the daily case: the same snapshot again, read and protected, nothing written
            started_again = time.perf_counter()
            (again,) = run_feed(ad, settings, connections={"bench": connection})
            rerun = {"status": again.status, "seconds": time.perf_counter() - started_again}
        shutil.rmtree(home, ignore_errors=True)
        import psycopg

        with psycopg.connect(psycopg_dsn(url), autocommit=True) as conn, conn.cursor() as cur:
            stored = stored_sizes(cur, result.loaded)  # as lidm wrote them: new rows in key order
    profile = transform_profile(work, args.rows) if source == "drop" else None
    return (
        memory
        | stored
        | {
            "transform_us_per_row": profile,
            "rows": result.extracted,
            "loaded": result.loaded,
            "quarantined": result.quarantined,
            "status": result.status,
            "seconds": seconds,
            "streamed_seconds": (marks[-1] - started) if marks else None,  # source read, transformed, staged
            "chunks": len(marks),
            "unchanged_rerun": rerun,
            "import_rss_mb": round(baseline),
            "slow_statements": clock.slow,
        }
    )


def _naive_rows(work: Path, rows: int, limit: int):  # type: ignore[no-untyped-def]
    with open(work / f"population_{rows}.csv", encoding="gb18030", newline="") as fh:
        reader = csv.DictReader(fh)
        for i, row in enumerate(reader):
            if i >= limit:
                return
            yield i + 2, row


def _row_protection(keyring: Any):  # type: ignore[no-untyped-def]
    """Per-row protection as a row-at-a-time tool would write it, storing what lidm stores: 32-byte HMAC tokens, one
    AES-GCM message per row over the encrypted fields (lidm.protect's format and binding), masks; one dict in, one
    out."""
    import hmac

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from lidm.contracts.model import sealed_field_id
    from lidm.keys import fingerprint
    from lidm.protect import ROW_FORMAT

    ids = {f: sealed_field_id(f) for f in ("id_number", "name", "phone", "address")}

    def _varint(n: int) -> bytes:
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes(out + bytes([n]))

    tkey, aes = keyring.token.active_key, AESGCM(keyring.encrypt.active_key)
    head = bytes([ROW_FORMAT["aes-256-gcm"]]) + fingerprint(keyring.encrypt.active)
    aad = b"lidm-row\x00health.population\x00" + head

    def token(v: str | None) -> bytes | None:
        return None if v is None else hmac.digest(tkey, v.encode(), "sha256")

    def sealed(**fields: str | None) -> bytes | None:
        plain = b"".join(ids[k] + _varint(len(b := v.encode())) + b for k, v in fields.items() if v is not None)
        if not plain:
            return None
        nonce = os.urandom(12)
        return head + nonce + aes.encrypt(nonce, plain, aad)

    def protect(r: dict[str, Any]) -> dict[str, Any]:
        idn, name, phone = r["id_number"], r["name"], r["phone"]
        return {
            "id_number_token": token(idn),
            "id_number_masked": idn[:6] + "********" + idn[-4:],
            "name_masked": name[0] + "*" + (name[-1] if len(name) > 2 else ""),
            "gender": r["gender"],
            "birth_date": r["birth_date"],
            "household_id_token": token(r["household_id"]),
            "phone_masked": None if phone is None else phone[:3] + "****" + phone[-4:],
            "district_code": r["district_code"],
            "street_code": r["street_code"],
            "residence_status": r["residence_status"],
            "updated_at": r["updated_at"],
            "_sealed": sealed(id_number=idn, name=name, phone=phone, address=r["address"]),
        }

    return protect


def _person_model():  # type: ignore[no-untyped-def]
    import datetime as dt
    from typing import Literal

    from pydantic import BaseModel, field_validator

    class Person(BaseModel):
        id_number: str
        name: str
        gender: Literal["male", "female"]
        birth_date: dt.date
        household_id: str | None
        phone: str | None
        district_code: str
        street_code: str | None
        address: str | None
        residence_status: str
        updated_at: dt.datetime

        @field_validator("id_number")
        @classmethod
        def checksum(cls, v: str) -> str:
            if len(v) != 18 or not v[:17].isdigit():
                raise ValueError("format")
            if "10X98765432"[sum(int(d) * w for d, w in zip(v[:17], WEIGHTS, strict=True)) % 11] != v[17].upper():
                raise ValueError("check character")
            return v

    return Person


def _naive_input(row: dict[str, str]) -> dict[str, Any]:
    g = {"1": "male", "2": "female"}
    return {
        "id_number": row["sfzh"],
        "name": row["xm"],
        "gender": g.get(row["xb"], row["xb"]),
        "birth_date": f"{row['csrq'][:4]}-{row['csrq'][4:6]}-{row['csrq'][6:]}",
        "household_id": row["hh"] or None,
        "phone": row["lxdh"] or None,
        "district_code": row["qxdm"],
        "street_code": row["jddm"] or None,
        "address": row["jzdz"] or None,
        "residence_status": RESIDENCE.get(row["rkzt"], row["rkzt"]),
        "updated_at": row["gxsj"],
    }


def run_naive(args: argparse.Namespace) -> dict[str, Any]:
    """The floor any design must beat: one Python object per row from reading to COPY."""
    import psycopg
    from pydantic import ValidationError

    from lidm.config import Settings
    from lidm.keys import load_keyring

    keyring = load_keyring(Settings(home=args.workdir, keyring=keyring_path(args.workdir)))
    protect, Person = _row_protection(keyring), _person_model()
    with scratch_database(args.central_url) as url:
        dsn = psycopg_dsn(url)
        loaded = bad = 0
        started = time.perf_counter()
        with psycopg.connect(dsn) as conn, conn.cursor() as cur:
            cols = list(protect(_naive_input(next(_naive_rows(args.workdir, args.rows, 1))[1])))
            cols += ["_batch_id", "_row_digest"]
            batch, digest = str(uuid.UUID(int=0)), bytes(32)  # a uuid and 32 bytes, as lidm stores them
            with cur.copy(f"COPY {TABLE} ({', '.join(cols)}) FROM STDIN") as copy:
                for _, row in _naive_rows(args.workdir, args.rows, args.slow_rows):
                    try:
                        person = Person(**_naive_input(row))
                    except ValidationError:
                        bad += 1
                        continue
                    out = protect(person.model_dump())
                    copy.write_row([*out.values(), batch, digest])
                    loaded += 1
            conn.commit()
        seconds = time.perf_counter() - started
    return {"rows": loaded + bad, "loaded": loaded, "quarantined": bad, "seconds": seconds}


def run_dlt(args: argparse.Namespace) -> dict[str, Any]:
    """dlt, the tool a team would otherwise pick: the same rows and protection through a row add_map."""
    try:
        import dlt
    except ImportError:
        return {"skipped": "dlt is not installed (the bench extra: uv pip install -e '.[bench]')"}
    from lidm.config import Settings
    from lidm.keys import load_keyring

    keyring = load_keyring(Settings(home=args.workdir, keyring=keyring_path(args.workdir)))
    protect = _row_protection(keyring)
    os.environ["DLT_DATA_DIR"] = str(args.workdir / "dlt")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

    @dlt.resource(name="health_population", write_disposition="append")
    def people():  # type: ignore[no-untyped-def]
        for _, row in _naive_rows(args.workdir, args.rows, args.slow_rows):
            yield _naive_input(row)

    with scratch_database(args.central_url) as url:
        u = sa.make_url(url)
        credentials = f"postgresql://{u.username}:{u.password or ''}@{u.host}:{u.port or 5432}/{u.database}"
        pipeline = dlt.pipeline(
            pipeline_name=f"lidm_bench_{secrets.token_hex(3)}",
            destination=dlt.destinations.postgres(credentials=credentials),
            dataset_name="dlt_bench",
            pipelines_dir=str(args.workdir / "dlt"),
        )
        started = time.perf_counter()
        pipeline.run(people().add_map(protect))
        seconds = time.perf_counter() - started
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            loaded = conn.execute(sa.text("SELECT count(*) FROM dlt_bench.health_population")).scalar_one()
        engine.dispose()
    shutil.rmtree(args.workdir / "dlt", ignore_errors=True)
    return {"rows": loaded, "loaded": loaded, "seconds": seconds}


def child(args: argparse.Namespace) -> None:
    run = {"copy": run_copy, "drop": lambda a: run_lidm(a, "drop"), "db": lambda a: run_lidm(a, "db"),
           "naive": run_naive, "dlt": run_dlt}[args.child]  # fmt: skip
    args.memory = MemoryPeak()
    out = run(args)
    if "peak_rss_mb" not in out:
        out |= args.memory.stop()
    print("RESULT " + json.dumps(out, default=str), flush=True)


# ----------------------------------------------------------------------------------------------- the report


def run_path(args: argparse.Namespace, path: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", path, "--rows", str(args.rows), "--slow-rows", str(args.slow_rows),
           "--workdir", str(args.workdir), "--central-url", args.central_url,
           "--workers", str(args.workers)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        return {"failed": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]}
    return json.loads(line.removeprefix("RESULT "))


def report(results: dict[str, Any]) -> list[list[str]]:
    copy = results["paths"].get("copy", {})
    limit = copy["rows"] / copy["seconds"] if copy.get("seconds") else None
    table = []
    for name, r in results["paths"].items():
        if "seconds" not in r:
            table.append([name, "-", "-", "-", "-", "-", r.get("skipped") or " ".join(r.get("failed", []))[:80]])
            continue
        rate = r["rows"] / r["seconds"]
        r["rows_per_s"] = round(rate)
        r["ratio_to_copy"] = round(rate / limit, 3) if limit else None
        rss = f"{r['peak_rss_mb']} MB, tree {r['peak_pss_tree_mb']} MB in {r['processes']}"
        note = ""
        if name == "copy":
            sorted_rate = r["rows"] / r["sorted_seconds"]
            r["sorted_rows_per_s"] = round(sorted_rate)
            if r.get("binary_seconds"):
                r["binary_rows_per_s"] = round(r["rows"] / r["binary_seconds"])
            note = (
                f"sorted by key: {sorted_rate:,.0f} rows/s; binary format: {r.get('binary_rows_per_s', 0):,} rows/s; "
                f"{r['protected_bytes_per_row']} CSV bytes/row, "
                f"{r.get('stored_bytes_per_row')} stored bytes/row ({r.get('avg_row_bytes')} a tuple, "
                f"key index {r.get('key_index_bytes_per_row')})"
            )
        elif r.get("quarantined") is not None:
            note = f"loaded {r['loaded']:,} + quarantined {r['quarantined']:,}"
            if r.get("stored_bytes_per_row"):
                note += (
                    f"; {r['stored_bytes_per_row']} stored bytes/row ({r['avg_row_bytes']} a tuple, key index "
                    f"{r['key_index_bytes_per_row']})"
                )
        table.append([name, f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{rate:,.0f}",
                      f"{r['ratio_to_copy']:.2f}x" if limit else "-", rss, note])  # fmt: skip
    lidm = results["paths"].get("drop", {}).get("rows_per_s")
    for other in ("naive", "dlt"):
        theirs = results["paths"].get(other, {}).get("rows_per_s")
        if lidm and theirs:
            results[f"drop_over_{other}"] = round(lidm / theirs, 1)
    return table


def chart(results: dict[str, Any], path: Path) -> None:
    import plotly.graph_objects as go

    names = [n for n, r in results["paths"].items() if "rows_per_s" in r]
    rates = [results["paths"][n]["rows_per_s"] for n in names]
    labels = [f"{results['paths'][n].get('ratio_to_copy') or 0:.2f}x COPY" for n in names]
    fig = go.Figure(go.Bar(x=names, y=rates, text=labels, textposition="outside"))
    fig.update_layout(
        title=f"lidm throughput, {results['rows']:,} rows of health.population ({results['machine']})",
        yaxis_title="rows/s",
        template="simple_white",
    )
    fig.write_html(path, include_plotlyjs="cdn")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--slow-rows", type=int, default=100_000, help="rows for the naive and dlt paths")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, from {', '.join(PATHS)}")
    ap.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4), help="LIDM_WORKERS for lidm")
    ap.add_argument("--central-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lidm-bench"), help="generated data, reused")
    ap.add_argument("--out", type=Path, default=Path("bench/results"), help="JSON and chart go here")
    ap.add_argument("--rules", action="store_true", help="also run bench/monitor_rules.py at this scale")
    ap.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    results: dict[str, Any] = {
        "rows": args.rows,
        "slow_rows": args.slow_rows,
        "workers": args.workers,
        "machine": f"{os.cpu_count()} cores",
        "paths": {},
    }
    with console.status(f"generating {args.rows:,} rows"):
        results["data"] = generate(args.workdir, args.rows)
        keyring_path(args.workdir)
        if "db" in paths:
            load_mariadb(args.workdir, args.rows)
    for path in paths:
        with console.status(f"running {path}"):
            results["paths"][path] = run_path(args, path)
    if args.rules:
        with console.status("running the monitoring rules"):
            results["rules"] = run_rules(args)
    out = Table(title=f"{args.rows:,} rows of health.population, {args.workers} workers")
    for col in ("path", "rows", "seconds", "rows/s", "vs COPY", "peak RSS (process, PSS of tree)", "note"):
        out.add_column(col)
    for row in report(results):
        out.add_row(*row)
    console.print(out)
    for key in ("drop_over_naive", "drop_over_dlt"):
        if key in results:
            console.print(f"lidm drop path / {key.removeprefix('drop_over_')}: {results[key]}x")
    for path in ("drop", "db"):
        r = results["paths"].get(path, {})
        if r.get("streamed_seconds"):
            final = ", ".join(f"{stmt.split(' (')[0]} {sec} s" for stmt, sec in r["slow_statements"])
            console.print(f"{path}: read, protected and staged in {r['streamed_seconds']:.1f} s; then {final}")
        if r.get("unchanged_rerun"):
            again = r["unchanged_rerun"]
            console.print(f"{path}: the same snapshot again: {again['status']} in {again['seconds']:.1f} s")
        if r.get("transform_us_per_row"):
            steps = ", ".join(f"{k} {v}" for k, v in r["transform_us_per_row"].items())
            console.print(f"{path}: a worker's µs per row: {steps}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(results, indent=2, default=str))
    chart(results, args.out / "throughput.html")
    console.print(f"written: {args.out / 'throughput.json'}, {args.out / 'throughput.html'}")


def run_rules(args: argparse.Namespace) -> dict[str, Any]:
    """bench/monitor_rules.py at this scale (population = rows, roster = 3% of it), its summary."""
    out = args.workdir / "rules.json"
    roster = max(1000, args.rows * 3 // 100)
    cmd = [sys.executable, str(Path(__file__).parent / "monitor_rules.py"), "--population", str(args.rows),
           "--roster", str(roster), "--with-token-indexes", "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        return {"failed": proc.stderr.strip().splitlines()[-1:]}
    return {"population": args.rows, "roster": roster, "results": json.loads(out.read_text())}


if __name__ == "__main__":
    main()
