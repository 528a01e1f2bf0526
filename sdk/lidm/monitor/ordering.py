"""In which order one collect applies a department's answers: per warning, oldest answer first.

Files are taken in the order they arrived (modification time on the channel, then name), but a name says little:
Windows names a corrected copy ``…20261204 (1).csv``, which sorts before its original. So answers for the same
warning are applied in the order of the disposition's own time (``disposed_at``), then the file's arrival, then
the row; and a file is applied in as few steps as that allows (one, unless another file holds an older answer for
one of its warnings). An answer that arrives in a later collect and is older than one already taken is refused
as superseded (``monitor.checks``), never applied over the newer one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

Step = tuple[int, list[int]]  # (file index, row indices of that file), applied as one transaction


def schedule(files: Sequence[Sequence[tuple[str | None, datetime | None]]]) -> list[Step]:
    """Steps applying every row of ``files`` (in arrival order; each row its warning id and time) so that answers
    for one warning run oldest first; a row without a warning or a readable time waits for nothing."""
    chains: dict[str, list[tuple[datetime, int, int]]] = {}
    for f, rows in enumerate(files):
        for r, (wid, at) in enumerate(rows):
            if wid and at is not None:
                chains.setdefault(wid, []).append((at, f, r))
    before: dict[tuple[int, int], tuple[int, int]] = {}  # a row -> the answer for its warning that must go first
    for chain in chains.values():
        chain.sort()
        for (_, f0, r0), (_, f1, r1) in itertools.pairwise(chain):
            before[(f1, r1)] = (f0, r0)
    pending = [list(range(len(rows))) for rows in files]
    done: set[tuple[int, int]] = set()
    steps: list[Step] = []
    while any(pending):
        for f, rows in enumerate(pending):
            step: list[int] = []
            for r in rows:
                first = before.get((f, r))
                # rows of one step run in row order, so an earlier row of the same step has gone first
                if first is None or first in done:
                    step.append(r)
                    done.add((f, r))
            if step:
                steps.append((f, step))
                taken = set(step)
                pending[f] = [r for r in rows if r not in taken]
    return steps
