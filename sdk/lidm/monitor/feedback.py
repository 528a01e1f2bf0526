"""Take in what departments return through their channels: acknowledgements, then dispositions.

From a folder or SFTP channel: ``inbox/ack_*.csv`` (warning_id, acknowledged_at) and ``inbox/disposition_*.csv``
(the platform.disposition fields a department sends: warning_id, department, outcome, assistance_kind, amount,
granted_on, reason, handler, disposed_at, id_number, household_id, district_code; department and district_code
may be left out: the channel and the warning supply them). From a table channel: the ``acknowledged_at`` column
of the department's warning table, and the rows of its disposition table not yet taken (``lidm_status`` empty).

The rows are read here, through the transport layer the drop feeds use (sources.stores and sources.tables), and
applied by ``monitor.dispositions``. A file is one central transaction; then it moves to ``inbox/done/`` with a
``.result.json`` (per row: status, disposition id, reason), or, when it cannot be read at all, to
``inbox/rejected/`` with a ``.reason.txt``. A crash between the commit and the move re-reads the file next time,
which records nothing new. A table's rows get their verdict in its ``lidm_*`` columns.
"""

from __future__ import annotations

import fnmatch
import io
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from lidm.cells import text_value
from lidm.central import db
from lidm.config import Settings
from lidm.contracts.load import ContractCatalog, load_catalog
from lidm.errors import ChannelError, ConfigError, LidmError, RejectedBatch
from lidm.keys import Keyring, load_keyring
from lidm.monitor.channels import DONE, INBOX, REJECTED, FileChannel, TableChannel, open_channel
from lidm.monitor.dispositions import Intake, SourceResult
from lidm.monitor.lifecycle import WARNING_CONTRACT, city_now
from lidm.monitor.push import departments_of, granted_fields, warning_grant
from lidm.sources.csvfile import read_csv_chunks
from lidm.validate import ROW

log = logging.getLogger("lidm.monitor.feedback")
ACK_PATTERN, DISPOSITION_PATTERN = "ack_*.csv", "disposition_*.csv"
# Columns a disposition file must have; department and district_code are supplied when left out.
REQUIRED_COLUMNS = ("warning_id", "outcome", "handler", "disposed_at", "id_number")


