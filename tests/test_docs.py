"""The adapter guide shows the real adapter files, so a team copying from it copies what passes the kit."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "write-your-adapter.md"


def _example(heading: str) -> str:
    text = GUIDE.read_text("utf-8")
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_worked_examples_are_the_reference_adapters():
    assert _example("## Worked example A") == (ROOT / "adapters/civil_affairs/low_income_roster.py").read_text("utf-8")
    assert _example("## Worked example B") == (ROOT / "adapters/health/population.py").read_text("utf-8")


def test_the_guide_names_every_check_of_the_kit():
    from lidm.testkit import CHECKS

    text = GUIDE.read_text("utf-8")
    assert all(f"| `{check}` |" in text for check in CHECKS)
    assert "README" not in text or "write-your-adapter" in (ROOT / "README.md").read_text("utf-8")


def test_the_guides_sample_declaration_is_the_one_the_tests_verify():
    text = GUIDE.read_text("utf-8")
    section = text[text.index("### Synthetic rows for a new dataset") :]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert example == (ROOT / "tests/veterans_department/veterans/entitled_persons.sample.yaml").read_text("utf-8")
