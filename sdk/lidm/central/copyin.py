"""A stage's rows as COPY … FROM STDIN input: PostgreSQL's binary format where it can, else CSV.

Binary is cheaper at both ends (bench/throughput.py, 1M protected rows of health.population: the server takes it
in a third of CSV's time into an index-free stage, and the rows are 381 bytes instead of 640): no quoting, no hex for
the tokens and sealed rows, nothing to parse. It is rendered column-wise: each column becomes one Arrow binary array
of its fields (a 4-byte length, then the value, or -1 for null), and Arrow joins a row's fields in C++ — no Python
loop per row or per value. A stage with a column type this module has no encoder for (``numeric``) takes CSV; so
does every stage where the server is not PostgreSQL (SQLite inserts rows instead).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

from lidm.central.schema import BatchId

BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
BINARY_TRAILER = (-1).to_bytes(2, "big", signed=True)
_NULL = np.frombuffer((-1).to_bytes(4, "big", signed=True), np.uint8)
_DAYS_2000 = 10_957  # 1970-01-01 to 2000-01-01, PostgreSQL's epoch for date and timestamp
_MICROS_2000 = _DAYS_2000 * 86_400 * 1_000_000
_EMPTY = pa.scalar(b"", pa.binary())
Encoder = Callable[[pa.Array], list[pa.Array]]  # a column's values -> its fields: binary arrays joined row-wise


class CopyInput:
    """How one stage's rows go to COPY: its columns in order, the format, and the rendering (picklable, so a forked
    worker renders its own chunks)."""

    def __init__(self, stage: sa.Table, dialect: sa.Dialect, hex_columns: Collection[str] = ()) -> None:
        self.columns = [c.name for c in stage.columns]
        self.hex_columns = list(hex_columns)  # CSV: text columns Python holds as hex for a bytea column
        kinds = [_kind(c.type, dialect) for c in stage.columns]
        self.kinds = kinds if all(k is not None for k in kinds) else None
        self.format = "binary" if self.kinds is not None else "csv"

    def statement(self, table: str) -> str:
        """The COPY statement `table` (already quoted) takes this input with."""
        quoted = ", ".join(f'"{c}"' for c in self.columns)
        return f"COPY {table} ({quoted}) FROM STDIN (FORMAT {self.format})"

    def render(self, table: pa.Table) -> bytes:
        """A chunk of protected rows (its columns by name; others ignored) as one COPY's input."""
        table = table.select(self.columns)
        if self.kinds is None:
            return to_csv(table, self.hex_columns)
        if table.num_rows == 0:
            return b""
        n = table.num_rows
        count = _bytes_of(np.broadcast_to(np.frombuffer(len(self.columns).to_bytes(2, "big"), np.uint8), (n, 2)))
        pieces = [p for k, c in zip(self.kinds, table.columns, strict=True) for p in _ENCODERS[k](c.combine_chunks())]
        rows = pc.binary_join_element_wise(count, *pieces, _EMPTY)
        offsets = np.frombuffer(rows.buffers()[1], np.int32, n + 1, rows.offset * 4)
        body = memoryview(rows.buffers()[2])[int(offsets[0]) : int(offsets[-1])]
        return b"".join((BINARY_HEADER, body, BINARY_TRAILER))


# SQLAlchemy type -> the binary encoder, first match wins (BigInteger before Integer: a subclass before its base).
_KINDS: tuple[tuple[type[sa.types.TypeEngine], str], ...] = (
    (sa.LargeBinary, "bytea"),
    (sa.Uuid, "uuid"),
    (sa.Boolean, "bool"),
    (sa.BigInteger, "int8"),
    (sa.SmallInteger, "int2"),
    (sa.Integer, "int4"),
    (sa.DateTime, "timestamp"),  # with or without time zone: both are microseconds since 2000-01-01 00:00 (UTC)
    (sa.Date, "date"),
    (sa.String, "text"),  # Text and Enum too
)


def _kind(type_: sa.types.TypeEngine, dialect: sa.Dialect) -> str | None:
    """The binary encoder a stage column takes, by the type the server has for it; None: none (CSV then)."""
    if isinstance(type_, BatchId):
        return "uuid" if dialect.name == "postgresql" else "text"
    if isinstance(type_, sa.TypeDecorator):
        type_ = type_.load_dialect_impl(dialect)
    return next((kind for base, kind in _KINDS if isinstance(type_, base)), None)  # numeric and the rest: CSV


