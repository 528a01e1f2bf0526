"""health.population: the population register, in the health commission's columns."""

from __future__ import annotations

from lidm_samples.sources import SampleTable, code, text, timestamp
from lidm_samples.world import World
from lidm_samples.write import population_rows

POPULATION_COLUMNS = {
    "sfzh": text(18),
    "xm": text(50),
    "xb": code(1),
    "csrq": code(8),
    "hh": text(32),
    "lxdh": text(20),
    "qxdm": code(6),
    "jddm": code(9),
    "jzdz": text(200),
    "rkzt": code(2),
    "gxsj": timestamp(),
}


def population(world: World, bad: int) -> SampleTable:
    rows = population_rows(world.people, bad=bad, seed=world.seed)
    kinds = {("duplicate_key" if k == "duplicate_id" else k): n for k, n in rows.bad_kinds.items()}
    return SampleTable(POPULATION_COLUMNS, rows.rows, kinds)
