"""A pytest base class: a department's test module derives from it and gets one test per check.

    from lidm.testkit import AdapterConformance

    class TestMyFeed(AdapterConformance):
        adapter = "housing.public_rental_housing"
        connections = {"housing_db": "postgresql+psycopg://reader@db.housing/rental"}

Connections default to LIDM_CONNECTIONS; override the `lidm_connections` fixture to build a source
first (the sample sources of `lidm sample`, or a team's own test database); like the base class's
fixtures, an override is class-scoped and a classmethod:

    @pytest.fixture(scope="class")
    @classmethod
    def lidm_connections(cls, tmp_path_factory): ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from lidm.adapter import Adapter
from lidm.config import Settings
from lidm.registry import get_adapter
from lidm.testkit.checks import verify
from lidm.testkit.connections import load_connections
from lidm.testkit.report import CHECKS, FAIL, SKIP, Report

_REPORTS: dict[Any, Report] = {}


def assert_check(report: Report, name: str) -> None:
    """Fail (or skip) one test with the check's own words."""
    found = [c for c in report.checks if c.name == name]
    if not found:
        failed = next((c for c in report.checks if c.status == FAIL), None)
        pytest.fail(f"{name} did not run: {failed.name + ' failed: ' + failed.detail if failed else 'earlier stop'}")
    check = found[0]
    if check.status == SKIP:
        pytest.skip(check.detail)
    if check.status == FAIL:
        pytest.fail(f"{report.adapter} {name}: {check.detail}", pytrace=False)


class AdapterConformance:
    """Derive, set `adapter` (and `connections` if not from the environment); each test is one check."""

    adapter: ClassVar[str | Adapter]
    connections: ClassVar[Mapping[str, str] | None] = None
    sample_rows: ClassVar[int] = 1000

    @pytest.fixture(scope="class")
    @classmethod
    def lidm_connections(cls, request: pytest.FixtureRequest) -> Mapping[str, str] | None:
        """The class's `connections`, else pytest's --lidm-connections, else LIDM_CONNECTIONS."""
        if cls.connections is not None:
            return cls.connections
        return load_connections(request.config.getoption("--lidm-connections", None))

    @pytest.fixture(scope="class")
    @classmethod
    def lidm_report(cls, lidm_connections: Mapping[str, str] | None) -> Report:
        if cls not in _REPORTS:
            adapter = get_adapter(cls.adapter) if isinstance(cls.adapter, str) else cls.adapter
            known = {**Settings().connections, **(lidm_connections or {})}
            if adapter.source.connection not in known:
                pytest.skip(
                    f"no connection '{adapter.source.connection}' for {adapter.name}: give --lidm-connections, "
                    "LIDM_CONNECTIONS or the class's connections to run its conformance checks"
                )
            _REPORTS[cls] = verify(adapter, connections=lidm_connections, sample_rows=cls.sample_rows)
        return _REPORTS[cls]


def _make_test(name: str):  # type: ignore[no-untyped-def]
    def test(self: AdapterConformance, lidm_report: Report) -> None:
        assert_check(lidm_report, name)

    test.__name__ = f"test_{name}"
    test.__doc__ = f"Conformance check: {name}."
    return test


for _name in CHECKS:
    setattr(AdapterConformance, f"test_{_name}", _make_test(_name))
