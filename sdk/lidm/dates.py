"""Strict date parsing for whole columns.

Arrow's strptime rolls impossible dates over (2026-02-30 becomes 2026-03-02); a department's typo
must be quarantined, not silently moved, so every parse is checked by formatting it back.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_LEADING_ZEROS = r"(^|\D)0+(\d)"


def _unpadded(values: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(values, _LEADING_ZEROS, r"\1\2")


def parse(text: pa.Array, formats: tuple[str, ...]) -> pa.Array:
    """Timestamps (unit s) for values that match one of the formats exactly; null for everything else."""
    out = pa.nulls(len(text), pa.timestamp("s"))
    for fmt in formats:
        parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
        same = pc.equal(_unpadded(pc.strftime(parsed, format=fmt)), _unpadded(text))
        out = pc.coalesce(out, pc.if_else(pc.fill_null(same, False), parsed, pa.nulls(len(text), pa.timestamp("s"))))
    return out


def to_iso(text: pa.Array, formats: tuple[str, ...]) -> pa.Array:
    """ISO dates (YYYY-MM-DD) for parseable values; the original text for the rest, so validation names it."""
    iso = pc.strftime(parse(text, formats), format="%Y-%m-%d")
    return pc.coalesce(iso, text)