_DIGITS = b"0123456789abcdef"
# byte -> its two hex digits as one little-endian uint16, so one gather writes both characters
_HEX16 = np.frombuffer(b"".join(bytes((_DIGITS[v >> 4], _DIGITS[v & 15])) for v in range(256)), "<u2")
_PREFIX16 = np.frombuffer(b"\\x", "<u2")[0]


def to_csv(table: pa.Table, hex_columns: Collection[str] = ()) -> bytes:
    """COPY … FROM STDIN (FORMAT csv) input, without a header.

    bytea columns go in bytea's text form ``\\x`` + hex: binary ones (a sealed row) hex-encoded here, and
    `hex_columns` (tokens, which Python holds as hex text) prefixed. Column-wise, no Python loop per value."""
    cols = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_binary(col.type):
            col = bytea_text(col.combine_chunks())
        elif name in hex_columns:
            col = pc.binary_join_element_wise(pa.scalar("\\x"), col, "")
        cols.append(col)
    buf = pa.BufferOutputStream()
    pacsv.write_csv(
        pa.table(cols, names=table.column_names), buf, pacsv.WriteOptions(include_header=False, quoting_style="needed")
    )
    return buf.getvalue().to_pybytes()


def bytea_text(values: pa.Array) -> pa.Array:
    """Binary values as PostgreSQL's bytea text (``\\x0a1b…``); null stays null. Vectorised with numpy: every byte
    becomes its two hex digits in one table lookup (a uint16 each), then ``\\x`` (one more) goes before each value."""
    n = len(values)
    valid = np.asarray(values.is_valid(), dtype=bool)
    values = values.fill_null(b"")
    offsets = np.frombuffer(values.buffers()[1], np.int32, n + 1, values.offset * 4).astype(np.int64)
    data = values.buffers()[2]
    start, end = int(offsets[0]), int(offsets[-1])
    body = np.frombuffer(data, np.uint8)[start:end] if data is not None and end > start else np.empty(0, np.uint8)
    pairs = np.insert(_HEX16[body], offsets[:-1][valid] - start, _PREFIX16)  # "\\x" before each valid value
    before = np.concatenate(([0], np.cumsum(valid)))  # valid values before each one: one prefix pair each
    new_offsets = (2 * (offsets - start + before)).astype(np.int32)
    out = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(new_offsets), pa.py_buffer(pairs.view(np.uint8))])
    return pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))


# ----------------------------------------------------------------------------------------------- the fields


def _fixed(values: np.ndarray, valid: np.ndarray | None = None) -> list[pa.Array]:
    """Fields of a fixed-width type: `values` is (rows, width) uint8, big-endian already; invalid rows become -1."""
    n, width = values.shape
    out = np.empty((n, 4 + width), np.uint8)
    out[:, :4] = np.frombuffer(width.to_bytes(4, "big"), np.uint8)
    out[:, 4:] = values
    if valid is None or valid.all():
        return [_bytes_of(out)]
    sizes = np.where(valid, 4 + width, 4).astype(np.int32)
    offsets = np.concatenate(([0], np.cumsum(sizes, dtype=np.int32))).astype(np.int32)
    out[~valid, :4] = _NULL
    keep = np.ones((n, 4 + width), bool)
    keep[~valid, 4:] = False
    return [_binary(offsets, out[keep])]


