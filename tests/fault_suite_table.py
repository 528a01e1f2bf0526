"""The fault suite's Markdown table: input/fault -> expected -> result, with totals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class CaseRecord:
    id: str
    fault: str
    expected: str
    result: str = ""
    status: str = "not run"
    bug: str | None = None
    batches: int = 0
    lost: int = 0
    leaks: int = 0
    seconds: float = 0.0


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(records: list[CaseRecord]) -> str:
    lines = [
        "# Fault and bad-input suite",
        "",
        "| # | case | input / fault | expected | result | status | batches | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(records, start=1):
        lines.append(
            f"| {i} | `{r.id}` | {_cell(r.fault)} | {_cell(r.expected)} | {_cell(r.result)} | {r.status} "
            f"| {r.batches} | {r.seconds:.1f} |"
        )
    passed = sum(r.status == "pass" for r in records)
    xfail = [r for r in records if r.status.startswith("xfail")]
    failed = [r for r in records if r.status in ("FAIL", "xpass")]
    lines += [
        "",
        f"**Totals:** cases tried {len(records)}, passed {passed}, known bugs (xfail) {len(xfail)}, "
        f"failed {len(failed)}; rows lost (extracted - loaded - quarantined) = {sum(r.lost for r in records)}; "
        f"leaks = {sum(r.leaks for r in records)}.",
    ]
    if xfail:
        lines += ["", "## Known bugs (xfail, strict)", ""]
        lines += [f"- `{r.id}`: {_cell(r.bug or '')}" for r in xfail]
    return "\n".join(lines) + "\n"


def write_table(records: list[CaseRecord], path: Path) -> str:
    text = render(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return text
