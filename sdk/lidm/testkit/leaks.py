"""The protection check: the leak scanner over everything a verification run wrote or said."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import sqlalchemy as sa

from lidm.central.schema import batch as batch_table
from lidm.central.schema import dataset_table
from lidm.central.schema import quarantine as quarantine_table
from lidm.contracts.model import Protection
from lidm.testkit.report import FAIL, PASS, SKIP

if TYPE_CHECKING:
    from lidm.testkit.verifier import VerifierBase


def check_protection(v: VerifierBase) -> None:
    scanner = v.scanner
    if not v.runs:
        v._record("protection", SKIP, "nothing was loaded to scan")
        return
    table = dataset_table(v.contract, sa.MetaData())
    clear = {f.name for f in v.contract.fields if Protection.CLEAR in f.protection}
    scanned_columns = [c for c in table.columns if c.name not in clear and not c.name.startswith("_")]
    engine = v._engine()
    cells = 0
    try:
        with engine.connect() as conn:
            for row_no, row in enumerate(conn.execute(sa.select(*scanned_columns)), start=1):
                for col, value in zip(scanned_columns, row, strict=True):
                    if value is not None:
                        cells += 1
                        scanner.scan(value, f"{table.name}.{col.name} row {row_no}")
            for row_no, row in enumerate(
                conn.execute(
                    sa.select(
                        quarantine_table.c.message,
                        quarantine_table.c.problems,
                        quarantine_table.c.payload,
                        quarantine_table.c.field,
                    )
                ),
                start=1,
            ):
                for name, value in row._mapping.items():
                    scanner.scan(value, f"lidm_quarantine.{name} row {row_no}")
            for row in conn.execute(sa.select(batch_table.c.batch_id, batch_table.c.manifest, batch_table.c.reason)):
                scanner.scan(row.manifest, f"manifest of batch {row.batch_id}")
                scanner.scan(row.reason, f"reason of batch {row.batch_id}")
    finally:
        engine.dispose()
    scanner.scan_many(v.logs, "log line")
    for i, results in enumerate(v.runs, start=1):
        scanner.scan(json.dumps([r.as_dict() for r in results], ensure_ascii=False), f"run {i} result (XCom)")
    if hasattr(v, "drop_copy"):
        for receipt in sorted(v.drop_copy.rglob("*.receipt.json")) + sorted(v.drop_copy.rglob("*.reason.txt")):
            scanner.scan(receipt.read_text("utf-8"), f"file {receipt.name}")
    for result in v.results:
        scanner.scan(result.detail, f"report line {result.name}")
    if scanner.findings:
        first = ", ".join(str(f) for f in scanner.findings[:5])
        v._record(
            "protection",
            FAIL,
            f"{len(scanner.findings)} leak(s) of personal data: {first}",
            findings=[str(f) for f in scanner.findings],
        )
        return
    v._record(
        "protection",
        PASS,
        f"no raw ID number, phone, card number or name in {cells} protected cells, the quarantine, "
        f"manifests, {len(v.logs)} log lines or run results ({len(scanner.known)} raw values sought)",
        cells=cells,
        log_lines=len(v.logs),
    )
