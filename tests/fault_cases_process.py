"""Fault-suite cases (issue 14): process. Each case builds one situation and returns what happened; the suite then
checks the batch invariant and scans every message for personal numbers (see _faults.assert_whole)."""

from __future__ import annotations

from _faults import Case

CASES: list[Case] = []
