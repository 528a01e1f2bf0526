"""The stage's COPY input: the binary format loads exactly what CSV loads, on the real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
import sqlalchemy as sa

from lidm.central.copyin import CopyInput, to_csv, unhex
from lidm.central.schema import BatchId, Digest, Token

pytestmark = pytest.mark.postgres

SHANGHAI = ZoneInfo("Asia/Shanghai")
BATCH = str(uuid.uuid4())


def _stage(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("token", Token()),
        sa.Column("digest", Digest()),
        sa.Column("sealed", sa.LargeBinary),
        sa.Column("name_masked", sa.Text),
        sa.Column("code", sa.String(9)),
        sa.Column("birth", sa.Date),
        sa.Column("updated", sa.DateTime),
        sa.Column("seen", sa.DateTime(timezone=True)),
        sa.Column("count", sa.BigInteger),
        sa.Column("small", sa.Integer),
        sa.Column("flag", sa.Boolean),
        sa.Column("_batch_id", BatchId()),
        sa.Column("_retired_batch", sa.String(36)),
    )


def _rows() -> pa.Table:
    """Every edge a department's rows bring: nulls, empty values, CSV's special characters, dates either side of
    PostgreSQL's epoch (2000-01-01), negative and large numbers, zero bytes."""
    n = 7
    hexes = ["00" * 32, "ff" * 32, "0a1b2c3d" * 8, None, "deadbeef" * 8, "", "ABCDEF01" * 8]
    return pa.table(
        {
            "token": pa.array(hexes, pa.string()),
            "digest": pa.array(["12" * 32] * n, pa.string()),
            "sealed": pa.array([b"\x03\x00\x01", b"", None, b"\x00" * 40, b'\\x00,\n"', bytes(range(256)), b"a"]),
            "name_masked": pa.array(["张*", "", None, 'a,"b"\nc', "\\N", "x\ty", "王**"]),
            "code": pa.array(["430102001", None, "", "430102002", "1", "2", "3"]),
            "birth": pa.array(
                [
                    dt.date(1900, 1, 1),
                    dt.date(1999, 12, 31),
                    dt.date(2000, 1, 1),
                    None,
                    dt.date(2026, 12, 6),
                    dt.date(1969, 12, 31),
                    dt.date(2100, 2, 28),
                ]
            ),
            "updated": pa.array(
                [
                    dt.datetime(2026, 11, 27, 8, 0, 0, 123456),
                    None,
                    dt.datetime(1999, 12, 31, 23, 59, 59),
                    dt.datetime(2000, 1, 1),
                    dt.datetime(1950, 6, 1, 12),
                    dt.datetime(2026, 1, 1),
                    dt.datetime(2038, 1, 20),
                ]
            ),
            "seen": pa.array(
                [
                    dt.datetime(2026, 11, 27, 8, tzinfo=SHANGHAI),
                    None,
                    dt.datetime(1999, 12, 31, 23, tzinfo=SHANGHAI),
                    dt.datetime(2000, 1, 1, tzinfo=SHANGHAI),
                    dt.datetime(1960, 1, 1, tzinfo=SHANGHAI),
                    dt.datetime(2026, 6, 1, 0, 0, 1, tzinfo=SHANGHAI),
                    dt.datetime(2030, 1, 1, tzinfo=SHANGHAI),
                ],
                pa.timestamp("us", "Asia/Shanghai"),
            ),
            "count": pa.array([0, -1, None, 2**62, -(2**62), 7, 1]),
            "small": pa.array([1, None, -(2**31), 2**31 - 1, 0, 5, 6]),
            "flag": pa.array([True, False, None, True, False, True, None]),
            "_batch_id": pa.array([BATCH] * 6 + [None]),
            "_retired_batch": pa.nulls(n),
        }
    )


@pytest.fixture
def stages(pg_clean_url: str) -> Iterator[tuple[sa.Engine, sa.Table, sa.Table]]:
    engine = sa.create_engine(pg_clean_url)
    by_csv, by_binary = _stage("by_csv"), _stage("by_binary")
    with engine.begin() as conn:
        by_csv.create(conn)
        by_binary.create(conn)
    yield engine, by_csv, by_binary
    engine.dispose()