@dataclass
class CollectResult:
    """Everything a collect took in; counts, codes and names only, safe for logs and XCom."""

    sources: list[SourceResult] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)  # reason code -> rows
    failed: dict[str, str] = field(default_factory=dict)  # department -> why its channel failed
    checked: list[str] = field(default_factory=list)  # departments whose channel was looked at

    def totals(self, department: str | None = None) -> dict[str, int]:
        """Counts summed over sources (of one department)."""
        keys = ("rows", "acknowledged", "applied", "refused", "unchanged")
        picked = [s for s in self.sources if department is None or s.department == department]
        out = {k: sum(getattr(s, k) for s in picked) for k in keys}
        out["files"] = sum(1 for s in picked if s.status == "taken")
        out["rejected_files"] = sum(1 for s in picked if s.status == "rejected")
        return out

    def departments(self) -> list[str]:
        return list(dict.fromkeys(self.checked + [s.department for s in self.sources] + list(self.failed)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "totals": self.totals(),
            "departments": {d: self.totals(d) for d in self.departments()},
            "refusals": dict(self.refusals),
            "failed": self.failed,
            "sources": [asdict(s) for s in self.sources],
        }


class CollectFailed(ChannelError):
    """Some departments' channels failed; the others were taken in. ``result`` holds what was."""

    def __init__(self, result: CollectResult) -> None:
        self.result = result
        super().__init__("; ".join(f"collect from {d} failed: {why}" for d, why in result.failed.items()))


def collect_dispositions(
    settings: Settings, *, departments: Sequence[str] | None = None, now: datetime | None = None
) -> CollectResult:
    """Take in every department's (or the named ones') acknowledgements and dispositions from its channel."""
    catalog = load_catalog(settings.contracts_dir)
    known = departments_of(catalog)
    unknown = sorted(set(departments or ()) - set(known))
    if unknown:
        raise ConfigError(f"no department {', '.join(unknown)}; one of {', '.join(known)}")
    engine = db.connect(settings)
    try:
        db.ensure_current(engine, settings)
        collector = _Collector(settings, catalog, load_keyring(settings), engine, now or city_now(settings.timezone))
        targets = list(departments or known)
        for department in targets:
            try:
                collector.department(department)
            except LidmError as exc:
                if len(targets) == 1:
                    raise  # one department asked (an Airflow task): its own error, retryable or not
                log.warning("collect from %s failed: %s", department, exc)
                collector.result.failed[department] = str(exc)
        if collector.result.failed:
            raise CollectFailed(collector.result)
        return collector.result
    finally:
        engine.dispose()


class _Collector:
    def __init__(
        self, settings: Settings, catalog: ContractCatalog, keyring: Keyring, engine: sa.Engine, now: datetime
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.now = now
        self.result = CollectResult()
        self.intake = Intake(
            catalog,
            keyring,
            engine,
            now,
            city_prefix=settings.city_prefix,
            timezone=settings.timezone,
            refusals=self.result.refusals,
        )

    # ------------------------------------------------------------------------------------------ channels

    def department(self, department: str) -> None:
        self.result.checked.append(department)
        channel = open_channel(self.settings, department)
        with channel:
            if isinstance(channel, TableChannel):
                self._table(channel)
            else:
                self._folder(channel)
        taken = self.result.totals(department)
        if taken["rows"] or taken["rejected_files"]:
            log.info(
                "collect from %s: %d file(s), %d rejected; acknowledged %d, applied %d, refused %d, unchanged %d",
                department,
                taken["files"],
                taken["rejected_files"],
                taken["acknowledged"],
                taken["applied"],
                taken["refused"],
                taken["unchanged"],
            )

    def _folder(self, channel: FileChannel) -> None:
        names = channel.list(INBOX)
        acks = [n for n in names if fnmatch.fnmatch(n.lower(), ACK_PATTERN)]
        dispositions = [n for n in names if fnmatch.fnmatch(n.lower(), DISPOSITION_PATTERN)]
        other = len(names) - len(acks) - len(dispositions)
        if other:
            log.info(
                "collect from %s: %d inbox file(s) are neither %s nor %s; left in place",
                channel.department,
                other,
                ACK_PATTERN,
                DISPOSITION_PATTERN,
            )
        # Acknowledgements first: a warning acknowledged and disposed in one round goes through both.
        for name in acks + dispositions:
            self._file(channel, name, "acknowledgements" if name in acks else "dispositions")

    def _file(self, channel: FileChannel, name: str, kind: str) -> None:
        source = channel.name_of(INBOX, name)
        data = channel.read(INBOX, name)
        try:
            rows, numbers, malformed = self._read_csv(data, source, channel.encoding, kind)
        except RejectedBatch as exc:
            channel.move(INBOX, name, REJECTED)
            channel.put(REJECTED, f"{name}.reason.txt", f"{exc}\n".encode())
            log.warning("collect from %s: %s rejected: %s", channel.department, name, exc)
            self.result.sources.append(SourceResult(channel.department, source, kind, "rejected", reason=str(exc)))
            return
        if kind == "acknowledgements":
            outcome, rows_out = self.intake.acks(channel.department, source, rows, numbers)
        else:
            outcome, decisions = self.intake.dispositions(channel.department, source, rows, numbers, malformed)
            rows_out = [
                {"row": d.row_number, "status": d.status, "disposition_id": d.disposition_id, "reason": d.reason}
                for d in decisions
            ]
        channel.move(INBOX, name, DONE)
        summary = {k: v for k, v in asdict(outcome).items() if k not in ("department", "source", "status")}
        report = json.dumps(summary | {"file": name, "results": rows_out}, ensure_ascii=False, indent=1)
        channel.put(DONE, f"{name}.result.json", report.encode("utf-8"))
        self.result.sources.append(outcome)

    def _read_csv(
        self, data: bytes, source: str, encoding: str, kind: str
    ) -> tuple[list[dict[str, str | None]], list[int], list[dict[str, Any]]]:
        """Rows as trimmed text (empty = None), their row numbers (1 = first after the header), malformed rows."""
        names, chunks, _reader, malformed = read_csv_chunks(io.BytesIO(data), file=source, encoding=encoding)
        need = ("warning_id",) if kind == "acknowledgements" else REQUIRED_COLUMNS
        missing = [c for c in need if c not in names]
        if missing:
            raise RejectedBatch(
                "missing_column",
                f"the header lacks {', '.join(missing)}; a {kind[:-1]} file has the columns "
                + ("warning_id, acknowledged_at" if kind == "acknowledgements" else "of platform.disposition"),
                file=source,
                row=1,
            )
        rows: list[dict[str, str | None]] = []
        numbers: list[int] = []
        for chunk in chunks:
            for r in chunk.to_pylist():
                numbers.append(r.pop(ROW))
                rows.append({k: _clean(v) for k, v in r.items()})
        return rows, numbers, malformed

    def _table(self, channel: TableChannel) -> None:
        dept = channel.department
        grant = warning_grant(self.catalog, dept)
        fields = granted_fields(self.catalog[WARNING_CONTRACT], grant) if grant else []
        warnings_t = channel.warning_table(fields)
        dispositions_t = channel.disposition_table(self.intake.contract)
        waiting = self.intake.awaiting_ack(dept)
        with channel.begin("read acknowledgements and dispositions") as conn:
            insp = sa.inspect(conn)
            acked: list[sa.Row[Any]] = []
            if waiting and insp.has_table(warnings_t.name, schema=warnings_t.schema):
                for start in range(0, len(waiting), 500):
                    acked += conn.execute(
                        sa.select(warnings_t.c.warning_id, warnings_t.c.acknowledged_at).where(
                            warnings_t.c.warning_id.in_(waiting[start : start + 500]),
                            warnings_t.c.acknowledged_at.is_not(None),
                        )
                    ).all()
            fresh = []
            if insp.has_table(dispositions_t.name, schema=dispositions_t.schema):
                fresh = list(
                    conn.execute(
                        sa.select(dispositions_t)
                        .where(dispositions_t.c.lidm_status.is_(None))
                        .order_by(dispositions_t.c.row_id)
                    ).mappings()
                )
        if acked:
            rows = [{"warning_id": r.warning_id, "acknowledged_at": text_value(r.acknowledged_at)} for r in acked]
            outcome, _ = self.intake.acks(dept, channel.where, rows, list(range(1, len(rows) + 1)))
            self.result.sources.append(outcome)
        if not fresh:
            return
        source = channel.name_of(channel.dispositions_name)
        keep = [c.name for c in dispositions_t.columns if c.name != "row_id" and not c.name.startswith("lidm_")]
        rows = [{k: _clean(text_value(r[k])) for k in keep} for r in fresh]
        outcome, decisions = self.intake.dispositions(dept, source, rows, [r["row_id"] for r in fresh], [])
        self.result.sources.append(outcome)
        # The department sees the verdict on its own rows; a crash before this re-reads them, recording nothing new.
        verdicts = [
            {
                "_row": d.row_number,
                "_status": d.earlier or d.status,
                "_reason": d.reason,
                "_id": d.disposition_id,
                "_at": self.now,
            }
            for d in decisions
        ]
        t = dispositions_t
        with channel.begin("record the verdicts on the disposition rows") as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.row_id == sa.bindparam("_row"))
                .values(
                    lidm_status=sa.bindparam("_status"),
                    lidm_reason=sa.bindparam("_reason"),
                    lidm_disposition_id=sa.bindparam("_id"),
                    lidm_collected_at=sa.bindparam("_at"),
                ),
                verdicts,
            )


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
