"""The adapter conformance checks, run in a sandbox that never changes the department's source.

The sandbox is a throwaway gateway (its own keyring and central database) and, for drops, a copy of
the complete drops, so settling a drop (archive/reject) happens to the copy. SQL sources are only read.
Every check ends pass, warn (conforms, but a person should look), fail, or skip (does not apply).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from lidm.adapter import Adapter
from lidm.central.schema import dataset_table
from lidm.central.schema import quarantine as quarantine_table
from lidm.config import Settings
from lidm.conform import check_columns, check_mapping, conform
from lidm.contracts.model import Classification, Protection
from lidm.errors import LidmError
from lidm.pipeline import BatchResult, run_feed
from lidm.sources.stores import open_store
from lidm.testkit.boundary import check_boundary
from lidm.testkit.leaks import check_protection
from lidm.testkit.report import FAIL, PASS, WARN, Report
from lidm.testkit.sandbox import Sandbox, captured_logs
from lidm.testkit.verifier import VerifierBase
from lidm.validate import ROW, Validator


class Verifier(VerifierBase):
    """Runs the standard checks for one adapter; `run()` returns the report."""

    # --- the run ----------------------------------------------------------------------------------

    def run(self) -> Report:
        import lidm

        started = datetime.now(UTC).isoformat(timespec="seconds")
        with tempfile.TemporaryDirectory(prefix="lidm-verify-") as tmp:
            work = self.workdir or Path(tmp)
            with captured_logs() as capture:
                self._run_checks(work)
            self.logs = capture.lines
            self._guard("protection", self._check_protection)
        return Report(
            adapter=self.adapter.name,
            contract=self.contract.id,
            contract_version=self.contract.version,
            source=self.adapter.source.describe(),
            checks=self.results,
            started_at=started,
            lidm_version=lidm.__version__,
        )

    def _run_checks(self, work: Path) -> None:
        if not self._guard("mapping", self._check_mapping):
            return
        if not self._guard("connects", self._check_connects):
            return
        self.sandbox = Sandbox.create(work / "gateway", self._sandbox_connections(work), self.central_url)
        if not self._guard("columns", self._check_columns):
            return
        if not self._guard("sample_validates", self._check_sample):
            return
        if not self._guard("loads", self._check_load):
            return
        self._guard("keys_unique", self._check_keys)
        self._guard("quarantine", self._check_quarantine)
        self._guard("watermark_boundary", self._check_boundary)
        self._guard("idempotent", self._check_idempotent)

    def _sandbox_connections(self, work: Path) -> dict[str, str]:
        """SQL sources are read where they are; complete drops are copied so nothing moves at the source."""
        source = self.adapter.source
        connections = dict(self.connections)
        if source.delivers_files:
            copy = work / "drop-copy"
            copy.mkdir(parents=True, exist_ok=True)
            store = open_store(self._url(), self.settings)
            try:
                self.drop_files = source.pending(store)
                for name in self.drop_files:
                    for part in (name, name + source.marker):
                        with store.open(part) as fh:
                            (copy / part).write_bytes(fh.read())
            finally:
                store.close()
            connections[source.connection] = copy.resolve().as_uri()
            self.drop_copy = copy
        return connections

    # --- the checks -------------------------------------------------------------------------------

    def _check_mapping(self) -> None:
        check_mapping(self.adapter, self.contract)
        source = self.adapter.source
        named = [c.column for c in self.adapter.converters().values()]
        named += [getattr(source, "table", None) or "", getattr(source, "watermark", None) or ""]
        todo = [n for n in named if n.startswith("TODO_")]
        if todo:
            self._record(
                "mapping", FAIL, f"{len(todo)} placeholder(s) left from `lidm adapter new`: {', '.join(todo[:5])}"
            )
            return
        absent = [f for f, m in self.adapter.mapping.items() if m is None]
        detail = f"{len(self.contract.fields) - len(absent)} of {len(self.contract.fields)} contract fields mapped"
        if absent:
            detail += f"; declared absent: {', '.join(absent)}"
        self._record("mapping", PASS, detail, mapped=len(self.contract.fields) - len(absent), absent=absent)

    def _check_connects(self) -> None:
        source, url = self.adapter.source, self._url()
        if not source.delivers_files:  # a database: connect and ask it something
            if url.startswith("odbc:"):
                from lidm.sources.sql import ping_odbc

                server = ping_odbc(url)
            else:
                engine = sa.create_engine(url)
                try:
                    with engine.connect() as conn:
                        conn.execute(sa.text("SELECT 1"))
                    server = engine.dialect.name
                finally:
                    engine.dispose()
            self._record("connects", PASS, f"connected ({server})")
            return
        store = open_store(url, self.settings)
        try:
            store.connect()
            pending = source.pending(store)
        finally:
            store.close()
        if not pending:
            self._record(
                "connects",
                FAIL,
                f"connected to {store.where}, but no complete drop matches {source.pattern} with its "
                f"{source.marker} marker: put one sample drop there to verify against",
            )
            return
        self._record("connects", PASS, f"connected to {store.where}; {len(pending)} complete drop(s)", drops=pending)

    def _first_chunk(self) -> pa.Table:
        source = self.adapter.source
        url = self.sandbox.connections[source.connection]
        first = source.sample(url, self.settings, self.sample_rows)
        if first is None and source.delivers_files:
            raise LidmError("no complete drop to sample")
        return first if first is not None else pa.table({ROW: pa.array([], pa.int64())})

    def _check_columns(self) -> None:
        chunk = self._first_chunk()
        source = self.adapter.source
        where = source.describe() if source.delivers_files else getattr(source, "table", None) or "query"
        if chunk.num_columns > 1:
            check_columns(chunk.column_names, self.adapter, where)
        self._record("columns", PASS, f"the source's {chunk.num_columns - 1} columns match the mapping")
        self.sample = chunk

    def _check_sample(self) -> None:
        chunk = self.sample
        self._learn_raw(chunk)
        if chunk.num_rows == 0:
            self._record("sample_validates", WARN, "the source holds no rows to sample")
            return
        validator = Validator(self.contract, self.settings.city_prefix, self.settings.timezone)
        rows = validator.normalize(conform(chunk, self.adapter, self.contract))
        checked = validator.validate(rows)
        bad = len(checked.bad_rows)
        codes = Counter(p.code for problems in checked.problems.values() for p in problems)
        by_field = Counter(f"{p.field}:{p.code}" for problems in checked.problems.values() for p in problems)
        # A mapping mistake (a wrong code table, a wrong date format) shows as ONE field failing for many
        # rows; faults scattered over fields are the department's data, which the quarantine handles.
        worst, worst_n = by_field.most_common(1)[0] if by_field else ("", 0)
        detail = f"{chunk.num_rows - bad} of {chunk.num_rows} sampled rows valid"
        if bad:
            detail += "; problems: " + ", ".join(f"{k} ×{n}" for k, n in by_field.most_common(5))
        systematic = worst_n > 2 and worst_n / chunk.num_rows > self.tolerance
        status = PASS if bad == 0 else FAIL if systematic else WARN
        if status == FAIL:
            detail += f" ({worst} in over {self.tolerance:.0%} of rows: check its mapping, code table or date format)"
        self._record("sample_validates", status, detail, sampled=chunk.num_rows, invalid=bad, codes=dict(codes))

    def _learn_raw(self, chunk: pa.Table) -> None:
        """Raw personal values of the sample, for the leak scan: the scanner looks for exactly these."""
        converters = self.adapter.converters()
        lower = {c.lower(): c for c in chunk.column_names}
        for f in self.contract.fields:
            conv = converters.get(f.name)
            if conv is None or conv.column.lower() not in lower:
                continue
            if f.classification not in (Classification.DIRECT_IDENTIFIER, Classification.SENSITIVE):
                continue
            if Protection.CLEAR in f.protection:
                continue
            values = pc.cast(chunk[lower[conv.column.lower()]], pa.string()).to_pylist()
            numeric = {"id_number", "phone"} & {c.value for c in f.checks} or f.name.endswith(("_no", "account"))
            if numeric:
                self.scanner.learn(values)
            elif f.name == "name" or f.name.endswith("_name"):
                self.scanner.learn(values, whole_only=True)

    def _run(self) -> list[BatchResult]:
        results = run_feed(self.adapter, self.sandbox.settings, connections=self.sandbox.connections)
        self.runs.append(results)
        return results

    def _check_load(self) -> None:
        results = self._run()
        if not results:
            self._record("loads", FAIL, "nothing was pending to load")
            return
        rejected = [r for r in results if r.status == "rejected"]
        totals = {k: sum(getattr(r, k) for r in results) for k in ("extracted", "loaded", "quarantined")}
        if rejected:
            self._record("loads", FAIL, f"batch rejected: {rejected[0].reason}", **totals)
            return
        if totals["extracted"] != totals["loaded"] + totals["quarantined"]:
            self._record("loads", FAIL, "extracted != loaded + quarantined", **totals)
            return
        self._record(
            "loads",
            PASS,
            f"{len(results)} batch(es): extracted {totals['extracted']} = loaded {totals['loaded']} + "
            f"quarantined {totals['quarantined']}",
            **totals,
        )

    def _check_keys(self) -> None:
        engine = self._engine()
        try:
            with engine.connect() as conn:
                dupes = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(quarantine_table)
                    .where(quarantine_table.c.reason == "duplicate_key")
                ).scalar_one()
        finally:
            engine.dispose()
        extracted = sum(r.extracted for r in self.runs[0])
        key = ", ".join(self.contract.key)
        if not dupes:
            self._record("keys_unique", PASS, f"key ({key}) unique in {extracted} rows")
            return
        share = dupes / max(extracted, 1)
        status = FAIL if dupes > 2 and share > self.tolerance else WARN
        detail = f"{dupes} rows share a key ({key}) with another row and were quarantined"
        if status == FAIL:
            detail += "; is the key mapped from the right source column?"
        self._record("keys_unique", status, detail, duplicates=dupes)

    def _check_quarantine(self) -> None:
        engine = self._engine()
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(quarantine_table.c.reason, quarantine_table.c.row_number, quarantine_table.c.message)
                ).all()
        finally:
            engine.dispose()
        quarantined = sum(r.quarantined for r in self.runs[0])
        if len(rows) != quarantined:
            self._record("quarantine", FAIL, f"{quarantined} quarantined by the batch, {len(rows)} rows in quarantine")
            return
        unexplained = [r for r in rows if not r.reason or not r.message or r.row_number is None]
        if unexplained:
            self._record("quarantine", FAIL, f"{len(unexplained)} quarantined rows lack a reason or a row number")
            return
        if not rows:
            self._record("quarantine", PASS, "no row needed quarantine")
            return
        by_reason: dict[str, list[int]] = {}
        for r in sorted(rows, key=lambda r: r.row_number):
            by_reason.setdefault(r.reason, []).append(r.row_number)
        listed = "; ".join(
            f"{reason} ×{len(numbers)} (rows {', '.join(map(str, numbers[:10]))}{', …' if len(numbers) > 10 else ''})"
            for reason, numbers in sorted(by_reason.items(), key=lambda kv: -len(kv[1]))
        )
        self._record(
            "quarantine",
            PASS,
            f"{len(rows)} rows quarantined, each with its reason and source row: {listed}",
            rows=by_reason,
        )

    def _state(self) -> tuple[int, str]:
        """Rows and a digest of the dataset's central table (its row digests in key order)."""
        table = dataset_table(self.contract, sa.MetaData())
        engine = self._engine()
        try:
            with engine.connect() as conn:
                digests = conn.execute(
                    sa.select(table.c._row_digest, table.c._retired_batch).order_by(table.c._row_digest)
                ).all()
        finally:
            engine.dispose()
        import hashlib

        h = hashlib.sha256()
        for d, retired in digests:
            h.update(f"{d}:{retired is not None}".encode())
        return len(digests), h.hexdigest()

    def _check_idempotent(self) -> None:
        before = self._state()
        source = self.adapter.source
        if source.delivers_files:
            # Deliver the very same drops again, as a department's retry would.
            store_copy = self.drop_copy
            for name in self.drop_files:
                for part in (name, name + source.marker):
                    archived = store_copy / "archive" / part
                    if archived.exists():
                        (store_copy / part).write_bytes(archived.read_bytes())
        results = self._run()
        after = self._state()
        statuses = Counter(r.status for r in results)
        loaded_again = [r for r in results if r.status == "loaded" and (r.inserted or r.updated or r.retired)]
        if before != after or loaded_again:
            self._record("idempotent", FAIL, f"a re-run changed the central table ({dict(statuses)})")
            return
        if source.delivers_files and any(r.status == "rejected" and "replay" not in (r.reason or "") for r in results):
            self._record(
                "idempotent", FAIL, "the same drop delivered again was rejected for another reason than replay"
            )
            return
        if source.delivers_files:
            detail = f"the same {len(self.drop_files)} drop(s) delivered again were refused as replays; nothing changed"
        else:
            detail = "a re-run changed nothing" + (
                " (batches: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + ")" if statuses else ""
            )
        self._record("idempotent", PASS, detail, rows=after[0])

    def _check_boundary(self) -> None:
        check_boundary(self)

    def _check_protection(self) -> None:
        check_protection(self)


def verify(
    adapter: Adapter | str,
    *,
    connections: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    central_url: str | None = None,
    sample_rows: int = 1000,
) -> Report:
    """Run every conformance check of one adapter against its source; nothing at the source changes."""
    return Verifier(
        adapter, connections=connections, settings=settings, central_url=central_url, sample_rows=sample_rows
    ).run()
