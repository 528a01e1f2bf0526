"""Resident identity numbers (GB 11643-1999), checked a whole column at a time."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lidm import dates

WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
CHECK_CHARS = np.frombuffer(b"10X98765432", dtype=np.uint8)
_FULLWIDTH = {chr(0xFF10 + i): str(i) for i in range(10)} | {"Ｘ": "X", "ｘ": "X"}


def check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def normalize(values: pa.Array) -> pa.Array:
    """Canonical 18-character form of what the standard allows: trimmed, full-width digits as ASCII,
    a lowercase x as X, and a 15-digit number of the 1984 scheme upgraded to 18 characters (century 19
    inserted after the division code, check character computed), as GB 11643-1999 prescribes."""
    out = pc.utf8_trim_whitespace(values)
    for wide, ascii_ in _FULLWIDTH.items():
        out = pc.replace_substring(out, wide, ascii_)
    return upgrade_15(pc.utf8_upper(out))


def upgrade_15(values: pa.Array) -> pa.Array:
    """15-digit legacy numbers become 18-character ones; anything else is returned unchanged."""
    legacy = pc.fill_null(pc.match_substring_regex(values, r"^[0-9]{15}$"), False)
    idx = np.flatnonzero(legacy.to_numpy(zero_copy_only=False))
    if not len(idx):
        return values
    old = pc.take(values, pa.array(idx))
    body = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(old, 0, 6), pa.scalar("19"), pc.utf8_slice_codeunits(old, 6, 15), ""
    )
    digits = _byte_matrix(body.cast(pa.string()), 17).astype(np.int64) - 48
    checks = pa.array(list(CHECK_CHARS[(digits @ WEIGHTS) % 11].tobytes().decode("ascii")), type=pa.string())
    upgraded = pc.binary_join_element_wise(body, checks, "")
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return pc.replace_with_mask(values.cast(pa.string()), legacy, upgraded)


def problems(values: pa.Array, today: dt.date | None = None) -> dict[str, np.ndarray]:
    """Boolean masks (True = bad) per problem kind for normalized, non-null ID numbers.

    Kinds: format (not 17 digits + digit/X), checksum, birth_date (impossible or in the future).
    Nulls are not flagged here: 'required' is checked elsewhere. `today` is the city's date (a person born
    today in Beijing time is born on a day that UTC may not have reached yet); the machine's when omitted.
    """
    n = len(values)
    nulls = values.is_null().to_numpy(zero_copy_only=False)
    fmt_ok = pc.fill_null(pc.match_substring_regex(values, r"^[0-9]{17}[0-9X]$"), True)
    fmt_ok_np = fmt_ok.to_numpy(zero_copy_only=False) & ~nulls
    checksum_bad = np.zeros(n, dtype=bool)
    birth_bad = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(fmt_ok_np)
    if len(idx):
        good = pc.take(values, pa.array(idx))
        # Well-formed values are 18 ASCII bytes each: view them as an (m, 18) byte matrix.
        raw = _byte_matrix(good.cast(pa.string()), 18)
        digits = raw[:, :17].astype(np.int64) - 48
        expected = CHECK_CHARS[(digits @ WEIGHTS) % 11]
        checksum_bad[idx] = expected != raw[:, 17]
        births = dates.parse(pc.utf8_slice_codeunits(good, 6, 14), ("%Y%m%d",))
        today = np.datetime64(today.isoformat(), "s") if today else np.datetime64("today", "s")
        b = births.to_numpy(zero_copy_only=False)
        birth_bad[idx] = np.isnat(b) | (b > today) | (b < np.datetime64("1890-01-01", "s"))
    return {"format": ~fmt_ok_np & ~nulls, "checksum": checksum_bad, "birth_date": birth_bad}


def _byte_matrix(values: pa.StringArray, width: int) -> np.ndarray:
    """Zero-copy (m, width) view of a string array whose values are all `width` ASCII bytes."""
    if isinstance(values, pa.ChunkedArray):
        values = pa.concat_arrays(values.chunks)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset : values.offset + len(values) + 1]
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.reshape(-1, width)


def mask(values: pa.Array) -> pa.Array:
    """Display form 4301**************: the city (first four digits) kept, the other fourteen hidden.

    Not the district, birth date, sequence or check character: a consumer is often granted birth date, gender
    and district beside the mask, and those already pin a number down to the sequence. Showing the gender
    digit and the check character (4301************13) would cut the remaining 500 candidates to about 9;
    showing digits 15-18 (the former 430102********1234) left exactly one. See lidm.contracts.disclosure.
    """
    return pc.binary_join_element_wise(pc.utf8_slice_codeunits(values, 0, 4), pa.scalar("*" * 14), "")