def _binary(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """A binary array of len(offsets) - 1 values, none null, from its int32 offsets and its bytes."""
    buffers = [None, pa.py_buffer(np.ascontiguousarray(offsets)), pa.py_buffer(np.ascontiguousarray(data))]
    return pa.Array.from_buffers(pa.binary(), len(offsets) - 1, buffers)


def _valid(values: pa.Array) -> np.ndarray:
    return np.asarray(values.is_valid(), dtype=bool)


def _varying(values: pa.Array) -> list[pa.Array]:
    """Fields of a variable-length value (text as UTF-8, bytea as its bytes): its length, then the bytes."""
    valid = _valid(values)
    values = values.cast(pa.binary()) if not pa.types.is_binary(values.type) else values
    offsets = np.frombuffer(values.buffers()[1], np.int32, len(values) + 1, values.offset * 4)
    sizes = np.where(valid, np.diff(offsets), -1).astype(">i4")
    return [_bytes_of(sizes.view(np.uint8).reshape(-1, 4)), values.fill_null(b"")]


def _bytes_of(values: np.ndarray) -> pa.Array:
    """(rows, width) uint8 as a binary array of one `width`-byte value per row."""
    n, width = values.shape
    return _binary(np.arange(0, (n + 1) * width, width, dtype=np.int32), values)


def _text(values: pa.Array) -> list[pa.Array]:
    if not (pa.types.is_string(values.type) or pa.types.is_binary(values.type)):
        values = pc.cast(values, pa.string())  # as CSV would have written it
    return _varying(values)


def _bytea(values: pa.Array) -> list[pa.Array]:
    """Bytes as they are (a sealed row); text as the hex it spells (tokens and digests, as Python holds them)."""
    t = values.type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return _varying(values)
    return _varying(unhex(values))


def unhex(values: pa.Array) -> pa.Array:
    """Hex text (tokens, row digests, as Python holds them) as the bytes it spells; null stays null."""
    values = values.cast(pa.string())
    valid = _valid(values) if values.null_count else None
    if values.offset or values.null_count:
        values = pa.concat_arrays([values.fill_null("")])  # offset 0, no nulls: its buffers as they are read
    offsets = np.frombuffer(values.buffers()[1], np.int32, len(values) + 1)
    data = values.buffers()[2]
    text = data.to_pybytes()[: offsets[-1]] if data is not None else b""
    try:
        if (np.diff(offsets) & 1).any() or (text and not text.isalnum()):  # bytes.isalnum: ASCII only
            raise ValueError
        packed = np.frombuffer(bytes.fromhex(text.decode("ascii")), np.uint8)
    except ValueError:
        raise ValueError("a bytea column staged from text holds something that is not hex") from None
    out = _binary((offsets // 2).astype(np.int32), packed)
    return out if valid is None else pc.if_else(pa.array(valid), out, pa.scalar(None, pa.binary()))


def _uuid(values: pa.Array) -> list[pa.Array]:
    values = values.cast(pa.string())
    distinct = pc.unique(values.drop_null())
    raw = np.frombuffer(b"".join(uuid.UUID(v).bytes for v in distinct.to_pylist()), np.uint8).reshape(-1, 16)
    where = pc.index_in(values, distinct).fill_null(0).to_numpy(zero_copy_only=False)
    table = raw if len(raw) else np.zeros((1, 16), np.uint8)
    return _fixed(table[where], _valid(values))


def _numbers(values: pa.Array, type_: pa.DataType, dtype: str) -> list[pa.Array]:
    valid = _valid(values)
    data = pc.cast(values, type_).fill_null(pa.scalar(False if type_ == pa.bool_() else 0, type_))
    data = data.to_numpy(zero_copy_only=False).astype(dtype)
    return _fixed(data.view(np.uint8).reshape(len(values), -1), valid)


def _bool(values: pa.Array) -> list[pa.Array]:
    return _numbers(values, pa.bool_(), "u1")


def _date(values: pa.Array) -> list[pa.Array]:
    valid = _valid(values)
    days = pc.cast(values, pa.date32()).cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
    return _fixed((days.astype(np.int64) - _DAYS_2000).astype(">i4").view(np.uint8).reshape(len(values), 4), valid)


def _timestamp(values: pa.Array) -> list[pa.Array]:
    valid = _valid(values)
    if not pa.types.is_timestamp(values.type):
        values = pc.cast(values, pa.timestamp("us"))
    micros = values.cast(pa.timestamp("us", values.type.tz)).cast(pa.int64()).fill_null(0).to_numpy()
    return _fixed((micros - _MICROS_2000).astype(">i8").view(np.uint8).reshape(len(values), 8), valid)


def _nulls(encode: Encoder) -> Encoder:
    """An all-null column (pa.null(), as the stage's _retired_batch) whatever the type: -1 for every row."""

    def encoder(values: pa.Array) -> list[pa.Array]:
        if pa.types.is_null(values.type):
            return [_bytes_of(np.broadcast_to(_NULL, (len(values), 4)))]
        return encode(values)

    return encoder


_ENCODERS: dict[str, Encoder] = {
    "text": _nulls(_text),
    "bytea": _nulls(_bytea),
    "uuid": _nulls(_uuid),
    "bool": _nulls(_bool),
    "int2": _nulls(lambda v: _numbers(v, pa.int16(), ">i2")),
    "int4": _nulls(lambda v: _numbers(v, pa.int32(), ">i4")),
    "int8": _nulls(lambda v: _numbers(v, pa.int64(), ">i8")),
    "date": _nulls(_date),
    "timestamp": _nulls(_timestamp),
}
