"""pytest plugin: `pytest --lidm-adapter NAME [--lidm-connections FILE|JSON] [--lidm-report DIR]` runs the
conformance checks of the named adapters as tests, instead of the collected test files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lidm.testkit.checks import verify
from lidm.testkit.connections import load_connections
from lidm.testkit.report import CHECKS, Report
from lidm.testkit.suite import assert_check


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lidm", "lidm adapter conformance")
    group.addoption("--lidm-adapter", action="append", default=[], metavar="NAME", help="adapter to verify")
    group.addoption(
        "--lidm-connections", default=None, metavar="FILE|JSON", help="source connections (else LIDM_CONNECTIONS)"
    )
    group.addoption("--lidm-report", default=None, metavar="DIR", help="write NAME.md and NAME.json reports here")


class CheckItem(pytest.Item):
    def __init__(self, *, adapter: str, check: str, reports: dict[str, Report], options: dict[str, Any], **kw: Any):
        super().__init__(**kw)
        self.adapter, self.check, self.reports, self.options = adapter, check, reports, options

    def runtest(self) -> None:
        if self.adapter not in self.reports:
            report = verify(self.adapter, connections=self.options["connections"])
            self.reports[self.adapter] = report
            if self.options["report_dir"]:
                report.write(Path(self.options["report_dir"]))
        assert_check(self.reports[self.adapter], self.check)

    def reportinfo(self) -> tuple[str, int, str]:
        return f"lidm-adapter:{self.adapter}", 0, f"{self.adapter}::{self.check}"


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
