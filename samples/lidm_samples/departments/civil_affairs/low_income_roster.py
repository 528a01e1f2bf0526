"""civil_affairs.low_income_roster: the low-income roster, a daily GBK CSV drop."""

from __future__ import annotations

from lidm_samples.sources import SampleTable, text
from lidm_samples.world import World
from lidm_samples.write import ROSTER_HEADER, roster_rows


def low_income_roster(world: World, bad: int) -> SampleTable:
    rows = roster_rows(world.roster, bad=bad, seed=world.seed)
    kinds = {("duplicate_key" if k == "duplicate_id" else k): n for k, n in rows.bad_kinds.items()}
    return SampleTable({c: text() for c in ROSTER_HEADER}, rows.rows, kinds)