def _copy(engine: sa.Engine, statement: str, data: bytes) -> None:
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(statement) as copy:
            copy.write(data)


def _read(engine: sa.Engine, table: sa.Table) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.small.nulls_first(), table.c.code))]


def test_binary_copy_loads_exactly_what_csv_loads(stages: tuple[sa.Engine, sa.Table, sa.Table]) -> None:
    engine, by_csv, by_binary = stages
    rows = _rows()
    binary = CopyInput(by_binary, engine.dialect, ["token", "digest"])
    assert binary.format == "binary"
    _copy(
        engine,
        f"COPY by_csv ({', '.join(rows.column_names)}) FROM STDIN (FORMAT csv)",
        to_csv(rows, ["token", "digest"]),
    )
    _copy(engine, binary.statement("by_binary"), binary.render(rows))
    loaded = _read(engine, by_binary)
    assert loaded == _read(engine, by_csv)
    assert len(loaded) == rows.num_rows
    # and what was meant, not only what CSV happens to do: a token's bytes, a date before 2000, a null, a zero byte
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT token, birth, sealed, _batch_id FROM by_binary WHERE small = 1")).one()
    assert (
        bytes(got.token) == b"\x00" * 32 and got.birth == dt.date(1900, 1, 1) and bytes(got.sealed) == b"\x03\x00\x01"
    )
    assert str(got._batch_id) == BATCH


def test_a_slice_and_chunks_render_like_the_whole(stages: tuple[sa.Engine, sa.Table, sa.Table]) -> None:
    """Workers hand over slices and multi-chunk tables: offsets inside Arrow's buffers must not shift a value."""
    engine, by_csv, by_binary = stages
    rows = _rows()
    binary = CopyInput(by_binary, engine.dialect, ["token", "digest"])
    _copy(engine, binary.statement("by_binary"), binary.render(rows.slice(2, 4)))
    chunked = pa.concat_tables([rows.slice(0, 2), rows.slice(6, 1)])
    _copy(engine, binary.statement("by_binary"), binary.render(chunked))
    _copy(engine, binary.statement("by_csv"), binary.render(rows))
    assert sorted(_read(engine, by_binary), key=repr) == sorted(_read(engine, by_csv), key=repr)


def test_a_stage_with_a_type_without_an_encoder_takes_csv(pg_clean_url: str) -> None:
    engine = sa.create_engine(pg_clean_url)
    stage = sa.Table("with_money", sa.MetaData(), sa.Column("amount", sa.Numeric(18, 4)), sa.Column("who", Token()))
    with engine.begin() as conn:
        stage.create(conn)
    copy_input = CopyInput(stage, engine.dialect, ["who"])
    assert copy_input.format == "csv"
    _copy(engine, copy_input.statement("with_money"), copy_input.render(pa.table({"amount": ["12.5"], "who": ["ab"]})))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT amount::text, who FROM with_money")).one() == ("12.5000", b"\xab")
    engine.dispose()


def test_text_that_is_not_hex_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError) as caught:
        unhex(pa.array(["11010519491231002X"]))
    assert "11010519491231002X" not in str(caught.value)
    assert unhex(pa.array(["0aff", None, ""])).to_pylist() == [b"\x0a\xff", None, b""]


def test_large_and_fixed_width_arrow_types_render_like_the_plain_ones() -> None:
    """A reader may hand over large_string / large_binary / fixed-size binary (64-bit offsets, no offsets at all):
    the bytes sent must be those of the plain types, never offsets misread as values."""
    stage = sa.Table(
        "s", sa.MetaData(), sa.Column("t", Token()), sa.Column("b", sa.LargeBinary), sa.Column("x", sa.Text)
    )
    from sqlalchemy.dialects import postgresql

    copy_input = CopyInput(stage, postgresql.dialect(), ["t"])
    plain = pa.table({"t": ["0aff", None], "b": pa.array([b"ab", None]), "x": ["张三", None]})
    wide = pa.table(
        {
            "t": pa.array(["0aff", None], pa.large_string()),
            "b": pa.array([b"ab", None], pa.binary(2)),
            "x": pa.array(["张三", None], pa.large_string()),
        }
    )
    assert copy_input.render(wide) == copy_input.render(plain)
