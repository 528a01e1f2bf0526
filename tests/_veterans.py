"""The new department of tests/veterans_department, added to a copy of the catalogue as its guide says: its contract
in contracts/veterans/, its consumer entry under `consumers:` in contracts/consumers.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

DEPARTMENT = Path(__file__).resolve().parent / "veterans_department"
FEED = "veterans.entitled_persons"
CONSUMERS = DEPARTMENT / "consumers.yaml"


def add_department(contracts: Path, contract_text: str | None = None) -> None:
    """Put the department's contract (or `contract_text`, the guide's copy) and its consumer into `contracts`."""
    (contracts / "veterans").mkdir(exist_ok=True)
    target = contracts / "veterans" / "entitled_persons.yaml"
    if contract_text is None:
        shutil.copy(DEPARTMENT / "contracts" / "veterans" / "entitled_persons.yaml", target)
    else:
        target.write_text(contract_text, "utf-8")
    add_consumers(contracts, CONSUMERS.read_text("utf-8"))


def add_consumers(contracts: Path, block: str) -> None:
    """Add the entries of a `consumers:` block to the catalogue's consumers.yaml, as the platform team edits it."""
    head, *entries = block.rstrip("\n").splitlines()
    assert head == "consumers:" and all(line.startswith("  ") for line in entries), block
    path = contracts / "consumers.yaml"
    text = path.read_text("utf-8")
    assert text.count("\nconsumers:\n") == 1
    path.write_text(text.replace("\nconsumers:\n", "\nconsumers:\n" + "\n".join(entries) + "\n"), "utf-8")
