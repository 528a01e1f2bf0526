"""The adapter test kit: what a department team runs to prove its adapter conforms.

`lidm adapter verify NAME`, `pytest --lidm-adapter NAME`, or a test class deriving from
`AdapterConformance` all run the same checks (`CHECKS`) and produce the same report.
"""

from lidm.testkit.checks import Verifier, verify
from lidm.testkit.pii import Finding, Scanner, kinds_in
from lidm.testkit.report import CHECKS, FAIL, PASS, SKIP, WARN, CheckResult, Report

__all__ = [
    "CHECKS",
    "FAIL",
    "PASS",
    "SKIP",
    "WARN",
    "AdapterConformance",
    "CheckResult",
    "Finding",
    "Report",
    "Scanner",
    "Verifier",
    "kinds_in",
    "verify",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # The pytest base class needs pytest; everything else here does not.
    if name == "AdapterConformance":
        from lidm.testkit.suite import AdapterConformance

        return AdapterConformance
    raise AttributeError(name)
