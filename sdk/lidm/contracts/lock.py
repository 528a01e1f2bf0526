"""The published catalogue: a snapshot of every contract as last released, for the breaking-change gate.

`lidm contracts publish` writes contracts/catalog.lock.json after a release; `lidm contracts check` (and
the test suite, hence CI) compares the working contracts with it and fails when a contract changed
incompatibly without a major version bump, or changed at all without a version bump.
"""

from __future__ import annotations

import json
from pathlib import Path

from lidm.contracts.diff import ContractDiff, diff
from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import Contract

LOCK = "catalog.lock.json"


def _snapshot(c: Contract) -> dict:
    data = c.model_dump(mode="json", exclude={"source_file"})
    for g in data["grants"]:
        g.pop("line", None)
    return data


def write_lock(catalog: ContractCatalog, directory: Path) -> Path:
    """Record every contract as published now."""
    path = directory / LOCK
    body = {c.id: _snapshot(c) for c in catalog}
    path.write_text(json.dumps(body, ensure_ascii=False, indent=1, sort_keys=True) + "\n", "utf-8")
    return path


def read_lock(directory: Path) -> dict[str, Contract]:
    path = directory / LOCK
    if not path.exists():
        return {}
    return {cid: Contract.model_validate(data) for cid, data in json.loads(path.read_text("utf-8")).items()}


def check_against_lock(catalog: ContractCatalog, directory: Path) -> list[tuple[ContractDiff, str]]:
    """Contracts whose version does not fit their changes since publication, with the reason."""
    published = read_lock(directory)
    problems = []
    for c in catalog:
        if c.id in published:
            d = diff(published[c.id], c)
            reason = d.version_problem()
            if reason:
                problems.append((d, reason))
    return problems
