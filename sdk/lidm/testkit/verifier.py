"""A verification run's state and plumbing, shared by the checks.

`checks.Verifier` derives from `VerifierBase` and runs the checks; the checks kept in their own modules
(`boundary`, `leaks`) take a `VerifierBase`, so they depend on this module and not on `checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lidm.adapter import Adapter
from lidm.central import db
from lidm.config import Settings
from lidm.contracts import Contract, load_catalog
from lidm.errors import LidmError, RejectedBatch
from lidm.pipeline import BatchResult
from lidm.registry import get_adapter
from lidm.testkit.pii import Scanner
from lidm.testkit.report import DEFAULT_TOLERANCE, FAIL, CheckResult
from lidm.testkit.sandbox import Sandbox


class VerifierBase:
    """One adapter's verification: what the checks read and record, and how a check fails."""

    # Set while the checks run: the throwaway gateway, and for drops the copy and the drops copied.
    sandbox: Sandbox
    drop_copy: Path
    drop_files: list[str]

    def __init__(
        self,
        adapter: Adapter | str,
        *,
        connections: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        workdir: Path | None = None,
        central_url: str | None = None,
        sample_rows: int = 1000,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        self.settings = settings or Settings()
        self.adapter = get_adapter(adapter) if isinstance(adapter, str) else adapter
        self.contract: Contract = load_catalog(self.settings.contracts_dir)[self.adapter.contract]
        self.connections = {**self.settings.connections, **(connections or {})}
        self.workdir = workdir
        self.central_url = central_url
        self.sample_rows = sample_rows
        self.tolerance = tolerance
        self.results: list[CheckResult] = []
        self.scanner = Scanner()
        self.runs: list[list[BatchResult]] = []
        self.logs: list[str] = []

    def _record(self, name: str, status: str, detail: str, **figures: Any) -> CheckResult:
        result = CheckResult(name, status, detail, figures)
        self.results.append(result)
        return result

    def _guard(self, name: str, fn: Callable[[], None]) -> bool:
        """Run one check; an exception is that check's failure, said without any row's values."""
        try:
            fn()
            return not any(r.name == name and r.status == FAIL for r in self.results)
        except (LidmError, RejectedBatch) as exc:
            self._fail_once(name, str(exc))
        except Exception as exc:  # a department's driver can raise anything; the report must still come out
            self._fail_once(name, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
        return False

    def _fail_once(self, name: str, detail: str) -> None:
        """A check that raised fails; if it had already recorded a result, that result becomes the failure."""
        for result in self.results:
            if result.name == name:
                result.status, result.detail = FAIL, detail
                return
        self._record(name, FAIL, detail)

    def _url(self) -> str:
        name = self.adapter.source.connection
        if name not in self.connections:
            raise LidmError(
                f"no connection '{name}': pass --connections (lidm adapter verify), --lidm-connections (pytest) "
                f'or set LIDM_CONNECTIONS=\'{{"{name}": "URL"}}\''
            )
        return self.connections[name]

    def _engine(self) -> sa.Engine:
        return db.connect(self.sandbox.settings)
