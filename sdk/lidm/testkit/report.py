"""What a verification says: one result per check, and the report a department attaches to its request."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
CHECKS = (
    "mapping",  # every contract field mapped or declared absent
    "connects",  # the source answers (and a drop folder holds a complete drop)
    "columns",  # the source's columns are exactly the mapped and ignored ones
    "sample_validates",  # a sample extract passes the contract's validation
    "loads",  # a full run loads, with extracted = loaded + quarantined
    "keys_unique",  # the contract key identifies rows
    "quarantine",  # bad rows are in quarantine, each with a reason and its source row
    "watermark_boundary",  # incremental: the watermark is exact and ties at it are re-read
    "idempotent",  # running again (or re-delivering the drop) changes nothing
    "protection",  # the PII-leak scan finds nothing outside fields granted clear
)

# More invalid or duplicated rows than this in an extract points at the adapter (a wrong column, a
# wrong date format, the wrong key), not at a few typos in the department's data.
DEFAULT_TOLERANCE = 0.2


@dataclass
class CheckResult:
    name: str
    status: str
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """The conformance report a department attaches to its request to go live."""

    adapter: str
    contract: str
    contract_version: str
    source: str
    checks: list[CheckResult]
    started_at: str
    lidm_version: str

    @property
    def passed(self) -> bool:
        return not any(c.status == FAIL for c in self.checks)

    def counts(self) -> Counter[str]:
        return Counter(c.status for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "contract": self.contract,
            "contract_version": self.contract_version,
            "source": self.source,
            "passed": self.passed,
            "started_at": self.started_at,
            "lidm_version": self.lidm_version,
            "checks": [c.__dict__ for c in self.checks],
        }

    def write(self, folder: Path) -> Path:
        """<adapter>.md (to attach to the request) and <adapter>.json beside it; returns the .md path."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.adapter}.json").write_text(json.dumps(self.as_dict(), indent=2, ensure_ascii=False), "utf-8")
        path = folder / f"{self.adapter}.md"
        path.write_text(self.markdown(), "utf-8")
        return path

    def markdown(self) -> str:
        mark = {PASS: "✅ pass", WARN: "⚠️ warn", FAIL: "❌ fail", SKIP: "— skip"}
        lines = [
            f"# Conformance report: `{self.adapter}`",
            "",
            f"- contract: `{self.contract}` version {self.contract_version}",
            f"- source: {self.source}",
            f"- verified: {self.started_at} with lidm {self.lidm_version}",
            f"- result: **{'CONFORMS' if self.passed else 'DOES NOT CONFORM'}** "
            f"({', '.join(f'{n} {s}' for s, n in sorted(self.counts().items()))})",
            "",
            "| check | result | detail |",
            "|---|---|---|",
        ]
        lines += [f"| {c.name} | {mark[c.status]} | {c.detail.replace('|', '/')} |" for c in self.checks]
        return "\n".join(lines) + "\n"
