"""pytest plugin: `pytest --lidm-adapter NAME [--lidm-connections FILE|JSON] [--lidm-report DIR]` runs the
conformance checks of the named adapters as tests, instead of the collected test files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lidm.testkit.checks import verify
from lidm.testkit.report import CHECKS, FAIL, SKIP, Report


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lidm", "lidm adapter conformance")
    group.addoption("--lidm-adapter", action="append", default=[], metavar="NAME", help="adapter to verify")
    group.addoption(
        "--lidm-connections", default=None, metavar="FILE|JSON", help="source connections (else LIDM_CONNECTIONS)"
    )
    group.addoption("--lidm-report", default=None, metavar="DIR", help="write NAME.md and NAME.json reports here")


def load_connections(value: str | None) -> dict[str, str] | None:
    """--lidm-connections: a JSON object, or a JSON file such as the connections.json of `lidm sample`."""
    if not value:
        return None
    text = Path(value).read_text("utf-8") if not value.lstrip().startswith("{") else value
    return json.loads(text)


class CheckItem(pytest.Item):
    def __init__(self, *, adapter: str, check: str, reports: dict[str, Report], options: dict[str, Any], **kw: Any):
        super().__init__(**kw)
        self.adapter, self.check, self.reports, self.options = adapter, check, reports, options

    def runtest(self) -> None:
        if self.adapter not in self.reports:
            report = verify(self.adapter, connections=self.options["connections"])
            self.reports[self.adapter] = report
            if self.options["report_dir"]:
                out = Path(self.options["report_dir"])
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{self.adapter}.md").write_text(report.markdown(), "utf-8")
                (out / f"{self.adapter}.json").write_text(json.dumps(report.as_dict(), indent=2), "utf-8")
        report = self.reports[self.adapter]
        found = [c for c in report.checks if c.name == self.check]
        if not found:
            raise CheckFailed(f"{self.check} did not run (an earlier check failed)")
        if found[0].status == SKIP:
            pytest.skip(found[0].detail)
        if found[0].status == FAIL:
            raise CheckFailed(found[0].detail)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, CheckFailed):
            return f"{self.adapter} {self.check}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int, str]:
        return f"lidm-adapter:{self.adapter}", 0, f"{self.adapter}::{self.check}"


class CheckFailed(Exception):
    pass


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    names = config.getoption("--lidm-adapter")
    if not names:
        return
    options = {
        "connections": load_connections(config.getoption("--lidm-connections")),
        "report_dir": config.getoption("--lidm-report"),
    }
    reports: dict[str, Report] = {}
    generated = [
        CheckItem.from_parent(
            session, name=f"{name}::{check}", adapter=name, check=check, reports=reports, options=options
        )
        for name in names
        for check in CHECKS
    ]
    config.hook.pytest_deselected(items=list(items))
    items[:] = generated
